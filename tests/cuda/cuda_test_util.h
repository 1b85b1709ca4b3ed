// Shared by the CUDA tests: skipping cleanly where there is no device (or no CUDA build), and
// CUDA-versus-CPU comparisons that run an op on both devices from the same CPU inputs.
#pragma once
#include "test_util.h"

#include <functional>
#include <string>
#include <vector>

#if LUNA_WITH_CUDA
#include <luna/backends/cuda/cuda.h>
#endif

namespace luna::testing {

inline bool cuda_device_present() {
#if LUNA_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

inline std::string no_cuda_device_message() {
#if LUNA_WITH_CUDA
  return "no CUDA device (" + cuda::unavailable_reason() + "); test skipped";
#else
  return "no CUDA device (luna was built without the CUDA backend); test skipped";
#endif
}

inline const Device kCuda = Device::cuda(0);

// The same values on the CUDA device, as a new leaf that requires grad if `like` does.
inline Tensor on_cuda(const Tensor& cpu) {
  Tensor t = cpu.detach().to(kCuda);
  if (cpu.requires_grad()) t.requires_grad_(true);
  return t;
}

// A CPU leaf of f32 values uniform in [lo, hi) (or dtype), reproducible from seed.
inline Tensor uniform_cpu(const Dims& shape, uint64_t seed, double lo = -2.0, double hi = 2.0, DType dtype = kFloat32) {
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * (hi - lo) + lo).to(dtype).detach();
}

// got (CUDA) against want (CPU): same shape, dtype, and values within tolerance.
inline void require_matches_cpu(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  INFO(what);
  REQUIRE(got.device() == kCuda);
  REQUIRE(want.device().is_cpu());
  REQUIRE(got.sizes() == want.sizes());
  REQUIRE(got.dtype() == want.dtype());
  require_close(values(got), values(want), rtol, atol, what);
}

// Runs fn on CPU leaves and on CUDA copies of them, then backward from the same random output
// gradient on both; compares outputs and every input's gradient.
inline void require_forward_backward_match(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                           const std::vector<Tensor>& cpu_inputs, double rtol, double atol,
                                           const std::string& what) {
  std::vector<Tensor> cpu_leaves, cuda_leaves;
  for (const Tensor& t : cpu_inputs) {
    Tensor leaf = t.detach().clone();
    if (leaf.is_floating_point()) leaf.requires_grad_(true);
    cpu_leaves.push_back(leaf);
    cuda_leaves.push_back(on_cuda(leaf));
  }
  const Tensor cpu_out = fn(cpu_leaves);
  const Tensor cuda_out = fn(cuda_leaves);
  require_matches_cpu(cuda_out, cpu_out, rtol, atol, what + " (forward)");
  if (!cpu_out.requires_grad()) return;
  const Tensor grad = uniform_cpu(cpu_out.sizes(), 977, -1.0, 1.0, cpu_out.dtype());
  cpu_out.backward(grad);
  cuda_out.backward(grad.to(kCuda));
  for (size_t i = 0; i < cpu_leaves.size(); ++i) {
    if (!cpu_leaves[i].requires_grad()) continue;
    const Tensor want = cpu_leaves[i].grad();
    const Tensor got = cuda_leaves[i].grad();
    REQUIRE(want.defined() == got.defined());
    if (want.defined()) require_matches_cpu(got, want, rtol, atol, what + " (gradient of input " + std::to_string(i) + ")");
  }
}

}  // namespace luna::testing

// Ends the test case with a WARN saying why, where there is no CUDA device to run on.
#define LUNA_SKIP_WITHOUT_CUDA_DEVICE()                             \
  do {                                                              \
    if (!::luna::testing::cuda_device_present()) {                  \
      WARN(::luna::testing::no_cuda_device_message());              \
      return;                                                       \
    }                                                               \
  } while (0)
