// LRA classifier: embeddings, encoder, pooling and head.
#include <luna/models/lra_classifier.h>
#include <luna/autograd/grad_mode.h>
#include <luna/nn/init.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/indexing.h>
#include <luna/ops/reduce.h>

#include <cmath>

namespace luna::models {

LraClassifierImpl::LraClassifierImpl(const LraClassifierOptions& o) : nn::Module("LraClassifier"), options_(o) {
  LUNA_CHECK(o.vocab_size() > 0 && o.num_classes() > 1 && o.max_len() > 0, "LraClassifier: vocab_size (",
             o.vocab_size(), "), num_classes (", o.num_classes(), ") and max_len (", o.max_len(),
             ") must be positive (at least 2 classes)");
  LUNA_CHECK(o.pooling() == "mean" || o.pooling() == "cls", "LraClassifier: pooling must be 'mean' or 'cls', got '",
             o.pooling(), "'");
  LUNA_CHECK(o.positions() == "learned" || o.positions() == "sinusoidal",
             "LraClassifier: positions must be 'learned' or 'sinusoidal', got '", o.positions(), "'");
  LUNA_CHECK(o.interaction() == "concat4" || o.interaction() == "concat2",
             "LraClassifier: interaction must be 'concat4' or 'concat2', got '", o.interaction(), "'");
  LUNA_CHECK(o.token_embedding_std() > 0 && o.position_embedding_std() > 0,
             "LraClassifier: token_embedding_std (", o.token_embedding_std(), ") and position_embedding_std (",
             o.position_embedding_std(), ") must be positive");
  token_embedding = register_module("token_embedding", nn::Embedding(o.vocab_size(), o.dim(), o.padding_idx()));
  {
    NoGradGuard no_grad;
    nn::init::normal_(token_embedding->weight, 0.0, o.token_embedding_std());
    if (o.padding_idx() >= 0 && o.padding_idx() < o.vocab_size()) token_embedding->weight.select(0, o.padding_idx()).zero_();
  }
  if (o.positions() == "learned") {
    position_embedding = register_module("position_embedding", nn::Embedding(o.max_len(), o.dim()));
    NoGradGuard no_grad;
    nn::init::normal_(position_embedding->weight, 0.0, o.position_embedding_std());
  } else {
    // Fixed sin/cos table (Vaswani et al.): even features sin, odd features cos.
    std::vector<float> table(size_t(o.max_len() * o.dim()));
    for (int64_t pos = 0; pos < o.max_len(); ++pos)
      for (int64_t i = 0; i < o.dim(); ++i) {
        const double rate = std::pow(10000.0, -double(2 * (i / 2)) / double(o.dim()));
        table[size_t(pos * o.dim() + i)] = float(i % 2 == 0 ? std::sin(pos * rate) : std::cos(pos * rate));
      }
    sinusoidal_ = tensor(table, {o.max_len(), o.dim()});
  }
  embedding_dropout = register_module("embedding_dropout", nn::Dropout(o.dropout()));
  const auto layer = nn::TransformerEncoderLayerOptions(o.dim(), o.heads())
                         .dim_feedforward(o.ffn_dim())
                         .dropout(o.dropout())
                         .activation(o.activation())
                         .norm_first(o.norm_first())
                         .attention(o.attention())
                         .luna(o.luna())
                         .performer_features(o.performer_features())
                         .performer_redraw_interval(o.performer_redraw_interval())
                         .cosformer_max_len(o.max_len());
  encoder = register_module("encoder", nn::TransformerEncoder(layer, o.depth(), o.final_norm()));
  const int64_t features = !o.dual() ? o.dim() : (o.interaction() == "concat4" ? 4 * o.dim() : 2 * o.dim());
  head = register_module("head", nn::MLP(features, o.head_hidden(), o.num_classes(), "relu", 0.0));
}

Tensor LraClassifierImpl::encode(const Tensor& tokens) const {
  LUNA_CHECK(tokens.defined() && tokens.dim() == 2 && (tokens.dtype() == kInt64 || tokens.dtype() == kInt32),
             "LraClassifier: tokens must be an int64 tensor [B, N], got ",
             tokens.defined() ? tokens.str() : "undefined");
  const int64_t n = tokens.size(1);
  LUNA_CHECK(n <= options_.max_len(), "LraClassifier: sequence length ", n, " exceeds max_len ", options_.max_len());
  const Tensor key_padding_mask = tokens.eq(wrap_scalar(options_.padding_idx(), tokens));  // (B, N), true = pad
  Tensor x = token_embedding(tokens);                                                        // (B, N, D)
  if (!position_embedding.is_empty()) {
    x = x + position_embedding(arange(n, TensorOptions(kInt64).device(tokens.device())));    // + (N, D)
  } else {
    x = x + sinusoidal_.to(x.device(), x.dtype()).narrow(0, 0, n);
  }
  x = encoder(embedding_dropout(x), key_padding_mask);                                       // (B, N, D)
  if (options_.pooling() == "cls") return x.select(1, 0);                                    // (B, D)
  // Mean over real tokens; a row of only padding pools to zeros instead of 0/0.
  const Tensor keep = tokens.ne(wrap_scalar(options_.padding_idx(), tokens)).to(x.dtype()).unsqueeze(-1);  // (B, N, 1)
  const Tensor count = keep.sum({1}).clamp(1.0, std::nullopt);                               // (B, 1)
  return (x * keep).sum({1}) / count;                                                        // (B, D)
}

Tensor LraClassifierImpl::forward(const Tensor& tokens) const {
  LUNA_CHECK(!options_.dual(), "LraClassifier: this model is dual (retrieval); call forward(tokens1, tokens2)");
  return head(encode(tokens));
}

Tensor LraClassifierImpl::forward(const Tensor& tokens1, const Tensor& tokens2) const {
  LUNA_CHECK(options_.dual(), "LraClassifier: this model takes one input; build it with .dual(true) for retrieval");
  LUNA_CHECK(tokens1.defined() && tokens2.defined() && tokens1.size(0) == tokens2.size(0),
             "LraClassifier: the two token batches must have the same batch size");
  const Tensor e1 = encode(tokens1), e2 = encode(tokens2);  // (B, D) each
  const Tensor features = options_.interaction() == "concat4" ? cat({e1, e2, e1 * e2, e1 - e2}, 1) : cat({e1, e2}, 1);
  return head(features);
}

}  // namespace luna::models
