// Basic nn layers with LibTorch's names, argument order, defaults and parameter names:
// Linear, LayerNorm, Embedding, Dropout, the activations GELU / ReLU / Tanh, and MLP.
// Containers (Sequential, ModuleList) live in nn/containers.h.
#pragma once
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <luna/core/generator.h>
#include <luna/nn/module.h>
#include <luna/nn/options.h>

namespace luna::nn {

// ---- Linear: y = x Wᵀ + b ----

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  LUNA_ARG(int64_t, in_features);
  LUNA_ARG(int64_t, out_features);
  LUNA_ARG(bool, bias) = true;
};

class LinearImpl : public Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  explicit LinearImpl(const LinearOptions& options);

  // PyTorch's default: weight kaiming_uniform_(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and
  // bias U(-1/sqrt(in), 1/sqrt(in)).
  void reset_parameters(Generator* generator = nullptr);
  // input [..., in_features] -> [..., out_features]
  Tensor forward(const Tensor& input) const;
  void pretty_print(std::ostream& os) const override;

  LinearOptions options;
  Tensor weight;  // (out_features, in_features)
  Tensor bias;    // (out_features), undefined when bias = false
};
LUNA_MODULE(Linear);

// ---- LayerNorm over the trailing normalized_shape dims ----

struct LayerNormOptions {
  LayerNormOptions(std::vector<int64_t> normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  LUNA_ARG(std::vector<int64_t>, normalized_shape);
  LUNA_ARG(double, eps) = 1e-5;
  LUNA_ARG(bool, elementwise_affine) = true;
  // Without it there is no `bias` parameter (PyTorch >= 2.1); needs elementwise_affine.
  LUNA_ARG(bool, bias) = true;
};

class LayerNormImpl : public Module {
 public:
  // LayerNorm(64) normalises the last dim of width 64.
  explicit LayerNormImpl(int64_t normalized_size, double eps = 1e-5, bool elementwise_affine = true);
  LayerNormImpl(std::vector<int64_t> normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  explicit LayerNormImpl(const LayerNormOptions& options);

  // weight = 1, bias = 0.
  void reset_parameters();
  Tensor forward(const Tensor& input) const;
  void pretty_print(std::ostream& os) const override;

  LayerNormOptions options;
  Tensor weight;  // normalized_shape, undefined without elementwise_affine
  Tensor bias;    // normalized_shape, undefined without elementwise_affine or bias
};
LUNA_MODULE(LayerNorm);

// ---- Embedding: a lookup table of num_embeddings rows ----

struct EmbeddingOptions {
  EmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  LUNA_ARG(int64_t, num_embeddings);
  LUNA_ARG(int64_t, embedding_dim);
  // A row that stays zero and gets no gradient; -1 (any negative value) means none. Unlike
  // PyTorch, a negative index does not count from the end.
  LUNA_ARG(int64_t, padding_idx) = -1;
};

class EmbeddingImpl : public Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx = -1);
  explicit EmbeddingImpl(const EmbeddingOptions& options);

  // N(0, 1) with the padding row zeroed, as PyTorch.
  void reset_parameters(Generator* generator = nullptr);
  // indices int64 or int32 [...] -> [..., embedding_dim]
  Tensor forward(const Tensor& indices) const;
  void pretty_print(std::ostream& os) const override;

  EmbeddingOptions options;
  Tensor weight;  // (num_embeddings, embedding_dim)
};
LUNA_MODULE(Embedding);

// ---- Dropout: inverted dropout while training, identity in eval ----

class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(double p = 0.5);
  Tensor forward(const Tensor& input) const;
  void pretty_print(std::ostream& os) const override;

  double p;
};
LUNA_MODULE(Dropout);

// ---- Activations. The common base lets layers hold "an activation chosen by name". ----

class ActivationImpl : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& input) const = 0;
};

class GELUImpl : public ActivationImpl {
 public:
  // approximate: "none" (the exact erf form) or "tanh".
  explicit GELUImpl(std::string approximate = "none");
  Tensor forward(const Tensor& input) const override;
  void pretty_print(std::ostream& os) const override;

  std::string approximate;
};
LUNA_MODULE(GELU);

class ReLUImpl : public ActivationImpl {
 public:
  ReLUImpl() : ActivationImpl("ReLU") {}
  Tensor forward(const Tensor& input) const override;
};
LUNA_MODULE(ReLU);

class TanhImpl : public ActivationImpl {
 public:
  TanhImpl() : ActivationImpl("Tanh") {}
  Tensor forward(const Tensor& input) const override;
};
LUNA_MODULE(Tanh);

// "gelu" | "relu" | "tanh" -> a new activation module; `owner` names the caller in the error.
std::shared_ptr<ActivationImpl> make_activation(const std::string& name, const std::string& owner);

// ---- MLP: fc1 -> activation -> dropout -> fc2 ----

class MLPImpl : public Module {
 public:
  // activation: "gelu" | "relu" | "tanh". Children: fc1, act, drop, fc2 (only fc1 and fc2 hold
  // parameters, so the checkpoint keys are fc1.weight, fc1.bias, fc2.weight, fc2.bias).
  MLPImpl(int64_t in_features, int64_t hidden_features, int64_t out_features, const std::string& activation = "gelu",
          double dropout = 0.0);
  // input [..., in_features] -> [..., out_features]
  Tensor forward(const Tensor& input) const;

  Linear fc1{nullptr};
  std::shared_ptr<ActivationImpl> act;
  Dropout drop{nullptr};
  Linear fc2{nullptr};
};
LUNA_MODULE(MLP);

}  // namespace luna::nn
