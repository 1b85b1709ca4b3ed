// Elementwise ops with full broadcasting and PyTorch type promotion. Each is also a Tensor method
// where PyTorch has one (x.exp(), x.add(y)).
#pragma once
#include <optional>
#include <string>

#include <luna/core/tensor.h>

namespace luna {

// ---- binary (ops/binary.cpp) ----
Tensor add(const Tensor& a, const Tensor& b, Scalar alpha = 1);
Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha = 1);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // true division: integers divide in float32
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// Comparisons and logical ops return bool tensors and carry no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
// torch.result_type: the dtype a binary op computes in. Like PyTorch, a 0-dim operand only
// changes the result when it is of a higher category (bool < integer < floating) than the other:
// float32 [N] + float64 0-dim stays float32, int32 [N] + float64 0-dim becomes float64.
DType result_type(const Tensor& a, const Tensor& b);
// A 0-dim tensor holding `value` in the dtype an op with `like` computes in (PyTorch's rule for
// Python numbers: a float scalar makes an integer tensor float32, otherwise `like` wins).
Tensor wrap_scalar(Scalar value, const Tensor& like);

// ---- unary and the rest (ops/unary.cpp, ops/select.cpp) ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
// approximate: "none" (erf form, the default) or "tanh".
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor pow(const Tensor& base, Scalar exponent);
Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max = std::nullopt);
// cond ? a : b with broadcasting; cond is bool.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& condition, const Tensor& a, Scalar b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value);

}  // namespace luna
