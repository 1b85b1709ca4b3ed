// cuBLAS, loaded with dlopen on the first GEMM. Linking it outright would map libcublasLt (half a
// gigabyte) into every luna process at start-up, costing ~0.25 s and ~200 MB of resident memory
// even in programs that never touch a GPU.
#pragma once
#include <string>

#include <cublas_v2.h>

namespace luna::cuda {

// cublas_api.h overloads this name in C++ (a legacy compute-type form), so the type is spelled out.
using GemmStridedBatchedExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int m, int n,
                                                  int k, const void* alpha, const void* A, cudaDataType, int lda,
                                                  long long stride_a, const void* B, cudaDataType, int ldb,
                                                  long long stride_b, const void* beta, void* C, cudaDataType,
                                                  int ldc, long long stride_c, int batch, cublasComputeType_t,
                                                  cublasGemmAlgo_t);

struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  GemmStridedBatchedExFn gemm_strided_batched_ex = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
  std::string path;  // the file the library was loaded from
};

// The loaded entry points; throws naming the library and the loader's message if it is missing.
const CublasApi& cublas();

}  // namespace luna::cuda
