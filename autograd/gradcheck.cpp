// Central-difference gradient check on a random projection of the output.
#include <luna/autograd/gradcheck.h>
#include <luna/autograd/engine.h>
#include <luna/autograd/grad_mode.h>
#include <luna/core/generator.h>

#include <cmath>
#include <sstream>

namespace luna {
namespace {

// Pointer to the i-th element (row-major order) of a strided float64 CPU tensor.
double* element(const Tensor& t, int64_t linear) {
  double* base = static_cast<double*>(t.data_ptr());
  int64_t offset = 0;
  for (int d = t.dim() - 1; d >= 0; --d) {
    offset += (linear % t.sizes()[d]) * t.strides()[d];
    linear /= t.sizes()[d];
  }
  return base + offset;
}

// v · f(x) as a double, with v given as a contiguous float64 CPU vector.
double projected(const Tensor& out, const std::vector<double>& v) {
  const Tensor c = out.detach().to(Device::cpu(), kFloat64).contiguous();
  const double* p = c.data_ptr<double>();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += p[i] * v[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, GradcheckOptions options) {
  std::vector<Tensor> checked;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;
    LUNA_CHECK(t.dtype() == kFloat64 && t.device().is_cpu() && t.is_leaf(), "gradcheck: input ", i,
               " must be a float64 CPU leaf, got ", t.str());
    checked.push_back(t);
  }
  LUNA_CHECK(!checked.empty(), "gradcheck: no input requires grad");

  EnableGradGuard enable_grad;
  Tensor out = fn(inputs);
  LUNA_CHECK(out.defined() && out.is_floating_point(), "gradcheck: the function must return a floating tensor");
  // Projection vector v: fixed pseudo-random values in [-1, 1).
  std::vector<double> v(size_t(out.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    const PhiloxBlock r = philox4x32_10(options.seed, i);
    v[i] = 2.0 * uniform_double(r[0], r[1]) - 1.0;
  }
  std::vector<Tensor> analytic;
  if (out.requires_grad()) {
    Tensor vt = empty_tensor(out.sizes(), kFloat64, Device::cpu());
    std::copy(v.begin(), v.end(), vt.data_ptr<double>());
    analytic = autograd::grad(out, checked, vt.to(out.device(), out.dtype()));
  } else {
    analytic.resize(checked.size());
  }

  GradcheckResult result;
  std::ostringstream report;
  int mismatches = 0;
  NoGradGuard no_grad;
  for (size_t k = 0; k < checked.size(); ++k) {
    const Tensor& x = checked[k];
    std::vector<double> a(size_t(x.numel()), 0.0);
    if (analytic[k].defined()) {
      LUNA_CHECK(analytic[k].sizes() == x.sizes(), "gradcheck: gradient of input ", k, " has shape ",
                 analytic[k].sizes(), ", expected ", x.sizes());
      const Tensor c = analytic[k].to(Device::cpu(), kFloat64).contiguous();
      std::copy(c.data_ptr<double>(), c.data_ptr<double>() + c.numel(), a.begin());
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      double* p = element(x, i);
      const double original = *p;
      *p = original + options.eps;
      const double plus = projected(fn(inputs), v);
      *p = original - options.eps;
      const double minus = projected(fn(inputs), v);
      *p = original;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double err = std::abs(numeric - a[size_t(i)]);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (!(err <= options.atol + options.rtol * std::abs(numeric))) {
        result.ok = false;
        if (mismatches++ < 8)
          report << "input " << k << " " << x.sizes() << " element " << i << ": analytic " << a[size_t(i)]
                 << " vs numeric " << numeric << "\n";
      }
    }
  }
  result.report = result.ok ? "ok" : report.str() + std::to_string(mismatches) + " mismatching elements";
  return result;
}

}  // namespace luna
