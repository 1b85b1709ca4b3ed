// matmul / mm / bmm / linear: layout analysis that maps strided views onto GEMM arguments.
#include <luna/ops/linalg.h>
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/factories.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

// How a [rows, cols] matrix view is handed to row-major GEMM.
struct MatrixLayout {
  bool transposed = false;
  int64_t ld = 1;
};

// Row-major if unit column stride, column-major (= transposed) if unit row stride; otherwise
// nullopt and the caller makes it contiguous.
std::optional<MatrixLayout> matrix_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if (col_stride == 1 || cols == 1) {
    const int64_t ld = rows == 1 ? std::max<int64_t>(cols, 1) : row_stride;
    if (ld >= std::max<int64_t>(cols, 1)) return MatrixLayout{false, ld};
  }
  if (row_stride == 1 || rows == 1) {
    const int64_t ld = cols == 1 ? std::max<int64_t>(rows, 1) : col_stride;
    if (ld >= std::max<int64_t>(rows, 1)) return MatrixLayout{true, ld};
  }
  return std::nullopt;
}

void check_operands(const Tensor& a, const Tensor& b, const char* op) {
  LUNA_CHECK(a.defined() && b.defined(), op, ": an operand is undefined");
  LUNA_CHECK(a.device() == b.device(), op, ": operands are on different devices (", a.device(), " and ",
             b.device(), ")");
  LUNA_CHECK(a.dtype() == b.dtype(), op, ": expected both operands to have the same dtype, got ", a.dtype(),
             " and ", b.dtype());
  LUNA_CHECK(a.dtype() == kFloat32 || a.dtype() == kFloat64 || a.device().is_cuda(), op, ": dtype ", a.dtype(),
             " is not supported (expected float32 or float64)");
}

// out[batch] (+)= a[batch] @ b[batch] (+ bias) for 3-D operands with equal batch size (a stride-0
// batch dim is allowed). `out` is a contiguous [batch, M, N] tensor; accumulate means beta = 1.
// `bias` (N contiguous values, or null) goes to the backend's GEMM, which must take it (gemm_bias).
void gemm_3d(Tensor a, Tensor b, const Tensor& out, bool accumulate, const void* bias = nullptr) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {
    LUNA_CHECK(bias == nullptr, "matmul: internal error: a bias with k = 0 must be broadcast by the caller");
    if (!accumulate) out.fill_(0);
    return;
  }
  // A weight shared by the whole batch with a densely packed left operand is one big GEMM.
  if (batch > 1 && b.stride(0) == 0 && a.stride(2) == 1 && a.stride(0) == m * a.stride(1) && a.stride(1) >= k) {
    a = a.as_strided({1, batch * m, k}, {0, a.stride(1), 1}, a.storage_offset());
    b = b.as_strided({1, k, n}, {0, b.stride(1), b.stride(2)}, b.storage_offset());
    gemm_3d(a, b, out.view({1, batch * m, n}), accumulate, bias);
    return;
  }
  auto la = matrix_layout(m, k, a.stride(1), a.stride(2));
  if (!la) {
    a = a.contiguous();
    la = matrix_layout(m, k, a.stride(1), a.stride(2));
  }
  auto lb = matrix_layout(k, n, b.stride(1), b.stride(2));
  if (!lb) {
    b = b.contiguous();
    lb = matrix_layout(k, n, b.stride(1), b.stride(2));
  }
  GemmArgs g;
  g.dtype = a.dtype();
  g.trans_a = la->transposed;
  g.trans_b = lb->transposed;
  g.m = m;
  g.n = n;
  g.k = k;
  g.beta = accumulate ? 1.0 : 0.0;
  g.a = a.data_ptr();
  g.lda = la->ld;
  g.stride_a = a.stride(0);
  g.b = b.data_ptr();
  g.ldb = lb->ld;
  g.stride_b = b.stride(0);
  g.c = out.data_ptr();
  g.ldc = n;
  g.stride_c = m * n;
  g.batch = batch;
  g.bias = bias;
  backend_for(out).gemm(g);
}

// Whether dims [0, count) of t can be viewed as a single dim without a copy.
bool leading_dims_mergeable(const Tensor& t, int count) {
  int64_t expected = -1;  // the stride the next outer non-trivial dim must have
  for (int d = count - 1; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (expected != -1 && t.stride(d) != expected) return false;
    expected = t.stride(d) * t.size(d);
  }
  return true;
}

// out [batch..., M, N] = a [batch..., M, K] @ b [batch..., K, N], operands already expanded to the
// full batch shape (stride 0 on broadcast dims). When the batch dims merge into one, this is one
// strided-batched GEMM. Otherwise (two or more batch dims with a broadcast among them) the last
// batch dim stays the GEMM batch and the others are looped over, so the broadcast operand is never
// materialised.
void gemm_batched(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int nbatch = a.dim() - 2;
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  int64_t nb = 1;
  for (int d = 0; d < nbatch; ++d) nb *= a.size(d);
  if (nb == 0 || m == 0 || n == 0) return;
  if (nbatch <= 1 || (leading_dims_mergeable(a, nbatch) && leading_dims_mergeable(b, nbatch))) {
    gemm_3d(a.reshape({nb, m, k}), b.reshape({nb, k, n}), out.view({nb, m, n}), false);
    return;
  }
  const int64_t inner = a.size(nbatch - 1), outer = nb / inner;
  const Tensor out3 = out.view({nb, m, n});
  for (int64_t o = 0; o < outer; ++o) {
    Tensor ai = a, bi = b;
    int64_t rem = o, divisor = outer;
    for (int d = 0; d < nbatch - 1; ++d) {  // row-major index of o over the leading batch dims
      divisor /= a.size(d);
      ai = ai.select(0, rem / divisor);
      bi = bi.select(0, rem / divisor);
      rem %= divisor;
    }
    gemm_3d(ai, bi, out3.narrow(0, o * inner, inner), false);
  }
}

// The differentiable core: a [..., M, K] @ b [..., K, N] with broadcast batch dims, both >= 2-D.
Tensor matmul_nd(const Tensor& a, const Tensor& b, const char* op) {
  check_operands(a, b, op);
  LUNA_CHECK(a.size(-1) == b.size(-2), op, ": shapes ", a.sizes(), " and ", b.sizes(),
             " cannot be multiplied (inner dims ", a.size(-1), " != ", b.size(-2), ")");
  const Dims batch_a(a.sizes().begin(), a.sizes().end() - 2), batch_b(b.sizes().begin(), b.sizes().end() - 2);
  const Dims batch = broadcast_shapes(batch_a, batch_b, op);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Dims out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = empty_tensor(out_shape, a.dtype(), a.device());
  {
    NoGradGuard no_grad;
    Dims ea = batch, eb = batch;
    ea.push_back(m); ea.push_back(k);
    eb.push_back(k); eb.push_back(n);
    gemm_batched(a.detach().expand(ea), b.detach().expand(eb), out);
  }
  const Dims sa = a.sizes(), sb = b.sizes();
  const bool need_a = ops::needs_grad({a}), need_b = ops::needs_grad({b});
  return record(op, out, {a, b}, {need_b ? a : Tensor(), need_a ? b : Tensor()},
                [=](const Tensor& g, const Saved& s) {
                  Tensor ga, gb;
                  if (need_a) ga = ops::sum_to(matmul_nd(g, s[1].transpose(-1, -2), "matmul"), sa);
                  if (need_b) gb = ops::sum_to(matmul_nd(s[0].transpose(-1, -2), g, "matmul"), sb);
                  return Grads{ga, gb};
                });
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  LUNA_CHECK(a.defined() && b.defined(), "matmul: an operand is undefined");
  LUNA_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need at least 1 dim, got shapes ", a.sizes(),
             " and ", b.sizes());
  if (a.dim() == 1 && b.dim() == 1) {
    LUNA_CHECK(a.size(0) == b.size(0), "matmul: 1-D tensors of sizes ", a.size(0), " and ", b.size(0),
               " cannot be multiplied (dot product needs equal sizes)");
    return matmul_nd(a.unsqueeze(0), b.unsqueeze(1), "matmul").view({});
  }
  if (a.dim() == 1) return matmul_nd(a.unsqueeze(0), b, "matmul").squeeze(-2);
  if (b.dim() == 1) return matmul_nd(a, b.unsqueeze(1), "matmul").squeeze(-1);
  return matmul_nd(a, b, "matmul");
}

Tensor mm(const Tensor& a, const Tensor& b) {
  LUNA_CHECK(a.dim() == 2 && b.dim() == 2, "mm: expected 2-D tensors, got shapes ", a.sizes(), " and ", b.sizes());
  return matmul_nd(a, b, "mm");
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  LUNA_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-D tensors, got shapes ", a.sizes(), " and ", b.sizes());
  LUNA_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ: ", a.size(0), " vs ", b.size(0));
  return matmul_nd(a, b, "bmm");
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  check_operands(input, weight, "linear");
  LUNA_CHECK(weight.dim() == 2, "linear: weight must be 2-D [out, in], got shape ", weight.sizes());
  LUNA_CHECK(input.dim() >= 1 && input.size(-1) == weight.size(1), "linear: input of shape ", input.sizes(),
             " has ", input.dim() ? input.size(-1) : 0, " features, but weight ", weight.sizes(), " expects ",
             weight.size(1));
  const int64_t in_features = weight.size(1), out_features = weight.size(0);
  if (bias.defined()) {
    LUNA_CHECK(bias.dim() == 1 && bias.size(0) == out_features, "linear: bias must have shape [", out_features,
               "], got ", bias.sizes());
    LUNA_CHECK(bias.dtype() == input.dtype() && bias.device() == input.device(), "linear: bias is ", bias.dtype(),
               " on ", bias.device(), " but input is ", input.dtype(), " on ", input.device());
  }
  Dims out_shape = input.sizes();
  out_shape[out_shape.size() - 1] = out_features;
  const int64_t rows = input.numel() / std::max<int64_t>(in_features, 1);
  Tensor out = empty_tensor(out_shape, input.dtype(), input.device());
  {
    NoGradGuard no_grad;
    Tensor out2d = out.view({1, rows, out_features});
    Tensor x2d = input.detach().reshape({1, rows, in_features});
    // The bias goes into the GEMM where the backend takes it, so the output is written once.
    if (bias.defined() && in_features > 0 && backend_for(out).gemm_bias()) {
      const Tensor bias_data = bias.detach().contiguous();
      gemm_3d(x2d, weight.detach().t().unsqueeze(0), out2d, false, bias_data.data_ptr());
    } else {
      if (bias.defined()) backend_for(out).copy(bias.detach().expand({1, rows, out_features}), out2d);
      gemm_3d(x2d, weight.detach().t().unsqueeze(0), out2d, bias.defined());
    }
  }
  const Dims in_shape = input.sizes();
  const bool need_x = ops::needs_grad({input}), need_w = ops::needs_grad({weight});
  const bool has_bias = bias.defined();
  return record("linear", out, {input, weight, bias}, {need_w ? input : Tensor(), need_x ? weight : Tensor()},
                [=](const Tensor& g, const Saved& s) {
                  const Tensor g2d = g.reshape({rows, out_features});
                  Tensor gx, gw, gb;
                  Backend& backend = backend_for(g);
                  if (backend.has_linear_backward(g.dtype())) {  // one pass over the gradient
                    const TensorOptions like = TensorOptions(g.dtype()).device(g.device());
                    if (need_x) gx = empty({rows, in_features}, like);
                    if (need_w) gw = empty({out_features, in_features}, like);
                    if (has_bias) gb = empty({out_features}, like);
                    backend.linear_backward(g2d.contiguous(), need_w ? s[0].reshape({rows, in_features}).contiguous()
                                                                     : Tensor(),
                                            need_x ? s[1].contiguous() : Tensor(), gx, gw, gb);
                    if (need_x) gx = gx.view(in_shape);
                    return Grads{gx, gw, gb};
                  }
                  if (need_x) gx = mm(g2d, s[1]).view(in_shape);
                  if (need_w) gw = mm(g2d.t(), s[0].reshape({rows, in_features}));
                  if (has_bias) gb = g2d.sum({0});
                  return Grads{gx, gw, gb};
                });
}

Tensor Tensor::matmul(const Tensor& other) const { return luna::matmul(*this, other); }
Tensor Tensor::mm(const Tensor& other) const { return luna::mm(*this, other); }
Tensor Tensor::bmm(const Tensor& other) const { return luna::bmm(*this, other); }

}  // namespace luna
