// ModuleList and Sequential: index-named registration, bounds-checked access and chaining.
#include <luna/nn/containers.h>

namespace luna::nn {

void ModuleSequence::append(const std::string& name, std::shared_ptr<Module> module) {
  LUNA_CHECK(module != nullptr, type_name(), ": cannot append a null module (index ", modules_.size(), ")");
  register_module(name, module);
  modules_.push_back(std::move(module));
}

const std::shared_ptr<Module>& ModuleSequence::ptr(size_t index) const {
  LUNA_CHECK(index < modules_.size(), type_name(), ": index ", index, " is out of range for ", modules_.size(),
             " modules");
  return modules_[index];
}

void ModuleListImpl::push_back(std::shared_ptr<Module> module) { append(std::to_string(size()), std::move(module)); }

Tensor SequentialImpl::forward(const Tensor& input) const {
  Tensor x = input;
  for (const auto& forward_one : forwards_) x = forward_one(x);
  return x;
}

}  // namespace luna::nn
