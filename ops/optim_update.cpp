#include <luna/ops/optim_update.h>

#include <luna/autograd/grad_mode.h>
#include <luna/backends/backend.h>
#include <luna/core/error.h>
#include <luna/ops/elementwise.h>

namespace luna {
namespace {

// The update as separate tensor ops; the fused kernels reproduce exactly these roundings.
void adam_update_composed(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                          const Tensor& max_exp_avg_sq, const AdamUpdateScalars& s) {
  Tensor scratch = grad * (1 - s.beta1);
  exp_avg.mul_(s.beta1);
  exp_avg.add_(scratch);
  scratch.copy_(grad);
  scratch.mul_(grad);
  scratch.mul_(1 - s.beta2);
  exp_avg_sq.mul_(s.beta2);
  exp_avg_sq.add_(scratch);
  Tensor second_moment = exp_avg_sq;
  if (max_exp_avg_sq.defined()) {
    max_exp_avg_sq.copy_(maximum(max_exp_avg_sq, exp_avg_sq));
    second_moment = max_exp_avg_sq;
  }
  Tensor denom = second_moment.sqrt();
  denom.div_(s.bias_correction2_sqrt);
  denom.add_(s.eps);
  scratch.copy_(exp_avg);
  scratch.div_(denom);
  scratch.mul_(-s.step_size);
  param.add_(scratch);
}

}  // namespace

void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamUpdateScalars& scalars) {
  LUNA_CHECK(param.defined() && grad.defined() && exp_avg.defined() && exp_avg_sq.defined(),
             "adam_update_: param, grad, exp_avg and exp_avg_sq must all be defined");
  LUNA_CHECK(grad.sizes() == param.sizes(), "adam_update_: grad of shape ", grad.sizes(), " for a parameter of shape ",
             param.sizes());
  LUNA_CHECK(exp_avg.sizes() == param.sizes() && exp_avg_sq.sizes() == param.sizes(),
             "adam_update_: exp_avg ", exp_avg.sizes(), " and exp_avg_sq ", exp_avg_sq.sizes(),
             " must have the parameter's shape ", param.sizes());
  LUNA_CHECK(!max_exp_avg_sq.defined() || max_exp_avg_sq.sizes() == param.sizes(), "adam_update_: max_exp_avg_sq ",
             max_exp_avg_sq.sizes(), " must have the parameter's shape ", param.sizes());
  NoGradGuard no_grad;
  const auto like_param = [&](const Tensor& t) {
    return !t.defined() || (t.is_contiguous() && t.dtype() == param.dtype() && t.device() == param.device());
  };
  const bool fused = like_param(param) && like_param(grad) && like_param(exp_avg) && like_param(exp_avg_sq) &&
                     like_param(max_exp_avg_sq) && backend_for(param).has_adam_update(param.dtype());
  if (!fused) return adam_update_composed(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scalars);
  backend_for(param).adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scalars);
  for (const Tensor* written : {&param, &exp_avg, &exp_avg_sq, &max_exp_avg_sq})
    if (written->defined()) written->bump_version();
}

}  // namespace luna
