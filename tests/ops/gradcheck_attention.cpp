// Float64 finite-difference checks of the attention ops of ops/attention.h: fused softmax attention
// (padding, causal, fully masked rows, Nq != Nk, dropout with a seeded generator, head-interleaved
// inputs) and the performer, cosformer and hedgehog feature maps and attentions.
#include "test_util.h"

#include <luna/ops/attention.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

// Right padding: batch element b has its last b + 1 keys padded (so causal rows always see key 0).
Tensor right_padding(int64_t B, int64_t N) {
  std::vector<uint8_t> padded(size_t(B * N), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = N - 1 - b; j < N; ++j) padded[size_t(b * N + j)] = 1;
  return tensor(padded, {B, N}).to(kBool);
}

// Uniform magnitudes in [0.2, 1) with random signs: no finite-difference step crosses relu's kink.
Tensor away_from_zero(const Dims& shape, uint64_t seed) {
  Tensor t;
  {
    NoGradGuard no_grad;
    t = (random_leaf(shape, seed, 0.2, 1.0) * luna::sign(random_leaf(shape, seed + 100))).detach();
  }
  t.requires_grad_(true);
  return t;
}

struct SdpaCase {
  int64_t Nq, Nk;
  bool masked, causal;
  double dropout;
};

}  // namespace

TEST_CASE("gradcheck scaled_dot_product_attention with masks, causal and dropout", "[gradcheck][attention]") {
  const int64_t B = 2, H = 2, d = 3, dv = 2;
  const std::vector<SdpaCase> cases = {{5, 5, false, false, 0.0}, {5, 5, true, false, 0.0}, {5, 5, false, true, 0.0},
                                       {5, 5, true, true, 0.0},   {4, 6, true, false, 0.0}, {6, 3, false, false, 0.0},
                                       {5, 5, false, false, 0.3}, {5, 5, true, true, 0.4},  {4, 7, true, false, 0.25}};
  uint64_t seed = 100;
  for (const SdpaCase& c : cases) {
    CAPTURE(c.Nq, c.Nk, c.masked, c.causal, c.dropout);
    const Tensor mask = c.masked ? right_padding(B, c.Nk) : Tensor();
    std::vector<Tensor> inputs{random_leaf({B, H, c.Nq, d}, seed + 1, -2, 2), random_leaf({B, H, c.Nk, d}, seed + 2, -2, 2),
                               random_leaf({B, H, c.Nk, dv}, seed + 3)};
    seed += 10;
    require_gradcheck(
        [&](const std::vector<Tensor>& in) {
          // A fresh generator per evaluation: every call draws the same dropout mask.
          Generator gen(42);
          return scaled_dot_product_attention(in[0], in[1], in[2], mask, c.causal, c.dropout, c.dropout > 0, &gen);
        },
        inputs);
  }
}

TEST_CASE("gradcheck scaled_dot_product_attention: fully masked rows and head-interleaved inputs",
          "[gradcheck][attention]") {
  const int64_t B = 2, H = 2, N = 4, d = 3;
  // Batch 0: first key padded, so causal query 0 sees nothing; batch 1: every key padded.
  const Tensor mask = tensor(std::vector<uint8_t>{1, 0, 0, 0, 1, 1, 1, 1}, {B, N}).to(kBool);
  std::vector<Tensor> inputs{random_leaf({B, H, N, d}, 1), random_leaf({B, H, N, d}, 2), random_leaf({B, H, N, d}, 3)};
  require_gradcheck(
      [&](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], mask, true); },
      inputs);
  // (B, N, H, d) leaves viewed as (B, H, N, d): the kernel reads them in place.
  std::vector<Tensor> interleaved{random_leaf({B, N, H, d}, 4), random_leaf({B, N, H, d}, 5),
                                  random_leaf({B, N, H, d}, 6)};
  require_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return scaled_dot_product_attention(in[0].transpose(1, 2), in[1].transpose(1, 2), in[2].transpose(1, 2),
                                            right_padding(B, N), false);
      },
      interleaved);
}

TEST_CASE("gradcheck performer feature map and attention", "[gradcheck][attention][performer]") {
  const int64_t B = 2, H = 2, N = 5, d = 4, m = 6;
  Generator gen(9);
  const Tensor omega_value = orthogonal_random_features(m, d, &gen, TensorOptions(kFloat64));
  Tensor omega = omega_value.clone();
  omega.requires_grad_(true);
  const Tensor mask = right_padding(B, N);

  // The stabilisers are detached constants of a row (queries) or of a head (keys), so the maps are
  // checked through normalisations they cancel in: per row for queries, per (b, h) for keys.
  require_gradcheck(
      [&](const std::vector<Tensor>& in) {
        const Tensor phi = performer_feature_map(in[0], in[1], /*is_query=*/true);
        return phi / phi.sum({-1}, true);
      },
      {random_leaf({B, H, N, d}, 11), omega});
  require_gradcheck(
      [&](const std::vector<Tensor>& in) {
        const Tensor phi = performer_feature_map(in[0], in[1], /*is_query=*/false, mask);
        return phi / phi.sum({2, 3}, true);
      },
      {random_leaf({B, H, N, d}, 12), omega});

  // The attention with ε = 0: every stabiliser cancels exactly, causal or not.
  for (bool causal : {false, true})
    for (bool masked : {false, true}) {
      CAPTURE(causal, masked);
      LinearAttentionOptions options;
      options.causal = causal;
      options.eps = 0.0;
      if (masked) options.key_padding_mask = mask;
      require_gradcheck(
          [&](const std::vector<Tensor>& in) { return performer_attention(in[0], in[1], in[2], in[3], options); },
          {random_leaf({B, H, N, d}, 13), random_leaf({B, H, N, d}, 14), random_leaf({B, H, N, 3}, 15), omega});
    }
}

TEST_CASE("gradcheck cosformer feature map and attention", "[gradcheck][attention][cosformer]") {
  const int64_t B = 2, H = 2, N = 5, d = 3;
  require_gradcheck([](const std::vector<Tensor>& in) { return cosformer_feature_map(in[0], 7); },
                    {random_leaf({B, H, N, d}, 21)});
  for (bool causal : {false, true})
    for (bool masked : {false, true})
      for (int64_t max_len : {0, 9}) {
        CAPTURE(causal, masked, max_len);
        LinearAttentionOptions options;
        options.causal = causal;
        if (masked) options.key_padding_mask = right_padding(B, N);
        require_gradcheck(
            [&](const std::vector<Tensor>& in) { return cosformer_attention(in[0], in[1], in[2], max_len, options); },
            {away_from_zero({B, H, N, d}, 22), away_from_zero({B, H, N, d}, 23), random_leaf({B, H, N, 2}, 24)});
      }
  // Cross-attention, Nq != Nk.
  require_gradcheck(
      [](const std::vector<Tensor>& in) { return cosformer_attention(in[0], in[1], in[2]); },
      {random_leaf({B, H, 3, d}, 25, 0.1, 1.0), random_leaf({B, H, 6, d}, 26, 0.1, 1.0), random_leaf({B, H, 6, 2}, 27)});
}

TEST_CASE("gradcheck hedgehog feature map and attention", "[gradcheck][attention][hedgehog]") {
  const int64_t B = 2, H = 2, N = 5, d = 3, F = 4;
  require_gradcheck(
      [](const std::vector<Tensor>& in) { return hedgehog_feature_map(in[0], in[1], in[2]); },
      {random_leaf({B, H, N, d}, 31), random_leaf({H, d, F}, 32), random_leaf({H, F}, 33)});
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    LinearAttentionOptions options;
    options.causal = causal;
    options.key_padding_mask = right_padding(B, N);
    require_gradcheck(
        [&](const std::vector<Tensor>& in) {
          return linear_attention(hedgehog_feature_map(in[0], in[3], in[4]), hedgehog_feature_map(in[1], in[3], in[4]),
                                  in[2], options);
        },
        {random_leaf({B, H, N, d}, 34), random_leaf({B, H, N, d}, 35), random_leaf({B, H, N, 2}, 36),
         random_leaf({H, d, d}, 37), random_leaf({H, d}, 38)});
  }
}
