// BLAS threading for kernels that call OpenBLAS from inside their own OpenMP regions (attention
// tiles, one attention head per thread). Debian's OpenBLAS is the pthreads build: it does not know it
// is called from an OpenMP region and would split every small GEMM over its own thread pool as well,
// oversubscribing the cores (and serialising the callers on its pool lock). Inside our parallel
// regions it must run single-threaded, so the pthreads build is switched to one thread for the
// region and back. The OpenMP build of OpenBLAS already runs single-threaded inside a parallel
// region, and its openblas_set_num_threads would also change OpenMP's thread count, so it is left
// alone. Consequence: do not call luna ops from several application threads while such a kernel
// runs (the BLAS thread count is process-wide).
#pragma once
#include <cblas.h>

namespace luna::cpu {

class SingleThreadedBlas {
 public:
  explicit SingleThreadedBlas(bool active) {
    constexpr int kPthreadsBuild = 1;
    if (!active || openblas_get_parallel() != kPthreadsBuild) return;
    saved_threads_ = openblas_get_num_threads();
    if (saved_threads_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (saved_threads_ > 1) openblas_set_num_threads(saved_threads_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_threads_ = 0;
};

}  // namespace luna::cpu
