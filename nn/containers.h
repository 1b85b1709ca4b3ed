// Module containers with LibTorch's names: Sequential (chains forward(Tensor) of any modules) and
// ModuleList (an indexable list of submodules). Children are named "0", "1", ... so checkpoint
// keys read "layers.0.fc1.weight", exactly as PyTorch writes them.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <luna/nn/module.h>

namespace luna::nn {

// ---- shared by ModuleList and Sequential: ordered children with bounds-checked, typed access ----

class ModuleSequence : public Module {
 public:
  size_t size() const { return modules_.size(); }
  bool is_empty() const { return modules_.empty(); }
  // Bounds-checked access; the error names the container, the index and the size.
  const std::shared_ptr<Module>& ptr(size_t index) const;
  const std::shared_ptr<Module>& operator[](size_t index) const { return ptr(index); }
  // The module at `index` as its concrete type (an error if it has another type).
  template <class T>
  std::shared_ptr<T> ptr(size_t index) const {
    auto typed = std::dynamic_pointer_cast<T>(ptr(index));
    LUNA_CHECK(typed != nullptr, type_name(), ": module ", index, " is a ", ptr(index)->type_name(),
               ", not the requested type");
    return typed;
  }
  template <class T>
  T& at(size_t index) const {
    return *ptr<T>(index);
  }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }

 protected:
  explicit ModuleSequence(std::string type_name) : Module(std::move(type_name)) {}
  // Registers `module` as child `name` and appends it.
  void append(const std::string& name, std::shared_ptr<Module> module);

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

// ---- ModuleList ----

class ModuleListImpl : public ModuleSequence {
 public:
  ModuleListImpl() : ModuleSequence("ModuleList") {}
  template <class M0, class... Ms>
    requires(!std::is_same_v<std::decay_t<M0>, ModuleListImpl>)
  explicit ModuleListImpl(M0&& first, Ms&&... rest) : ModuleListImpl() {
    push_back(std::forward<M0>(first));
    (push_back(std::forward<Ms>(rest)), ...);
  }

  // Appends a module (a holder such as Linear, or a shared_ptr to an implementation) under the
  // name of its index.
  void push_back(std::shared_ptr<Module> module);
  template <class Holder, class = decltype(std::declval<Holder>().ptr())>
  void push_back(const Holder& holder) {
    push_back(std::shared_ptr<Module>(holder.ptr()));
  }
};
LUNA_MODULE(ModuleList);

// ---- Sequential ----

class SequentialImpl : public ModuleSequence {
 public:
  SequentialImpl() : ModuleSequence("Sequential") {}
  template <class M0, class... Ms>
    requires(!std::is_same_v<std::decay_t<M0>, SequentialImpl>)
  explicit SequentialImpl(M0&& first, Ms&&... rest) : SequentialImpl() {
    push_back(std::forward<M0>(first));
    (push_back(std::forward<Ms>(rest)), ...);
  }

  // Appends a module whose forward accepts one Tensor (extra arguments must have defaults), named
  // by its index or by `name`.
  template <class M>
  void push_back(std::shared_ptr<M> module) {
    push_back(std::to_string(size()), std::move(module));
  }
  template <class M>
  void push_back(const std::string& name, std::shared_ptr<M> module) {
    static_assert(std::is_base_of_v<Module, M>, "Sequential::push_back: not a Module");
    append(name, module);
    forwards_.push_back([module](const Tensor& input) -> Tensor { return module->forward(input); });
  }
  template <class Holder, class = decltype(std::declval<Holder>().ptr())>
  void push_back(const Holder& holder) {
    push_back(holder.ptr());
  }
  template <class Holder, class = decltype(std::declval<Holder>().ptr())>
  void push_back(const std::string& name, const Holder& holder) {
    push_back(name, holder.ptr());
  }

  // Runs the modules in order; an empty Sequential returns its input.
  Tensor forward(const Tensor& input) const;

 private:
  std::vector<std::function<Tensor(const Tensor&)>> forwards_;
};
LUNA_MODULE(Sequential);

}  // namespace luna::nn
