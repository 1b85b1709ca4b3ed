// Finite-difference check of analytic gradients in float64 (like torch.autograd.gradcheck).
// For a fixed random projection v of the output, every input element's analytic derivative of
// v·f(x) is compared with a central difference.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <luna/core/tensor.h>

namespace luna {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  uint64_t seed = 1234;  // for the output projection
};

struct GradcheckResult {
  bool ok = true;
  std::string report;  // the first mismatches, or "ok"
  double max_abs_error = 0;
};

// `inputs` must be float64 leaves; those with requires_grad are checked. They may be strided.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace luna
