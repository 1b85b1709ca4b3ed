// Printing tensors the way PyTorch does: nested brackets, then dtype and device when not default.
#include <luna/autograd/node.h>
#include <luna/core/tensor.h>

#include <cmath>
#include <iomanip>
#include <sstream>

namespace luna {
namespace {
// A NaN prints as "nan" whatever its sign bit (iostreams write "-nan" for some), as PyTorch does.
std::ostream& print_value(std::ostream& os, double v) {
  if (std::isnan(v)) return os << "nan";
  return os << v;
}

void print_level(std::ostream& os, const double* data, const Dims& sizes, int dim, int64_t& pos, bool floating,
                 int indent) {
  if (sizes.size() == 0) {
    print_value(os, data[0]);
    return;
  }
  os << "[";
  const int64_t n = sizes[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (dim + 1 == sizes.size()) {
      const double v = data[pos++];
      if (floating) print_value(os << std::setw(10) << std::setprecision(4) << std::fixed, v);
      else os << int64_t(v);
      if (i + 1 < n) os << ", ";
    } else {
      print_level(os, data, sizes, dim + 1, pos, floating, indent + 1);
      if (i + 1 < n) os << ",\n" << std::string(size_t(indent + 1), ' ');
    }
  }
  os << "]";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const Tensor values = t.detach().to(Device::cpu(), kFloat64).contiguous();
  std::ostringstream body;
  int64_t pos = 0;
  print_level(body, values.data_ptr<double>(), t.sizes(), 0, pos, t.is_floating_point(), 7);
  os << "tensor(" << body.str();
  if (t.dtype() != kFloat32 && t.dtype() != kInt64) os << ", dtype=" << t.dtype();
  if (!t.device().is_cpu()) os << ", device='" << t.device() << "'";
  if (t.grad_fn()) os << ", grad_fn=<" << t.grad_fn()->name() << ">";
  else if (t.requires_grad()) os << ", requires_grad=True";
  return os << ")";
}

}  // namespace luna
