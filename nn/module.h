// nn::Module: named parameters, buffers and submodules with dotted names (the checkpoint keys),
// train/eval, device/dtype moves that keep parameter identity, and strict state_dict loading.
// ModuleHolder gives the LibTorch handle style: `nn::Linear fc(64, 10); fc(x); fc->weight`.
#pragma once
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <luna/core/tensor.h>

namespace luna::nn {

// Ordered (name, tensor) pairs: registration order, children after their parent's own entries.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& type_name() const { return type_name_; }

  // Registration. Names may not contain '.' and must be unique within this module.
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  template <class Holder, class = decltype(std::declval<Holder>().ptr())>
  Holder register_module(const std::string& name, Holder holder) {
    add_child(name, holder.ptr());
    return holder;
  }

  // Parameters are deduplicated (a shared weight appears once); state_dict lists every name.
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // Every submodule below this one with its dotted path (this module itself is not included).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  // Calls fn on every submodule (depth first, children before parents), then on this module.
  void apply(const std::function<void(Module&)>& fn);

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves parameters and buffers in place: handles held elsewhere (optimizers) stay valid.
  // to(dtype) converts floating-point tensors only, like PyTorch.
  void to(Device device);
  void to(DType dtype);
  void zero_grad(bool set_to_none = true);
  int64_t num_parameters(bool only_trainable = false) const;

  // Parameters and buffers by dotted name.
  NamedTensors state_dict() const;
  // Copies values into the existing tensors. Every problem (missing, unexpected, wrong shape or
  // dtype) is collected and reported in one error before anything is written, so a failed load
  // leaves the module untouched. strict=false ignores missing and unexpected keys only.
  void load_state_dict(const NamedTensors& state, bool strict = true);
  // The checks of load_state_dict without loading: throws the same error, writes nothing.
  void check_state_dict(const NamedTensors& state, bool strict = true) const;

  // One line per module, like PyTorch's repr.
  virtual void pretty_print(std::ostream& os) const { os << type_name_ << "()"; }
  void print_tree(std::ostream& os, int indent = 0) const;

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_name(const std::string& name, const char* what) const;
  void collect(const std::string& prefix, bool params, bool buffers, bool recurse, NamedTensors& out) const;

  std::string type_name_;
  bool training_ = true;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& module);

// A shared handle to a module implementation, as LibTorch's ModuleHolder: `nn::Linear fc(4, 2)`
// constructs a LinearImpl; `fc(x)` calls forward; `fc->weight` reaches members.
template <class Impl>
class ModuleHolder {
 public:
  ModuleHolder() requires std::is_default_constructible_v<Impl> : impl_(std::make_shared<Impl>()) {}
  ModuleHolder(std::nullptr_t) {}
  ModuleHolder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  template <class A0, class... Args,
            class = std::enable_if_t<!std::is_same_v<std::decay_t<A0>, ModuleHolder> &&
                                     !std::is_same_v<std::decay_t<A0>, std::shared_ptr<Impl>> &&
                                     !std::is_same_v<std::decay_t<A0>, std::nullptr_t>>>
  explicit ModuleHolder(A0&& a0, Args&&... args)
      : impl_(std::make_shared<Impl>(std::forward<A0>(a0), std::forward<Args>(args)...)) {}

  Impl* operator->() const { return impl_.get(); }
  Impl& operator*() const { return *impl_; }
  const std::shared_ptr<Impl>& ptr() const { return impl_; }
  bool is_empty() const { return impl_ == nullptr; }
  template <class... Args>
  auto operator()(Args&&... args) const {
    return impl_->forward(std::forward<Args>(args)...);
  }

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace luna::nn

// Declares `Name` as the holder of `NameImpl`.
#define LUNA_MODULE(Name)                                          \
  class Name : public ::luna::nn::ModuleHolder<Name##Impl> {       \
   public:                                                         \
    using ::luna::nn::ModuleHolder<Name##Impl>::ModuleHolder;      \
  }
