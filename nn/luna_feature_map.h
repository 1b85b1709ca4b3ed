// The LUNA feature map φ (spec/LUNA.md §2) as an nn module: it owns the learnable tensors under the
// checkpoint names of a PyTorch port (proj.*, psi.{ℓ}.fc1/fc2.*, envelope.beta) and assembles them
// into the fused op's LunaFeatureMapParams on every forward, so gradients land on those parameters.
#pragma once
#include <luna/core/generator.h>
#include <luna/nn/containers.h>
#include <luna/nn/layers.h>
#include <luna/nn/module.h>
#include <luna/ops/luna.h>

namespace luna::nn {

// One scalar MLP ψ: fc1 Linear(1, Hψ), fc2 Linear(Hψ, L_out) with L_out = 1 (per_channel) or L
// (shared). It holds parameters only; luna_feature_map evaluates it fused.
class LunaPsiImpl : public Module {
 public:
  LunaPsiImpl(int64_t hidden, int64_t outputs);
  Linear fc1{nullptr};  // weight (Hψ, 1), bias (Hψ)
  Linear fc2{nullptr};  // weight (L_out, Hψ), bias (L_out)
};
LUNA_MODULE(LunaPsi);

// Holds the envelope's learnable scalar; a module of its own so the name is `envelope.beta`.
class LunaEnvelopeImpl : public Module {
 public:
  LunaEnvelopeImpl();
  Tensor beta;  // (1)
};
LUNA_MODULE(LunaEnvelope);

class LunaFeatureMapImpl : public Module {
 public:
  // head_dim is d, the width of the vectors φ maps. per_head is not supported here (the op supports
  // it, but the checkpoint layout of per-head ψ is not in the spec).
  LunaFeatureMapImpl(int64_t head_dim, const LunaFeatureMapOptions& options = {});

  // The paper's initialisation: W ~ N(0, 1/d), b = 0, ψ layers as PyTorch Linear defaults
  // U(±1/√fan_in) for weight and bias, β = 0.
  void reset_parameters(Generator* generator = nullptr);

  // The op's parameter tensors, built by views/stack/cat of this module's parameters (differentiable).
  LunaFeatureMapParams params() const;

  // x (B, H, N, d) -> φ(x) (B, H, N, F), F = M·L. padding_mask (B, N) bool only matters with
  // channel_rms_limit (padded tokens leave the statistics).
  Tensor forward(const Tensor& x, const Tensor& padding_mask = Tensor()) const;

  int64_t head_dim;
  LunaFeatureMapOptions options;
  Linear proj{nullptr};          // weight (M, d), bias (M)
  ModuleList psi{nullptr};       // per_channel: L × LunaPsi(Hψ, 1); shared: one LunaPsi(Hψ, L)
  LunaEnvelope envelope{nullptr};  // only with options.envelope
};
LUNA_MODULE(LunaFeatureMap);

}  // namespace luna::nn
