// Float64 gradchecks through the nn layers: Linear, LayerNorm, Embedding, MLP, MultiHeadAttention
// (padding, fully padded rows, causal, cross-attention) and TransformerEncoderLayer (pre-LN and
// post-LN). Each module is moved to float64 and its parameters are passed to gradcheck as inputs,
// which it perturbs in place, so gradients are checked for the input and for parameters alike.
#include "test_util.h"

#include <luna/nn/attention.h>
#include <luna/nn/layers.h>
#include <luna/nn/transformer.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

// Every parameter from U(-0.5, 0.5) (zero-initialised biases would hide bias gradients), then
// the module in float64.
void prepare(nn::Module& module, uint64_t seed) {
  module.to(kFloat64);
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const Tensor& p : module.parameters()) uniform_(p, -0.5, 0.5, &gen);
}

Tensor bool_mask(const std::vector<bool>& padded, const Dims& shape) { return tensor(padded, shape); }

}  // namespace

TEST_CASE("gradcheck: Linear", "[nn][gradcheck]") {
  nn::Linear fc(4, 3);
  prepare(*fc, 1);
  const Tensor x = random_leaf({2, 3, 4}, 2);
  require_gradcheck([&](const std::vector<Tensor>&) { return fc(x); }, {x, fc->weight, fc->bias});
  nn::Linear no_bias(4, 3, false);
  prepare(*no_bias, 3);
  require_gradcheck([&](const std::vector<Tensor>&) { return no_bias(x); }, {x, no_bias->weight});
}

TEST_CASE("gradcheck: LayerNorm", "[nn][gradcheck]") {
  nn::LayerNorm norm(nn::LayerNormOptions({3, 4}).eps(1e-3));
  prepare(*norm, 4);
  const Tensor x = random_leaf({2, 3, 4}, 5);
  require_gradcheck([&](const std::vector<Tensor>&) { return norm(x); }, {x, norm->weight, norm->bias});
}

TEST_CASE("gradcheck: Embedding", "[nn][gradcheck]") {
  // The padding row would fail by design (the forward reads it, the backward leaves it zero), so
  // the indices avoid it; test_layers checks that row. Repeated indices accumulate.
  nn::Embedding emb(nn::EmbeddingOptions(5, 3).padding_idx(4));
  prepare(*emb, 6);
  const Tensor indices = tensor(std::vector<int64_t>{0, 3, 3, 1, 0, 2}, {2, 3});
  require_gradcheck([&](const std::vector<Tensor>&) { return emb(indices) * emb(indices); }, {emb->weight});
}

TEST_CASE("gradcheck: MLP", "[nn][gradcheck]") {
  for (const std::string activation : {"gelu", "tanh"}) {
    nn::MLP mlp(3, 5, 2, activation);
    prepare(*mlp, 7);
    const Tensor x = random_leaf({2, 2, 3}, 8);
    INFO(activation);
    require_gradcheck([&](const std::vector<Tensor>&) { return mlp(x); },
                      {x, mlp->fc1->weight, mlp->fc1->bias, mlp->fc2->weight});
  }
}

TEST_CASE("gradcheck: MultiHeadAttention with padding and causal masks", "[nn][gradcheck]") {
  const int64_t B = 2, N = 4, D = 4;
  struct Case {
    const char* name;
    bool causal;
    std::vector<bool> padded;  // empty: no key_padding_mask
  };
  const std::vector<Case> cases = {
      {"plain", false, {}},
      {"key padding", false, {false, false, false, true, false, true, true, false}},
      {"fully padded row", false, {false, false, true, false, true, true, true, true}},
      {"causal", true, {}},
      {"causal + left padding", true, {true, false, false, false, false, false, false, true}},
  };
  for (const Case& c : cases) {
    nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(D, 2).causal(c.causal));
    prepare(*mha, 9);
    const Tensor x = random_leaf({B, N, D}, 10);
    const Tensor mask = c.padded.empty() ? Tensor() : bool_mask(c.padded, {B, N});
    INFO(c.name);
    require_gradcheck([&](const std::vector<Tensor>&) { return mha(x, Tensor(), Tensor(), mask); },
                      {x, mha->q_proj->weight, mha->k_proj->bias, mha->v_proj->weight, mha->out_proj->bias});
  }
}

TEST_CASE("gradcheck: MultiHeadAttention cross-attention", "[nn][gradcheck]") {
  nn::MultiHeadAttention mha(4, 2);
  prepare(*mha, 11);
  const Tensor query = random_leaf({2, 2, 4}, 12);
  const Tensor key = random_leaf({2, 3, 4}, 13);
  const Tensor value = random_leaf({2, 3, 4}, 14);
  const Tensor mask = bool_mask({false, true, false, false, false, true}, {2, 3});
  require_gradcheck([&](const std::vector<Tensor>&) { return mha(query, key, value, mask); },
                    {query, key, value, mha->k_proj->weight});
}

TEST_CASE("gradcheck: TransformerEncoderLayer pre-LN and post-LN", "[nn][gradcheck]") {
  for (const bool norm_first : {false, true}) {
    nn::TransformerEncoderLayer layer(nn::TransformerEncoderLayerOptions(4, 2)
                                          .dim_feedforward(6)
                                          .dropout(0.0)
                                          .activation("gelu")
                                          .norm_first(norm_first));
    prepare(*layer, 15);
    const Tensor x = random_leaf({2, 3, 4}, 16);
    const Tensor mask = bool_mask({false, false, true, false, false, false}, {2, 3});
    INFO("norm_first " << norm_first);
    require_gradcheck([&](const std::vector<Tensor>&) { return layer(x, mask); },
                      {x, layer->linear1->weight, layer->norm1->weight, layer->norm2->bias,
                       layer->self_attn->k_proj->weight, layer->linear2->bias});
  }
}
