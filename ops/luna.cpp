// The LUNA ops: argument checks, the composition φ = envelope · ψ(Wx + b)/√M, and the autograd
// records of the two fused pieces (ψ and linear attention) whose loops live in luna_kernels.cpp.
// The projection, envelope and RMS limit are ordinary ops, so their gradients come from those ops.
#include <luna/ops/luna.h>

#include <cmath>

#include <luna/autograd/grad_mode.h>
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/linalg.h>
#include <luna/ops/luna_kernels.h>
#include <luna/ops/reduce.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;
namespace kernels = cpu::luna_kernels;

kernels::PsiActivation parse_activation(const std::string& name) {
  if (name == "relu") return kernels::PsiActivation::Relu;
  if (name == "gelu") return kernels::PsiActivation::Gelu;
  if (name == "silu") return kernels::PsiActivation::Silu;
  LUNA_FAIL("luna_feature_map: unknown activation '", name, "'; expected 'relu', 'gelu' or 'silu'");
}

void check_options(const LunaFeatureMapOptions& o) {
  LUNA_CHECK(o.num_projections > 0 && o.channels > 0 && o.hidden > 0,
             "luna_feature_map: num_projections (M), channels (L) and hidden (Hψ) must be positive, got M=",
             o.num_projections, ", L=", o.channels, ", Hψ=", o.hidden);
  parse_activation(o.activation);
  LUNA_CHECK(o.layout == "per_channel" || o.layout == "shared", "luna_feature_map: unknown layout '", o.layout,
             "'; expected 'per_channel' or 'shared'");
}

void check_tensor(const Tensor& t, const char* op, const char* what, const Dims& expected, const Tensor& like) {
  LUNA_CHECK(t.defined(), op, ": ", what, " is undefined (expected shape ", expected, ")");
  LUNA_CHECK(t.sizes() == expected, op, ": ", what, " has shape ", t.sizes(), ", expected ", expected);
  LUNA_CHECK(t.dtype() == like.dtype(), op, ": ", what, " has dtype ", t.dtype(), " but the input has ",
             like.dtype(), "; convert one of them");
  LUNA_CHECK(t.device() == Device::cpu(), op, ": ", what, " is on ", t.device(), "; only the CPU is supported");
}

void check_float_4d(const Tensor& t, const char* op, const char* what) {
  LUNA_CHECK(t.defined(), op, ": ", what, " is undefined");
  LUNA_CHECK(t.dim() == 4, op, ": ", what, " must be 4-D (B, H, N, ·), got shape ", t.sizes());
  LUNA_CHECK(t.dtype() == kFloat32 || t.dtype() == kFloat64, op, ": ", what, " must be float32 or float64, got ",
             t.dtype());
  LUNA_CHECK(t.device() == Device::cpu(), op, ": ", what, " is on ", t.device(), "; only the CPU is supported");
}

// Expected parameter shapes (see luna.h), with the leading H of per_head.
Dims with_heads(const LunaFeatureMapOptions& o, int64_t heads, Dims dims) {
  if (!o.per_head) return dims;
  Dims out{heads};
  for (int64_t s : dims) out.push_back(s);
  return out;
}

void check_params(const LunaFeatureMapParams& p, const LunaFeatureMapOptions& o, const Tensor& x) {
  const char* op = "luna_feature_map";
  const int64_t H = x.size(1), d = x.size(3), M = o.num_projections, L = o.channels, Hh = o.hidden;
  const bool shared = o.layout == "shared";
  check_tensor(p.proj_weight, op, "proj_weight", with_heads(o, H, {M, d}), x);
  check_tensor(p.proj_bias, op, "proj_bias", with_heads(o, H, {M}), x);
  check_tensor(p.fc1_weight, op, "fc1_weight", with_heads(o, H, shared ? Dims{Hh} : Dims{L, Hh}), x);
  check_tensor(p.fc1_bias, op, "fc1_bias", with_heads(o, H, shared ? Dims{Hh} : Dims{L, Hh}), x);
  check_tensor(p.fc2_weight, op, "fc2_weight", with_heads(o, H, {L, Hh}), x);
  check_tensor(p.fc2_bias, op, "fc2_bias", with_heads(o, H, {L}), x);
  if (o.envelope) check_tensor(p.envelope_beta, op, "envelope_beta", {1}, x);
}

void check_mask(const Tensor& mask, int64_t B, int64_t N, const char* op) {
  LUNA_CHECK(mask.dtype() == kBool, op, ": key_padding_mask must be bool (true = padded), got dtype ",
             mask.dtype());
  LUNA_CHECK(mask.sizes() == Dims({B, N}), op, ": key_padding_mask has shape ", mask.sizes(), ", expected (B, Nk) = ",
             Dims({B, N}));
  LUNA_CHECK(mask.device() == Device::cpu(), op, ": key_padding_mask is on ", mask.device(),
             "; only the CPU is supported");
}

// A ψ table as (G, L, Hψ) (or (G, L) for fc2_bias): a leading group dim of 1 when φ is shared by
// the heads, and the shared layout's single hidden layer repeated for every channel. The expand
// is an autograd op, so the channel gradients are summed back.
Tensor psi_table(const Tensor& t, const LunaFeatureMapOptions& o, bool repeat_over_channels) {
  Tensor grouped = o.per_head ? t : t.unsqueeze(0);
  if (!repeat_over_channels) return grouped;
  const Dims full{grouped.size(0), o.channels, o.hidden};
  return grouped.unsqueeze(1).expand(full).contiguous();
}

template <class T>
kernels::PsiParams<T> psi_params(const Saved& s) {
  return {s[1].data_ptr<T>(), s[2].data_ptr<T>(), s[3].data_ptr<T>(), s[4].data_ptr<T>()};
}

// ψ's sizes for H heads; rows, tokens and strides are left to the caller.
kernels::PsiShape psi_shape(const LunaFeatureMapOptions& o, int64_t heads) {
  kernels::PsiShape shape;
  shape.heads = heads;
  shape.projections = o.num_projections;
  shape.channels = o.channels;
  shape.hidden = o.hidden;
  shape.per_head = o.per_head;
  return shape;
}

// The fused ψ op: u (B, H, N, M) and tables (G, L, Hψ) -> scale·ψ(u) as (B, H, N, M, L).
Tensor psi_op(const Tensor& u, const Tensor& fc1_weight, const Tensor& fc1_bias, const Tensor& fc2_weight,
              const Tensor& fc2_bias, const LunaFeatureMapOptions& o, double scale) {
  kernels::PsiShape shape = psi_shape(o, u.size(1));
  shape.tokens = u.size(2);
  shape.rows = u.size(0) * u.size(1) * u.size(2);
  const kernels::PsiActivation activation = parse_activation(o.activation);
  const bool piecewise = activation == kernels::PsiActivation::Relu && !o.force_direct;

  // u as it lies when it is a head split of (B, N, H, M) memory (luna_feature_map makes it so), so
  // neither it nor its gradient is copied; contiguous otherwise.
  const bool head_split = u.size(1) > 1 && u.stride(3) == 1 && u.transpose(1, 2).is_contiguous();
  const Tensor u_data = head_split ? u.detach() : u.detach().contiguous();  // (B, H, N, M)
  if (head_split) {
    shape.u_batch = u_data.stride(0);
    shape.u_head = u_data.stride(1);
    shape.u_token = u_data.stride(2);
  }
  const Tensor a = fc1_weight.detach().contiguous(), c = fc1_bias.detach().contiguous();
  const Tensor g = fc2_weight.detach().contiguous(), e = fc2_bias.detach().contiguous();
  Dims out_shape = u.sizes();
  out_shape.push_back(o.channels);
  Tensor out = empty_tensor(out_shape, u.dtype(), u.device());  // (B, H, N, M, L)
  // The bucket of every output (1 byte against the output's 4 or 8), kept for the backward when
  // one will run, so it skips the search.
  const bool keep_buckets = piecewise && 2 * o.hidden <= kernels::kMaxStoredBucket &&
                            ops::needs_grad({u, fc1_weight, fc1_bias, fc2_weight, fc2_bias});
  Tensor buckets = keep_buckets ? empty_tensor(out_shape, kUInt8, u.device()) : Tensor();  // (B, H, N, M, L)
  LUNA_DISPATCH_FLOAT(u.dtype(), "luna_feature_map", [&] {
    using T = scalar_t;
    const kernels::PsiParams<T> params{a.data_ptr<T>(), c.data_ptr<T>(), g.data_ptr<T>(), e.data_ptr<T>()};
    if (piecewise)
      kernels::psi_forward_piecewise<T>(u_data.data_ptr<T>(), params, shape, T(scale), out.data_ptr<T>(),
                                        keep_buckets ? buckets.data_ptr<uint8_t>() : nullptr);
    else
      kernels::psi_forward_direct<T>(u_data.data_ptr<T>(), params, shape, activation, T(scale), out.data_ptr<T>());
  });

  const char* name = piecewise ? "luna_psi_piecewise" : "luna_psi";
  return record(name, out, {u, fc1_weight, fc1_bias, fc2_weight, fc2_bias}, {u_data, a, c, g, e, out, buckets},
                [shape, activation, piecewise, scale](const Tensor& grad, const Saved& s) {
                  const Tensor grad_out = grad.contiguous();
                  const Dims& us = s[0].sizes();  // grad_u in u's layout (shape.u_offset addresses both)
                  Tensor grad_u = shape.u_token == 0 ? empty_tensor(us, s[0].dtype(), s[0].device())
                                                     : empty_tensor({us[0], us[2], us[1], us[3]}, s[0].dtype(),
                                                                    s[0].device()).transpose(1, 2);
                  Tensor grad_a = empty_tensor(s[1].sizes(), s[1].dtype(), s[1].device());
                  Tensor grad_c = empty_tensor(s[2].sizes(), s[2].dtype(), s[2].device());
                  Tensor grad_g = empty_tensor(s[3].sizes(), s[3].dtype(), s[3].device());
                  Tensor grad_e = empty_tensor(s[4].sizes(), s[4].dtype(), s[4].device());
                  LUNA_DISPATCH_FLOAT(s[0].dtype(), "luna_feature_map backward", [&] {
    using T = scalar_t;
                    const kernels::PsiGrads<T> grads{grad_a.data_ptr<T>(), grad_c.data_ptr<T>(),
                                                     grad_g.data_ptr<T>(), grad_e.data_ptr<T>()};
                    if (piecewise)
                      kernels::psi_backward_piecewise<T>(grad_out.data_ptr<T>(), s[0].data_ptr<T>(),
                                                         s[6].defined() ? s[6].data_ptr<uint8_t>() : nullptr,
                                                         psi_params<T>(s),
                                                         shape, T(scale), grad_u.data_ptr<T>(), grads);
                    else
                      kernels::psi_backward_direct<T>(grad_out.data_ptr<T>(), s[0].data_ptr<T>(), s[5].data_ptr<T>(),
                                                      psi_params<T>(s), shape, activation, T(scale),
                                                      grad_u.data_ptr<T>(), grads);
                  });
                  return Grads{grad_u, grad_a, grad_c, grad_g, grad_e};
                });
}

// Scales each channel of phi (B, H, N, M, L) to an RMS of at most 0.1 over everything but padding.
Tensor limit_channel_rms(const Tensor& phi, const Tensor& padding_mask) {
  const int64_t B = phi.size(0), H = phi.size(1), N = phi.size(2), M = phi.size(3);
  Tensor squares = phi * phi;
  double count = double(B * H * N * M);
  if (padding_mask.defined()) {
    const Tensor kept = (1.0 - padding_mask.detach().to(phi.dtype())).reshape({B, 1, N, 1, 1});
    squares = squares * kept;
    count = kept.sum().item<double>() * double(H * M);
  }
  const Tensor mean_square = squares.sum({0, 1, 2, 3}) / std::max(count, 1.0);  // (L)
  // min(1, 0.1/rms) written as 0.1/sqrt(max(ms, 0.01)): no infinite sqrt gradient at ms = 0.
  const Tensor factor = 0.1 / mean_square.clamp(0.01).sqrt();  // (L)
  return phi * factor;
}

// Fills AttentionShape and checks the shapes shared by linear_attention and linear_attention_step.
kernels::AttentionShape attention_shape(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, const char* op) {
  check_float_4d(phi_q, op, "phi_q");
  check_float_4d(phi_k, op, "phi_k");
  check_float_4d(v, op, "v");
  LUNA_CHECK(phi_k.dtype() == phi_q.dtype() && v.dtype() == phi_q.dtype(), op, ": dtypes differ: phi_q ",
             phi_q.dtype(), ", phi_k ", phi_k.dtype(), ", v ", v.dtype());
  LUNA_CHECK(phi_k.size(0) == phi_q.size(0) && phi_k.size(1) == phi_q.size(1) && phi_k.size(3) == phi_q.size(3), op,
             ": phi_q of shape ", phi_q.sizes(), " and phi_k of shape ", phi_k.sizes(),
             " must agree in batch, heads and features (B, H, ·, F)");
  LUNA_CHECK(v.size(0) == phi_k.size(0) && v.size(1) == phi_k.size(1) && v.size(2) == phi_k.size(2), op,
             ": v of shape ", v.sizes(), " does not match phi_k of shape ", phi_k.sizes(),
             " in batch, heads and keys (B, H, Nk, ·)");
  kernels::AttentionShape shape;
  shape.batch = phi_q.size(0);
  shape.heads = phi_q.size(1);
  shape.queries = phi_q.size(2);
  shape.keys = phi_k.size(2);
  shape.features = phi_q.size(3);
  shape.value_dim = v.size(3);
  return shape;
}

const uint8_t* mask_bytes(const Tensor& mask) {
  // bool is stored as one byte holding 0 or 1.
  return mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
}

// A (B, H, N, ·) tensor whose last dim has unit stride, copied only if it has not.
Tensor with_unit_last_stride(const Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }

// The kernels read and write (B, H, N, ·) operands through their row strides (HeadRows).
template <class T>
kernels::HeadRows<T> head_rows(const Tensor& t) {
  return {static_cast<T*>(const_cast<void*>(t.data_ptr())), t.stride(0), t.stride(1), t.stride(2)};
}

// A new (B, H, N, width) tensor laid out like `like`: heads interleaved, (B, N, H, width) in memory,
// when `like` is a head split of that form (as multi-head attention makes its v), contiguous
// otherwise. So the output of attention on a head split merges its heads back for free, and v's
// gradient comes back in the layout v was in.
Tensor head_layout_like(const Tensor& like, const Dims& sizes, DType dtype) {
  const bool interleaved = like.size(1) > 1 && like.size(2) > 1 && like.stride(1) < like.stride(2);
  if (!interleaved) return empty_tensor(sizes, dtype, like.device());
  return empty_tensor({sizes[0], sizes[2], sizes[1], sizes[3]}, dtype, like.device()).transpose(1, 2);
}

// Causal linear attention: float64 prefix sums per (batch, head), with the backward rebuilding them.
Tensor causal_linear_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, const Tensor& mask,
                               const kernels::AttentionShape& shape, double eps) {
  const char* op = "linear_attention";
  const Tensor q_data = phi_q.detach().contiguous(), k_data = phi_k.detach().contiguous();
  const Tensor v_data = v.detach().contiguous();
  const Tensor mask_data = mask.defined() ? mask.detach().contiguous() : Tensor();
  const int64_t B = shape.batch, H = shape.heads, F = shape.features, dv = shape.value_dim;
  Tensor out = empty_tensor({B, H, shape.queries, dv}, phi_q.dtype(), phi_q.device());      // (B, H, N, dv)
  Tensor denominator = empty_tensor({B, H, shape.queries}, phi_q.dtype(), phi_q.device());  // (B, H, N)
  Tensor S = zeros({B, H, F, dv}, TensorOptions(kFloat64));                                 // (B, H, F, dv)
  Tensor z = zeros({B, H, F}, TensorOptions(kFloat64));                                     // (B, H, F)
  LUNA_DISPATCH_FLOAT(phi_q.dtype(), op, [&] {
    using T = scalar_t;
    kernels::causal_linear_attention_forward<T>(q_data.data_ptr<T>(), k_data.data_ptr<T>(), v_data.data_ptr<T>(),
                                                mask_bytes(mask_data), shape, eps, out.data_ptr<T>(),
                                                denominator.data_ptr<T>(), S.data_ptr<double>(),
                                                z.data_ptr<double>());
  });
  return record(op, out, {phi_q, phi_k, v}, {q_data, k_data, v_data, out, denominator, mask_data},
                [shape](const Tensor& grad, const Saved& s) {
                  const Tensor grad_out = grad.contiguous();
                  Tensor grad_q = empty_tensor(s[0].sizes(), s[0].dtype(), s[0].device());
                  Tensor grad_k = empty_tensor(s[1].sizes(), s[1].dtype(), s[1].device());
                  Tensor grad_v = empty_tensor(s[2].sizes(), s[2].dtype(), s[2].device());
                  LUNA_DISPATCH_FLOAT(s[0].dtype(), "linear_attention backward", [&] {
                    using T = scalar_t;
                    kernels::causal_linear_attention_backward<T>(
                        grad_out.data_ptr<T>(), s[0].data_ptr<T>(), s[1].data_ptr<T>(), s[2].data_ptr<T>(),
                        mask_bytes(s[5]), s[3].data_ptr<T>(), s[4].data_ptr<T>(), shape, grad_q.data_ptr<T>(),
                        grad_k.data_ptr<T>(), grad_v.data_ptr<T>());
                  });
                  return Grads{grad_q, grad_k, grad_v};
                });
}

// u = W x + b per token: (B, H, N, M). Per head, (H, d, M) broadcasts over the batch. For x a head
// split of (B, N, H, d) memory (as multi-head attention hands it over), u is computed in that layout
// and returned as the matching view: the rows are the same rows, but nothing is copied.
Tensor projections(const Tensor& x, const LunaFeatureMapParams& p, const LunaFeatureMapOptions& o) {
  const bool head_split = !o.per_head && x.size(1) > 1 && x.transpose(1, 2).is_contiguous();
  return o.per_head    ? matmul(x, p.proj_weight.transpose(1, 2)) + p.proj_bias.unsqueeze(1)
         : head_split ? linear(x.transpose(1, 2), p.proj_weight, p.proj_bias).transpose(1, 2)
                      : linear(x, p.proj_weight, p.proj_bias);
}

// ψ's parameters as the kernels take them: a, c, g (G, L, Hψ) and e (G, L).
struct PsiTables {
  Tensor a, c, g, e;
};
PsiTables psi_tables(const LunaFeatureMapParams& p, const LunaFeatureMapOptions& o) {
  const bool shared = o.layout == "shared";
  return {psi_table(p.fc1_weight, o, shared), psi_table(p.fc1_bias, o, shared), psi_table(p.fc2_weight, o, false),
          psi_table(p.fc2_bias, o, false)};
}

double psi_scale(const LunaFeatureMapOptions& o) { return 1.0 / std::sqrt(double(o.num_projections)); }

// Whether luna_attention runs ψ inside the attention loop (fused_luna_attention): the exact ReLU path
// with stored buckets, nothing applied to φ between ψ and the attention, and non-causal.
bool fusable(const LunaFeatureMapOptions& o, const LinearAttentionOptions& a) {
  return o.activation == "relu" && !o.force_direct && !o.envelope && !o.channel_rms_limit && !a.causal &&
         2 * o.hidden <= kernels::kMaxStoredBucket;
}

// linear_attention(φ(q), φ(k), v) with ψ computed inside the attention's per-head loop from u_q
// (B, H, Nq, M) and u_k (B, H, Nk, M): the (B, H, N, F) feature tensors are never materialised, only
// their buckets (one byte per feature) are kept for the backward.
Tensor fused_luna_attention(const Tensor& u_q, const Tensor& u_k, const Tensor& v, const PsiTables& t,
                            const LunaFeatureMapOptions& o, const kernels::AttentionShape& shape, const Tensor& mask,
                            double eps) {
  const char* op = "luna_attention";
  const Tensor uq = with_unit_last_stride(u_q.detach()), uk = with_unit_last_stride(u_k.detach());
  const Tensor v_data = with_unit_last_stride(v.detach());  // (B, H, Nk, dv)
  const Tensor a = t.a.detach().contiguous(), c = t.c.detach().contiguous();
  const Tensor g = t.g.detach().contiguous(), e = t.e.detach().contiguous();
  const Tensor mask_data = mask.defined() ? mask.detach().contiguous() : Tensor();
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, Nk = shape.keys, F = shape.features;
  const int64_t dv = shape.value_dim;
  const DType dtype = uq.dtype();
  Tensor out = head_layout_like(v_data, {B, H, Nq, dv}, dtype);                     // (B, H, Nq, dv)
  Tensor denominator = empty_tensor({B, H, Nq}, dtype, uq.device());                 // (B, H, Nq)
  Tensor S_aug = empty_tensor({B, H, F, dv + 1}, dtype, uq.device());                // (B, H, F, dv+1) [S, z]
  Tensor buckets_q, buckets_k;  // (B, H, Nq, saved), (B, H, Nk, saved): what ψ saves per token row
  const kernels::PsiShape psi = psi_shape(o, H);
  const bool per_head = o.per_head;
  const double scale = psi_scale(o);
  LUNA_DISPATCH_FLOAT(dtype, op, [&] {
    using T = scalar_t;
    const kernels::PsiPiecewiseRows<T> rows({a.data_ptr<T>(), c.data_ptr<T>(), g.data_ptr<T>(), e.data_ptr<T>()},
                                            psi);
    const int64_t saved = rows.saved_row_bytes();
    buckets_q = empty_tensor({B, H, Nq, saved}, kUInt8, uq.device());
    buckets_k = empty_tensor({B, H, Nk, saved}, kUInt8, uq.device());
    kernels::luna_attention_forward<T>(head_rows<const T>(uq), head_rows<const T>(uk), head_rows<const T>(v_data),
                                       mask_bytes(mask_data), {&rows, per_head, T(scale)}, shape, eps,
                                       head_rows<T>(out), denominator.data_ptr<T>(), S_aug.data_ptr<T>(),
                                       buckets_q.data_ptr<uint8_t>(), buckets_k.data_ptr<uint8_t>());
  });
  return record(
      "luna_attention_fused", out, {u_q, u_k, v, t.a, t.c, t.g, t.e},
      {uq, uk, v_data, out, denominator, S_aug, buckets_q, buckets_k, a, c, g, e, mask_data},
      [shape, psi, per_head, scale](const Tensor& grad, const Saved& s) {
        const DType dtype = s[0].dtype();
        const Tensor grad_out = with_unit_last_stride(grad);
        Tensor grad_uq = head_layout_like(s[0], s[0].sizes(), dtype);  // (B, H, Nq, M) in u_q's layout
        Tensor grad_uk = head_layout_like(s[1], s[1].sizes(), dtype);  // (B, H, Nk, M)
        Tensor grad_v = head_layout_like(s[2], s[2].sizes(), dtype);   // (B, H, Nk, dv)
        Tensor grad_a = empty_tensor(s[8].sizes(), dtype, s[8].device());
        Tensor grad_c = empty_tensor(s[9].sizes(), dtype, s[9].device());
        Tensor grad_g = empty_tensor(s[10].sizes(), dtype, s[10].device());
        Tensor grad_e = empty_tensor(s[11].sizes(), dtype, s[11].device());
        LUNA_DISPATCH_FLOAT(dtype, "luna_attention backward", [&] {
          using T = scalar_t;
          const kernels::PsiPiecewiseRows<T> rows(
              {s[8].data_ptr<T>(), s[9].data_ptr<T>(), s[10].data_ptr<T>(), s[11].data_ptr<T>()}, psi);
          kernels::luna_attention_backward<T>(
              head_rows<const T>(grad_out), head_rows<const T>(s[0]), head_rows<const T>(s[1]),
              head_rows<const T>(s[2]), mask_bytes(s[12]), head_rows<const T>(s[3]), s[4].data_ptr<T>(),
              s[5].data_ptr<T>(), s[6].data_ptr<uint8_t>(), s[7].data_ptr<uint8_t>(), {&rows, per_head, T(scale)},
              shape, head_rows<T>(grad_uq), head_rows<T>(grad_uk), head_rows<T>(grad_v),
              {grad_a.data_ptr<T>(), grad_c.data_ptr<T>(), grad_g.data_ptr<T>(), grad_e.data_ptr<T>()});
        });
        return Grads{grad_uq, grad_uk, grad_v, grad_a, grad_c, grad_g, grad_e};
      });
}

}  // namespace

LunaFeatureMapParams luna_feature_map_init(int64_t head_dim, int64_t heads, const LunaFeatureMapOptions& o,
                                           TensorOptions tensor_options, Generator* generator) {
  check_options(o);
  LUNA_CHECK(head_dim > 0 && heads > 0, "luna_feature_map_init: head_dim and heads must be positive, got ", head_dim,
             " and ", heads);
  const int64_t M = o.num_projections, L = o.channels, Hh = o.hidden;
  const bool shared = o.layout == "shared";
  tensor_options.requires_grad(false);
  auto leaf = [&](Dims dims) {
    Tensor t = empty(with_heads(o, heads, dims), tensor_options);
    return t;
  };
  NoGradGuard no_grad;
  LunaFeatureMapParams p;
  p.proj_weight = normal_(leaf({M, head_dim}), 0.0, 1.0 / std::sqrt(double(head_dim)), generator);
  p.proj_bias = leaf({M}).zero_();
  p.fc1_weight = uniform_(leaf(shared ? Dims{Hh} : Dims{L, Hh}), -1.0, 1.0, generator);
  p.fc1_bias = uniform_(leaf(shared ? Dims{Hh} : Dims{L, Hh}), -1.0, 1.0, generator);
  const double bound = 1.0 / std::sqrt(double(Hh));
  p.fc2_weight = uniform_(leaf({L, Hh}), -bound, bound, generator);
  p.fc2_bias = uniform_(leaf({L}), -bound, bound, generator);
  if (o.envelope) p.envelope_beta = zeros({1}, tensor_options);
  for (Tensor* t : {&p.proj_weight, &p.proj_bias, &p.fc1_weight, &p.fc1_bias, &p.fc2_weight, &p.fc2_bias,
                    &p.envelope_beta})
    if (t->defined()) t->requires_grad_(true);
  return p;
}

Tensor luna_feature_map(const Tensor& x, const LunaFeatureMapParams& p, const LunaFeatureMapOptions& o,
                        const Tensor& padding_mask) {
  check_float_4d(x, "luna_feature_map", "x");
  check_options(o);
  check_params(p, o, x);
  const int64_t B = x.size(0), H = x.size(1), N = x.size(2), d = x.size(3);
  if (padding_mask.defined()) check_mask(padding_mask, B, N, "luna_feature_map");

  const Tensor u = projections(x, p, o);  // (B, H, N, M)
  const PsiTables t = psi_tables(p, o);
  Tensor phi = psi_op(u, t.a, t.c, t.g, t.e, o, psi_scale(o));  // (B, H, N, M, L)
  if (o.envelope) {
    const Tensor squared_norm = (x * x).sum({-1}, /*keepdim=*/true);  // (B, H, N, 1)
    const Tensor h = (squared_norm * p.envelope_beta * (0.5 / std::sqrt(double(d)))).exp();
    phi = phi * h.unsqueeze(-1);
  }
  if (o.channel_rms_limit) phi = limit_channel_rms(phi, padding_mask);
  return phi.reshape({B, H, N, o.num_projections * o.channels});
}

Tensor linear_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v,
                        const LinearAttentionOptions& options) {
  const char* op = "linear_attention";
  const kernels::AttentionShape shape = attention_shape(phi_q, phi_k, v, op);
  const Tensor& mask = options.key_padding_mask;
  if (mask.defined()) check_mask(mask, shape.batch, shape.keys, op);
  LUNA_CHECK(!options.causal || shape.queries == shape.keys, op, ": causal attention needs as many queries as keys, ",
             "got Nq=", shape.queries, " and Nk=", shape.keys);
  LUNA_CHECK(options.eps >= 0, op, ": eps must be non-negative, got ", options.eps);
  if (options.causal) return causal_linear_attention(phi_q, phi_k, v, mask, shape, options.eps);

  const Tensor q_data = phi_q.detach().contiguous(), k_data = phi_k.detach().contiguous();
  const Tensor mask_data = mask.defined() ? mask.detach().contiguous() : Tensor();
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, F = shape.features;
  const int64_t dv = shape.value_dim, dv1 = dv + 1;
  const DType dtype = phi_q.dtype();
  const Tensor v_data = with_unit_last_stride(v.detach());                                   // (B, H, Nk, dv)
  Tensor out = head_layout_like(v_data, {B, H, Nq, dv}, dtype);                             // (B, H, Nq, dv)
  Tensor denominator = empty_tensor({B, H, Nq}, dtype, phi_q.device());                      // (B, H, Nq)
  Tensor S_aug = empty_tensor({B, H, F, dv1}, dtype, phi_q.device());                        // (B, H, F, dv+1) [S, z]
  LUNA_DISPATCH_FLOAT(dtype, op, [&] {
    using T = scalar_t;
    kernels::linear_attention_forward<T>(q_data.data_ptr<T>(), k_data.data_ptr<T>(), head_rows<const T>(v_data),
                                         mask_bytes(mask_data), shape, options.eps, head_rows<T>(out),
                                         denominator.data_ptr<T>(), S_aug.data_ptr<T>());
  });
  return record(op, out, {phi_q, phi_k, v}, {q_data, k_data, v_data, out, denominator, S_aug, mask_data},
                [shape](const Tensor& grad, const Saved& s) {
                  const DType dtype = s[0].dtype();
                  const Tensor grad_out = with_unit_last_stride(grad);
                  Tensor grad_q = empty_tensor(s[0].sizes(), dtype, s[0].device());  // (B, H, Nq, F)
                  Tensor grad_k = empty_tensor(s[1].sizes(), dtype, s[1].device());  // (B, H, Nk, F)
                  Tensor grad_v = head_layout_like(s[2], s[2].sizes(), dtype);      // (B, H, Nk, dv)
                  LUNA_DISPATCH_FLOAT(dtype, "linear_attention backward", [&] {
                    using T = scalar_t;
                    kernels::linear_attention_backward<T>(
                        head_rows<const T>(grad_out), s[0].data_ptr<T>(), s[1].data_ptr<T>(), head_rows<const T>(s[2]),
                        mask_bytes(s[6]), head_rows<const T>(s[3]), s[4].data_ptr<T>(), s[5].data_ptr<T>(), shape,
                        grad_q.data_ptr<T>(), grad_k.data_ptr<T>(), head_rows<T>(grad_v));
                  });
                  return Grads{grad_q, grad_k, grad_v};
                });
}

Tensor luna_attention(const Tensor& q, const Tensor& k, const Tensor& v, const LunaFeatureMapParams& params,
                      const LunaFeatureMapOptions& feature_map_options, const LinearAttentionOptions& attention_options) {
  const char* op = "luna_attention";
  check_float_4d(q, op, "q");
  check_float_4d(k, op, "k");
  check_float_4d(v, op, "v");
  LUNA_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3), op, ": q of shape ",
             q.sizes(), " and k of shape ", k.sizes(), " must agree in batch, heads and head width (B, H, ·, d)");
  LUNA_CHECK(v.size(0) == k.size(0) && v.size(1) == k.size(1) && v.size(2) == k.size(2), op, ": v of shape ",
             v.sizes(), " does not match k of shape ", k.sizes(), " in batch, heads and keys (B, H, Nk, ·)");
  const Tensor& mask = attention_options.key_padding_mask;
  if (mask.defined()) check_mask(mask, k.size(0), k.size(2), op);
  if (fusable(feature_map_options, attention_options)) {
    LUNA_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), op, ": dtypes differ: q ", q.dtype(), ", k ",
               k.dtype(), ", v ", v.dtype());
    LUNA_CHECK(attention_options.eps >= 0, op, ": eps must be non-negative, got ", attention_options.eps);
    check_options(feature_map_options);
    check_params(params, feature_map_options, q);  // k agrees with q in heads, width and dtype (above)
    kernels::AttentionShape shape;
    shape.batch = q.size(0);
    shape.heads = q.size(1);
    shape.queries = q.size(2);
    shape.keys = k.size(2);
    shape.features = feature_map_options.num_projections * feature_map_options.channels;
    shape.value_dim = v.size(3);
    const Tensor u_q = projections(q, params, feature_map_options);  // (B, H, Nq, M)
    const Tensor u_k = projections(k, params, feature_map_options);  // (B, H, Nk, M)
    return fused_luna_attention(u_q, u_k, v, psi_tables(params, feature_map_options), feature_map_options, shape, mask,
                                attention_options.eps);
  }
  const Tensor query_mask = q.size(2) == k.size(2) ? mask : Tensor();
  const Tensor phi_q = luna_feature_map(q, params, feature_map_options, query_mask);
  const Tensor phi_k = luna_feature_map(k, params, feature_map_options, mask);
  return linear_attention(phi_q, phi_k, v, attention_options);
}

Tensor linear_attention_step(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, LinearAttentionState& state,
                             double eps) {
  const char* op = "linear_attention_step";
  const kernels::AttentionShape shape = attention_shape(phi_q, phi_k, v, op);
  LUNA_CHECK(shape.queries == shape.keys, op, ": a causal chunk needs as many queries as keys, got Nq=",
             shape.queries, " and Nk=", shape.keys);
  LUNA_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
  const int64_t B = shape.batch, H = shape.heads, F = shape.features, dv = shape.value_dim;
  if (!state.S.defined()) state.S = zeros({B, H, F, dv}, TensorOptions(kFloat64));
  if (!state.z.defined()) state.z = zeros({B, H, F}, TensorOptions(kFloat64));
  LUNA_CHECK(state.S.sizes() == Dims({B, H, F, dv}) && state.S.dtype() == kFloat64, op, ": state.S is ",
             state.S.str(), ", expected float64 of shape ", Dims({B, H, F, dv}), " (B, H, F, dv)");
  LUNA_CHECK(state.z.sizes() == Dims({B, H, F}) && state.z.dtype() == kFloat64, op, ": state.z is ", state.z.str(),
             ", expected float64 of shape ", Dims({B, H, F}), " (B, H, F)");
  // The kernel updates the sums in place; a fresh copy keeps tensors the caller still holds intact.
  Tensor S = state.S.detach().contiguous().clone(), z = state.z.detach().contiguous().clone();
  const Tensor q_data = phi_q.detach().contiguous(), k_data = phi_k.detach().contiguous();
  const Tensor v_data = v.detach().contiguous();
  Tensor out = empty_tensor({B, H, shape.queries, dv}, phi_q.dtype(), phi_q.device());  // (B, H, N, dv)
  Tensor denominator = empty_tensor({B, H, shape.queries}, phi_q.dtype(), phi_q.device());
  LUNA_DISPATCH_FLOAT(phi_q.dtype(), op, [&] {
    using T = scalar_t;
    kernels::causal_linear_attention_forward<T>(q_data.data_ptr<T>(), k_data.data_ptr<T>(), v_data.data_ptr<T>(),
                                                nullptr, shape, eps, out.data_ptr<T>(), denominator.data_ptr<T>(),
                                                S.data_ptr<double>(), z.data_ptr<double>());
  });
  state.S = S;
  state.z = z;
  return out;
}

}  // namespace luna
