// The Optimizer base: parameter groups, per-parameter state and its flat state_dict, plus the
// no-decay grouping helper and clip_grad_norm_. The update rules live in sgd.cpp and adam.cpp.
#include <luna/nn/optimizer.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include <luna/autograd/grad_mode.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/reduce.h>

namespace luna::optim {

std::vector<OptimizerParamGroup> param_groups_no_decay(const NamedTensors& named_params, double weight_decay) {
  LUNA_CHECK(weight_decay >= 0, "param_groups_no_decay: weight_decay must be >= 0, got ", weight_decay);
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, param] : named_params) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    const bool is_bias = lower.size() >= 4 && lower.compare(lower.size() - 4, 4, "bias") == 0;
    const bool is_norm = lower.find("norm") != std::string::npos;
    (param.dim() <= 1 || is_bias || is_norm ? no_decay : decay).push_back(param);
  }
  std::vector<OptimizerParamGroup> groups;
  groups.reserve(2);  // also silences a GCC 12 -O3 false -Wstringop-overflow in the reallocation path
  if (!decay.empty()) groups.emplace_back(std::move(decay), std::nullopt, weight_decay);
  if (!no_decay.empty()) groups.emplace_back(std::move(no_decay), std::nullopt, 0.0);
  return groups;
}

Tensor& ParamState::get(const std::string& name) {
  for (auto& [key, tensor] : tensors)
    if (key == name) return tensor;
  LUNA_FAIL("optimizer state: no entry named \"", name, "\"");
}

Optimizer::Optimizer(std::string name, std::vector<OptimizerParamGroup> groups, double default_lr,
                     double default_weight_decay)
    : name_(std::move(name)), groups_(std::move(groups)) {
  LUNA_CHECK(default_lr >= 0, name_, ": invalid learning rate ", default_lr, " (must be >= 0)");
  LUNA_CHECK(default_weight_decay >= 0, name_, ": invalid weight_decay ", default_weight_decay, " (must be >= 0)");
  std::unordered_set<const TensorImpl*> seen;
  size_t count = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    OptimizerParamGroup& group = groups_[g];
    if (!group.lr) group.lr = default_lr;
    if (!group.weight_decay) group.weight_decay = default_weight_decay;
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& p = group.params[i];
      LUNA_CHECK(p.defined(), name_, ": parameter ", i, " of group ", g, " is undefined");
      LUNA_CHECK(p.is_floating_point(), name_, ": can only optimize floating-point tensors, parameter ", i,
                 " of group ", g, " is ", p.str());
      LUNA_CHECK(p.is_leaf(), name_, ": can't optimize a non-leaf tensor (parameter ", i, " of group ", g,
                 "); pass the leaf, e.g. x.detach().requires_grad_()");
      LUNA_CHECK(seen.insert(p.impl()).second, name_, ": parameter ", i, " of group ", g,
                 " (", p.str(), ") appears more than once; each parameter may be in one group only");
    }
    count += group.params.size();
  }
  LUNA_CHECK(count > 0, name_, ": got an empty parameter list");
  check_groups();
  state_.resize(count);
}

void Optimizer::check_groups() const {
  for (size_t g = 0; g < groups_.size(); ++g) {
    const double lr = groups_[g].lr.value_or(0), wd = groups_[g].weight_decay.value_or(0);
    LUNA_CHECK(lr >= 0, name_, ": invalid learning rate ", lr, " in group ", g, " (must be >= 0)");
    LUNA_CHECK(wd >= 0, name_, ": invalid weight_decay ", wd, " in group ", g, " (must be >= 0)");
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (const OptimizerParamGroup& group : groups_)
    for (const Tensor& p : group.params) {
      if (set_to_none) {
        p.set_grad(Tensor());
      } else if (Tensor grad = p.grad(); grad.defined()) {
        NoGradGuard no_grad;
        grad.zero_();
      }
    }
}

double Optimizer::lr(int group) const {
  LUNA_CHECK(group >= 0 && size_t(group) < groups_.size(), name_, ".lr: group ", group, " out of range (",
             groups_.size(), " groups)");
  return *groups_[group].lr;
}

void Optimizer::set_lr(double lr) {
  LUNA_CHECK(lr >= 0, name_, ".set_lr: invalid learning rate ", lr, " (must be >= 0)");
  for (OptimizerParamGroup& group : groups_) group.lr = lr;
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> all;
  for (const OptimizerParamGroup& group : groups_) all.insert(all.end(), group.params.begin(), group.params.end());
  return all;
}

ParamState& Optimizer::state(size_t index) {
  if (index >= state_.size()) state_.resize(index + 1);
  return state_[index];
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (!st.initialized) continue;
    for (const std::string& name : state_names()) {
      const std::string key = std::to_string(i) + "." + name;
      if (name == "step") {
        out.emplace_back(key, scalar_tensor(st.step, TensorOptions(kInt64)));
      } else {
        for (const auto& [entry, tensor] : st.tensors)
          if (entry == name) out.emplace_back(key, tensor);
      }
    }
  }
  return out;
}

namespace {
// Splits "12.exp_avg" into (12, "exp_avg"); nullopt when the key has another form.
std::optional<std::pair<size_t, std::string>> parse_state_key(const std::string& key) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size()) return std::nullopt;
  size_t index = 0;
  const auto [end, ec] = std::from_chars(key.data(), key.data() + dot, index);
  if (ec != std::errc() || end != key.data() + dot) return std::nullopt;
  return std::make_pair(index, key.substr(dot + 1));
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}
}  // namespace

void Optimizer::load_state_dict(const NamedTensors& state) {
  const std::vector<Tensor> params = parameters();
  const std::vector<std::string> names = state_names();
  std::vector<std::string> problems;
  // index -> (state name -> tensor), only for well-formed entries.
  std::map<size_t, std::map<std::string, Tensor>> accepted;
  for (const auto& [key, tensor] : state) {
    const auto parsed = parse_state_key(key);
    if (!parsed) {
      problems.push_back("key \"" + key + "\" is not of the form <param_index>.<state_name>");
      continue;
    }
    const auto& [index, name] = *parsed;
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      problems.push_back("unexpected key \"" + key + "\" (" + name_ + " with these options keeps " +
                         (names.empty() ? std::string("no state") : join(names, ", ")) + ")");
      continue;
    }
    if (index >= params.size()) {
      problems.push_back("key \"" + key + "\" refers to parameter " + std::to_string(index) + " but the optimizer has " +
                         std::to_string(params.size()) + " parameters");
      continue;
    }
    if (!tensor.defined()) {
      problems.push_back("key \"" + key + "\" holds an undefined tensor");
      continue;
    }
    std::ostringstream shape_problem;
    if (name == "step") {
      if (tensor.numel() != 1) {
        shape_problem << "key \"" << key << "\" must hold one number, got shape " << tensor.sizes();
      } else {
        const double step = tensor.item<double>();
        if (!(step >= 0) || step != std::floor(step))
          shape_problem << "key \"" << key << "\" holds step " << step << ", expected a non-negative integer";
      }
    } else if (tensor.sizes() != params[index].sizes()) {
      shape_problem << "key \"" << key << "\" has shape " << tensor.sizes() << " but parameter " << index
                    << " has shape " << params[index].sizes();
    } else if (!tensor.is_floating_point()) {
      shape_problem << "key \"" << key << "\" has dtype " << tensor.dtype() << ", expected a floating-point tensor";
    }
    if (!shape_problem.str().empty()) {
      problems.push_back(shape_problem.str());
      continue;
    }
    if (!accepted[index].emplace(name, tensor).second) problems.push_back("key \"" + key + "\" appears twice");
  }
  for (const auto& [index, entries] : accepted)
    for (const std::string& name : names)
      if (!entries.count(name))
        problems.push_back("missing key \"" + std::to_string(index) + "." + name + "\" (parameter " +
                           std::to_string(index) + " has other state entries)");
  LUNA_CHECK(problems.empty(), name_, ".load_state_dict: ", problems.size(), " problem(s): ", join(problems, "; "));

  NoGradGuard no_grad;
  std::vector<ParamState> loaded(params.size());
  for (const auto& [index, entries] : accepted) {
    ParamState& st = loaded[index];
    st.initialized = true;
    for (const std::string& name : names) {
      const Tensor& src = entries.at(name);
      if (name == "step") {
        st.step = int64_t(src.item<double>());
      } else {
        Tensor copy = empty(params[index].sizes(), TensorOptions(params[index].dtype()).device(params[index].device()));
        copy.copy_(src.detach());
        st.tensors.emplace_back(name, copy);
      }
    }
  }
  state_ = std::move(loaded);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  LUNA_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive or infinity, got ", norm_type);
  LUNA_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined() && p.grad().numel() > 0) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  const bool inf_norm = std::isinf(norm_type);
  // Per-gradient norms combined on the host in double, as torch stacks the per-tensor norms.
  double accumulated = 0.0;
  for (const Tensor& g : grads) {
    const double n = norm(g, norm_type).item<double>();
    accumulated = inf_norm ? std::max(accumulated, n) : accumulated + std::pow(n, norm_type);
    if (std::isnan(n)) accumulated = n;
  }
  const double total = inf_norm ? accumulated : std::pow(accumulated, 1.0 / norm_type);
  // torch multiplies by clamp(coef, max=1): a NaN total makes every gradient NaN, as there.
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0 || std::isnan(coef))
    for (const Tensor& g : grads) g.mul_(coef);
  return total;
}

}  // namespace luna::optim
