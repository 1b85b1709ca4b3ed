// Tests of the linear attention kinds of nn::MultiHeadAttention ("luna", "elu"): checkpoint names of
// the LUNA feature map, forward against the luna_attention op and an explicit elu+1 loop, padding
// invariance, causality, and LUNA inside TransformerEncoderLayer / LraClassifier with backward.
#include "test_util.h"

#include <cmath>
#include <map>

#include <luna/models/lra_classifier.h>
#include <luna/nn/attention.h>
#include <luna/nn/transformer.h>
#include <luna/ops/luna.h>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

Tensor random_tensor(const Dims& shape, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return rand(shape, TensorOptions(kFloat32), &gen) * 2.0 - 1.0;
}

// Every parameter from U(-0.5, 0.5) (zero biases would hide a missing bias), ψ output biases
// positive so the final ReLU of ψ is mostly on and the features are not all zero.
void randomize_parameters(nn::Module& module, uint64_t seed) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const auto& [name, p] : module.named_parameters()) {
    if (name.ends_with("fc2.bias")) uniform_(p, 0.1, 0.6, &gen);
    else uniform_(p, -0.5, 0.5, &gen);
  }
}

LunaFeatureMapOptions small_luna(const std::string& layout = "per_channel", bool envelope = false) {
  LunaFeatureMapOptions o;
  o.num_projections = 3;
  o.channels = 2;
  o.hidden = 4;
  o.layout = layout;
  o.envelope = envelope;
  return o;
}

nn::MultiHeadAttention luna_mha(int64_t D, int64_t H, const LunaFeatureMapOptions& o, bool causal = false) {
  return nn::MultiHeadAttention(nn::MultiHeadAttentionOptions(D, H).attention("luna").luna(o).causal(causal));
}

// The op's parameters rebuilt element by element from the state_dict, following the mapping
// documented in ops/luna.h, independently of LunaFeatureMap::params().
LunaFeatureMapParams params_from_state_dict(const nn::Module& mha, const LunaFeatureMapOptions& o) {
  std::map<std::string, Tensor> sd;
  for (const auto& [name, t] : mha.state_dict()) sd[name] = t;
  const int64_t L = o.channels, Hh = o.hidden;
  LunaFeatureMapParams p;
  p.proj_weight = sd.at("feature_map.proj.weight").detach().clone();
  p.proj_bias = sd.at("feature_map.proj.bias").detach().clone();
  if (o.layout == "per_channel") {
    std::vector<float> fc1_w, fc1_b, fc2_w, fc2_b;  // (L, Hψ) ×3, (L)
    for (int64_t l = 0; l < L; ++l) {
      const std::string prefix = "feature_map.psi." + std::to_string(l) + ".";
      for (double x : values(sd.at(prefix + "fc1.weight"))) fc1_w.push_back(float(x));
      for (double x : values(sd.at(prefix + "fc1.bias"))) fc1_b.push_back(float(x));
      for (double x : values(sd.at(prefix + "fc2.weight"))) fc2_w.push_back(float(x));
      for (double x : values(sd.at(prefix + "fc2.bias"))) fc2_b.push_back(float(x));
    }
    p.fc1_weight = tensor(fc1_w, {L, Hh});
    p.fc1_bias = tensor(fc1_b, {L, Hh});
    p.fc2_weight = tensor(fc2_w, {L, Hh});
    p.fc2_bias = tensor(fc2_b, {L});
  } else {
    p.fc1_weight = sd.at("feature_map.psi.0.fc1.weight").detach().reshape({Hh}).clone();
    p.fc1_bias = sd.at("feature_map.psi.0.fc1.bias").detach().clone();
    p.fc2_weight = sd.at("feature_map.psi.0.fc2.weight").detach().clone();
    p.fc2_bias = sd.at("feature_map.psi.0.fc2.bias").detach().clone();
  }
  if (o.envelope) p.envelope_beta = sd.at("feature_map.envelope.beta").detach().clone();
  return p;
}

// MultiHeadAttention with attention = luna, written with the op directly. x [B, N, D].
Tensor luna_reference(const nn::MultiHeadAttentionImpl& mha, const Tensor& x, const Tensor& mask, bool causal) {
  NoGradGuard no_grad;
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), H = mha.options.num_heads(), d = D / H;
  const Tensor q = mha.q_proj(x).reshape({B, N, H, d}).transpose(1, 2);  // (B, H, N, d)
  const Tensor k = mha.k_proj(x).reshape({B, N, H, d}).transpose(1, 2);  // (B, H, N, d)
  const Tensor v = mha.v_proj(x).reshape({B, N, H, d}).transpose(1, 2);  // (B, H, N, d)
  LinearAttentionOptions a;
  a.key_padding_mask = mask;
  a.causal = causal;
  a.eps = 1e-6;
  const Tensor heads = luna_attention(q, k, v, params_from_state_dict(mha, mha.options.luna()),
                                      mha.options.luna(), a);  // (B, H, N, d)
  return mha.out_proj(heads.transpose(1, 2).reshape({B, N, D}));
}

// y [rows, out] = x [rows, in] Wᵀ + b.
std::vector<double> linear_loop(const std::vector<double>& x, const Tensor& weight, const Tensor& bias) {
  const std::vector<double> w = values(weight), b = values(bias);
  const int64_t out = weight.size(0), in = weight.size(1), rows = int64_t(x.size()) / in;
  std::vector<double> y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[size_t(o)];
      for (int64_t i = 0; i < in; ++i) s += x[size_t(r * in + i)] * w[size_t(o * in + i)];
      y[size_t(r * out + o)] = s;
    }
  return y;
}

// Katharopoulos linear attention with explicit loops: φ = elu + 1, out_i = Σ_j (φq_i·φk_j) v_j /
// (Σ_j φq_i·φk_j + 1e-6) over visible keys j, then out_proj. x [B, N, D].
std::vector<double> elu_reference(const nn::MultiHeadAttentionImpl& mha, const Tensor& x,
                                  const std::vector<bool>& padded, bool causal) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), H = mha.options.num_heads(), d = D / H;
  auto phi = [](double u) { return u > 0 ? u + 1.0 : std::exp(u); };
  const std::vector<double> q = linear_loop(values(x), mha.q_proj->weight, mha.q_proj->bias);
  const std::vector<double> k = linear_loop(values(x), mha.k_proj->weight, mha.k_proj->bias);
  const std::vector<double> v = linear_loop(values(x), mha.v_proj->weight, mha.v_proj->bias);
  std::vector<double> heads(size_t(B * N * D), 0.0);  // (B, N, D)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        double denominator = 1e-6;
        std::vector<double> numerator(size_t(d), 0.0);
        for (int64_t j = 0; j < N; ++j) {
          if ((padded.size() && padded[size_t(b * N + j)]) || (causal && j > i)) continue;
          double kernel = 0;
          for (int64_t c = 0; c < d; ++c)
            kernel += phi(q[size_t((b * N + i) * D + h * d + c)]) * phi(k[size_t((b * N + j) * D + h * d + c)]);
          denominator += kernel;
          for (int64_t c = 0; c < d; ++c) numerator[size_t(c)] += kernel * v[size_t((b * N + j) * D + h * d + c)];
        }
        for (int64_t c = 0; c < d; ++c) heads[size_t((b * N + i) * D + h * d + c)] = numerator[size_t(c)] / denominator;
      }
  return linear_loop(heads, mha.out_proj->weight, mha.out_proj->bias);
}

void require_finite_gradients(const nn::Module& module) {
  for (const auto& [name, p] : module.named_parameters()) {
    INFO("parameter " << name);
    REQUIRE(p.grad().defined());
    for (double g : values(p.grad())) REQUIRE(std::isfinite(g));
  }
}

}  // namespace

TEST_CASE("MultiHeadAttention luna: checkpoint names and shapes", "[nn][luna]") {
  REQUIRE(nn::available_attention_kinds() == std::vector<std::string>{"softmax", "luna", "elu", "performer", "cosformer", "hedgehog"});
  nn::MultiHeadAttention mha = luna_mha(8, 2, small_luna("per_channel", true));
  std::vector<std::string> names;
  std::vector<Dims> shapes;
  for (const auto& [name, t] : mha->state_dict()) {
    names.push_back(name);
    shapes.push_back(t.sizes());
  }
  REQUIRE(names == std::vector<std::string>{
                       "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias",
                       "out_proj.weight", "out_proj.bias", "feature_map.proj.weight", "feature_map.proj.bias",
                       "feature_map.psi.0.fc1.weight", "feature_map.psi.0.fc1.bias", "feature_map.psi.0.fc2.weight",
                       "feature_map.psi.0.fc2.bias", "feature_map.psi.1.fc1.weight", "feature_map.psi.1.fc1.bias",
                       "feature_map.psi.1.fc2.weight", "feature_map.psi.1.fc2.bias", "feature_map.envelope.beta"});
  // d = 4, M = 3, Hψ = 4.
  REQUIRE(shapes[8] == Dims({3, 4}));
  REQUIRE(shapes[9] == Dims({3}));
  REQUIRE(shapes[10] == Dims({4, 1}));
  REQUIRE(shapes[11] == Dims({4}));
  REQUIRE(shapes[12] == Dims({1, 4}));
  REQUIRE(shapes[13] == Dims({1}));
  REQUIRE(shapes[18] == Dims({1}));
  REQUIRE(values(mha->feature_map->envelope->beta) == std::vector<double>{0.0});
  REQUIRE(values(mha->feature_map->proj->bias) == std::vector<double>(3, 0.0));

  nn::MultiHeadAttention shared = luna_mha(8, 2, small_luna("shared"));
  names.clear();
  for (const auto& [name, t] : shared->named_parameters())
    if (name.starts_with("feature_map.")) names.push_back(name + " " + std::to_string(t.size(0)) + "x" +
                                                          (t.dim() > 1 ? std::to_string(t.size(1)) : ""));
  REQUIRE(names == std::vector<std::string>{"feature_map.proj.weight 3x4", "feature_map.proj.bias 3x",
                                            "feature_map.psi.0.fc1.weight 4x1", "feature_map.psi.0.fc1.bias 4x",
                                            "feature_map.psi.0.fc2.weight 2x4", "feature_map.psi.0.fc2.bias 2x"});

  // softmax and elu have no feature map.
  REQUIRE(nn::MultiHeadAttention(nn::MultiHeadAttentionOptions(8, 2).attention("elu"))->state_dict().size() == 8);
}

TEST_CASE("MultiHeadAttention luna per_head: one φ per head, equal to the shared φ when the heads agree",
          "[nn][luna]") {
  LunaFeatureMapOptions per_head_options = small_luna();
  per_head_options.per_head = true;
  nn::MultiHeadAttention per_head = luna_mha(8, 2, per_head_options);
  nn::MultiHeadAttention shared = luna_mha(8, 2, small_luna());
  randomize_parameters(*shared, 11);
  // Every per-head tensor has a leading H = 2 dim under the shared layout's name: copy the shared
  // values into both heads.
  std::map<std::string, Tensor> shared_state;
  for (const auto& [name, t] : shared->state_dict()) shared_state[name] = t;
  {
    NoGradGuard no_grad;
    for (const auto& [name, t] : per_head->named_parameters()) {
      const Tensor& source = shared_state.at(name);
      if (name.starts_with("feature_map.")) {
        REQUIRE(t.size(0) == 2);
        REQUIRE(t.sizes() == [&] { Dims d{2}; for (int64_t s : source.sizes()) d.push_back(s); return d; }());
        t.copy_(source.unsqueeze(0).expand(t.sizes()));
      } else {
        t.copy_(source);
      }
    }
  }
  const Tensor x = random_tensor({2, 5, 8}, 12);
  require_close(values(per_head(x)), values(shared(x)), 1e-6, 1e-7);

  // Heads with different φ give a different output than head 0's φ used for both.
  {
    NoGradGuard no_grad;
    const Tensor w = per_head->feature_map->proj->weight;  // (H, M, d)
    w.narrow(0, 1, 1).mul_(-1.0);
  }
  const std::vector<double> mixed = values(per_head(x)), reference = values(shared(x));
  double largest_difference = 0;
  for (size_t i = 0; i < mixed.size(); ++i) largest_difference = std::max(largest_difference, std::abs(mixed[i] - reference[i]));
  REQUIRE(largest_difference > 1e-4);
}

TEST_CASE("MultiHeadAttention luna: forward equals luna_attention with the same parameters", "[nn][luna]") {
  for (const std::string layout : {"per_channel", "shared"}) {
    for (const bool envelope : {false, true}) {
      for (const bool causal : {false, true}) {
        INFO("layout " << layout << " envelope " << envelope << " causal " << causal);
        nn::MultiHeadAttention mha = luna_mha(8, 2, small_luna(layout, envelope), causal);
        randomize_parameters(*mha, 3);
        const Tensor x = random_tensor({2, 5, 8}, 4);
        std::vector<bool> padded(10, false);
        padded[8] = padded[9] = true;
        const Tensor mask = tensor(padded, {2, 5});
        require_close(mha(x), luna_reference(*mha, x, Tensor(), causal), 1e-5, 1e-6);
        require_close(mha(x, Tensor(), Tensor(), mask), luna_reference(*mha, x, mask, causal), 1e-5, 1e-6);
      }
    }
  }
}

TEST_CASE("MultiHeadAttention luna and elu: padding and causality", "[nn][luna]") {
  for (const std::string kind : {"luna", "elu"}) {
    INFO("attention " << kind);
    nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(8, 2).attention(kind).luna(small_luna()));
    randomize_parameters(*mha, 5);
    const Tensor x = random_tensor({2, 6, 8}, 6);
    std::vector<bool> padded(12, false);
    padded[10] = padded[11] = true;  // second sequence has 4 real tokens
    const Tensor out = mha(x, Tensor(), Tensor(), tensor(padded, {2, 6}));
    const Tensor alone = mha(x.narrow(0, 1, 1).narrow(1, 0, 4));
    require_close(values(out.narrow(0, 1, 1).narrow(1, 0, 4)), values(alone), 1e-5, 1e-6);

    nn::MultiHeadAttention causal(
        nn::MultiHeadAttentionOptions(8, 2).attention(kind).luna(small_luna()).causal(true));
    randomize_parameters(*causal, 7);
    const Tensor y = causal(x);
    const Tensor x_changed = x.clone();
    {
      NoGradGuard no_grad;
      x_changed.narrow(1, 4, 2).fill_(3.0);  // positions 4, 5
    }
    const Tensor y_changed = causal(x_changed);
    require_close(values(y_changed.narrow(1, 0, 4)), values(y.narrow(1, 0, 4)), 1e-6, 1e-7);
    REQUIRE(values(y_changed.narrow(1, 4, 2)) != values(y.narrow(1, 4, 2)));
  }
}

TEST_CASE("MultiHeadAttention elu: matches the elu+1 linear attention loop", "[nn][luna]") {
  for (const bool causal : {false, true}) {
    INFO("causal " << causal);
    nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(8, 2).attention("elu").causal(causal));
    randomize_parameters(*mha, 8);
    const Tensor x = random_tensor({2, 5, 8}, 9);
    require_close(mha(x), elu_reference(*mha, x, {}, causal), 1e-5, 1e-6);
    std::vector<bool> padded(10, false);
    padded[3] = padded[4] = padded[9] = true;
    require_close(mha(x, Tensor(), Tensor(), tensor(padded, {2, 5})), elu_reference(*mha, x, padded, causal), 1e-5,
                  1e-6);
  }
}

TEST_CASE("LUNA attention trains inside TransformerEncoderLayer and LraClassifier", "[nn][luna]") {
  nn::TransformerEncoderLayer layer(nn::TransformerEncoderLayerOptions(8, 2)
                                        .dim_feedforward(12)
                                        .attention("luna")
                                        .luna(small_luna())
                                        .norm_first(true));
  const Tensor x = random_tensor({2, 5, 8}, 10);
  std::vector<bool> padded(10, false);
  padded[9] = true;
  const Tensor y = layer(x, tensor(padded, {2, 5}));
  REQUIRE(y.sizes() == Dims({2, 5, 8}));
  y.sum().backward();
  require_finite_gradients(*layer);
  REQUIRE(layer->self_attn->feature_map->proj->weight.grad().abs().sum().item<double>() > 0);

  models::LraClassifier model(models::LraClassifierOptions(11, 3, 8)
                                  .dim(16)
                                  .heads(2)
                                  .ffn_dim(16)
                                  .head_hidden(16)
                                  .attention("luna")
                                  .luna(small_luna()));
  const Tensor tokens = tensor(std::vector<int64_t>{1, 4, 5, 2, 7, 0, 0, 0, 3, 9, 10, 6, 2, 8, 1, 5}, {2, 8});
  const Tensor logits = model(tokens);
  REQUIRE(logits.sizes() == Dims({2, 3}));
  logits.sum().backward();
  require_finite_gradients(*model);
}
