// CPU index kernels: index_select, gather, index_add and scatter_add. All four reduce to two strided
// loops that read (gather) or accumulate (scatter) one element per index entry; every index is
// range-checked first, so a bad index throws instead of touching memory outside the tensor.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/dispatch.h>
#include <luna/backends/cpu/loops.h>

#include <type_traits>

namespace luna::cpu {
namespace {

// Throws naming the first offending value if any entry of `index` lies outside [0, dim_size).
// Runs before the kernel proper: exceptions cannot leave an OpenMP region, so the scan only
// records the bad value and the throw happens afterwards on the calling thread.
void check_index_range(const Tensor& index, int64_t dim_size, int dim, const char* op) {
  LUNA_CHECK(index.dtype() == kInt64, op, ": index must be int64, got ", index.dtype());
  bool found = false;
  int64_t bad_value = 0;
  for_each_row<1>({&index}, [&](std::array<char*, 1> p, int64_t n, std::array<int64_t, 1> s) {
    const int64_t* idx = reinterpret_cast<const int64_t*>(p[0]);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = idx[i * s[0]];
      if (v < 0 || v >= dim_size) {
#pragma omp critical(luna_index_range)
        if (!found) {
          found = true;
          bad_value = v;
        }
        return;
      }
    }
  });
  LUNA_CHECK(!found, op, ": index ", bad_value, " is out of bounds for dim ", dim, " with size ", dim_size,
             " (expected 0 <= index < ", dim_size, ")");
}

// The iteration space of one indexed kernel: `sizes` plus, per operand, element strides.
// Operand 0 is the indexed tensor with its `dim` stride zeroed (the index supplies that
// coordinate, scaled by indexed_dim_stride), operand 1 the index, operand 2 the other tensor.
struct IndexedLayout {
  Dims sizes;
  std::array<Dims, 3> strides;
  std::array<char*, 3> bases;
  std::array<int64_t, 3> elem_bytes;
  int64_t indexed_dim_stride = 0;
};

IndexedLayout make_layout(const Dims& sizes, const Tensor& indexed, int dim, const Dims& index_strides,
                          const Tensor& index, const Tensor& other) {
  IndexedLayout l;
  l.sizes = sizes;
  l.indexed_dim_stride = indexed.dim() ? indexed.strides()[dim] : 0;
  l.strides[0] = indexed.strides();
  if (indexed.dim()) l.strides[0][dim] = 0;
  l.strides[1] = index_strides;
  l.strides[2] = other.strides();
  l.bases = {static_cast<char*>(indexed.data_ptr()), static_cast<char*>(index.data_ptr()),
             static_cast<char*>(other.data_ptr())};
  l.elem_bytes = {int64_t(indexed.element_size()), int64_t(sizeof(int64_t)), int64_t(other.element_size())};
  return l;
}

// out[p] = in[p with its dim coordinate replaced by index[p]], for every p in the layout's sizes.
template <class T>
void gather_loop(const IndexedLayout& l) {
  const int64_t dim_stride = l.indexed_dim_stride;
  for_each_row<3>(l.sizes, l.bases, l.strides, l.elem_bytes,
                  [dim_stride](std::array<char*, 3> p, int64_t n, std::array<int64_t, 3> s) {
                    const T* in = reinterpret_cast<const T*>(p[0]);
                    const int64_t* idx = reinterpret_cast<const int64_t*>(p[1]);
                    T* out = reinterpret_cast<T*>(p[2]);
                    if (s[1] == 0) {
                      // The index is constant along the run (index_select's inner dims): a row copy.
                      const T* row = in + *idx * dim_stride;
                      if (s[0] == 1 && s[2] == 1) {
                        for (int64_t i = 0; i < n; ++i) out[i] = row[i];
                      } else {
                        for (int64_t i = 0; i < n; ++i) out[i * s[2]] = row[i * s[0]];
                      }
                    } else {
                      for (int64_t i = 0; i < n; ++i) out[i * s[2]] = in[i * s[0] + idx[i * s[1]] * dim_stride];
                    }
                  });
}

// self[q with dim := index[q]] += src[q] for every q whose dim coordinate runs over [0, count).
// The layout's sizes have dim collapsed to 1: each point is one fibre along dim. Distinct fibres
// write distinct elements of self (they differ outside dim), so fibres run in parallel while
// the count entries of one fibre, which may collide, are added serially.
template <class T>
void scatter_add_loop(const IndexedLayout& l, int64_t count, int64_t index_dim_stride, int64_t src_dim_stride) {
  const int64_t self_dim_stride = l.indexed_dim_stride;
  for_each_row<3>(l.sizes, l.bases, l.strides, l.elem_bytes,
                  [=](std::array<char*, 3> p, int64_t n, std::array<int64_t, 3> s) {
                    T* self = reinterpret_cast<T*>(p[0]);
                    const int64_t* idx = reinterpret_cast<const int64_t*>(p[1]);
                    const T* src = reinterpret_cast<const T*>(p[2]);
                    if (s[0] == 1 && s[2] == 1) {
                      // Fibres are adjacent in memory: sweep them together, one dim entry at a time.
                      for (int64_t j = 0; j < count; ++j) {
                        const int64_t* idx_j = idx + j * index_dim_stride;
                        const T* src_j = src + j * src_dim_stride;
                        if (s[1] == 0) {
                          T* row = self + *idx_j * self_dim_stride;
                          for (int64_t i = 0; i < n; ++i) row[i] = T(row[i] + src_j[i]);
                        } else {
                          for (int64_t i = 0; i < n; ++i) {
                            T& d = self[i + idx_j[i * s[1]] * self_dim_stride];
                            d = T(d + src_j[i]);
                          }
                        }
                      }
                    } else {
                      for (int64_t i = 0; i < n; ++i) {
                        T* fibre = self + i * s[0];
                        const int64_t* idx_i = idx + i * s[1];
                        const T* src_i = src + i * s[2];
                        for (int64_t j = 0; j < count; ++j) {
                          T& d = fibre[idx_i[j * index_dim_stride] * self_dim_stride];
                          d = T(d + src_i[j * src_dim_stride]);
                        }
                      }
                    }
                  });
}

// Strides that present a 1-D index (of index_select / index_add) as a tensor of `sizes`: the
// entry varies along dim only.
Dims broadcast_index_strides(const Tensor& index, int ndim, int dim) {
  Dims strides;
  strides.resize(ndim, 0);
  if (ndim) strides[dim] = index.dim() ? index.strides()[0] : 0;
  return strides;
}

// The tensor's sizes with dim set to 1 (one entry per fibre along dim).
Dims fibre_sizes(const Dims& sizes, int dim) {
  Dims out = sizes;
  if (out.size()) out[dim] = 1;
  return out;
}

}  // namespace

void CpuBackend::index_select(const Tensor& in, int dim, const Tensor& index, const Tensor& out) {
  check_index_range(index, in.dim() ? in.sizes()[dim] : 1, dim, "index_select");
  const IndexedLayout l =
      make_layout(out.sizes(), in, dim, broadcast_index_strides(index, out.dim(), dim), index, out);
  dispatch_any_dtype(in.dtype(), [&]<class T>() { gather_loop<T>(l); });
}

void CpuBackend::gather(const Tensor& in, int dim, const Tensor& index, const Tensor& out) {
  check_index_range(index, in.dim() ? in.sizes()[dim] : 1, dim, "gather");
  const IndexedLayout l = make_layout(index.sizes(), in, dim, index.strides(), index, out);
  dispatch_any_dtype(in.dtype(), [&]<class T>() { gather_loop<T>(l); });
}

void CpuBackend::index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  check_index_range(index, self.dim() ? self.sizes()[dim] : 1, dim, "index_add");
  const Dims index_strides = broadcast_index_strides(index, src.dim(), dim);
  const IndexedLayout l = make_layout(fibre_sizes(src.sizes(), dim), self, dim, index_strides, index, src);
  const int64_t count = src.dim() ? src.sizes()[dim] : 1;
  const int64_t index_dim_stride = src.dim() ? index_strides[dim] : 0;
  const int64_t src_dim_stride = src.dim() ? src.strides()[dim] : 0;
  LUNA_DISPATCH_ALL(self.dtype(), "index_add",
                    [&] { scatter_add_loop<scalar_t>(l, count, index_dim_stride, src_dim_stride); });
}

void CpuBackend::scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  check_index_range(index, self.dim() ? self.sizes()[dim] : 1, dim, "scatter_add");
  const IndexedLayout l = make_layout(fibre_sizes(index.sizes(), dim), self, dim, index.strides(), index, src);
  const int64_t count = index.dim() ? index.sizes()[dim] : 1;
  const int64_t index_dim_stride = index.dim() ? index.strides()[dim] : 0;
  const int64_t src_dim_stride = src.dim() ? src.strides()[dim] : 0;
  LUNA_DISPATCH_ALL(self.dtype(), "scatter_add",
                    [&] { scatter_add_loop<scalar_t>(l, count, index_dim_stride, src_dim_stride); });
}

}  // namespace luna::cpu
