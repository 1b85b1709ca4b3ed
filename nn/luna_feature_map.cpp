// LunaFeatureMap: registration under the spec's checkpoint names, the paper's initialisation, and
// the mapping of those parameters onto the fused op's LunaFeatureMapParams (documented in ops/luna.h).
#include <luna/nn/luna_feature_map.h>

#include <cmath>

#include <luna/autograd/grad_mode.h>
#include <luna/nn/init.h>
#include <luna/ops/factories.h>
#include <luna/ops/attention.h>
#include <luna/ops/indexing.h>

namespace luna::nn {

namespace {

// The leading dims of every per-head parameter: {H} with per_head, none otherwise.
Dims head_dims(int64_t heads) { return heads > 0 ? Dims{heads} : Dims{}; }

Dims with_head_dims(int64_t heads, const Dims& dims) {
  Dims out = head_dims(heads);
  for (int64_t size : dims) out.push_back(size);
  return out;
}

}  // namespace

LunaLinearImpl::LunaLinearImpl(int64_t in_features_, int64_t out_features_, int64_t heads_)
    : Module("LunaLinear"), in_features(in_features_), out_features(out_features_), heads(heads_) {
  LUNA_CHECK(in_features > 0 && out_features > 0 && heads >= 0, "LunaLinear: in_features (", in_features,
             ") and out_features (", out_features, ") must be positive and heads (", heads, ") non-negative");
  weight = register_parameter("weight", empty(with_head_dims(heads, {out_features, in_features})));
  bias = register_parameter("bias", empty(with_head_dims(heads, {out_features})));
  reset_parameters();
}

void LunaLinearImpl::reset_parameters(Generator* generator) {
  const double bound = 1.0 / std::sqrt(double(in_features));
  init::uniform_(weight, -bound, bound, generator);
  init::uniform_(bias, -bound, bound, generator);
}

void LunaLinearImpl::pretty_print(std::ostream& os) const {
  os << "LunaLinear(in_features=" << in_features << ", out_features=" << out_features;
  if (heads > 0) os << ", heads=" << heads;
  os << ")";
}

LunaPsiImpl::LunaPsiImpl(int64_t hidden, int64_t outputs, int64_t heads) : Module("LunaPsi") {
  fc1 = register_module("fc1", LunaLinear(1, hidden, heads));
  fc2 = register_module("fc2", LunaLinear(hidden, outputs, heads));
}

LunaEnvelopeImpl::LunaEnvelopeImpl() : Module("LunaEnvelope") { beta = register_parameter("beta", zeros({1})); }

LunaFeatureMapImpl::LunaFeatureMapImpl(int64_t head_dim_, const LunaFeatureMapOptions& options_, int64_t num_heads_)
    : Module("LunaFeatureMap"), head_dim(head_dim_), num_heads(num_heads_), options(options_) {
  const int64_t d = head_dim, M = options.num_projections, L = options.channels, Hh = options.hidden;
  LUNA_CHECK(d > 0 && M > 0 && L > 0 && Hh > 0, "LunaFeatureMap: head_dim (", d, "), num_projections M (", M,
             "), channels L (", L, ") and hidden Hψ (", Hh, ") must be positive");
  LUNA_CHECK(options.layout == "per_channel" || options.layout == "shared", "LunaFeatureMap: unknown layout '",
             options.layout, "'; use \"per_channel\" or \"shared\"");
  LUNA_CHECK(num_heads >= 0, "LunaFeatureMap: num_heads must be non-negative, got ", num_heads);
  LUNA_CHECK(!options.per_head || num_heads > 0, "LunaFeatureMap: per_head = true needs the number of heads ",
             "(constructor argument num_heads > 0) to give every head its own parameters, got num_heads = ",
             num_heads);
  const int64_t heads = options.per_head ? num_heads : 0;  // the leading dim of every parameter, 0 = none
  proj = register_module("proj", LunaLinear(d, M, heads));
  psi = register_module("psi", ModuleList());
  if (options.layout == "per_channel") {
    for (int64_t l = 0; l < L; ++l) psi->push_back(LunaPsi(Hh, 1, heads));
  } else {
    psi->push_back(LunaPsi(Hh, L, heads));
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

void LunaFeatureMapImpl::init_softmax_kernel_(Generator* generator, double knot_range) {
  const int64_t d = head_dim, M = options.num_projections, Hh = options.hidden;
  LUNA_CHECK(options.envelope, "LunaFeatureMap: the softmax-kernel initialisation needs the envelope ",
             "(options.envelope = true) for FAVOR+'s exp(-|x|^2/(2 sqrt(d))) factor; it is off");
  LUNA_CHECK(options.activation == "relu", "LunaFeatureMap: the softmax-kernel initialisation builds psi from ReLU ",
             "units and needs activation \"relu\", got \"", options.activation, "\"");
  LUNA_CHECK(options.channels == 1, "LunaFeatureMap: the softmax-kernel initialisation needs channels L = 1 (the L ",
             "channels of a projection would start identical and stay so), got L = ", options.channels,
             "; use M = ", M * options.channels, ", L = 1 for the same number of features");
  LUNA_CHECK(Hh >= 2, "LunaFeatureMap: the softmax-kernel initialisation needs hidden width >= 2 knots, got ", Hh);
  LUNA_CHECK(std::isfinite(knot_range) && knot_range > 0 && knot_range <= 30, "LunaFeatureMap: knot_range must be ",
             "in (0, 30] (exp must stay finite in float32), got ", knot_range);
  NoGradGuard no_grad;
  const int64_t heads = options.per_head ? num_heads : 1;
  const TensorOptions like = TensorOptions(proj->weight.dtype()).device(proj->weight.device());
  // proj.weight (M, d) or (H, M, d): ω·d^(-1/4), one independent draw per head.
  std::vector<Tensor> omegas;
  for (int64_t h = 0; h < heads; ++h) omegas.push_back(orthogonal_random_features(M, d, generator, like));
  const Tensor omega = options.per_head ? stack(omegas, 0) : omegas[0];  // (M, d) | (H, M, d)
  proj->weight.copy_(omega * std::pow(double(d), -0.25));
  init::zeros_(proj->bias);

  // ψ(u) = e + Σ_j g_j·relu(u − t_j): knots t_j, slope s_j on [t_j, t_j+1] (the chord of exp), so
  // g_0 = s_0 and g_j = s_j − s_(j−1); past the last knot the slope is exp(t_last).
  std::vector<double> fc1_bias(Hh), fc2_weight(Hh);
  const double spacing = 2.0 * knot_range / double(Hh - 1);
  double previous_slope = 0.0;
  for (int64_t j = 0; j < Hh; ++j) {
    const double knot = -knot_range + spacing * double(j);
    const double slope = j + 1 < Hh ? (std::exp(knot + spacing) - std::exp(knot)) / spacing : std::exp(knot);
    fc1_bias[size_t(j)] = -knot;
    fc2_weight[size_t(j)] = slope - previous_slope;
    previous_slope = slope;
  }
  const auto mlp = psi->ptr<LunaPsiImpl>(0);  // L = 1: the only ψ in either layout
  auto broadcast_rows = [&](const std::vector<double>& row, const Tensor& target) {
    // row (Hψ) -> target (Hψ), (1, Hψ) or, per head, (H, Hψ), (H, 1, Hψ): the same values in every head.
    target.copy_(tensor(row, {int64_t(row.size())}, like).reshape(Dims{1, int64_t(row.size())})
                     .expand(Dims{target.numel() / int64_t(row.size()), int64_t(row.size())})
                     .reshape(target.sizes()));
  };
  // Shapes with a leading H per head: fc1 weight (Hψ, 1), bias (Hψ); fc2 weight (1, Hψ), bias (1).
  init::ones_(mlp->fc1->weight);
  broadcast_rows(fc1_bias, mlp->fc1->bias);
  broadcast_rows(fc2_weight, mlp->fc2->weight);
  init::constant_(mlp->fc2->bias, std::exp(-knot_range));
  init::constant_(envelope->beta, -1.0);
}

LunaFeatureMapParams LunaFeatureMapImpl::params() const {
  const int64_t Hh = options.hidden;
  // Per head every tensor below carries a leading H (written `lead`), and the channel dim L is stacked
  // after it (dim 1) instead of first (dim 0).
  const int64_t heads = options.per_head ? num_heads : 0;
  const int64_t channel_dim = heads > 0 ? 1 : 0;
  LunaFeatureMapParams p;
  p.proj_weight = proj->weight;  // (M, d) | (H, M, d)
  p.proj_bias = proj->bias;      // (M) | (H, M)
  if (options.layout == "per_channel") {
    // psi.{ℓ}.fc1.weight [lead, Hψ, 1] -> fc1_weight[lead, ℓ, :], and likewise for the others.
    std::vector<Tensor> fc1_w, fc1_b, fc2_w, fc2_b;
    for (size_t l = 0; l < psi->size(); ++l) {
      const auto mlp = psi->ptr<LunaPsiImpl>(l);
      fc1_w.push_back(mlp->fc1->weight.reshape(with_head_dims(heads, {Hh})));  // (lead, Hψ)
      fc1_b.push_back(mlp->fc1->bias);                                         // (lead, Hψ)
      fc2_w.push_back(mlp->fc2->weight.reshape(with_head_dims(heads, {Hh})));  // (lead, Hψ)
      fc2_b.push_back(mlp->fc2->bias);                                         // (lead, 1)
    }
    p.fc1_weight = stack(fc1_w, channel_dim);  // (lead, L, Hψ)
    p.fc1_bias = stack(fc1_b, channel_dim);    // (lead, L, Hψ)
    p.fc2_weight = stack(fc2_w, channel_dim);  // (lead, L, Hψ)
    p.fc2_bias = cat(fc2_b, channel_dim);      // (lead, L)
  } else {
    const auto mlp = psi->ptr<LunaPsiImpl>(0);
    p.fc1_weight = mlp->fc1->weight.reshape(with_head_dims(heads, {Hh}));  // (lead, Hψ)
    p.fc1_bias = mlp->fc1->bias;                                           // (lead, Hψ)
    p.fc2_weight = mlp->fc2->weight;                                       // (lead, L, Hψ)
    p.fc2_bias = mlp->fc2->bias;                                           // (lead, L)
  }
  if (!envelope.is_empty()) p.envelope_beta = envelope->beta;  // (1)
  return p;
}

Tensor LunaFeatureMapImpl::forward(const Tensor& x, const Tensor& padding_mask) const {
  LUNA_CHECK(x.defined() && x.dim() == 4 && x.size(3) == head_dim, "LunaFeatureMap: expected x of shape [B, H, N, ",
             head_dim, "] (head_dim = ", head_dim, "), got ", x.defined() ? x.str() : std::string("undefined"));
  LUNA_CHECK(!options.per_head || x.size(1) == num_heads, "LunaFeatureMap: per_head feature maps were built for ",
             num_heads, " heads but x has ", x.size(1), " heads (shape ", x.sizes(), ")");
  return luna_feature_map(x, params(), options, padding_mask);
}

}  // namespace luna::nn
