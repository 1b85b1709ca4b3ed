// luna::optim::SGD: torch.optim.SGD's update (weight decay, momentum with dampening, nesterov),
// written as in-place tensor ops under NoGradGuard so it runs on any device.
#include <luna/autograd/grad_mode.h>
#include <luna/nn/optimizer.h>
#include <luna/ops/elementwise.h>

namespace luna::optim {
namespace {
SGDOptions validated(SGDOptions o) {
  LUNA_CHECK(o.lr() >= 0, "SGD: invalid learning rate ", o.lr(), " (must be >= 0)");
  LUNA_CHECK(o.momentum() >= 0, "SGD: invalid momentum ", o.momentum(), " (must be >= 0)");
  LUNA_CHECK(o.weight_decay() >= 0, "SGD: invalid weight_decay ", o.weight_decay(), " (must be >= 0)");
  LUNA_CHECK(!o.nesterov() || (o.momentum() > 0 && o.dampening() == 0),
             "SGD: nesterov momentum requires a momentum > 0 and zero dampening, got momentum ", o.momentum(),
             " and dampening ", o.dampening());
  return o;
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(std::vector<OptimizerParamGroup>{OptimizerParamGroup(std::move(params))}, options) {}

SGD::SGD(std::vector<OptimizerParamGroup> groups, SGDOptions options)
    : Optimizer("SGD", std::move(groups), validated(options).lr(), options.weight_decay()), options_(options) {}

std::vector<std::string> SGD::state_names() const {
  if (options_.momentum() == 0) return {};
  return {"momentum_buffer"};
}

void SGD::step() {
  check_groups();
  NoGradGuard no_grad;
  const double momentum = options_.momentum(), dampening = options_.dampening();
  size_t index = 0;
  for (const OptimizerParamGroup& group : groups_) {
    const double lr = *group.lr, weight_decay = *group.weight_decay;
    for (const Tensor& param : group.params) {
      ParamState& st = state(index++);
      const Tensor grad = param.grad();
      if (!grad.defined()) continue;
      // d_p = grad + weight_decay * param
      Tensor d_p = grad;
      if (weight_decay != 0) {
        d_p = param * weight_decay;
        d_p.add_(grad);
      }
      if (momentum != 0) {
        if (!st.initialized) {
          // torch starts the buffer at the first (decayed) gradient, undampened.
          st.tensors = {{"momentum_buffer", d_p.clone()}};
          st.initialized = true;
        } else {
          const Tensor& buffer = st.get("momentum_buffer");
          buffer.mul_(momentum);
          buffer.add_(dampening == 0 ? d_p : d_p * (1 - dampening));
        }
        const Tensor& buffer = st.get("momentum_buffer");
        if (options_.nesterov()) {
          Tensor lookahead = buffer * momentum;
          lookahead.add_(d_p);
          d_p = lookahead;
        } else {
          d_p = buffer;
        }
      }
      param.add_(d_p * -lr);
    }
  }
}

}  // namespace luna::optim
