// luna::optim optimizers, shaped like the LibTorch C++ frontend:
//   luna::optim::AdamW opt(model->parameters(), AdamWOptions(1e-3).weight_decay(0.01));
// Parameter groups (per-group lr and weight decay), per-parameter state with a flat state_dict,
// SGD / Adam / AdamW with torch.optim's exact update formulas, and clip_grad_norm_.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <luna/core/tensor.h>
#include <luna/nn/module.h>

namespace luna::optim {

using nn::NamedTensors;

// A set of parameters that share lr and weight decay. Unset overrides take the optimizer's
// defaults at construction; afterwards both are always set (schedulers write `lr` here).
// Other hyper-parameters (betas, eps, momentum, ...) are per optimizer, not per group.
struct OptimizerParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;

  OptimizerParamGroup(std::vector<Tensor> params, std::optional<double> lr = std::nullopt,
                      std::optional<double> weight_decay = std::nullopt)
      : params(std::move(params)), lr(lr), weight_decay(weight_decay) {}
};

// The usual transformer split: a group with `weight_decay` and a group with weight_decay = 0
// holding 1-D (and 0-D) parameters and those whose name ends in "bias" or contains "norm" (any
// case, so LayerNorm too). Empty groups are left out; order within each group follows
// `named_params`, decay group first.
std::vector<OptimizerParamGroup> param_groups_no_decay(const NamedTensors& named_params, double weight_decay);

// What a parameter's state holds. `step` counts the updates it received (Adam's bias
// correction); `tensors` holds the named buffers (exp_avg, momentum_buffer, ...).
struct ParamState {
  bool initialized = false;
  int64_t step = 0;
  NamedTensors tensors;

  Tensor& get(const std::string& name);
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (undefined grads are skipped).
  virtual void step() = 0;
  // set_to_none drops the gradients (the next backward allocates fresh ones), otherwise zeroes them.
  void zero_grad(bool set_to_none = true);

  std::vector<OptimizerParamGroup>& param_groups() { return groups_; }
  const std::vector<OptimizerParamGroup>& param_groups() const { return groups_; }
  double lr(int group = 0) const;
  // Sets the lr of every group.
  void set_lr(double lr);
  // Every parameter, groups in order: the position here is the index used by state_dict keys.
  std::vector<Tensor> parameters() const;
  const std::string& name() const { return name_; }

  // "<param_index>.<state_name>" -> tensor, for parameters that have state. Buffers are the live
  // tensors (not copies); "step" is a fresh 0-dim int64 tensor.
  NamedTensors state_dict() const;
  // Replaces all state. Every key, shape and missing entry is checked first and all problems are
  // reported in one error, so a failed load leaves the optimizer untouched. Values are copied and
  // converted to each parameter's dtype and device.
  void load_state_dict(const NamedTensors& state);

 protected:
  Optimizer(std::string name, std::vector<OptimizerParamGroup> groups, double default_lr,
            double default_weight_decay);
  // The state entries a parameter with state must have, in state_dict order ("step" included
  // where the optimizer counts steps).
  virtual std::vector<std::string> state_names() const = 0;
  // State of the parameter at flat index `index` (grown on demand).
  ParamState& state(size_t index);
  // Rejects a negative lr or weight decay that a user or scheduler wrote into a group.
  void check_groups() const;

  std::string name_;
  std::vector<OptimizerParamGroup> groups_;
  std::vector<ParamState> state_;
};

// Declares a chainable option, LibTorch's TORCH_ARG: `opts.momentum(0.9)` sets, `opts.momentum()` reads.
#define LUNA_OPTIM_ARG(Self, T, name, default_value) \
 public:                                             \
  Self& name(T value) {                              \
    name##_ = std::move(value);                      \
    return *this;                                    \
  }                                                  \
  const T& name() const { return name##_; }          \
                                                     \
 private:                                            \
  T name##_ = default_value

using Betas = std::pair<double, double>;

struct SGDOptions {
  SGDOptions(double lr = 1e-3) : lr_(lr) {}
  LUNA_OPTIM_ARG(SGDOptions, double, lr, 1e-3);
  LUNA_OPTIM_ARG(SGDOptions, double, momentum, 0.0);
  LUNA_OPTIM_ARG(SGDOptions, double, dampening, 0.0);
  LUNA_OPTIM_ARG(SGDOptions, double, weight_decay, 0.0);
  LUNA_OPTIM_ARG(SGDOptions, bool, nesterov, false);
};

struct AdamOptions {
  AdamOptions(double lr = 1e-3) : lr_(lr) {}
  LUNA_OPTIM_ARG(AdamOptions, double, lr, 1e-3);
  LUNA_OPTIM_ARG(AdamOptions, Betas, betas, Betas(0.9, 0.999));
  LUNA_OPTIM_ARG(AdamOptions, double, eps, 1e-8);
  LUNA_OPTIM_ARG(AdamOptions, double, weight_decay, 0.0);
  LUNA_OPTIM_ARG(AdamOptions, bool, amsgrad, false);
};

// Same fields as AdamOptions; only the weight-decay default (0.01) and its meaning differ.
struct AdamWOptions {
  AdamWOptions(double lr = 1e-3) : lr_(lr) {}
  LUNA_OPTIM_ARG(AdamWOptions, double, lr, 1e-3);
  LUNA_OPTIM_ARG(AdamWOptions, Betas, betas, Betas(0.9, 0.999));
  LUNA_OPTIM_ARG(AdamWOptions, double, eps, 1e-8);
  LUNA_OPTIM_ARG(AdamWOptions, double, weight_decay, 1e-2);
  LUNA_OPTIM_ARG(AdamWOptions, bool, amsgrad, false);
};

#undef LUNA_OPTIM_ARG

// torch.optim.SGD: weight decay is added to the gradient; the momentum buffer starts as the
// first gradient (no dampening on that step); nesterov uses grad + momentum * buffer.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options = {});
  SGD(std::vector<OptimizerParamGroup> groups, SGDOptions options = {});
  void step() override;
  const SGDOptions& options() const { return options_; }

 private:
  std::vector<std::string> state_names() const override;
  SGDOptions options_;
};

// torch.optim.Adam: L2 weight decay is added to the gradient.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  Adam(std::vector<OptimizerParamGroup> groups, AdamOptions options = {});
  void step() override;
  const AdamOptions& options() const { return options_; }

 private:
  std::vector<std::string> state_names() const override;
  AdamOptions options_;
};

// torch.optim.AdamW: decoupled weight decay, p *= 1 - lr * weight_decay, before the Adam update.
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  AdamW(std::vector<OptimizerParamGroup> groups, AdamWOptions options = {});
  void step() override;
  const AdamWOptions& options() const { return options_; }

 private:
  std::vector<std::string> state_names() const override;
  AdamWOptions options_;
};

// torch.nn.utils.clip_grad_norm_: the norm of all gradients taken together (norm_type may be
// infinity for the largest magnitude); when it exceeds max_norm every gradient is scaled in place
// by max_norm / (total + 1e-6). Returns the total norm before clipping. Parameters without a
// gradient are ignored.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

}  // namespace luna::optim
