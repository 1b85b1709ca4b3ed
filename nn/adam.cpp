// luna::optim::Adam and AdamW: torch.optim's update (bias correction folded into step_size and
// the denominator, optional AMSGrad), sharing one per-parameter routine that differs only in how
// weight decay is applied: added to the gradient (Adam) or decoupled, p *= 1 - lr*wd (AdamW).
#include <cmath>
#include <functional>

#include <luna/autograd/grad_mode.h>
#include <luna/nn/optimizer.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/optim_update.h>

namespace luna::optim {
namespace {
struct AdamHyper {
  double beta1, beta2, eps;
  bool amsgrad, decoupled_weight_decay;
};

template <class Options>
Options validated(const char* name, Options o) {
  LUNA_CHECK(o.lr() >= 0, name, ": invalid learning rate ", o.lr(), " (must be >= 0)");
  LUNA_CHECK(o.eps() >= 0, name, ": invalid eps ", o.eps(), " (must be >= 0)");
  LUNA_CHECK(o.betas().first >= 0 && o.betas().first < 1, name, ": invalid beta1 ", o.betas().first,
             " (must be in [0, 1))");
  LUNA_CHECK(o.betas().second >= 0 && o.betas().second < 1, name, ": invalid beta2 ", o.betas().second,
             " (must be in [0, 1))");
  LUNA_CHECK(o.weight_decay() >= 0, name, ": invalid weight_decay ", o.weight_decay(), " (must be >= 0)");
  return o;
}

std::vector<std::string> adam_state_names(bool amsgrad) {
  if (amsgrad) return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"step", "exp_avg", "exp_avg_sq"};
}

// One update of `param`: weight decay as the optimizer applies it, then the moments and the step in
// one pass where the backend has the fused kernel (ops/optim_update.h), with the composed ops' bits.
void adam_update(ParamState& st, const Tensor& param, const Tensor& grad_in, double lr, double weight_decay,
                 const AdamHyper& h) {
  if (!st.initialized) {
    st.tensors = {{"exp_avg", zeros_like(param)}, {"exp_avg_sq", zeros_like(param)}};
    if (h.amsgrad) st.tensors.emplace_back("max_exp_avg_sq", zeros_like(param));
    st.initialized = true;
  }
  st.step += 1;
  Tensor grad = grad_in;
  if (weight_decay != 0) {
    if (h.decoupled_weight_decay) {
      param.mul_(1 - lr * weight_decay);
    } else {
      grad = param * weight_decay;
      grad.add_(grad_in);
    }
  }
  const double bias_correction1 = 1 - std::pow(h.beta1, double(st.step));
  const double bias_correction2 = 1 - std::pow(h.beta2, double(st.step));
  AdamUpdateScalars scalars;
  scalars.beta1 = h.beta1;
  scalars.beta2 = h.beta2;
  scalars.eps = h.eps;
  scalars.step_size = lr / bias_correction1;
  scalars.bias_correction2_sqrt = std::sqrt(bias_correction2);
  adam_update_(param, grad, st.get("exp_avg"), st.get("exp_avg_sq"),
               h.amsgrad ? st.get("max_exp_avg_sq") : Tensor(), scalars);
}

void adam_step(std::vector<OptimizerParamGroup>& groups, const std::function<ParamState&(size_t)>& state_of,
               const AdamHyper& h) {
  NoGradGuard no_grad;
  size_t index = 0;
  for (const OptimizerParamGroup& group : groups) {
    for (const Tensor& param : group.params) {
      ParamState& st = state_of(index++);
      const Tensor grad = param.grad();
      if (grad.defined()) adam_update(st, param, grad, *group.lr, *group.weight_decay, h);
    }
  }
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::vector<OptimizerParamGroup>{OptimizerParamGroup(std::move(params))}, options) {}

Adam::Adam(std::vector<OptimizerParamGroup> groups, AdamOptions options)
    : Optimizer("Adam", std::move(groups), validated("Adam", options).lr(), options.weight_decay()),
      options_(options) {}

std::vector<std::string> Adam::state_names() const { return adam_state_names(options_.amsgrad()); }

void Adam::step() {
  check_groups();
  const AdamHyper h{options_.betas().first, options_.betas().second, options_.eps(), options_.amsgrad(), false};
  adam_step(groups_, [this](size_t i) -> ParamState& { return state(i); }, h);
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW(std::vector<OptimizerParamGroup>{OptimizerParamGroup(std::move(params))}, options) {}

AdamW::AdamW(std::vector<OptimizerParamGroup> groups, AdamWOptions options)
    : Optimizer("AdamW", std::move(groups), validated("AdamW", options).lr(), options.weight_decay()),
      options_(options) {}

std::vector<std::string> AdamW::state_names() const { return adam_state_names(options_.amsgrad()); }

void AdamW::step() {
  check_groups();
  const AdamHyper h{options_.betas().first, options_.betas().second, options_.eps(), options_.amsgrad(), true};
  adam_step(groups_, [this](size_t i) -> ParamState& { return state(i); }, h);
}

}  // namespace luna::optim
