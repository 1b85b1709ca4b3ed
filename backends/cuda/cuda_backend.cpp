// The CUDA backend instance and its registration, host<->device copies through pinned staging,
// and GEMM on cuBLAS (row-major through operand swap, TF32 only when allowed).
#include <luna/backends/cuda/cuda.h>
#include <luna/backends/cuda/cuda_allocator.h>
#include <luna/backends/cuda/cuda_backend.h>
#include <luna/backends/cuda/cuda_context.h>
#include <luna/backends/cuda/cublas_loader.h>

#include <algorithm>
#include <climits>

// luna is a static library: the linker keeps an archive member only if something refers to it.
// CMake links every consumer with --undefined=luna_cuda_backend_anchor, which keeps this object
// and so runs the registration below. Registration makes no CUDA call; devices are probed on
// first use, and a machine without one gets a clear error then.
extern "C" {
int luna_cuda_backend_anchor = 0;
}

namespace luna::cuda {
namespace {

const bool registered = [] {
  static CudaBackend* backend = new CudaBackend();  // leaked: may be used by static destructors
  register_backend(DeviceType::CUDA, backend);
  register_allocator(DeviceType::CUDA, &device_allocator());
  return true;
}();

void check_staged_pair(const Tensor& host, const Tensor& device, const char* op) {
  LUNA_CHECK(host.device().is_cpu() && device.device().is_cuda(), op, ": expected a CPU and a CUDA tensor, got ",
             host.str(), " and ", device.str());
  LUNA_CHECK(host.is_contiguous() && device.is_contiguous() && host.dtype() == device.dtype() &&
                 host.numel() == device.numel(),
             op, ": expected contiguous tensors of one dtype and size, got ", host.str(), " and ", device.str());
}

}  // namespace

void CudaBackend::synchronize() { cuda::synchronize(0); }

void CudaBackend::copy_from_cpu(const Tensor& src_cpu, const Tensor& dst) {
  check_staged_pair(src_cpu, dst, "copy_from_cpu");
  DeviceContext& ctx = context(dst.device());
  if (dst.nbytes() == 0) return;
  copy_host_to_device(ctx, dst.data_ptr(), src_cpu.data_ptr(), dst.nbytes());
}

void CudaBackend::copy_to_cpu(const Tensor& src, const Tensor& dst_cpu) {
  check_staged_pair(dst_cpu, src, "copy_to_cpu");
  DeviceContext& ctx = context(src.device());
  if (src.nbytes() == 0) return;
  copy_device_to_host(ctx, dst_cpu.data_ptr(), src.data_ptr(), src.nbytes());
}

void CudaBackend::gemm(const GemmArgs& g) {
  DeviceContext& ctx = context();
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const int64_t largest = std::max({g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch});
  LUNA_CHECK(largest <= int64_t(INT_MAX), "matmul: a matrix dimension, leading dimension or batch of ", largest,
             " exceeds what cuBLAS indexes (", INT_MAX, "); split the product into smaller blocks");

  cudaDataType_t type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  const float alpha_f = float(g.alpha), beta_f = float(g.beta);
  const double alpha_d = g.alpha, beta_d = g.beta;
  const void* alpha = &alpha_f;
  const void* beta = &beta_f;
  switch (g.dtype) {
    case kFloat32:
      compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case kFloat64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      alpha = &alpha_d;
      beta = &beta_d;
      break;
    // 16-bit inputs and outputs, fp32 accumulation (the mixed-precision path).
    case kBFloat16: type = CUDA_R_16BF; break;
    case kFloat16: type = CUDA_R_16F; break;
    default:
      LUNA_FAIL("matmul: dtype ", g.dtype, " is not supported on cuda:0 (expected float32, float64, bfloat16 or ",
                "float16)");
  }
  // cuBLAS is column-major: a row-major [r, c] matrix is its column-major transpose. So row-major
  // C = op(A) op(B) is computed as column-major C^T = op(B)^T op(A)^T, i.e. with the operands
  // swapped and each keeping its own transpose flag; no copies.
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  // With k = 0 nothing of A or B is read (C = beta C), but cuBLAS still validates their leading
  // dimensions, which a [m, 0] view may leave at 0.
  const int64_t lda = g.k == 0 ? std::max<int64_t>({g.lda, g.trans_a ? g.m : g.k, 1}) : g.lda;
  const int64_t ldb = g.k == 0 ? std::max<int64_t>({g.ldb, g.trans_b ? g.k : g.n, 1}) : g.ldb;
  std::lock_guard<std::mutex> lock(ctx.cublas_mutex);
  LUNA_CUBLAS_CHECK(cublas().gemm_strided_batched_ex(cublas_handle(ctx), op_b, op_a, int(g.n), int(g.m), int(g.k), alpha,
                                                     g.b, type, int(ldb), g.stride_b, g.a, type, int(lda), g.stride_a,
                                                     beta, g.c, type, int(g.ldc), g.stride_c, int(g.batch), compute,
                                                     CUBLAS_GEMM_DEFAULT),
                    "matmul (cublasGemmStridedBatchedEx)");
}

}  // namespace luna::cuda
