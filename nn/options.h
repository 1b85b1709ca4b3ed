// LUNA_ARG: LibTorch-style option fields (TORCH_ARG) for nn option structs.
// `options.dropout(0.1)` sets a field and returns the options for chaining; `options.dropout()`
// reads it back. The field itself is the private member `dropout_`.
#pragma once
#include <utility>

#define LUNA_ARG(T, name)                                 \
 public:                                                  \
  auto name(const T& new_##name)->decltype(*this) {       \
    this->name##_ = new_##name;                           \
    return *this;                                         \
  }                                                       \
  const T& name() const noexcept { return this->name##_; } \
  T& name() noexcept { return this->name##_; }            \
                                                          \
 private:                                                 \
  T name##_
