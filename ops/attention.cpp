// scaled_dot_product_attention: argument checks, layouts and the autograd record of the fused
// softmax attention kernels (ops/attention_kernels.cpp). The linear baselines' feature maps live in
// attention_feature_maps.cpp.
#include <luna/ops/attention.h>

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <luna/backends/backend.h>
#include <luna/core/threads.h>
#include <luna/ops/attention_kernels.h>
#include <luna/ops/autograd_record.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;
namespace kernels = cpu::attention_kernels;

constexpr const char* kOp = "scaled_dot_product_attention";

void check_input(const Tensor& t, const char* what) {
  LUNA_CHECK(t.defined(), kOp, ": ", what, " is undefined");
  LUNA_CHECK(t.dim() == 4, kOp, ": ", what, " must be 4-D (B, H, N, ·), got shape ", t.sizes());
  LUNA_CHECK(t.dtype() == kFloat32 || t.dtype() == kFloat64, kOp, ": ", what, " must be float32 or float64, got ",
             t.dtype());
  LUNA_CHECK(t.device() == Device::cpu(), kOp, ": ", what, " is on ", t.device(), "; only the CPU is supported");
}

// A tensor whose per-(b, h) matrices BLAS can read in place: unit-stride last dim and rows at least
// a row apart. Anything else (a transposed last dim, an expanded token dim) is copied.
Tensor blas_rows(const Tensor& t) {
  const bool unit_last = t.size(3) <= 1 || t.stride(3) == 1;
  const bool rows_apart = t.size(2) <= 1 || t.stride(2) >= std::max<int64_t>(t.size(3), 1);
  const bool positive = t.stride(0) >= 0 && t.stride(1) >= 0;
  return unit_last && rows_apart && positive ? t : t.contiguous();
}

// True when t is a (B, N, H, C) buffer viewed as (B, H, N, C): the layout multi-head attention
// produces when it splits heads, which the outputs and gradients then keep.
bool head_interleaved(const Tensor& t) { return !t.is_contiguous() && t.transpose(1, 2).is_contiguous(); }

Tensor empty_like_layout(const Dims& sizes, const Tensor& layout_of, DType dtype) {
  if (!head_interleaved(layout_of)) return empty_tensor(sizes, dtype, Device::cpu());
  return empty_tensor({sizes[0], sizes[2], sizes[1], sizes[3]}, dtype, Device::cpu()).transpose(1, 2);
}

template <class T>
kernels::HeadRows<T> head_rows(const Tensor& t) {
  // An empty dim may leave stride(2) at 0; BLAS still wants a leading dimension of at least 1.
  const int64_t row = std::max<int64_t>({t.stride(2), t.size(3), 1});
  return {static_cast<T*>(t.data_ptr()), t.stride(0), t.stride(1), row};
}

template <class T>
kernels::HeadRows<const T> const_rows(const Tensor& t) {
  const kernels::HeadRows<T> r = head_rows<T>(t);
  return {r.data, r.stride_batch, r.stride_head, r.stride_row};
}

void check_blas_size(const std::vector<Tensor>& tensors) {
  int64_t largest = 0;
  for (const Tensor& t : tensors) largest = std::max({largest, t.size(3), t.stride(2)});
  LUNA_CHECK(largest <= int64_t(std::numeric_limits<blasint>::max()), kOp, ": a head width or row stride of ",
             largest, " exceeds what this BLAS indexes (", std::numeric_limits<blasint>::max(), ")");
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& key_padding_mask, bool causal, double dropout_p, bool training,
                                    Generator* generator) {
  check_input(query, "query");
  check_input(key, "key");
  check_input(value, "value");
  LUNA_CHECK(key.dtype() == query.dtype() && value.dtype() == query.dtype(), kOp, ": dtypes differ: query ",
             query.dtype(), ", key ", key.dtype(), ", value ", value.dtype(), "; convert them to one dtype");
  const int64_t B = query.size(0), H = query.size(1), Nq = query.size(2), d = query.size(3);
  const int64_t Nk = key.size(2), dv = value.size(3);
  LUNA_CHECK(key.size(0) == B && key.size(1) == H && key.size(3) == d, kOp, ": key of shape ", key.sizes(),
             " does not match query of shape ", query.sizes(), " (expected [", B, ",", H, ",Nk,", d, "])");
  LUNA_CHECK(value.size(0) == B && value.size(1) == H && value.size(2) == Nk, kOp, ": value of shape ",
             value.sizes(), " does not match key of shape ", key.sizes(), " (expected [", B, ",", H, ",", Nk, ",dv])");
  LUNA_CHECK(d > 0, kOp, ": the head width d of query ", query.sizes(), " must be positive");
  LUNA_CHECK(!causal || Nq == Nk, kOp, ": causal attention needs as many queries as keys, got Nq = ", Nq,
             " and Nk = ", Nk);
  if (key_padding_mask.defined()) {
    LUNA_CHECK(key_padding_mask.dtype() == kBool, kOp, ": key_padding_mask must be a bool tensor (true = padded), ",
               "got ", key_padding_mask.str(), "; build it with a comparison such as tokens.eq(pad)");
    LUNA_CHECK(key_padding_mask.sizes() == Dims({B, Nk}), kOp, ": key_padding_mask must have shape [B, Nk] = [", B,
               ",", Nk, "], got ", key_padding_mask.sizes());
    LUNA_CHECK(key_padding_mask.device() == Device::cpu(), kOp, ": key_padding_mask is on ",
               key_padding_mask.device(), "; only the CPU is supported");
  }
  LUNA_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, kOp, ": dropout_p must be in [0, 1], got ", dropout_p);
  init_threads();

  kernels::SdpaShape shape{B, H, Nq, Nk, d, dv};
  kernels::SdpaConfig config;
  config.scale = 1.0 / std::sqrt(double(d));
  config.causal = causal;
  if (training && dropout_p > 0.0) {
    config.dropout_p = dropout_p;
    // p = 1 keeps nothing whatever the draw; like luna::dropout it then draws no numbers.
    if (dropout_p < 1.0) {
      Generator& gen = generator ? *generator : default_generator();
      const GeneratorState state = gen.reserve(random_blocks_needed(RandomKind::Uniform, kFloat32, B * H * Nq * Nk));
      config.seed = state.seed;
      config.offset = state.offset;
    }
  }

  const Tensor q = blas_rows(query.detach()), k = blas_rows(key.detach()), v = blas_rows(value.detach());
  const Tensor mask = key_padding_mask.defined() ? key_padding_mask.detach().contiguous() : Tensor();  // (B, Nk)
  check_blas_size({q, k, v});
  Tensor out = empty_like_layout({B, H, Nq, dv}, query, query.dtype());             // (B, H, Nq, dv)
  Tensor logsumexp = empty_tensor({B, H, Nq}, query.dtype(), Device::cpu());  // (B, H, Nq)
  config.key_padding_mask = mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
  LUNA_DISPATCH_FLOAT(query.dtype(), kOp, [&] {
    using T = scalar_t;
    kernels::sdpa_forward<T>(const_rows<T>(q), const_rows<T>(k), const_rows<T>(v), shape, config, head_rows<T>(out),
                             logsumexp.data_ptr<T>());
  });
  config.key_padding_mask = nullptr;  // the backward takes it from the saved mask

  // Layout templates for the gradients: each input's own layout (head-interleaved or contiguous).
  const Tensor layout_q = query.detach(), layout_k = key.detach(), layout_v = value.detach();
  return record(kOp, out, {query, key, value}, {q, k, v, out, logsumexp, mask},
                [shape, config, head_interleaved_inputs = std::array<bool, 3>{head_interleaved(layout_q),
                                                                               head_interleaved(layout_k),
                                                                               head_interleaved(layout_v)}](
                    const Tensor& grad, const Saved& s) {
                  kernels::SdpaConfig backward_config = config;
                  backward_config.key_padding_mask =
                      s[5].defined() ? static_cast<const uint8_t*>(s[5].data_ptr()) : nullptr;
                  const Tensor grad_out = blas_rows(grad);
                  Tensor grads[3];
                  for (int i = 0; i < 3; ++i) {
                    const Dims& sizes = s[size_t(i)].sizes();
                    grads[i] = head_interleaved_inputs[size_t(i)]
                                   ? empty_tensor({sizes[0], sizes[2], sizes[1], sizes[3]}, grad.dtype(), Device::cpu())
                                         .transpose(1, 2)
                                   : empty_tensor(sizes, grad.dtype(), Device::cpu());
                  }
                  LUNA_DISPATCH_FLOAT(grad.dtype(), "scaled_dot_product_attention backward", [&] {
                    using T = scalar_t;
                    kernels::sdpa_backward<T>(const_rows<T>(grad_out), const_rows<T>(s[0]), const_rows<T>(s[1]),
                                              const_rows<T>(s[2]), const_rows<T>(s[3]), s[4].data_ptr<T>(), shape,
                                              backward_config, head_rows<T>(grads[0]), head_rows<T>(grads[1]),
                                              head_rows<T>(grads[2]));
                  });
                  return Grads{grads[0], grads[1], grads[2]};
                });
}

}  // namespace luna
