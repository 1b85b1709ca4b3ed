// The small abstract interface each device implements: memory, strided elementwise kernels,
// reductions, GEMM, indexing and the fused nn kernels. Ops validate shapes and dtypes, allocate
// outputs and then call one of these; kernels trust their arguments. A method a backend does not
// override reports which op is missing on which device, never a silent fallback.
#pragma once
#include <cstdint>

#include <luna/core/generator.h>
#include <luna/core/scalar.h>
#include <luna/core/tensor.h>

namespace luna {

enum class UnaryOp {
  Neg, Exp, Log, Log1p, Sqrt, Rsqrt, Abs, Sign, Tanh, Sigmoid, Relu,
  Gelu,      // erf form: x * Φ(x)
  GeluTanh,  // tanh approximation
  Elu,       // a = alpha
  Silu,
  Softplus,  // a = beta, b = threshold
  Sin, Cos, Square, Reciprocal,
  Clamp,     // a = min (if has_a), b = max (if has_b)
  PowScalar, // a = exponent
  Erf,
};
const char* unary_op_name(UnaryOp op);

struct UnaryParams {
  double a = 0.0, b = 0.0;
  bool has_a = false, has_b = false;
};

enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr };
const char* binary_op_name(BinaryOp op);
inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

enum class ReduceOp { Sum, Max, Min, Prod };

enum class RandomKind { Uniform, Normal, Int };
// Counter blocks a random fill of `numel` elements consumes; ops reserve exactly this many so
// every backend draws the same numbers for the same generator state.
//   Uniform: f32 one word per element (4 per block), f64 two words (2 per block).
//   Normal: Box-Muller pairs, one block per 2 elements (53-bit uniforms from words 0-1 and 2-3).
//   Int: one word per element.
uint64_t random_blocks_needed(RandomKind kind, DType dtype, int64_t numel);

// C = alpha * op(A) @ op(B) + beta * C (+ bias) for `batch` matrices at fixed element strides.
// Row-major: A is [m,k] (or [k,m] with trans_a), leading dimensions in elements. `bias` (n values of
// the dtype, shared by the batch) is added to every row of C; only backends whose gemm_bias() says
// so take it (a linear layer then writes its output once instead of broadcasting the bias first).
struct GemmArgs {
  DType dtype = kFloat32;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0, beta = 0.0;
  const void* a = nullptr; int64_t lda = 0; int64_t stride_a = 0;
  const void* b = nullptr; int64_t ldb = 0; int64_t stride_b = 0;
  void* c = nullptr; int64_t ldc = 0; int64_t stride_c = 0;
  int64_t batch = 1;
  const void* bias = nullptr;
};

// The scalars of one Adam / AdamW update in torch.optim's form, bias corrections folded in
// (ops/optim_update.h).
struct AdamUpdateScalars {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double step_size = 1e-3;             // lr / (1 − beta1^step)
  double bias_correction2_sqrt = 1.0;  // sqrt(1 − beta2^step)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual void synchronize() {}

  // ---- memory ----
  // dst = src (same shape, same device, any strides, dtype converted).
  virtual void copy(const Tensor& src, const Tensor& dst);
  // Between this device and the CPU (for devices other than the CPU).
  virtual void copy_from_cpu(const Tensor& src_cpu, const Tensor& dst);
  virtual void copy_to_cpu(const Tensor& src, const Tensor& dst_cpu);
  virtual void fill(const Tensor& dst, Scalar value);
  // out[i] = start + i * step, computed in double then cast.
  virtual void arange(const Tensor& out, double start, double step);
  // Contiguous out. Uniform in [a, b); Normal with mean a, std b; Int in [a, b).
  virtual void random(const Tensor& out, RandomKind kind, double a, double b, GeneratorState state);

  // ---- elementwise ----
  // out = op(in); same shape; out contiguous; same dtype.
  virtual void unary(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& params);
  // grad_in = grad_out * op'(in); `result` is op(in) (some derivatives read it). grad_in contiguous.
  virtual void unary_backward(UnaryOp op, const Tensor& in, const Tensor& result, const Tensor& grad_out,
                              const Tensor& grad_in, const UnaryParams& params);
  // a and b are already expanded to out's shape (stride 0 on broadcast dims) and share a dtype;
  // out is contiguous, of that dtype, or bool for comparisons and logical ops.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
  // out = cond ? a : b, all expanded to out's shape; cond is bool.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);

  // ---- reductions ----
  // out has in's rank with every reduced dim of size 1 (keepdim form) and is contiguous.
  // reduce_mask bit i set = dim i reduced.
  virtual void reduce(ReduceOp op, const Tensor& in, const Tensor& out, uint32_t reduce_mask);
  // Max or Min along `dim`: values (in's dtype) and indices (int64), keepdim form, contiguous.
  // The first index wins ties; NaN propagates (as in PyTorch).
  virtual void arg_reduce(ReduceOp op, const Tensor& in, int dim, const Tensor& values, const Tensor& indices);

  // ---- linear algebra ----
  virtual void gemm(const GemmArgs& args);
  // Whether gemm() takes GemmArgs::bias; when not, callers broadcast the bias into C themselves.
  virtual bool gemm_bias() const { return false; }
  // Optional fused backward of y = x·Wᵀ + b: grad_input = dy·W (rows, in), grad_weight = dyᵀ·x
  // (out, in) and grad_bias = Σ_rows dy (out), from dy (rows, out), x (rows, in) and W (out, in), all
  // contiguous; an undefined output is not needed. One pass over dy where matmul, matmul and sum make
  // three. Ops call it only where has_linear_backward(dtype) says so and compose it otherwise.
  virtual bool has_linear_backward(DType dtype) const { return false; }
  virtual void linear_backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight,
                               const Tensor& grad_input, const Tensor& grad_weight, const Tensor& grad_bias);

  // ---- indexing (index is int64) ----
  // out = in.index_select(dim, index); out contiguous.
  virtual void index_select(const Tensor& in, int dim, const Tensor& index, const Tensor& out);
  // self.index_add_(dim, index, src): self[..., index[i], ...] += src[..., i, ...]; self contiguous.
  virtual void index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src);
  // out[i][j] = in[i][index[i][j]] along dim (torch.gather); out contiguous, index's shape.
  virtual void gather(const Tensor& in, int dim, const Tensor& index, const Tensor& out);
  // self[i][index[i][j]] += src[i][j] along dim (torch.scatter_add_); self contiguous.
  virtual void scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src);

  // ---- fused nn kernels (inputs contiguous) ----
  // Softmax or log-softmax over `dim` of a contiguous tensor.
  virtual void softmax_forward(const Tensor& in, const Tensor& out, int dim, bool log);
  // grad_in from the forward output and grad_out.
  virtual void softmax_backward(const Tensor& out, const Tensor& grad_out, const Tensor& grad_in, int dim, bool log);
  // in viewed as [rows, cols], normalised over cols. weight/bias [cols] may be undefined.
  // Writes out, and mean/rstd [rows] (float64 for f64 input, float32 otherwise) for backward.
  virtual void layer_norm_forward(const Tensor& in, const Tensor& weight, const Tensor& bias, double eps,
                                  const Tensor& out, const Tensor& mean, const Tensor& rstd);
  // grad_weight/grad_bias may be undefined (not needed); they are overwritten, not accumulated.
  virtual void layer_norm_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, const Tensor& grad_in,
                                   const Tensor& grad_weight, const Tensor& grad_bias);
  // logits [N, C], target [N] int64. losses [N]: per-row loss, 0 where target == ignore_index.
  // lse [N]: logsumexp of each row, kept for backward.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                     double label_smoothing, const Tensor& losses, const Tensor& lse);
  // grad_logits [N, C] = grad_losses[n] * (softmax - smoothed one-hot); 0 on ignored rows.
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                                      const Tensor& grad_losses, int64_t ignore_index, double label_smoothing,
                                      const Tensor& grad_logits);
  // out = in * mask / (1 - p), mask[i] = uniform(i) >= p (uint8, one word per element).
  virtual void dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                               GeneratorState state);
  // grad_in = (grad_out * mask) * scale, mask the uint8 mask of dropout_forward; all contiguous, one
  // shape. The two products run in this order, so the result equals the composed ops bit for bit.
  virtual void dropout_backward(const Tensor& grad_out, const Tensor& mask, double scale, const Tensor& grad_in);
  // Optional fused residual + dropout(in) (a transformer block's dropout and residual connection):
  // out and mask as dropout_forward then the add would give them, bit for bit, in one pass over
  // memory; the backward is dropout_backward's. All contiguous, one shape and dtype. Ops call it only
  // where has_dropout_add(dtype) says so and compose the two ops otherwise.
  virtual bool has_dropout_add(DType dtype) const { return false; }
  virtual void dropout_add_forward(const Tensor& in, const Tensor& residual, const Tensor& out, const Tensor& mask,
                                   double p, GeneratorState state);
  // Optional fused dropout(gelu(in)) with the exact GELU (a transformer's FFN activation and its
  // dropout): out and mask as gelu then dropout_forward would give them, bit for bit, in one pass
  // over memory; backward grad_in = ((grad_out * mask) * scale) * gelu'(in), again the composition's
  // bits. All contiguous, one shape. Ops call them only where has_gelu_dropout(dtype) says so and
  // compose the two ops otherwise.
  virtual bool has_gelu_dropout(DType dtype) const { return false; }
  virtual void gelu_dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                                    GeneratorState state);
  virtual void gelu_dropout_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mask, double scale,
                                     const Tensor& grad_in);
  // Optional fused Adam update (ops/optim_update.h): param and its moments (and the AMSGrad maximum
  // where max_exp_avg_sq is defined) updated in place in one pass, with the bits of the composed tensor ops. All contiguous, one shape, dtype and device.
  // Ops call it only where has_adam_update(dtype) says so and compose the ops otherwise.
  virtual bool has_adam_update(DType dtype) const { return false; }
  virtual void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                           const Tensor& max_exp_avg_sq, const AdamUpdateScalars& scalars);

 protected:
  [[noreturn]] void missing(const char* kernel) const;
};

// The backend for a device; an error names the device if none is available.
Backend& backend_for(Device device);
inline Backend& backend_for(const Tensor& t) { return backend_for(t.device()); }
void register_backend(DeviceType type, Backend* backend);
bool is_backend_available(DeviceType type);

}  // namespace luna
