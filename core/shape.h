// Fixed-capacity dimension lists (sizes and strides, at most kMaxDims) so shape handling never
// touches the heap, plus the helpers every op uses to validate dims and broadcast.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include <luna/core/error.h>

namespace luna {

inline constexpr int kMaxDims = 8;

class Dims {
 public:
  Dims() = default;
  Dims(std::initializer_list<int64_t> values) { assign(values.begin(), values.end()); }
  Dims(const std::vector<int64_t>& values) { assign(values.begin(), values.end()); }
  template <class It>
  Dims(It first, It last) { assign(first, last); }

  int size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t operator[](int i) const { return data_[i]; }
  int64_t& operator[](int i) { return data_[i]; }
  int64_t back() const { return data_[size_ - 1]; }
  const int64_t* begin() const { return data_.data(); }
  const int64_t* end() const { return data_.data() + size_; }
  int64_t* begin() { return data_.data(); }
  int64_t* end() { return data_.data() + size_; }
  void push_back(int64_t v) {
    LUNA_CHECK(size_ < kMaxDims, "tensor: at most ", kMaxDims, " dims are supported");
    data_[size_++] = v;
  }
  void insert(int pos, int64_t v) {
    push_back(0);
    for (int i = size_ - 1; i > pos; --i) data_[i] = data_[i - 1];
    data_[pos] = v;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < size_; ++i) data_[i] = data_[i + 1];
    --size_;
  }
  void resize(int n, int64_t fill = 0) {
    LUNA_CHECK(n <= kMaxDims, "tensor: at most ", kMaxDims, " dims are supported, got ", n);
    for (int i = size_; i < n; ++i) data_[i] = fill;
    size_ = n;
  }
  int64_t product() const {
    int64_t p = 1;
    for (int i = 0; i < size_; ++i) p *= data_[i];
    return p;
  }
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  bool operator==(const Dims& o) const {
    if (size_ != o.size_) return false;
    for (int i = 0; i < size_; ++i)
      if (data_[i] != o.data_[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < size_; ++i) {
      if (i) s += ',';
      s += std::to_string(data_[i]);
    }
    return s + "]";
  }

 private:
  template <class It>
  void assign(It first, It last) {
    size_ = 0;
    for (; first != last; ++first) push_back(int64_t(*first));
  }
  std::array<int64_t, kMaxDims> data_{};
  int size_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Dims& d) { return os << d.str(); }

// Row-major strides for a shape.
inline Dims contiguous_strides(const Dims& sizes) {
  Dims strides;
  strides.resize(sizes.size());
  int64_t s = 1;
  for (int i = sizes.size() - 1; i >= 0; --i) {
    strides[i] = s;
    s *= sizes[i] > 0 ? sizes[i] : 1;
  }
  return strides;
}

// Wraps a possibly negative dim into [0, ndim). `op` names the caller in the error.
inline int wrap_dim(int64_t dim, int ndim, const char* op) {
  const int64_t n = ndim == 0 ? 1 : ndim;  // a 0-dim tensor accepts dim 0 / -1, like PyTorch
  LUNA_CHECK(dim >= -n && dim < n, op, ": dim ", dim, " is out of range for a tensor of ", ndim,
             " dims (expected in [", -n, ", ", n - 1, "])");
  return int(dim < 0 ? dim + n : dim);
}

// The shape two operands broadcast to, or an error naming both shapes.
inline Dims broadcast_shapes(const Dims& a, const Dims& b, const char* op) {
  const int n = std::max(a.size(), b.size());
  Dims out;
  out.resize(n);
  for (int i = 0; i < n; ++i) {
    const int ia = a.size() - n + i, ib = b.size() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    LUNA_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
               " cannot be broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace luna
