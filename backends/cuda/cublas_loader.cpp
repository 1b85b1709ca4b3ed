// Finds libcublas.so.<major> (the version luna was compiled against) by the normal library search,
// then next to the CUDA runtime luna was built with, and resolves the few functions luna calls.
#include <luna/backends/cuda/cublas_loader.h>
#include <luna/backends/cuda/cuda.h>
#include <luna/core/error.h>

#include <dlfcn.h>

#include <mutex>
#include <string>

#ifndef LUNA_CUDA_LIBRARY_DIR
#define LUNA_CUDA_LIBRARY_DIR ""
#endif

namespace luna::cuda {
namespace {

template <class Fn>
void resolve(void* library, const char* name, Fn& fn, const std::string& path) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  LUNA_CHECK(fn != nullptr, "cuBLAS: ", path, " has no symbol ", name, " (expected cuBLAS ", CUBLAS_VER_MAJOR, ".x)");
}

CublasApi load() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  std::string path = soname;
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string first_error = library ? "" : dlerror();
  if (!library && std::string(LUNA_CUDA_LIBRARY_DIR).size()) {
    path = std::string(LUNA_CUDA_LIBRARY_DIR) + "/" + soname;
    library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  LUNA_CHECK(library != nullptr, "cuBLAS: cannot load ", soname, " (", first_error,
             "); install cuBLAS ", CUBLAS_VER_MAJOR, " or add its directory to LD_LIBRARY_PATH");
  CublasApi api;
  resolve(library, "cublasCreate_v2", api.create, path);
  resolve(library, "cublasSetStream_v2", api.set_stream, path);
  resolve(library, "cublasGemmStridedBatchedEx", api.gemm_strided_batched_ex, path);
  resolve(library, "cublasGetStatusName", api.status_name, path);
  resolve(library, "cublasGetStatusString", api.status_string, path);
  Dl_info info;
  api.path = dladdr(reinterpret_cast<void*>(api.create), &info) && info.dli_fname ? info.dli_fname : path;
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

std::string cublas_library() { return cublas().path; }

const CublasApi& cublas() {
  static std::mutex mutex;
  static CublasApi api;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (!loaded) {  // not a function-local static initializer, so a failed load is retried next time
    api = load();
    loaded = true;
  }
  return api;
}

}  // namespace luna::cuda
