// ModuleList and Sequential: index-named registration, bounds-checked access and chaining.
#include <luna/nn/containers.h>

namespace luna::nn {

void ModuleListImpl::push_back(std::shared_ptr<Module> module) {
  LUNA_CHECK(module != nullptr, "ModuleList: cannot append a null module (index ", modules_.size(), ")");
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

const std::shared_ptr<Module>& ModuleListImpl::ptr(size_t index) const {
  LUNA_CHECK(index < modules_.size(), "ModuleList: index ", index, " is out of range for a list of ", modules_.size(),
             " modules");
  return modules_[index];
}

Tensor SequentialImpl::forward(const Tensor& input) const {
  Tensor x = input;
  for (const auto& forward_one : forwards_) x = forward_one(x);
  return x;
}

const std::shared_ptr<Module>& SequentialImpl::ptr(size_t index) const {
  LUNA_CHECK(index < modules_.size(), "Sequential: index ", index, " is out of range for a sequence of ",
             modules_.size(), " modules");
  return modules_[index];
}

}  // namespace luna::nn
