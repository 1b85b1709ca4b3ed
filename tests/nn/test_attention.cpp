// Tests of nn::MultiHeadAttention with softmax attention (nn/attention.h): forward against an
// explicit-loop reference (self- and cross-attention, padding, causal), padding invariance,
// causality, fully masked rows, attention dropout, initialisation and input errors.
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <luna/nn/attention.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

Tensor random_tensor(const Dims& shape, uint64_t seed, DType dtype = kFloat32) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * 2.0 - 1.0).to(dtype);
}

// Every parameter (biases included, which start at zero) drawn from U(-0.5, 0.5), so a test
// notices a missing bias or a swapped projection.
void randomize_parameters(nn::Module& module, uint64_t seed) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const Tensor& p : module.parameters()) uniform_(p, -0.5, 0.5, &gen);
}

// y [rows, out] = x [rows, in] Wᵀ + b, all row-major.
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

// Multi-head softmax attention with explicit loops. query [B, Nq, D], key/value [B, Nk, D];
// padded[b * Nk + j] = key j of batch b is padding. A query with no visible key outputs zeros
// before out_proj (luna's documented choice).
std::vector<double> reference_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                        const nn::MultiHeadAttentionImpl& mha, const std::vector<bool>& padded,
                                        bool causal) {
  const int64_t B = query.size(0), Nq = query.size(1), Nk = key.size(1), D = query.size(2);
  const int64_t H = mha.options.num_heads(), d = D / H;
  const std::vector<double> q = linear_loop(values(query), mha.q_proj->weight, mha.q_proj->bias);
  const std::vector<double> k = linear_loop(values(key), mha.k_proj->weight, mha.k_proj->bias);
  const std::vector<double> v = linear_loop(values(value), mha.v_proj->weight, mha.v_proj->bias);
  std::vector<double> heads(size_t(B * Nq * D), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Nq; ++i) {
        std::vector<double> score(static_cast<size_t>(Nk));
        std::vector<bool> visible(static_cast<size_t>(Nk));
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Nk; ++j) {
          visible[size_t(j)] = !(padded.size() && padded[size_t(b * Nk + j)]) && !(causal && j > i);
          double s = 0;
          for (int64_t c = 0; c < d; ++c)
            s += q[size_t((b * Nq + i) * D + h * d + c)] * k[size_t((b * Nk + j) * D + h * d + c)];
          score[size_t(j)] = s / std::sqrt(double(d));
          if (visible[size_t(j)]) max_score = std::max(max_score, score[size_t(j)]);
        }
        double total = 0;
        for (int64_t j = 0; j < Nk; ++j) {
          score[size_t(j)] = visible[size_t(j)] ? std::exp(score[size_t(j)] - max_score) : 0.0;
          total += score[size_t(j)];
        }
        if (total == 0) continue;  // no visible key: zeros
        for (int64_t j = 0; j < Nk; ++j)
          for (int64_t c = 0; c < d; ++c)
            heads[size_t((b * Nq + i) * D + h * d + c)] +=
                score[size_t(j)] / total * v[size_t((b * Nk + j) * D + h * d + c)];
      }
  return linear_loop(heads, mha.out_proj->weight, mha.out_proj->bias);
}

Tensor bool_mask(const std::vector<bool>& padded, const Dims& shape) { return tensor(padded, shape); }

bool all_finite(const Tensor& t) {
  for (double v : values(t))
    if (!std::isfinite(v)) return false;
  return true;
}

}  // namespace

TEST_CASE("MultiHeadAttention: parameter names, shapes and PyTorch's initialisation", "[nn][attention]") {
  manual_seed(1);
  const int64_t D = 64;
  nn::MultiHeadAttention mha(D, 4);
  std::vector<std::string> names;
  for (const auto& [name, t] : mha->named_parameters()) {
    names.push_back(name);
    REQUIRE(t.sizes() == (name.ends_with("weight") ? Dims({D, D}) : Dims({D})));
  }
  REQUIRE(names == std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                                            "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias"});
  // q/k/v: the rows of PyTorch's packed xavier_uniform_ in_proj_weight [3D, D], U(±sqrt(6 / 4D)).
  const double in_bound = std::sqrt(6.0 / (4.0 * D));
  for (const nn::Linear& projection : {mha->q_proj, mha->k_proj, mha->v_proj}) {
    const std::vector<double> w = values(projection->weight);
    const double max_abs = std::abs(*std::max_element(w.begin(), w.end(), [](double a, double b) {
      return std::abs(a) < std::abs(b);
    }));
    REQUIRE(max_abs <= in_bound);
    REQUIRE(max_abs > 0.97 * in_bound);
    REQUIRE(values(projection->bias) == std::vector<double>(size_t(D), 0.0));
  }
  const std::vector<double> out_w = values(mha->out_proj->weight);
  for (double w : {*std::min_element(out_w.begin(), out_w.end()), *std::max_element(out_w.begin(), out_w.end())})
    REQUIRE(std::abs(w) <= 1.0 / std::sqrt(double(D)));
  REQUIRE(values(mha->out_proj->bias) == std::vector<double>(size_t(D), 0.0));

  nn::MultiHeadAttention no_bias(nn::MultiHeadAttentionOptions(8, 2).bias(false));
  REQUIRE(no_bias->named_parameters().size() == 4);
}

TEST_CASE("MultiHeadAttention: softmax self-attention matches the loop reference", "[nn][attention]") {
  nn::MultiHeadAttention mha(8, 2);
  randomize_parameters(*mha, 2);
  const Tensor x = random_tensor({2, 5, 8}, 3);
  const Tensor out = mha(x);
  REQUIRE(out.sizes() == Dims({2, 5, 8}));
  require_close(out, reference_attention(x, x, x, *mha, {}, false), 1e-5, 1e-6);
  // Explicit key = value = query is the same call.
  require_close(values(mha(x, x, x)), values(out), 0, 0);

  // One head and four heads over the same width give different results (heads really split).
  nn::MultiHeadAttention four_heads(nn::MultiHeadAttentionOptions(8, 4));
  randomize_parameters(*four_heads, 2);
  require_close(four_heads(x), reference_attention(x, x, x, *four_heads, {}, false), 1e-5, 1e-6);
}

TEST_CASE("MultiHeadAttention: cross-attention with another key length", "[nn][attention]") {
  nn::MultiHeadAttention mha(6, 3);
  randomize_parameters(*mha, 4);
  const Tensor query = random_tensor({2, 3, 6}, 5);
  const Tensor key = random_tensor({2, 7, 6}, 6);
  const Tensor value = random_tensor({2, 7, 6}, 7);
  require_close(mha(query, key, value), reference_attention(query, key, value, *mha, {}, false), 1e-5, 1e-6);
  // Undefined value means value = key.
  require_close(mha(query, key), reference_attention(query, key, key, *mha, {}, false), 1e-5, 1e-6);

  std::vector<bool> padded(14, false);
  padded[5] = padded[6] = padded[7] = true;  // batch 0 keys 5, 6; batch 1 key 0
  require_close(mha(query, key, value, bool_mask(padded, {2, 7})),
                reference_attention(query, key, value, *mha, padded, false), 1e-5, 1e-6);
}

TEST_CASE("MultiHeadAttention: key_padding_mask equals running without the padding", "[nn][attention]") {
  nn::MultiHeadAttention mha(8, 2);
  randomize_parameters(*mha, 8);
  const int64_t N = 6;
  const std::vector<int64_t> lengths = {4, 6, 1};
  const Tensor x = random_tensor({3, N, 8}, 9);
  std::vector<bool> padded;
  for (int64_t length : lengths)
    for (int64_t j = 0; j < N; ++j) padded.push_back(j >= length);
  const Tensor out = mha(x, Tensor(), Tensor(), bool_mask(padded, {3, N}));
  require_close(out, reference_attention(x, x, x, *mha, padded, false), 1e-5, 1e-6);
  for (int64_t b = 0; b < 3; ++b) {
    const Tensor alone = mha(x.narrow(0, b, 1).narrow(1, 0, lengths[size_t(b)]));
    INFO("batch " << b);
    require_close(values(out.narrow(0, b, 1).narrow(1, 0, lengths[size_t(b)])), values(alone), 1e-5, 1e-6);
  }
  // The padded positions' contents do not matter to the real ones.
  Tensor changed = x.clone();
  {
    NoGradGuard no_grad;
    changed.narrow(0, 0, 1).narrow(1, 4, 2).fill_(100.0);
  }
  const Tensor out_changed = mha(changed, Tensor(), Tensor(), bool_mask(padded, {3, N}));
  require_close(values(out_changed.narrow(0, 0, 1).narrow(1, 0, 4)), values(out.narrow(0, 0, 1).narrow(1, 0, 4)),
                1e-5, 1e-6);
}

TEST_CASE("MultiHeadAttention: causal outputs ignore later positions", "[nn][attention]") {
  nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(8, 2).causal(true));
  randomize_parameters(*mha, 10);
  const int64_t N = 7;
  const Tensor x = random_tensor({2, N, 8}, 11);
  const Tensor out = mha(x);
  require_close(out, reference_attention(x, x, x, *mha, {}, true), 1e-5, 1e-6);
  for (int64_t t = 0; t + 1 < N; ++t) {
    Tensor changed = x.clone();
    {
      NoGradGuard no_grad;
      changed.narrow(1, t + 1, N - t - 1).copy_(random_tensor({2, N - t - 1, 8}, 100 + uint64_t(t)));
    }
    const Tensor out_changed = mha(changed);
    INFO("t = " << t);
    require_close(values(out_changed.narrow(1, 0, t + 1)), values(out.narrow(1, 0, t + 1)), 1e-6, 1e-7);
    // The change is visible at the next position, so the check above is not vacuous.
    REQUIRE(values(out_changed.narrow(1, t + 1, 1)) != values(out.narrow(1, t + 1, 1)));
  }
  // Causal together with padding.
  std::vector<bool> padded(2 * N, false);
  padded[5] = padded[6] = padded[N + 0] = true;  // batch 1 is left-padded: its query 0 sees nothing
  const Tensor masked = mha(x, Tensor(), Tensor(), bool_mask(padded, {2, N}));
  require_close(masked, reference_attention(x, x, x, *mha, padded, true), 1e-5, 1e-6);
  REQUIRE(all_finite(masked));
}

TEST_CASE("MultiHeadAttention: a fully masked row gives finite output and gradients", "[nn][attention]") {
  nn::MultiHeadAttention mha(8, 2);
  randomize_parameters(*mha, 12);
  const Tensor x = random_tensor({2, 4, 8}, 13).requires_grad_(true);
  std::vector<bool> padded = {false, false, true, true, true, true, true, true};  // batch 1 fully padded
  const Tensor out = mha(x, Tensor(), Tensor(), bool_mask(padded, {2, 4}));
  REQUIRE(all_finite(out));
  // Zero attention weights: the heads give zeros, so every output of batch 1 is out_proj's bias.
  std::vector<double> bias_rows;
  for (int i = 0; i < 4; ++i)
    for (double b : values(mha->out_proj->bias)) bias_rows.push_back(b);
  require_close(values(out.narrow(0, 1, 1)), bias_rows, 1e-6, 1e-7);
  require_close(out, reference_attention(x, x, x, *mha, padded, false), 1e-5, 1e-6);

  out.sum().backward();
  REQUIRE(all_finite(x.grad()));
  for (const Tensor& p : mha->parameters()) REQUIRE(all_finite(p.grad()));
  // Batch 1's inputs do not reach any output.
  REQUIRE(values(x.grad().narrow(0, 1, 1)) == std::vector<double>(32, 0.0));
}

TEST_CASE("MultiHeadAttention: attention dropout only while training", "[nn][attention]") {
  nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(8, 2).dropout(0.5));
  randomize_parameters(*mha, 14);
  const Tensor x = random_tensor({2, 6, 8}, 15);
  const std::vector<double> reference = reference_attention(x, x, x, *mha, {}, false);
  mha->eval();
  require_close(mha(x), reference, 1e-5, 1e-6);
  mha->train();
  manual_seed(3);
  const std::vector<double> first = values(mha(x));
  manual_seed(3);
  REQUIRE(values(mha(x)) == first);  // reproducible from the seed
  REQUIRE(values(mha(x)) != first);  // and a fresh draw differs
  REQUIRE(first != reference);

  // Dropping with p = 0.5 keeps the expectation: the mean over many draws approaches the
  // deterministic output.
  std::vector<double> mean(reference.size(), 0.0);
  const int draws = 400;
  for (int i = 0; i < draws; ++i) {
    const std::vector<double> v = values(mha(x));
    for (size_t j = 0; j < v.size(); ++j) mean[j] += v[j] / draws;
  }
  require_close(mean, reference, 0.0, 0.1);
}

TEST_CASE("MultiHeadAttention: bad options and inputs are rejected clearly", "[nn][attention][errors]") {
  REQUIRE_THROWS_WITH(nn::MultiHeadAttention(10, 3), Contains("MultiHeadAttention") && Contains("embed_dim 10") &&
                                                         Contains("num_heads 3"));
  REQUIRE_THROWS_WITH(nn::MultiHeadAttention(nn::MultiHeadAttentionOptions(8, 2).attention("reformer")),
                      Contains("'reformer'") &&
                          Contains("available kinds: softmax, luna, elu, performer, cosformer, hedgehog"));
  REQUIRE(nn::available_attention_kinds() ==
          std::vector<std::string>{"softmax", "luna", "elu", "performer", "cosformer", "hedgehog"});

  nn::MultiHeadAttention mha(8, 2);
  REQUIRE_THROWS_WITH(mha(zeros({2, 5, 6})), Contains("MultiHeadAttention") && Contains("[B, N, 8]") &&
                                                 Contains("[2,5,6]"));
  REQUIRE_THROWS_WITH(mha(zeros({5, 8})), Contains("[B, N, 8]") && Contains("[5,8]"));
  REQUIRE_THROWS_WITH(mha(zeros({2, 5, 8}), zeros({3, 4, 8})), Contains("key") && Contains("[3,4,8]"));
  REQUIRE_THROWS_WITH(mha(zeros({2, 5, 8}), zeros({2, 4, 8}), zeros({2, 3, 8})),
                      Contains("value") && Contains("[2,4,8]") && Contains("[2,3,8]"));
  REQUIRE_THROWS_WITH(mha(zeros({2, 5, 8}), Tensor(), Tensor(), zeros({2, 5})),
                      Contains("key_padding_mask") && Contains("bool") && Contains("float32"));
  REQUIRE_THROWS_WITH(mha(zeros({2, 5, 8}), Tensor(), Tensor(), zeros({2, 4}, TensorOptions(kBool))),
                      Contains("key_padding_mask") && Contains("[2,5]") && Contains("[2,4]"));
  nn::MultiHeadAttention causal(nn::MultiHeadAttentionOptions(8, 2).causal(true));
  REQUIRE_THROWS_WITH(causal(zeros({1, 3, 8}), zeros({1, 4, 8})), Contains("causal") && Contains("3") &&
                                                                     Contains("4"));
}
