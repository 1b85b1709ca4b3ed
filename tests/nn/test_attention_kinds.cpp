// Tests of every attention kind of nn::MultiHeadAttention (softmax, luna, elu, performer, cosformer,
// hedgehog): wiring against the ops on hand-projected heads, padding invariance, causality, the
// performer redraw schedule and its checkpointed state, hedgehog's parameters, and bad options/masks.
#include "test_util.h"

#include <luna/nn/attention.h>
#include <luna/ops/attention.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

const std::vector<std::string> kKinds = {"softmax", "luna", "elu", "performer", "cosformer", "hedgehog"};

Tensor random_tensor(const Dims& shape, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return rand(shape, TensorOptions(kFloat32), &gen) * 2.0 - 1.0;
}

nn::MultiHeadAttentionOptions kind_options(const std::string& kind, bool causal = false) {
  nn::MultiHeadAttentionOptions options(8, 2);
  options.attention(kind).causal(causal).performer_features(16).cosformer_max_len(32);
  LunaFeatureMapOptions luna;
  luna.num_projections = 4;
  luna.channels = 2;
  luna.hidden = 8;
  options.luna(luna);
  return options;
}

// Parameters (not the performer's random features) from U(-0.5, 0.5), so every projection, bias
// and feature-map weight matters.
nn::MultiHeadAttention make(const std::string& kind, bool causal = false, uint64_t seed = 1) {
  manual_seed(seed);
  nn::MultiHeadAttention mha(kind_options(kind, causal));
  Generator gen(seed + 100);
  NoGradGuard no_grad;
  for (const Tensor& p : mha->parameters()) uniform_(p, -0.5, 0.5, &gen);
  // hedgehog: keep W near the identity so the softmax features stay well spread.
  if (kind == "hedgehog") mha->hedgehog_feature_map->weight.add_(eye(4).unsqueeze(0) * 2.0);
  return mha;
}

std::vector<bool> lengths_mask(const std::vector<int64_t>& lengths, int64_t N) {
  std::vector<bool> padded;
  for (int64_t length : lengths)
    for (int64_t j = 0; j < N; ++j) padded.push_back(j >= length);
  return padded;
}

}  // namespace

TEST_CASE("MultiHeadAttention kinds: the module runs the kind's op on its projected heads", "[nn][attention][kinds]") {
  const int64_t B = 2, N = 6, D = 8, H = 2, d = 4;
  const Tensor x = random_tensor({B, N, D}, 3);
  const Tensor mask = tensor(lengths_mask({6, 4}, N), {B, N});
  for (const std::string& kind : {std::string("softmax"), std::string("performer"), std::string("cosformer"),
                                  std::string("hedgehog")}) {
    for (bool causal : {false, true}) {
      CAPTURE(kind, causal);
      nn::MultiHeadAttention mha = make(kind, causal);
      mha->eval();
      auto heads = [&](const nn::Linear& projection) {
        return linear(x, projection->weight, projection->bias).reshape({B, N, H, d}).transpose(1, 2).contiguous();
      };
      const Tensor q = heads(mha->q_proj), k = heads(mha->k_proj), v = heads(mha->v_proj);
      LinearAttentionOptions options;
      options.key_padding_mask = mask;
      options.causal = causal;
      Tensor attended;
      if (kind == "softmax") attended = scaled_dot_product_attention(q, k, v, mask, causal);
      if (kind == "performer") attended = performer_attention(q, k, v, mha->projection_matrix, options);
      if (kind == "cosformer") attended = cosformer_attention(q, k, v, 32, options);
      if (kind == "hedgehog") {
        const Tensor w = mha->hedgehog_feature_map->weight, b = mha->hedgehog_feature_map->bias;
        attended = linear_attention(hedgehog_feature_map(q, w, b), hedgehog_feature_map(k, w, b), v, options);
      }
      const Tensor want = linear(attended.transpose(1, 2).reshape({B, N, D}), mha->out_proj->weight,
                                 mha->out_proj->bias);
      require_close(mha(x, Tensor(), Tensor(), mask), want, 1e-5, 1e-6);
    }
  }
}

TEST_CASE("MultiHeadAttention kinds: a padded batch equals the unpadded sequences", "[nn][attention][kinds]") {
  const int64_t N = 7, D = 8;
  const std::vector<int64_t> lengths = {7, 4, 2};
  const int64_t B = int64_t(lengths.size());
  // Padded positions hold garbage, which must not leak into real ones.
  const Tensor x = random_tensor({B, N, D}, 11) * 3.0;
  const Tensor mask = tensor(lengths_mask(lengths, N), {B, N});
  for (const std::string& kind : kKinds)
    for (bool causal : {false, true}) {
      CAPTURE(kind, causal);
      nn::MultiHeadAttention mha = make(kind, causal, 5);
      mha->eval();
      const std::vector<double> padded = values(mha(x, Tensor(), Tensor(), mask));
      for (int64_t b = 0; b < B; ++b) {
        const int64_t L = lengths[size_t(b)];
        const std::vector<double> alone = values(mha(x.narrow(0, b, 1).narrow(1, 0, L)));
        const std::vector<double> real(padded.begin() + b * N * D, padded.begin() + (b * N + L) * D);
        require_close(real, alone, 1e-4, 1e-5, kind);
      }
    }
}

TEST_CASE("MultiHeadAttention kinds: causal outputs do not see later tokens", "[nn][attention][kinds]") {
  const int64_t N = 9, D = 8, changed_from = 5;
  const Tensor x = random_tensor({2, N, D}, 21);
  Tensor later_changed = x.clone();
  later_changed.narrow(1, changed_from, N - changed_from).copy_(random_tensor({2, N - changed_from, D}, 22) * 4.0);
  for (const std::string& kind : kKinds) {
    CAPTURE(kind);
    nn::MultiHeadAttention mha = make(kind, /*causal=*/true, 7);
    mha->eval();
    const Tensor before = mha(x), after = mha(later_changed);
    require_close(values(after.narrow(1, 0, changed_from)), values(before.narrow(1, 0, changed_from)), 1e-5, 1e-6,
                  kind);
    REQUIRE(values(after.narrow(1, changed_from, N - changed_from)) !=
            values(before.narrow(1, changed_from, N - changed_from)));
    // Without causal the early outputs do change: the test above can fail.
    nn::MultiHeadAttention full = make(kind, /*causal=*/false, 7);
    full->eval();
    REQUIRE(values(full(later_changed).narrow(1, 0, changed_from)) != values(full(x).narrow(1, 0, changed_from)));
  }
}

TEST_CASE("MultiHeadAttention performer: redraws ω exactly on schedule in training, never in eval",
          "[nn][attention][performer]") {
  manual_seed(3);
  nn::MultiHeadAttention mha(kind_options("performer").performer_redraw_interval(3));
  const Tensor x = random_tensor({1, 5, 8}, 31);
  REQUIRE(mha->projection_matrix.sizes() == Dims({16, 4}));
  REQUIRE(mha->calls_since_last_redraw.item<int64_t>() == 0);

  std::vector<std::vector<double>> draws = {values(mha->projection_matrix)};
  std::vector<std::vector<double>> outputs;
  for (int call = 1; call <= 10; ++call) {
    outputs.push_back(values(mha(x)));
    const std::vector<double> omega = values(mha->projection_matrix);
    // A redraw happens before calls 4, 7 and 10: each draw serves exactly 3 training calls.
    const bool redrawn = call == 4 || call == 7 || call == 10;
    CAPTURE(call);
    REQUIRE((omega != draws.back()) == redrawn);
    if (redrawn) draws.push_back(omega);
    REQUIRE(mha->calls_since_last_redraw.item<int64_t>() == (call - 1) % 3 + 1);
  }
  REQUIRE(draws.size() == 4);
  REQUIRE(outputs[0] == outputs[2]);  // same ω, same output
  REQUIRE(outputs[2] != outputs[3]);  // the redraw is used

  mha->eval();
  const std::vector<double> frozen = values(mha->projection_matrix);
  const int64_t count = mha->calls_since_last_redraw.item<int64_t>();
  const std::vector<double> first = values(mha(x));
  for (int call = 0; call < 7; ++call) REQUIRE(values(mha(x)) == first);
  REQUIRE(values(mha->projection_matrix) == frozen);
  REQUIRE(mha->calls_since_last_redraw.item<int64_t>() == count);

  // Interval 0: never redrawn, not even in training.
  nn::MultiHeadAttention never(kind_options("performer").performer_redraw_interval(0));
  const std::vector<double> initial = values(never->projection_matrix);
  for (int call = 0; call < 5; ++call) never(x);
  REQUIRE(values(never->projection_matrix) == initial);

  // The buffer keeps its identity across redraws (state_dict and optimizers see the live tensor).
  const nn::NamedTensors buffers = mha->named_buffers();
  REQUIRE(buffers.size() == 2);
  REQUIRE(buffers[0].first == "projection_matrix");
  REQUIRE(buffers[1].first == "calls_since_last_redraw");
  REQUIRE(buffers[0].second.is_same(mha->projection_matrix));
  // The rows of ω come in orthogonal blocks of d = 4.
  const std::vector<double> w = values(mha->projection_matrix);
  for (int64_t i = 0; i < 16; ++i)
    for (int64_t j = (i / 4) * 4; j < i; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < 4; ++c) dot += w[size_t(i * 4 + c)] * w[size_t(j * 4 + c)];
      REQUIRE(std::abs(dot) < 1e-4);
    }
}

TEST_CASE("MultiHeadAttention performer: state_dict round trip keeps ω and the schedule", "[nn][attention][performer]") {
  manual_seed(4);
  nn::MultiHeadAttention trained(kind_options("performer").performer_redraw_interval(2));
  const Tensor x = random_tensor({2, 5, 8}, 41);
  for (int call = 0; call < 3; ++call) trained(x);  // one redraw, then one call counted
  REQUIRE(trained->calls_since_last_redraw.item<int64_t>() == 1);
  const nn::NamedTensors state = trained->state_dict();
  bool has_omega = false;
  for (const auto& [name, t] : state) has_omega |= name == "projection_matrix";
  REQUIRE(has_omega);

  manual_seed(99);
  nn::MultiHeadAttention restored(kind_options("performer").performer_redraw_interval(2));
  REQUIRE(values(restored->projection_matrix) != values(trained->projection_matrix));
  restored->load_state_dict(state);
  REQUIRE(values(restored->projection_matrix) == values(trained->projection_matrix));
  REQUIRE(restored->calls_since_last_redraw.item<int64_t>() == 1);
  trained->eval();
  restored->eval();
  REQUIRE(values(restored(x)) == values(trained(x)));
  // Float64 modules convert ω with the parameters.
  restored->to(kFloat64);
  REQUIRE(restored->projection_matrix.dtype() == kFloat64);
  require_close(values(restored(x.to(kFloat64))), values(trained(x)), 1e-5, 1e-6);
}

TEST_CASE("MultiHeadAttention hedgehog: per-head weight and bias under feature_map.*", "[nn][attention][hedgehog]") {
  nn::MultiHeadAttention mha(kind_options("hedgehog"));
  std::vector<std::string> names;
  for (const auto& [name, t] : mha->named_parameters()) names.push_back(name);
  REQUIRE(names == std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                                            "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias",
                                            "feature_map.weight", "feature_map.bias"});
  const Tensor w = mha->hedgehog_feature_map->weight, b = mha->hedgehog_feature_map->bias;
  REQUIRE(w.sizes() == Dims({2, 4, 4}));
  REQUIRE(b.sizes() == Dims({2, 4}));
  require_close(values(w), values(eye(4).unsqueeze(0).expand({2, 4, 4})), 0, 0);
  REQUIRE(values(b) == std::vector<double>(8, 0.0));
  // Gradients reach both, per head.
  mha(random_tensor({2, 5, 8}, 51)).square().sum().backward();
  for (const Tensor& p : {w, b}) {
    REQUIRE(p.grad().defined());
    const std::vector<double> g = values(p.grad());
    REQUIRE(std::any_of(g.begin(), g.end(), [](double v) { return v != 0.0; }));
  }
}

TEST_CASE("MultiHeadAttention kinds: bad kinds, options and masks are rejected clearly", "[nn][attention][errors]") {
  REQUIRE_THROWS_WITH(nn::MultiHeadAttention(nn::MultiHeadAttentionOptions(8, 2).attention("linformer")),
                      Contains("'linformer'") &&
                          Contains("available kinds: softmax, luna, elu, performer, cosformer, hedgehog"));
  REQUIRE_THROWS_WITH(nn::MultiHeadAttention(kind_options("performer").performer_features(0)),
                      Contains("performer_features") && Contains("0"));
  REQUIRE_THROWS_WITH(nn::MultiHeadAttention(kind_options("performer").performer_redraw_interval(-2)),
                      Contains("performer_redraw_interval") && Contains("-2"));
  REQUIRE_THROWS_WITH(nn::MultiHeadAttention(kind_options("cosformer").cosformer_max_len(-1)),
                      Contains("cosformer_max_len") && Contains("-1"));
  nn::MultiHeadAttention short_cosformer(kind_options("cosformer").cosformer_max_len(4));
  REQUIRE_THROWS_WITH(short_cosformer(zeros({1, 6, 8})), Contains("sequence length 6") && Contains("max_len 4"));
  nn::MultiHeadAttention softmax(8, 2);
  REQUIRE_THROWS_WITH(softmax->redraw_projection_matrix(), Contains("performer") && Contains("softmax"));

  const Tensor x = zeros({2, 5, 8});
  for (const std::string& kind : kKinds) {
    CAPTURE(kind);
    nn::MultiHeadAttention mha = make(kind);
    REQUIRE_THROWS_WITH(mha(x, Tensor(), Tensor(), zeros({2, 5})),
                        Contains("key_padding_mask") && Contains("bool") && Contains("float32"));
    REQUIRE_THROWS_WITH(mha(x, Tensor(), Tensor(), zeros({2, 4}, TensorOptions(kBool))),
                        Contains("key_padding_mask") && Contains("[2,5]") && Contains("[2,4]"));
  }
}
