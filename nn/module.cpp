// Module registration, traversal, moves and state_dict (de)serialisation into live tensors.
#include <luna/nn/module.h>
#include <luna/autograd/grad_mode.h>

#include <map>
#include <set>
#include <sstream>

namespace luna::nn {

void Module::check_name(const std::string& name, const char* what) const {
  LUNA_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what, " name '", name,
             "' must be non-empty and contain no '.'");
  auto taken = [&](const auto& list) {
    for (const auto& [n, _] : list)
      if (n == name) return true;
    return false;
  };
  LUNA_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name_, ": ", what, " name '", name,
             "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_name(name, "parameter");
  LUNA_CHECK(tensor.defined(), type_name_, ": parameter '", name, "' is undefined");
  if (tensor.grad_fn()) tensor = tensor.detach();
  if (requires_grad) tensor.requires_grad_(true);
  parameters_.emplace_back(name, tensor);
  return parameters_.back().second;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_name(name, "buffer");
  LUNA_CHECK(tensor.defined(), type_name_, ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, tensor.detach());
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_name(name, "submodule");
  LUNA_CHECK(module != nullptr, type_name_, ": submodule '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool params, bool bufs, bool recurse, NamedTensors& out) const {
  if (params)
    for (const auto& [n, t] : parameters_) out.emplace_back(prefix + n, t);
  if (bufs)
    for (const auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  if (!recurse) return;
  for (const auto& [n, child] : children_) child->collect(prefix + n + ".", params, bufs, true, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors all, unique;
  collect("", true, false, recurse, all);
  std::set<const TensorImpl*> seen;
  for (auto& entry : all)
    if (seen.insert(entry.second.impl()).second) unique.push_back(std::move(entry));
  return unique;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", false, true, recurse, out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [_, c] : children_) out.push_back(c);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [n, c] : children_) {
    out.emplace_back(n, c);
    for (auto& [sub, m] : c->named_modules()) out.emplace_back(n + "." + sub, m);
  }
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [_, c] : children_) c->apply(fn);
  fn(*this);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

namespace {
void move_tensor(const Tensor& t, Device device, std::optional<DType> dtype) {
  const DType target = dtype && t.is_floating_point() ? *dtype : t.dtype();
  if (t.device() == device && t.dtype() == target) return;
  NoGradGuard no_grad;
  t.set_data(t.to(device, target));
  const Tensor g = t.grad();
  if (g.defined()) t.set_grad(g.to(device, target));
}
}  // namespace

void Module::to(Device device) {
  for (const Tensor& t : parameters()) move_tensor(t, device, std::nullopt);
  for (const Tensor& t : buffers()) move_tensor(t, device, std::nullopt);
}

void Module::to(DType dtype) {
  for (const Tensor& t : parameters()) move_tensor(t, t.device(), dtype);
  for (const Tensor& t : buffers()) move_tensor(t, t.device(), dtype);
}

void Module::zero_grad(bool set_to_none) {
  for (const Tensor& p : parameters()) {
    if (set_to_none) p.set_grad(Tensor());
    else if (p.grad().defined()) p.grad().zero_();
  }
}

int64_t Module::num_parameters(bool only_trainable) const {
  int64_t n = 0;
  for (const Tensor& p : parameters())
    if (!only_trainable || p.requires_grad()) n += p.numel();
  return n;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, true, out);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  check_state_dict(state, strict);
  const NamedTensors own = state_dict();
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) given[name] = &t;
  NoGradGuard no_grad;
  for (const auto& [name, t] : own) {
    auto it = given.find(name);
    if (it != given.end()) t.copy_(*it->second);
  }
}

void Module::check_state_dict(const NamedTensors& state, bool strict) const {
  const NamedTensors own = state_dict();
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) given[name] = &t;
  std::vector<std::string> missing, mismatched;
  std::set<std::string> expected;
  for (const auto& [name, t] : own) {
    expected.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& src = *it->second;
    if (!src.defined()) {
      mismatched.push_back(name + ": undefined tensor");
    } else if (src.sizes() != t.sizes()) {
      mismatched.push_back(name + ": shape " + src.sizes().str() + " in the checkpoint, " + t.sizes().str() +
                           " in the model");
    } else if (src.dtype() != t.dtype()) {
      mismatched.push_back(name + ": dtype " + dtype_name(src.dtype()) + " in the checkpoint, " +
                           dtype_name(t.dtype()) + " in the model");
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, _] : state)
    if (!expected.count(name)) unexpected.push_back(name);
  const bool fail = !mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (fail) {
    std::ostringstream os;
    os << "load_state_dict: error(s) loading state into " << type_name_ << ":";
    auto list = [&](const char* title, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      os << "\n  " << title << " (" << keys.size() << "):";
      for (const auto& k : keys) os << "\n    " << k;
    };
    if (strict) list("missing keys", missing);
    if (strict) list("unexpected keys", unexpected);
    list("size or dtype mismatch", mismatched);
    os << "\nNothing was loaded.";
    throw Error(os.str());
  }
}

void Module::print_tree(std::ostream& os, int indent) const {
  if (children_.empty()) {
    pretty_print(os);
    return;
  }
  os << type_name_ << "(\n";
  for (const auto& [n, c] : children_) {
    os << std::string(size_t(indent + 2), ' ') << "(" << n << "): ";
    c->print_tree(os, indent + 2);
    os << "\n";
  }
  os << std::string(size_t(indent), ' ') << ")";
}

std::ostream& operator<<(std::ostream& os, const Module& module) {
  module.print_tree(os);
  return os;
}

}  // namespace luna::nn
