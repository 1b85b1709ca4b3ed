// LunaFeatureMap: registration under the spec's checkpoint names, the paper's initialisation, and
// the mapping of those parameters onto the fused op's LunaFeatureMapParams (documented in ops/luna.h).
#include <luna/nn/luna_feature_map.h>

#include <cmath>

#include <luna/autograd/grad_mode.h>
#include <luna/nn/init.h>
#include <luna/ops/factories.h>
#include <luna/ops/indexing.h>

namespace luna::nn {

LunaPsiImpl::LunaPsiImpl(int64_t hidden, int64_t outputs) : Module("LunaPsi") {
  fc1 = register_module("fc1", Linear(1, hidden));
  fc2 = register_module("fc2", Linear(hidden, outputs));
}

LunaEnvelopeImpl::LunaEnvelopeImpl() : Module("LunaEnvelope") { beta = register_parameter("beta", zeros({1})); }

LunaFeatureMapImpl::LunaFeatureMapImpl(int64_t head_dim_, const LunaFeatureMapOptions& options_)
    : Module("LunaFeatureMap"), head_dim(head_dim_), options(options_) {
  const int64_t d = head_dim, M = options.num_projections, L = options.channels, Hh = options.hidden;
  LUNA_CHECK(d > 0 && M > 0 && L > 0 && Hh > 0, "LunaFeatureMap: head_dim (", d, "), num_projections M (", M,
             "), channels L (", L, ") and hidden Hψ (", Hh, ") must be positive");
  LUNA_CHECK(options.layout == "per_channel" || options.layout == "shared", "LunaFeatureMap: unknown layout '",
             options.layout, "'; use \"per_channel\" or \"shared\"");
  LUNA_CHECK(!options.per_head, "LunaFeatureMap: per_head = true is not supported by the nn module (the op "
             "luna_feature_map supports it); use per_head = false, one φ shared by all heads");
  proj = register_module("proj", Linear(d, M));
  psi = register_module("psi", ModuleList());
  if (options.layout == "per_channel") {
    for (int64_t l = 0; l < L; ++l) psi->push_back(LunaPsi(Hh, 1));
  } else {
    psi->push_back(LunaPsi(Hh, L));
  }
  if (options.envelope) envelope = register_module("envelope", LunaEnvelope());
  reset_parameters();
}

void LunaFeatureMapImpl::reset_parameters(Generator* generator) {
  init::normal_(proj->weight, 0.0, 1.0 / std::sqrt(double(head_dim)), generator);
  init::zeros_(proj->bias);
  for (size_t i = 0; i < psi->size(); ++i) {
    const auto mlp = psi->ptr<LunaPsiImpl>(i);
    mlp->fc1->reset_parameters(generator);
    mlp->fc2->reset_parameters(generator);
  }
  if (!envelope.is_empty()) init::zeros_(envelope->beta);
}

LunaFeatureMapParams LunaFeatureMapImpl::params() const {
  const int64_t Hh = options.hidden;
  LunaFeatureMapParams p;
  p.proj_weight = proj->weight;  // (M, d)
  p.proj_bias = proj->bias;      // (M)
  if (options.layout == "per_channel") {
    // psi.{ℓ}.fc1.weight [Hψ,1] -> row ℓ of fc1_weight (L, Hψ), and likewise for the others.
    std::vector<Tensor> fc1_w, fc1_b, fc2_w, fc2_b;
    for (size_t l = 0; l < psi->size(); ++l) {
      const auto mlp = psi->ptr<LunaPsiImpl>(l);
      fc1_w.push_back(mlp->fc1->weight.reshape({Hh}));  // (Hψ)
      fc1_b.push_back(mlp->fc1->bias);                  // (Hψ)
      fc2_w.push_back(mlp->fc2->weight.reshape({Hh}));  // (Hψ)
      fc2_b.push_back(mlp->fc2->bias);                  // (1)
    }
    p.fc1_weight = stack(fc1_w, 0);  // (L, Hψ)
    p.fc1_bias = stack(fc1_b, 0);    // (L, Hψ)
    p.fc2_weight = stack(fc2_w, 0);  // (L, Hψ)
    p.fc2_bias = cat(fc2_b, 0);      // (L)
  } else {
    const auto mlp = psi->ptr<LunaPsiImpl>(0);
    p.fc1_weight = mlp->fc1->weight.reshape({Hh});  // (Hψ)
    p.fc1_bias = mlp->fc1->bias;                    // (Hψ)
    p.fc2_weight = mlp->fc2->weight;                // (L, Hψ)
    p.fc2_bias = mlp->fc2->bias;                    // (L)
  }
  if (!envelope.is_empty()) p.envelope_beta = envelope->beta;  // (1)
  return p;
}

Tensor LunaFeatureMapImpl::forward(const Tensor& x, const Tensor& padding_mask) const {
  LUNA_CHECK(x.defined() && x.dim() == 4 && x.size(3) == head_dim, "LunaFeatureMap: expected x of shape [B, H, N, ",
             head_dim, "] (head_dim = ", head_dim, "), got ", x.defined() ? x.str() : std::string("undefined"));
  return luna_feature_map(x, params(), options, padding_mask);
}

}  // namespace luna::nn
