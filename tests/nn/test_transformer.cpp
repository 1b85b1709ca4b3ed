// Tests of nn::TransformerEncoderLayer / nn::TransformerEncoder (nn/transformer.h): post-LN and
// pre-LN block structure against compositions written out by hand, activations, dropout in
// train/eval, padding invariance through a stack, option pass-through and input errors.
#include "test_util.h"

#include <cmath>

#include <luna/nn/transformer.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

Tensor random_tensor(const Dims& shape, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return rand(shape, TensorOptions(kFloat32), &gen) * 2.0 - 1.0;
}

void randomize_parameters(nn::Module& module, uint64_t seed) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const Tensor& p : module.parameters()) uniform_(p, -0.5, 0.5, &gen);
}

// Layer norm over the last dim with the module's own affine parameters, as a loop.
std::vector<double> layer_norm_loop(const std::vector<double>& x, const nn::LayerNormImpl& norm) {
  const std::vector<double> w = values(norm.weight), b = values(norm.bias);
  const size_t D = w.size();
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / D; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < D; ++i) mean += x[r * D + i];
    mean /= double(D);
    for (size_t i = 0; i < D; ++i) var += (x[r * D + i] - mean) * (x[r * D + i] - mean);
    var /= double(D);
    for (size_t i = 0; i < D; ++i)
      y[r * D + i] = (x[r * D + i] - mean) / std::sqrt(var + norm.options.eps()) * w[i] + b[i];
  }
  return y;
}

std::vector<double> add(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
  return out;
}

// One encoder layer in eval mode written out step by step: the attention and the two linears run
// through the layer's own (separately tested) submodules, the residuals, layer norms and the
// activation are computed here.
std::vector<double> reference_layer(const Tensor& x, const nn::TransformerEncoderLayerImpl& layer,
                                    const Tensor& key_padding_mask = Tensor()) {
  const Dims shape = x.sizes();
  auto as_tensor = [&](const std::vector<double>& v, const Dims& s) { return tensor(v, s).to(kFloat32); };
  auto attention = [&](const std::vector<double>& input) {
    const Tensor t = as_tensor(input, shape);
    return values(layer.self_attn(t, Tensor(), Tensor(), key_padding_mask));
  };
  auto feed_forward = [&](const std::vector<double>& input) {
    std::vector<double> hidden = values(layer.linear1(as_tensor(input, shape)));
    for (double& h : hidden)
      h = layer.options.activation() == "relu" ? std::max(h, 0.0) : 0.5 * h * (1 + std::erf(h / std::sqrt(2.0)));
    Dims hidden_shape = shape;
    hidden_shape[2] = layer.options.dim_feedforward();
    return values(layer.linear2(as_tensor(hidden, hidden_shape)));
  };
  const std::vector<double> input = values(x);
  if (layer.options.norm_first()) {
    const std::vector<double> h = add(input, attention(layer_norm_loop(input, *layer.norm1)));
    return add(h, feed_forward(layer_norm_loop(h, *layer.norm2)));
  }
  const std::vector<double> h = layer_norm_loop(add(input, attention(input)), *layer.norm1);
  return layer_norm_loop(add(h, feed_forward(h)), *layer.norm2);
}

}  // namespace

TEST_CASE("TransformerEncoderLayer: post-LN and pre-LN blocks", "[nn][transformer]") {
  for (const bool norm_first : {false, true}) {
    for (const std::string activation : {"relu", "gelu"}) {
      nn::TransformerEncoderLayer layer(nn::TransformerEncoderLayerOptions(8, 2)
                                            .dim_feedforward(12)
                                            .norm_first(norm_first)
                                            .activation(activation)
                                            .layer_norm_eps(1e-3));
      randomize_parameters(*layer, 1);
      layer->eval();  // dropout 0.1 by default
      const Tensor x = random_tensor({2, 5, 8}, 2);
      INFO("norm_first " << norm_first << " activation " << activation);
      require_close(layer(x), reference_layer(x, *layer), 1e-4, 1e-5);
      std::vector<bool> padded(10, false);
      padded[3] = padded[4] = true;
      const Tensor mask = tensor(padded, {2, 5});
      require_close(layer(x, mask), reference_layer(x, *layer, mask), 1e-4, 1e-5);
    }
  }
}

TEST_CASE("TransformerEncoderLayer: PyTorch defaults and children", "[nn][transformer]") {
  nn::TransformerEncoderLayer layer(16, 4);
  REQUIRE(layer->options.dim_feedforward() == 2048);
  REQUIRE(layer->options.dropout() == 0.1);
  REQUIRE(layer->options.activation() == "relu");
  REQUIRE(!layer->options.norm_first());
  REQUIRE(layer->options.layer_norm_eps() == 1e-5);
  REQUIRE(layer->linear1->weight.sizes() == Dims({2048, 16}));
  REQUIRE(layer->self_attn->options.dropout() == 0.1);
  std::vector<std::string> children;
  for (const auto& [name, _] : layer->named_children()) children.push_back(name);
  REQUIRE(children == std::vector<std::string>{"self_attn", "linear1", "dropout", "linear2", "norm1", "norm2",
                                               "dropout1", "dropout2"});

  // bias = false removes every bias, the layer norms' included (PyTorch >= 2.1).
  nn::TransformerEncoderLayer no_bias(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(8).bias(false));
  for (const auto& [name, _] : no_bias->named_parameters()) REQUIRE(name.ends_with("weight"));
  REQUIRE(no_bias->named_parameters().size() == 8);
}

TEST_CASE("TransformerEncoderLayer: dropout acts only while training", "[nn][transformer]") {
  nn::TransformerEncoderLayer layer(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(16).dropout(0.3));
  const Tensor x = random_tensor({2, 4, 8}, 3);
  layer->eval();
  const std::vector<double> eval_out = values(layer(x));
  REQUIRE(values(layer(x)) == eval_out);
  layer->train();
  REQUIRE(values(layer(x)) != eval_out);

  nn::TransformerEncoderLayer no_dropout(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(16).dropout(0.0));
  const std::vector<double> train_out = values(no_dropout(x));
  no_dropout->eval();
  REQUIRE(values(no_dropout(x)) == train_out);
}

TEST_CASE("TransformerEncoder: stacked layers, final norm and padding invariance", "[nn][transformer]") {
  const auto options = nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(16).norm_first(true);
  nn::TransformerEncoder encoder(options, 3, /*final_norm=*/true);
  randomize_parameters(*encoder, 4);
  encoder->eval();
  REQUIRE(encoder->layers->size() == 3);
  const Tensor x = random_tensor({2, 6, 8}, 5);

  Tensor manual = x;
  for (const auto& module : *encoder->layers)
    manual = std::dynamic_pointer_cast<nn::TransformerEncoderLayerImpl>(module)->forward(manual);
  manual = encoder->norm(manual);
  require_close(values(encoder(x)), values(manual), 0, 0);
  // Each layer is initialised independently.
  REQUIRE(values(encoder->layers->at<nn::TransformerEncoderLayerImpl>(0).linear1->weight) !=
          values(encoder->layers->at<nn::TransformerEncoderLayerImpl>(1).linear1->weight));

  // Padded keys never leak into the real positions, through every layer.
  std::vector<bool> padded(12, false);
  for (int j = 3; j < 6; ++j) padded[size_t(j)] = true;
  const Tensor out = encoder(x, tensor(padded, {2, 6}));
  require_close(values(out.narrow(0, 0, 1).narrow(1, 0, 3)), values(encoder(x.narrow(0, 0, 1).narrow(1, 0, 3))),
                1e-5, 1e-6);
  require_close(values(out.narrow(0, 1, 1)), values(encoder(x.narrow(0, 1, 1))), 1e-5, 1e-6);

  nn::TransformerEncoder no_norm(options, 1);
  REQUIRE(no_norm->norm.is_empty());
  REQUIRE(no_norm->named_children().size() == 1);
}

TEST_CASE("TransformerEncoderLayer: options pass through and bad input is rejected", "[nn][transformer][errors]") {
  REQUIRE_THROWS_WITH(nn::TransformerEncoderLayer(nn::TransformerEncoderLayerOptions(8, 2).attention("reformer")),
                      Contains("'reformer'") && Contains("available kinds: softmax"));
  REQUIRE_THROWS_WITH(nn::TransformerEncoderLayer(nn::TransformerEncoderLayerOptions(8, 2).activation("tanh")),
                      Contains("TransformerEncoderLayer") && Contains("'tanh'"));
  REQUIRE_THROWS_WITH(nn::TransformerEncoderLayer(10, 4), Contains("embed_dim 10") && Contains("num_heads 4"));
  REQUIRE_THROWS_WITH(nn::TransformerEncoder(nn::TransformerEncoderLayerOptions(8, 2), 0), Contains("num_layers"));

  nn::TransformerEncoderLayer causal(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(8).causal(true));
  REQUIRE(causal->self_attn->options.causal());
  causal->eval();
  const Tensor x = random_tensor({1, 5, 8}, 6);
  Tensor changed = x.clone();
  {
    NoGradGuard no_grad;
    changed.narrow(1, 3, 2).fill_(3.0);
  }
  require_close(values(causal(changed).narrow(1, 0, 3)), values(causal(x).narrow(1, 0, 3)), 1e-5, 1e-6);

  nn::TransformerEncoderLayer layer(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(8));
  REQUIRE_THROWS_WITH(layer(zeros({2, 5, 7})), Contains("TransformerEncoderLayer") && Contains("[B, N, 8]") &&
                                                   Contains("[2,5,7]"));
  REQUIRE_THROWS_WITH(layer(zeros({2, 5, 8}), zeros({2, 5}, TensorOptions(kInt64))),
                      Contains("key_padding_mask") && Contains("bool"));
  REQUIRE_THROWS_WITH(layer(zeros({2, 5, 8}), zeros({5, 2}, TensorOptions(kBool))),
                      Contains("key_padding_mask") && Contains("[2,5]") && Contains("[5,2]"));
}
