// Dtype dispatch for CPU kernels that only move or convert values, so every dtype works
// (the 16-bit floats included): fn.template operator()<T>() with T = the C++ type of dtype.
#pragma once
#include <cstdint>

#include <luna/core/dtype.h>

namespace luna::cpu {

template <class Fn>
void dispatch_any_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case kFloat32: fn.template operator()<float>(); break;
    case kFloat64: fn.template operator()<double>(); break;
    case kFloat16: fn.template operator()<Half>(); break;
    case kBFloat16: fn.template operator()<BFloat16>(); break;
    case kInt64: fn.template operator()<int64_t>(); break;
    case kInt32: fn.template operator()<int32_t>(); break;
    case kInt16: fn.template operator()<int16_t>(); break;
    case kInt8: fn.template operator()<int8_t>(); break;
    case kUInt8: fn.template operator()<uint8_t>(); break;
    case kBool: fn.template operator()<bool>(); break;
  }
}

}  // namespace luna::cpu
