// DType properties, promotion and 16-bit float conversions.
#include <luna/core/dtype.h>
#include <luna/core/error.h>

#include <cmath>

namespace luna {

size_t element_size(DType dtype) {
  switch (dtype) {
    case kFloat64: case kInt64: return 8;
    case kFloat32: case kInt32: return 4;
    case kFloat16: case kBFloat16: case kInt16: return 2;
    case kInt8: case kUInt8: case kBool: return 1;
  }
  LUNA_FAIL("element_size: unknown dtype ", int(dtype));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case kFloat32: return "float32";
    case kFloat64: return "float64";
    case kFloat16: return "float16";
    case kBFloat16: return "bfloat16";
    case kInt64: return "int64";
    case kInt32: return "int32";
    case kInt16: return "int16";
    case kInt8: return "int8";
    case kUInt8: return "uint8";
    case kBool: return "bool";
  }
  return "unknown";
}

bool is_floating_point(DType dtype) {
  return dtype == kFloat32 || dtype == kFloat64 || dtype == kFloat16 || dtype == kBFloat16;
}

bool is_integral(DType dtype, bool include_bool) {
  if (dtype == kBool) return include_bool;
  return !is_floating_point(dtype);
}

namespace {
// Rank within a category; higher wins.
int float_rank(DType d) {
  switch (d) {
    case kFloat16: return 1;
    case kBFloat16: return 2;
    case kFloat32: return 3;
    case kFloat64: return 4;
    default: return 0;
  }
}
int int_rank(DType d) {
  switch (d) {
    case kBool: return 0;
    case kUInt8: return 1;
    case kInt8: return 2;
    case kInt16: return 3;
    case kInt32: return 4;
    case kInt64: return 5;
    default: return -1;
  }
}
}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  const bool fa = is_floating_point(a), fb = is_floating_point(b);
  if (fa && fb) {
    // f16 with bf16 has no common 16-bit type: like PyTorch, go to f32.
    if ((a == kFloat16 && b == kBFloat16) || (a == kBFloat16 && b == kFloat16)) return kFloat32;
    return float_rank(a) > float_rank(b) ? a : b;
  }
  if (fa) return a;
  if (fb) return b;
  // uint8 with int8 promotes to int16 in PyTorch.
  if ((a == kUInt8 && b == kInt8) || (a == kInt8 && b == kUInt8)) return kInt16;
  return int_rank(a) > int_rank(b) ? a : b;
}

namespace {
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

BFloat16::BFloat16(float value) {
  uint32_t u = float_bits(value);
  if ((u & 0x7fffffff) > 0x7f800000) {  // NaN stays NaN
    bits = 0x7fc0;
    return;
  }
  u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
  bits = uint16_t(u >> 16);
}
BFloat16::operator float() const { return bits_float(uint32_t(bits) << 16); }

Half::Half(float value) {
  uint32_t u = float_bits(value);
  const uint32_t sign = (u >> 16) & 0x8000;
  u &= 0x7fffffff;
  if (u > 0x7f800000) { bits = uint16_t(sign | 0x7e00); return; }  // NaN
  if (u >= 0x477ff000) { bits = uint16_t(sign | 0x7c00); return; }  // overflow to inf
  if (u < 0x38800000) {  // subnormal half or zero
    const float magnitude = bits_float(u);
    bits = uint16_t(sign | uint16_t(std::lrint(magnitude * 16777216.0f)));
    return;
  }
  const uint32_t rounded = u + 0xfff + ((u >> 13) & 1);
  bits = uint16_t(sign | ((rounded - 0x38000000) >> 13));
}
Half::operator float() const {
  const uint32_t sign = uint32_t(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0) return (sign ? -1.0f : 1.0f) * float(mantissa) / 16777216.0f;
  if (exponent == 31) return bits_float(sign | 0x7f800000 | (mantissa << 13));
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

}  // namespace luna
