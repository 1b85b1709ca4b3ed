// The LUNA feature map φ (spec/LUNA.md §2) as an nn module: it owns the learnable tensors under the
// checkpoint names of a PyTorch port (proj.*, psi.{ℓ}.fc1/fc2.*, envelope.beta) and assembles them
// into the fused op's LunaFeatureMapParams on every forward, so gradients land on those parameters.
#pragma once
#include <luna/core/generator.h>
#include <luna/nn/containers.h>
#include <luna/nn/module.h>
#include <luna/ops/luna.h>

namespace luna::nn {

// The parameters of an affine map in → out, weight (out, in) and bias (out) as in nn.Linear, with a
// leading H dim, (H, out, in) and (H, out), when every head has its own copy. It only holds
// parameters: luna_feature_map applies them fused.
class LunaLinearImpl : public Module {
 public:
  // heads = 0: one map shared by all heads (no leading dim); heads > 0: one per head.
  LunaLinearImpl(int64_t in_features, int64_t out_features, int64_t heads = 0);
  // nn.Linear's default, U(±1/√in) for weight and bias, drawn independently for every head.
  void reset_parameters(Generator* generator = nullptr);
  void pretty_print(std::ostream& os) const override;

  int64_t in_features, out_features, heads;
  Tensor weight;  // (out, in), or (H, out, in) per head
  Tensor bias;    // (out), or (H, out) per head
};
LUNA_MODULE(LunaLinear);

// One scalar MLP ψ: fc1 1 → Hψ, fc2 Hψ → L_out with L_out = 1 (per_channel) or L (shared).
class LunaPsiImpl : public Module {
 public:
  LunaPsiImpl(int64_t hidden, int64_t outputs, int64_t heads = 0);
  LunaLinear fc1{nullptr};  // weight (Hψ, 1), bias (Hψ); per head (H, Hψ, 1), (H, Hψ)
  LunaLinear fc2{nullptr};  // weight (L_out, Hψ), bias (L_out); per head (H, L_out, Hψ), (H, L_out)
};
LUNA_MODULE(LunaPsi);

// Holds the envelope's learnable scalar; a module of its own so the name is `envelope.beta`.
class LunaEnvelopeImpl : public Module {
 public:
  LunaEnvelopeImpl();
  Tensor beta;  // (1), also with per_head: h(x) = exp(β‖x‖²/(2√d)) is one scalar per layer
};
LUNA_MODULE(LunaEnvelope);

// Parameter names and shapes (d = head_dim):
//   proj.weight [M, d], proj.bias [M]
//   per_channel: psi.{ℓ}.fc1.weight [Hψ, 1], .fc1.bias [Hψ], .fc2.weight [1, Hψ], .fc2.bias [1]
//   shared:      psi.0.fc1.weight [Hψ, 1], .fc1.bias [Hψ], .fc2.weight [L, Hψ], .fc2.bias [L]
//   envelope.beta [1] (options.envelope only)
// With options.per_head (the spec fixes no per-head names; this is luna's choice) the names stay the
// same and every tensor but envelope.beta gets a leading H dim: proj.weight [H, M, d], proj.bias
// [H, M], psi.{ℓ}.fc1.weight [H, Hψ, 1], ..., so slice h of each is exactly head h's φ.
class LunaFeatureMapImpl : public Module {
 public:
  // head_dim is d, the width of the vectors φ maps. num_heads is H: required (> 0) with
  // options.per_head, where the forward input must have H heads; without per_head one φ serves any
  // number of heads and num_heads may be left 0 (or given; it is then not used).
  LunaFeatureMapImpl(int64_t head_dim, const LunaFeatureMapOptions& options = {}, int64_t num_heads = 0);

  // The paper's initialisation: W ~ N(0, 1/d), b = 0, ψ layers as PyTorch Linear defaults
  // U(±1/√fan_in) for weight and bias, β = 0. Per head, every head gets its own draw.
  void reset_parameters(Generator* generator = nullptr);

  // Starts φ as FAVOR+'s positive random features of the softmax kernel (ours, for post-hoc
  // conversion; docs/DESIGN.md "Starting LUNA at the softmax kernel"), so that
  // φ(q)ᵀφ(k) ≈ exp(qᵀk/√d) up to a constant and the random-feature error:
  //   W = ω·d^(-1/4), ω from orthogonal_random_features(M, d) (per head its own draw), b = 0;
  //   ψ ≈ exp, the ReLU MLP that interpolates exp linearly at Hψ evenly spaced knots on
  //   [−knot_range, knot_range]: fc1 weight 1, fc1 bias −t_j, fc2 weights the slope increments,
  //   fc2 bias exp(t_0); below the first knot it stays at exp(t_0), past the last it goes on with
  //   slope exp(t_last);
  //   β = −1, so h(x) = exp(−‖x‖²/(2√d)), FAVOR+'s exp(−‖x̂‖²/2) with x̂ = x·d^(-1/4).
  // Needs the envelope, activation relu, channels L = 1 (the L channels of one projection would
  // start as the same function and get the same gradients for ever) and Hψ >= 2; errors name the
  // option that is off. Every parameter stays learnable.
  void init_softmax_kernel_(Generator* generator = nullptr, double knot_range = 8.0);

  // The op's parameter tensors, built by views/stack/cat of this module's parameters (differentiable).
  LunaFeatureMapParams params() const;

  // x (B, H, N, d) -> φ(x) (B, H, N, F), F = M·L. padding_mask (B, N) bool only matters with
  // channel_rms_limit (padded tokens leave the statistics).
  Tensor forward(const Tensor& x, const Tensor& padding_mask = Tensor()) const;

  int64_t head_dim;
  int64_t num_heads;  // H with per_head, else as given (0 = not given)
  LunaFeatureMapOptions options;
  LunaLinear proj{nullptr};        // weight (M, d), bias (M); per head (H, M, d), (H, M)
  ModuleList psi{nullptr};         // per_channel: L × LunaPsi(Hψ, 1); shared: one LunaPsi(Hψ, L)
  LunaEnvelope envelope{nullptr};  // only with options.envelope
};
LUNA_MODULE(LunaFeatureMap);

}  // namespace luna::nn
