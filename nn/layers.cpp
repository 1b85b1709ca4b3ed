// Linear, LayerNorm, Embedding, Dropout, activations and MLP: parameter registration and
// PyTorch's default initialisation, input checks that name the module, and the forward passes
// (each a thin call into ops/).
#include <luna/nn/layers.h>

#include <cmath>

#include <luna/autograd/grad_mode.h>
#include <luna/nn/init.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/indexing.h>
#include <luna/ops/linalg.h>
#include <luna/ops/nn_functional.h>

namespace luna::nn {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) { return Dims(shape).str(); }

// Rejects an undefined or non-floating input with a message naming the module.
void check_floating_input(const Tensor& input, const char* module) {
  LUNA_CHECK(input.defined(), module, ": input is undefined");
  LUNA_CHECK(input.is_floating_point(), module, ": input must be floating point, got ", input.str());
}

}  // namespace

// ---- Linear ----

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : LinearImpl(LinearOptions(in_features, out_features).bias(bias)) {}

LinearImpl::LinearImpl(const LinearOptions& options_) : Module("Linear"), options(options_) {
  LUNA_CHECK(options.in_features() >= 0 && options.out_features() >= 0, "Linear: in_features (",
             options.in_features(), ") and out_features (", options.out_features(), ") must be non-negative");
  weight = register_parameter("weight", empty({options.out_features(), options.in_features()}));
  if (options.bias()) bias = register_parameter("bias", empty({options.out_features()}));
  reset_parameters();
}

void LinearImpl::reset_parameters(Generator* generator) {
  // kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / 6), bound sqrt(3) * gain / sqrt(fan_in) = 1/sqrt(fan_in).
  if (options.in_features() > 0) {
    init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", generator);
  }
  if (bias.defined()) {
    const double bound = options.in_features() > 0 ? 1.0 / std::sqrt(double(options.in_features())) : 0.0;
    init::uniform_(bias, -bound, bound, generator);
  }
}

Tensor LinearImpl::forward(const Tensor& input) const {
  check_floating_input(input, "Linear");
  LUNA_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(), "Linear: expected input of shape [..., ",
             options.in_features(), "] (last dim = in_features), got ", input.sizes());
  return linear(input, weight, bias);
}

void LinearImpl::pretty_print(std::ostream& os) const {
  os << "Linear(in_features=" << options.in_features() << ", out_features=" << options.out_features()
     << ", bias=" << (options.bias() ? "true" : "false") << ")";
}

// ---- LayerNorm ----

LayerNormImpl::LayerNormImpl(int64_t normalized_size, double eps, bool elementwise_affine)
    : LayerNormImpl(LayerNormOptions({normalized_size}).eps(eps).elementwise_affine(elementwise_affine)) {}

LayerNormImpl::LayerNormImpl(std::vector<int64_t> normalized_shape, double eps, bool elementwise_affine)
    : LayerNormImpl(LayerNormOptions(std::move(normalized_shape)).eps(eps).elementwise_affine(elementwise_affine)) {}

LayerNormImpl::LayerNormImpl(const LayerNormOptions& options_) : Module("LayerNorm"), options(options_) {
  const auto& shape = options.normalized_shape();
  LUNA_CHECK(!shape.empty(), "LayerNorm: normalized_shape is empty; give the trailing dims to normalise over");
  for (int64_t s : shape)
    LUNA_CHECK(s > 0, "LayerNorm: normalized_shape ", shape_str(shape), " must have positive sizes");
  LUNA_CHECK(options.eps() >= 0, "LayerNorm: eps must be non-negative, got ", options.eps());
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", empty(Dims(shape)));
    if (options.bias()) bias = register_parameter("bias", empty(Dims(shape)));
  }
  reset_parameters();
}

void LayerNormImpl::reset_parameters() {
  if (!options.elementwise_affine()) return;
  init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor LayerNormImpl::forward(const Tensor& input) const {
  check_floating_input(input, "LayerNorm");
  const auto& shape = options.normalized_shape();
  const int k = int(shape.size());
  bool matches = input.dim() >= k;
  for (int i = 0; matches && i < k; ++i) matches = input.size(input.dim() - k + i) == shape[size_t(i)];
  LUNA_CHECK(matches, "LayerNorm: expected input of shape [..., ", Dims(shape).str().substr(1),
             " (trailing dims = normalized_shape), got ", input.sizes());
  return layer_norm(input, Dims(shape), weight, bias, options.eps());
}

void LayerNormImpl::pretty_print(std::ostream& os) const {
  os << "LayerNorm((";
  for (int64_t s : options.normalized_shape()) os << s << ",";
  os << "), eps=" << options.eps() << ", elementwise_affine=" << (options.elementwise_affine() ? "true" : "false");
  if (options.elementwise_affine() && !options.bias()) os << ", bias=false";
  os << ")";
}

// ---- Embedding ----

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx)
    : EmbeddingImpl(EmbeddingOptions(num_embeddings, embedding_dim).padding_idx(padding_idx)) {}

EmbeddingImpl::EmbeddingImpl(const EmbeddingOptions& options_) : Module("Embedding"), options(options_) {
  LUNA_CHECK(options.num_embeddings() > 0 && options.embedding_dim() > 0, "Embedding: num_embeddings (",
             options.num_embeddings(), ") and embedding_dim (", options.embedding_dim(), ") must be positive");
  LUNA_CHECK(options.padding_idx() < options.num_embeddings(), "Embedding: padding_idx ", options.padding_idx(),
             " is out of range for ", options.num_embeddings(), " embeddings (expected -1 for none or [0, ",
             options.num_embeddings() - 1, "])");
  if (options.padding_idx() < 0) options.padding_idx(-1);
  weight = register_parameter("weight", empty({options.num_embeddings(), options.embedding_dim()}));
  reset_parameters();
}

void EmbeddingImpl::reset_parameters(Generator* generator) {
  init::normal_(weight, 0.0, 1.0, generator);
  if (options.padding_idx() >= 0) {
    NoGradGuard no_grad;
    weight.select(0, options.padding_idx()).zero_();
  }
}

Tensor EmbeddingImpl::forward(const Tensor& indices) const {
  LUNA_CHECK(indices.defined(), "Embedding: indices are undefined");
  LUNA_CHECK(indices.dtype() == kInt64 || indices.dtype() == kInt32, "Embedding: indices must be int64 or int32, got ",
             indices.str(), "; convert them with .to(kInt64)");
  return embedding(indices, weight, options.padding_idx());
}

void EmbeddingImpl::pretty_print(std::ostream& os) const {
  os << "Embedding(" << options.num_embeddings() << ", " << options.embedding_dim();
  if (options.padding_idx() >= 0) os << ", padding_idx=" << options.padding_idx();
  os << ")";
}

// ---- Dropout ----

DropoutImpl::DropoutImpl(double p_) : Module("Dropout"), p(p_) {
  LUNA_CHECK(p >= 0.0 && p <= 1.0, "Dropout: probability p must be in [0, 1], got ", p);
}

Tensor DropoutImpl::forward(const Tensor& input) const { return dropout(input, p, is_training()); }

void DropoutImpl::pretty_print(std::ostream& os) const { os << "Dropout(p=" << p << ")"; }

// ---- activations ----

GELUImpl::GELUImpl(std::string approximate_) : ActivationImpl("GELU"), approximate(std::move(approximate_)) {
  LUNA_CHECK(approximate == "none" || approximate == "tanh", "GELU: approximate must be 'none' or 'tanh', got '",
             approximate, "'");
}

Tensor GELUImpl::forward(const Tensor& input) const { return gelu(input, approximate); }

void GELUImpl::pretty_print(std::ostream& os) const { os << "GELU(approximate='" << approximate << "')"; }

Tensor ReLUImpl::forward(const Tensor& input) const { return relu(input); }

Tensor TanhImpl::forward(const Tensor& input) const { return tanh(input); }

std::shared_ptr<ActivationImpl> make_activation(const std::string& name, const std::string& owner) {
  if (name == "gelu") return std::make_shared<GELUImpl>();
  if (name == "relu") return std::make_shared<ReLUImpl>();
  if (name == "tanh") return std::make_shared<TanhImpl>();
  LUNA_FAIL(owner, ": unknown activation '", name, "' (expected gelu, relu or tanh)");
}

// ---- MLP ----

MLPImpl::MLPImpl(int64_t in_features, int64_t hidden_features, int64_t out_features, const std::string& activation,
                 double dropout)
    : Module("MLP") {
  fc1 = register_module("fc1", Linear(in_features, hidden_features));
  act = register_module("act", make_activation(activation, "MLP"));
  drop = register_module("drop", Dropout(dropout));
  fc2 = register_module("fc2", Linear(hidden_features, out_features));
}

Tensor MLPImpl::forward(const Tensor& input) const {
  check_floating_input(input, "MLP");
  LUNA_CHECK(input.dim() >= 1 && input.size(-1) == fc1->options.in_features(), "MLP: expected input of shape [..., ",
             fc1->options.in_features(), "] (last dim = in_features), got ", input.sizes());
  return fc2(drop(act->forward(fc1(input))));
}

}  // namespace luna::nn
