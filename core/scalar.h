// A number passed to an op (x * 2, clamp(x, 0.0, 6.0)). Keeps whether it was written as an
// integer so that int_tensor * 2 stays integral and int_tensor * 2.5 becomes float, as in PyTorch.
#pragma once
#include <cstdint>
#include <type_traits>

namespace luna {

class Scalar {
 public:
  Scalar() = default;
  template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
  Scalar(T v) : int_value_(int64_t(v)), is_integral_(true), is_bool_(std::is_same_v<T, bool>) {}
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T v) : float_value_(double(v)), is_integral_(false) {}

  bool is_integral() const { return is_integral_; }
  bool is_bool() const { return is_bool_; }
  double to_double() const { return is_integral_ ? double(int_value_) : float_value_; }
  int64_t to_int() const { return is_integral_ ? int_value_ : int64_t(float_value_); }

 private:
  int64_t int_value_ = 0;
  double float_value_ = 0.0;
  bool is_integral_ = true;
  bool is_bool_ = false;
};

}  // namespace luna
