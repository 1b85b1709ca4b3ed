// Element types. f32 is the default; f64 exists for gradchecks; integer types carry indices,
// labels and pixels; bf16/f16 are storage types for the CUDA mixed-precision path.
#pragma once
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>

namespace luna {

enum class DType : uint8_t { Float32, Float64, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kFloat16 = DType::Float16;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kInt16 = DType::Int16;
inline constexpr DType kInt8 = DType::Int8;
inline constexpr DType kUInt8 = DType::UInt8;
inline constexpr DType kBool = DType::Bool;
// PyTorch-style aliases.
inline constexpr DType kFloat = kFloat32;
inline constexpr DType kDouble = kFloat64;
inline constexpr DType kLong = kInt64;
inline constexpr DType kInt = kInt32;
inline constexpr DType kByte = kUInt8;

size_t element_size(DType dtype);
const char* dtype_name(DType dtype);  // "float32", "int64", ...
bool is_floating_point(DType dtype);
bool is_integral(DType dtype, bool include_bool = false);
// The dtype two operands compute in (PyTorch's promote_types for the types luna has).
DType promote_types(DType a, DType b);

inline std::ostream& operator<<(std::ostream& os, DType dtype) { return os << dtype_name(dtype); }

// 16-bit float storage types. Arithmetic happens after conversion to float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  explicit Half(float value);
  operator float() const;
};
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float value);
  operator float() const;
};

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = kFloat32; };
template <> struct dtype_of<double> { static constexpr DType value = kFloat64; };
template <> struct dtype_of<Half> { static constexpr DType value = kFloat16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = kBFloat16; };
template <> struct dtype_of<int64_t> { static constexpr DType value = kInt64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = kInt32; };
template <> struct dtype_of<int16_t> { static constexpr DType value = kInt16; };
template <> struct dtype_of<int8_t> { static constexpr DType value = kInt8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = kUInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = kBool; };

}  // namespace luna

// Calls `__VA_ARGS__` (a lambda body using `scalar_t`) with scalar_t bound to the C++ type of
// DTYPE. The _FLOAT form accepts f32/f64 only, _ALL every arithmetic type except 16-bit floats.
#define LUNA_DTYPE_CASE(DT, T, ...) \
  case DT: {                        \
    using scalar_t = T;             \
    __VA_ARGS__();                  \
    break;                          \
  }
#define LUNA_DISPATCH_FLOAT(DTYPE, OPNAME, ...)                                               \
  switch (DTYPE) {                                                                            \
    LUNA_DTYPE_CASE(::luna::kFloat32, float, __VA_ARGS__)                                     \
    LUNA_DTYPE_CASE(::luna::kFloat64, double, __VA_ARGS__)                                    \
    default:                                                                                  \
      LUNA_FAIL(OPNAME, ": dtype ", DTYPE, " is not supported (expected float32 or float64)"); \
  }
#define LUNA_DISPATCH_ALL(DTYPE, OPNAME, ...)                                \
  switch (DTYPE) {                                                           \
    LUNA_DTYPE_CASE(::luna::kFloat32, float, __VA_ARGS__)                    \
    LUNA_DTYPE_CASE(::luna::kFloat64, double, __VA_ARGS__)                   \
    LUNA_DTYPE_CASE(::luna::kInt64, int64_t, __VA_ARGS__)                    \
    LUNA_DTYPE_CASE(::luna::kInt32, int32_t, __VA_ARGS__)                    \
    LUNA_DTYPE_CASE(::luna::kInt16, int16_t, __VA_ARGS__)                    \
    LUNA_DTYPE_CASE(::luna::kInt8, int8_t, __VA_ARGS__)                      \
    LUNA_DTYPE_CASE(::luna::kUInt8, uint8_t, __VA_ARGS__)                    \
    LUNA_DTYPE_CASE(::luna::kBool, bool, __VA_ARGS__)                        \
    default:                                                                 \
      LUNA_FAIL(OPNAME, ": dtype ", DTYPE, " is not supported on this path"); \
  }
