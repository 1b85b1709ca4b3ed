// CUDA kernels of the fused nn ops: softmax / log-softmax, layer norm, cross-entropy and dropout.
// A block owns a row: it reads the row once per pass (the later passes hit L1/L2) and reduces with
// block_reduce. Softmax over a dim that is not the last gives each thread a column instead, so
// neighbouring threads read neighbouring elements. Formulas mirror backends/cpu/nn_kernels.cpp.
#include <luna/backends/cuda/device_math.cuh>
#include <luna/backends/cuda/kernel_utils.cuh>

#include <algorithm>
#include <cmath>

namespace luna::cuda {
namespace {

constexpr int kRowThreads = 512;

int row_threads(int64_t n) { return std::min(kRowThreads, threads_for_row(n)); }

unsigned row_grid(int64_t rows, const DeviceContext& ctx) {
  return unsigned(std::clamp<int64_t>(rows, 1, int64_t(ctx.sm_count) * 32));
}

// A contiguous tensor seen as [outer, size, inner] around `dim`.
struct DimSplit {
  int64_t outer = 1, size = 1, inner = 1;
};

DimSplit split_at(const Tensor& t, int dim) {
  DimSplit s;
  for (int d = 0; d < t.dim(); ++d) {
    if (d < dim) s.outer *= t.sizes()[d];
    else if (d == dim) s.size = t.sizes()[d];
    else s.inner *= t.sizes()[d];
  }
  return s;
}

// ---- softmax ----

// in, out (rows, D): one block per row.
template <class T>
__global__ void softmax_rows_kernel(const T* in, T* out, int64_t rows, int64_t D, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = in + row * D;
    T* y = out + row * D;
    T max = -INFINITY;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) max = MaxOp{}(max, x[i]);
    max = block_reduce(max, MaxOp{});
    T sum = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) sum += dmath::exp(x[i] - max);
    sum = block_reduce(sum, SumOp{});
    if (log) {
      const T log_sum = dmath::log(sum);
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) y[i] = (x[i] - max) - log_sum;
    } else {
      const T inv_sum = T(1) / sum;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) y[i] = dmath::exp(x[i] - max) * inv_sum;
    }
  }
}

// in, out (outer, D, inner): one thread per (outer, inner) column.
template <class T>
__global__ void softmax_columns_kernel(const T* in, T* out, DimSplit s, bool log) {
  LUNA_GRID_STRIDE_LOOP(column, s.outer * s.inner) {
    const int64_t base = (column / s.inner) * s.size * s.inner + column % s.inner;
    const T* x = in + base;
    T* y = out + base;
    T max = -INFINITY;
    for (int64_t d = 0; d < s.size; ++d) max = MaxOp{}(max, x[d * s.inner]);
    T sum = 0;
    for (int64_t d = 0; d < s.size; ++d) sum += dmath::exp(x[d * s.inner] - max);
    const T factor = log ? dmath::log(sum) : T(1) / sum;
    for (int64_t d = 0; d < s.size; ++d) {
      const T v = x[d * s.inner] - max;
      y[d * s.inner] = log ? v - factor : dmath::exp(v) * factor;
    }
  }
}

// softmax: grad_in = y * (g - sum(g * y)); log_softmax: grad_in = g - exp(y) * sum(g).
template <class T>
__global__ void softmax_backward_rows_kernel(const T* out, const T* grad_out, T* grad_in, int64_t rows, int64_t D,
                                             bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* y = out + row * D;
    const T* g = grad_out + row * D;
    T* gi = grad_in + row * D;
    T total = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) total += log ? g[i] : g[i] * y[i];
    total = block_reduce(total, SumOp{});
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
      gi[i] = log ? g[i] - dmath::exp(y[i]) * total : y[i] * (g[i] - total);
  }
}

template <class T>
__global__ void softmax_backward_columns_kernel(const T* out, const T* grad_out, T* grad_in, DimSplit s, bool log) {
  LUNA_GRID_STRIDE_LOOP(column, s.outer * s.inner) {
    const int64_t base = (column / s.inner) * s.size * s.inner + column % s.inner;
    const T* y = out + base;
    const T* g = grad_out + base;
    T* gi = grad_in + base;
    T total = 0;
    for (int64_t d = 0; d < s.size; ++d) total += log ? g[d * s.inner] : g[d * s.inner] * y[d * s.inner];
    for (int64_t d = 0; d < s.size; ++d) {
      const int64_t k = d * s.inner;
      gi[k] = log ? g[k] - dmath::exp(y[k]) * total : y[k] * (g[k] - total);
    }
  }
}

// ---- layer norm ----

// One block per row of in, out (rows, cols); weight, bias (cols) or null; mean, rstd (rows).
// Values are taken relative to x[0] before summing, as on the CPU, so rows with |mean| >> std
// keep their precision; the variance is of centred values (no E[x^2] - E[x]^2 cancellation).
template <class T>
__global__ void layer_norm_kernel(const T* in, const T* weight, const T* bias, double eps, T* out, T* mean_out,
                                  T* rstd_out, int64_t rows, int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = in + row * cols;
    T* y = out + row * cols;
    const T shift = x[0];
    T sum = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum += x[i] - shift;
    const T delta = block_reduce(sum, SumOp{}) / T(cols);
    T squares = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const T d = (x[i] - shift) - delta;
      squares += d * d;
    }
    const T var = block_reduce(squares, SumOp{}) / T(cols);
    const T rstd = T(1.0 / dmath::sqrt(double(var) + eps));
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
      T v = ((x[i] - shift) - delta) * rstd;
      if (weight) v = v * weight[i];
      if (bias) v = v + bias[i];
      y[i] = v;
    }
    if (threadIdx.x == 0) {
      mean_out[row] = shift + delta;
      rstd_out[row] = rstd;
    }
  }
}

// With xhat = (x - mean) * rstd and dy = g * weight:
//   grad_in = rstd * (dy - mean(dy) - xhat * mean(dy * xhat)); one block per row.
template <class T>
__global__ void layer_norm_backward_input_kernel(const T* grad_out, const T* in, const T* mean, const T* rstd,
                                                 const T* weight, T* grad_in, int64_t rows, int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = in + row * cols;
    const T* g = grad_out + row * cols;
    T* gi = grad_in + row * cols;
    const T m = mean[row], rs = rstd[row];
    T dy_sum = 0, dy_xhat_sum = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const T dy = weight ? g[i] * weight[i] : g[i];
      dy_sum += dy;
      dy_xhat_sum += dy * ((x[i] - m) * rs);
    }
    const T dy_mean = block_reduce(dy_sum, SumOp{}) / T(cols);
    const T dy_xhat_mean = block_reduce(dy_xhat_sum, SumOp{}) / T(cols);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const T dy = weight ? g[i] * weight[i] : g[i];
      gi[i] = rs * (dy - dy_mean - (x[i] - m) * rs * dy_xhat_mean);
    }
  }
}

// Partial column sums of g * xhat and g over one segment of rows: thread per (segment, column),
// neighbouring threads on neighbouring columns. partial (2, segments, cols) in double.
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* grad_out, const T* in, const T* mean, const T* rstd,
                                                 int64_t rows, int64_t cols, int64_t segments, int64_t segment_rows,
                                                 double* partial) {
  LUNA_GRID_STRIDE_LOOP(task, segments * cols) {
    const int64_t s = task / cols, c = task % cols;
    const int64_t r0 = s * segment_rows, r1 = min(rows, r0 + segment_rows);
    double weight_sum = 0, bias_sum = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const T g = grad_out[r * cols + c];
      weight_sum += double(g * ((in[r * cols + c] - mean[r]) * rstd[r]));
      bias_sum += double(g);
    }
    partial[task] = weight_sum;
    partial[segments * cols + task] = bias_sum;
  }
}

template <class T>
__global__ void layer_norm_param_finish_kernel(const double* partial, int64_t segments, int64_t cols, T* grad_weight,
                                               T* grad_bias) {
  LUNA_GRID_STRIDE_LOOP(c, cols) {
    double w = 0, b = 0;
    for (int64_t s = 0; s < segments; ++s) {
      w += partial[s * cols + c];
      b += partial[(segments + s) * cols + c];
    }
    if (grad_weight) grad_weight[c] = T(w);
    if (grad_bias) grad_bias[c] = T(b);
  }
}

// ---- cross-entropy ----

// logits (N, C), target (N); losses, lse (N). One block per row.
// loss = (1 - eps) * (lse - x[t]) + eps * (lse - mean_c x[c]): PyTorch's label smoothing.
template <class T>
__global__ void cross_entropy_kernel(const T* logits, const int64_t* target, int64_t ignore_index, double smoothing,
                                     T* losses, T* lse, int64_t N, int64_t C) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* x = logits + n * C;
    T max = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) max = MaxOp{}(max, x[c]);
    max = block_reduce(max, MaxOp{});
    T sum_exp = 0, sum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      sum_exp += dmath::exp(x[c] - max);
      sum += x[c];
    }
    sum_exp = block_reduce(sum_exp, SumOp{});
    sum = block_reduce(sum, SumOp{});
    if (threadIdx.x != 0) continue;
    const double row_lse = double(max) + ::log(double(sum_exp));
    lse[n] = T(row_lse);
    const int64_t t = target[n];
    if (t == ignore_index) {
      losses[n] = T(0);
      continue;
    }
    double loss = (1.0 - smoothing) * (row_lse - double(x[t]));
    if (smoothing > 0) loss += smoothing * (row_lse - double(sum) / double(C));
    losses[n] = T(loss);
  }
}

// grad_logits (N, C) = grad_losses[n] * (softmax - (1 - eps) * onehot(t) - eps / C); 0 on ignored rows.
template <class T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int64_t* target, const T* lse,
                                              const T* grad_losses, int64_t ignore_index, double smoothing,
                                              T* grad_logits, int64_t N, int64_t C) {
  const T uniform_share = T(smoothing / double(C));
  LUNA_GRID_STRIDE_LOOP(i, N * C) {
    const int64_t n = i / C, c = i % C;
    const int64_t t = target[n];
    if (t == ignore_index) {
      grad_logits[i] = T(0);
      continue;
    }
    const T g = grad_losses[n];
    T v = g * (dmath::exp(logits[i] - lse[n]) - uniform_share);
    if (c == t) v -= g * T(1.0 - smoothing);
    grad_logits[i] = v;
  }
}

// ---- dropout ----

// Element i keeps its value when the uniform from word i % 4 of Philox block offset + i / 4 is
// >= p (compared in double): the CPU's mask, bit for bit.
template <class T>
__global__ void dropout_kernel(const T* in, T* out, uint8_t* mask, int64_t n, double p, uint64_t key,
                               uint64_t first) {
  const T scale = T(1.0 / (1.0 - p));
  LUNA_GRID_STRIDE_LOOP(b, (n + 3) / 4) {
    const PhiloxWords words = philox4x32_10_device(key, first + uint64_t(b));
    for (int k = 0; k < 4 && 4 * b + k < n; ++k) {
      const int64_t i = 4 * b + k;
      const bool keep = double(uniform_float_device(words.w[k])) >= p;
      mask[i] = uint8_t(keep);
      out[i] = keep ? in[i] * scale : T(0);
    }
  }
}

// (grad · mask) · scale: the composed formula's two products in its order (the CPU's bits).
template <class T>
__global__ void dropout_backward_kernel(const T* grad_out, const uint8_t* mask, T scale, T* grad_in, int64_t n) {
  LUNA_GRID_STRIDE_LOOP(i, n) { grad_in[i] = (grad_out[i] * T(mask[i])) * scale; }
}

template <class T>
const T* optional_ptr(const Tensor& t) {
  return t.defined() ? ptr<const T>(t) : nullptr;
}

}  // namespace

void CudaBackend::softmax_forward(const Tensor& in, const Tensor& out, int dim, bool log) {
  DeviceContext& ctx = context_for("softmax", {&out, &in});
  if (out.numel() == 0) return;
  const DimSplit s = split_at(in, dim);
  LUNA_DISPATCH_FLOAT(in.dtype(), log ? "log_softmax" : "softmax", [&] {
    if (s.inner == 1) {
      softmax_rows_kernel<scalar_t><<<row_grid(s.outer, ctx), row_threads(s.size), 0, ctx.stream>>>(
          ptr<const scalar_t>(in), ptr<scalar_t>(out), s.outer, s.size, log);
    } else {
      softmax_columns_kernel<scalar_t><<<grid_for(s.outer * s.inner, ctx), kThreads, 0, ctx.stream>>>(
          ptr<const scalar_t>(in), ptr<scalar_t>(out), s, log);
    }
  });
  LUNA_CUDA_CHECK_LAUNCH("softmax");
}

void CudaBackend::softmax_backward(const Tensor& out, const Tensor& grad_out, const Tensor& grad_in, int dim,
                                   bool log) {
  DeviceContext& ctx = context_for("softmax_backward", {&grad_in, &out, &grad_out});
  if (grad_in.numel() == 0) return;
  const DimSplit s = split_at(out, dim);
  LUNA_DISPATCH_FLOAT(out.dtype(), log ? "log_softmax_backward" : "softmax_backward", [&] {
    if (s.inner == 1) {
      softmax_backward_rows_kernel<scalar_t><<<row_grid(s.outer, ctx), row_threads(s.size), 0, ctx.stream>>>(
          ptr<const scalar_t>(out), ptr<const scalar_t>(grad_out), ptr<scalar_t>(grad_in), s.outer, s.size, log);
    } else {
      softmax_backward_columns_kernel<scalar_t><<<grid_for(s.outer * s.inner, ctx), kThreads, 0, ctx.stream>>>(
          ptr<const scalar_t>(out), ptr<const scalar_t>(grad_out), ptr<scalar_t>(grad_in), s, log);
    }
  });
  LUNA_CUDA_CHECK_LAUNCH("softmax_backward");
}

void CudaBackend::layer_norm_forward(const Tensor& in, const Tensor& weight, const Tensor& bias, double eps,
                                     const Tensor& out, const Tensor& mean, const Tensor& rstd) {
  DeviceContext& ctx = context_for("layer_norm", {&out, &in, &weight, &bias, &mean, &rstd});
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : in.numel() / rows;
  if (rows == 0 || cols == 0) return;
  LUNA_DISPATCH_FLOAT(in.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    layer_norm_kernel<T><<<row_grid(rows, ctx), row_threads(cols), 0, ctx.stream>>>(
        ptr<const T>(in), optional_ptr<T>(weight), optional_ptr<T>(bias), eps, ptr<T>(out), ptr<T>(mean), ptr<T>(rstd),
        rows, cols);
  });
  LUNA_CUDA_CHECK_LAUNCH("layer_norm");
}

void CudaBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mean,
                                      const Tensor& rstd, const Tensor& weight, const Tensor& grad_in,
                                      const Tensor& grad_weight, const Tensor& grad_bias) {
  DeviceContext& ctx =
      context_for("layer_norm_backward", {&grad_in, &grad_out, &in, &mean, &rstd, &weight, &grad_weight, &grad_bias});
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : in.numel() / rows;
  const bool param_grads = grad_weight.defined() || grad_bias.defined();
  if (rows == 0 || cols == 0) {
    // No rows: the parameter gradients are empty sums.
    if (grad_weight.defined()) fill(grad_weight, 0);
    if (grad_bias.defined()) fill(grad_bias, 0);
    return;
  }
  LUNA_DISPATCH_FLOAT(in.dtype(), "layer_norm_backward", [&] {
    using T = scalar_t;
    layer_norm_backward_input_kernel<T><<<row_grid(rows, ctx), row_threads(cols), 0, ctx.stream>>>(
        ptr<const T>(grad_out), ptr<const T>(in), ptr<const T>(mean), ptr<const T>(rstd), optional_ptr<T>(weight),
        ptr<T>(grad_in), rows, cols);
    LUNA_CUDA_CHECK_LAUNCH("layer_norm_backward");
    if (!param_grads) return;
    // Row segments so that segments * cols threads fill the device.
    const int64_t device_threads = int64_t(ctx.sm_count) * 2048;
    int64_t segments = std::clamp<int64_t>(device_threads / cols, 1, std::min<int64_t>(1024, (rows + 15) / 16));
    const int64_t segment_rows = (rows + segments - 1) / segments;
    segments = (rows + segment_rows - 1) / segment_rows;
    Tensor partial = empty_tensor({2 * segments * cols}, kFloat64, grad_in.device());  // (2, segments, cols)
    layer_norm_param_partials_kernel<T><<<grid_for(segments * cols, ctx), kThreads, 0, ctx.stream>>>(
        ptr<const T>(grad_out), ptr<const T>(in), ptr<const T>(mean), ptr<const T>(rstd), rows, cols, segments,
        segment_rows, ptr<double>(partial));
    LUNA_CUDA_CHECK_LAUNCH("layer_norm_backward (parameter partials)");
    layer_norm_param_finish_kernel<T><<<grid_for(cols, ctx), kThreads, 0, ctx.stream>>>(
        ptr<const double>(partial), segments, cols, grad_weight.defined() ? ptr<T>(grad_weight) : nullptr,
        grad_bias.defined() ? ptr<T>(grad_bias) : nullptr);
    LUNA_CUDA_CHECK_LAUNCH("layer_norm_backward (parameter sums)");
  });
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                        double label_smoothing, const Tensor& losses, const Tensor& lse) {
  DeviceContext& ctx = context_for("cross_entropy", {&losses, &logits, &target, &lse});
  const int64_t N = losses.numel(), C = N == 0 ? 0 : logits.numel() / N;
  if (N == 0) return;
  LUNA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    cross_entropy_kernel<scalar_t><<<row_grid(N, ctx), row_threads(C), 0, ctx.stream>>>(
        ptr<const scalar_t>(logits), ptr<const int64_t>(target), ignore_index, label_smoothing,
        ptr<scalar_t>(losses), ptr<scalar_t>(lse), N, C);
  });
  LUNA_CUDA_CHECK_LAUNCH("cross_entropy");
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                                         const Tensor& grad_losses, int64_t ignore_index, double label_smoothing,
                                         const Tensor& grad_logits) {
  DeviceContext& ctx = context_for("cross_entropy_backward", {&grad_logits, &logits, &target, &lse, &grad_losses});
  const int64_t N = lse.numel(), C = N == 0 ? 0 : logits.numel() / N;
  if (N * C == 0) return;
  LUNA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&] {
    cross_entropy_backward_kernel<scalar_t><<<grid_for(N * C, ctx), kThreads, 0, ctx.stream>>>(
        ptr<const scalar_t>(logits), ptr<const int64_t>(target), ptr<const scalar_t>(lse),
        ptr<const scalar_t>(grad_losses), ignore_index, label_smoothing, ptr<scalar_t>(grad_logits), N, C);
  });
  LUNA_CUDA_CHECK_LAUNCH("cross_entropy_backward");
}

void CudaBackend::dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                                  GeneratorState state) {
  DeviceContext& ctx = context_for("dropout", {&out, &in, &mask});
  const int64_t n = in.numel();
  if (n == 0) return;
  LUNA_DISPATCH_FLOAT(in.dtype(), "dropout", [&] {
    dropout_kernel<scalar_t><<<grid_for((n + 3) / 4, ctx), kThreads, 0, ctx.stream>>>(
        ptr<const scalar_t>(in), ptr<scalar_t>(out), ptr<uint8_t>(mask), n, p, state.seed, state.offset);
  });
  LUNA_CUDA_CHECK_LAUNCH("dropout");
}

void CudaBackend::dropout_backward(const Tensor& grad_out, const Tensor& mask, double scale, const Tensor& grad_in) {
  DeviceContext& ctx = context_for("dropout_backward", {&grad_in, &grad_out, &mask});
  const int64_t n = grad_out.numel();
  if (n == 0) return;
  LUNA_DISPATCH_FLOAT(grad_out.dtype(), "dropout_backward", [&] {
    dropout_backward_kernel<scalar_t><<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(
        ptr<const scalar_t>(grad_out), ptr<const uint8_t>(mask), scalar_t(scale), ptr<scalar_t>(grad_in), n);
  });
  LUNA_CUDA_CHECK_LAUNCH("dropout_backward");
}

}  // namespace luna::cuda
