// Fused neural-network ops (torch.nn.functional): one pass over memory forward and backward.
#pragma once
#include <string>

#include <luna/core/generator.h>
#include <luna/core/tensor.h>

namespace luna {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Normalises over the trailing dims named by normalized_shape; weight/bias of that shape or undefined.
Tensor layer_norm(const Tensor& x, const Dims& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* generator = nullptr);
// residual + dropout(x, p, training, generator) in one pass over memory where the backend has the
// fused kernel (the CPU) and x and residual have one shape, dtype and device, else composed: the same
// values, mask, random draws and gradients either way. A transformer block's dropout and residual
// connection (nn::TransformerEncoderLayer).
Tensor dropout_add(const Tensor& x, const Tensor& residual, double p = 0.5, bool training = true,
                   Generator* generator = nullptr);
// dropout(gelu(x), p, training, generator) with the exact GELU, in one pass over memory where the
// backend has the fused kernel (the CPU), else composed: the same values, mask, random draws and
// gradients either way. A transformer FFN's activation and its dropout (nn::TransformerEncoderLayer).
Tensor gelu_dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* generator = nullptr);

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  std::string reduction = "mean";  // "mean" | "sum" | "none"
};
// logits [N, C] (or [C]), target int64 [N] (or []) class indices.
// Mean reduction divides by the number of non-ignored targets, as PyTorch does.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options = {});
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");

}  // namespace luna
