// CUDA index kernels: index_select, gather (one strided read per output element) and index_add,
// scatter_add (one atomic add per source element, so colliding indices sum correctly; float sums
// then depend on the order the adds land in). Every index is range-checked on the device first and
// a bad one is reported as an error naming it, at the price of one synchronisation per call.
#include <luna/backends/cuda/kernel_utils.cuh>

namespace luna::cuda {
namespace {

// Operand 0: the indexed tensor with its `dim` stride zeroed (the index supplies that coordinate,
// scaled by indexed_dim_stride); operand 1: the index; operand 2: the other tensor.
struct IndexedLayout {
  Layout<3> layout;
  int64_t indexed_dim_stride = 0;
};

IndexedLayout make_indexed_layout(const Dims& sizes, const Tensor& indexed, int dim, const Dims& index_strides,
                                  const Tensor& other) {
  IndexedLayout l;
  l.indexed_dim_stride = indexed.dim() ? indexed.strides()[dim] : 0;
  std::array<Dims, 3> strides{indexed.strides(), index_strides, other.strides()};
  if (indexed.dim()) strides[0][dim] = 0;
  l.layout = make_layout<3>(sizes, strides);
  return l;
}

// Strides that present a 1-D index (of index_select / index_add) as a tensor of `ndim` dims whose
// entry varies along dim only.
Dims broadcast_index_strides(const Tensor& index, int ndim, int dim) {
  Dims strides;
  strides.resize(ndim, 0);
  if (ndim) strides[dim] = index.dim() ? index.strides()[0] : 0;
  return strides;
}

// status[0] = 1 and status[1] = the value, for the first out-of-range index that claims the flag.
__global__ void check_index_kernel(Layout<1> l, const int64_t* index, int64_t dim_size,
                                   unsigned long long* status) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[1];
    element_offsets(l, i, off);
    const int64_t v = index[off[0]];
    if ((v < 0 || v >= dim_size) && atomicCAS(&status[0], 0ull, 1ull) == 0ull)
      status[1] = static_cast<unsigned long long>(v);
  }
}

void check_index_range(DeviceContext& ctx, const Tensor& index, int64_t dim_size, int dim, const char* op) {
  LUNA_CHECK(index.dtype() == kInt64, op, ": index must be int64, got ", index.dtype());
  if (index.numel() == 0) return;
  Tensor status = empty_tensor({2}, kInt64, index.device());
  LUNA_CUDA_CHECK(cudaMemsetAsync(status.data_ptr(), 0, 2 * sizeof(int64_t), ctx.stream), op);
  const Layout<1> l = make_layout<1>({&index});
  check_index_kernel<<<grid_for(l.numel, ctx), kThreads, 0, ctx.stream>>>(l, ptr<const int64_t>(index), dim_size,
                                                                         ptr<unsigned long long>(status));
  LUNA_CUDA_CHECK_LAUNCH(op);
  int64_t host[2] = {0, 0};
  copy_device_to_host(ctx, host, status.data_ptr(), sizeof(host));
  LUNA_CHECK(host[0] == 0, op, ": index ", host[1], " is out of bounds for dim ", dim, " with size ", dim_size,
             " (expected 0 <= index < ", dim_size, ")");
}

template <class Bits>
__global__ void gather_kernel(Layout<3> l, int64_t dim_stride, const Bits* in, const int64_t* index, Bits* out) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[3];
    element_offsets(l, i, off);
    out[off[2]] = in[off[0] + index[off[1]] * dim_stride];
  }
}

template <class T>
__device__ __forceinline__ void atomic_add(T* address, T value) {
  if constexpr (std::is_same_v<T, int64_t>) {
    // Two's complement: an unsigned add of the bit pattern is a signed add.
    atomicAdd(reinterpret_cast<unsigned long long*>(address), static_cast<unsigned long long>(value));
  } else {
    atomicAdd(address, value);
  }
}

template <class T>
__global__ void scatter_add_kernel(Layout<3> l, int64_t dim_stride, T* self, const int64_t* index, const T* src) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[3];
    element_offsets(l, i, off);
    atomic_add(self + off[0] + index[off[1]] * dim_stride, src[off[2]]);
  }
}

void launch_gather(DeviceContext& ctx, const IndexedLayout& l, const Tensor& in, const Tensor& index,
                   const Tensor& out) {
  if (l.layout.numel == 0) return;
  const auto launch = [&](auto bits) {
    using Bits = decltype(bits);
    gather_kernel<Bits><<<grid_for(l.layout.numel, ctx), kThreads, 0, ctx.stream>>>(
        l.layout, l.indexed_dim_stride, ptr<const Bits>(in), ptr<const int64_t>(index), ptr<Bits>(out));
  };
  switch (in.element_size()) {
    case 1: launch(uint8_t{}); break;
    case 2: launch(uint16_t{}); break;
    case 4: launch(uint32_t{}); break;
    default: launch(uint64_t{}); break;
  }
  LUNA_CUDA_CHECK_LAUNCH("gather");
}

void launch_scatter_add(DeviceContext& ctx, const IndexedLayout& l, const Tensor& self, const Tensor& index,
                        const Tensor& src, const char* op) {
  if (l.layout.numel == 0) return;
  const unsigned grid = grid_for(l.layout.numel, ctx);
  const auto launch = [&]<class T>() {
    scatter_add_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(l.layout, l.indexed_dim_stride, ptr<T>(self),
                                                             ptr<const int64_t>(index), ptr<const T>(src));
  };
  switch (self.dtype()) {
    case kFloat32: launch.template operator()<float>(); break;
    case kFloat64: launch.template operator()<double>(); break;
    case kInt64: launch.template operator()<int64_t>(); break;
    case kInt32: launch.template operator()<int>(); break;
    default:
      LUNA_FAIL(op, ": dtype ", self.dtype(), " is not supported on ", self.device(),
                " (expected float32, float64, int64 or int32); convert first or run it on the CPU");
  }
  LUNA_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void CudaBackend::index_select(const Tensor& in, int dim, const Tensor& index, const Tensor& out) {
  DeviceContext& ctx = context_for("index_select", {&out, &in, &index});
  check_index_range(ctx, index, in.dim() ? in.sizes()[dim] : 1, dim, "index_select");
  launch_gather(ctx, make_indexed_layout(out.sizes(), in, dim, broadcast_index_strides(index, out.dim(), dim), out),
                in, index, out);
}

void CudaBackend::gather(const Tensor& in, int dim, const Tensor& index, const Tensor& out) {
  DeviceContext& ctx = context_for("gather", {&out, &in, &index});
  check_index_range(ctx, index, in.dim() ? in.sizes()[dim] : 1, dim, "gather");
  launch_gather(ctx, make_indexed_layout(index.sizes(), in, dim, index.strides(), out), in, index, out);
}

void CudaBackend::index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  DeviceContext& ctx = context_for("index_add", {&self, &index, &src});
  check_index_range(ctx, index, self.dim() ? self.sizes()[dim] : 1, dim, "index_add");
  launch_scatter_add(ctx,
                     make_indexed_layout(src.sizes(), self, dim, broadcast_index_strides(index, src.dim(), dim), src),
                     self, index, src, "index_add");
}

void CudaBackend::scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  DeviceContext& ctx = context_for("scatter_add", {&self, &index, &src});
  check_index_range(ctx, index, self.dim() ? self.sizes()[dim] : 1, dim, "scatter_add");
  launch_scatter_add(ctx, make_indexed_layout(index.sizes(), self, dim, index.strides(), src), self, index, src,
                     "scatter_add");
}

}  // namespace luna::cuda
