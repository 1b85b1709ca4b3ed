// Fused nn ops (torch.nn.functional): each validates its arguments, runs one backend kernel and
// records its backward formula right here. Loss reductions go through ordinary ops (sum, div), so
// their gradients come from those ops.
#include <luna/ops/nn_functional.h>
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/reduce.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

void check_floating_input(const Tensor& x, const char* op, const char* what = "input") {
  LUNA_CHECK(x.defined(), op, ": ", what, " is undefined");
  LUNA_CHECK(x.is_floating_point(), op, ": ", what, " dtype must be floating point, got ", x.dtype(),
             "; convert it with .to(kFloat32)");
}

void check_reduction(const std::string& reduction, const char* op) {
  LUNA_CHECK(reduction == "mean" || reduction == "sum" || reduction == "none", op, ": reduction must be 'mean', ",
             "'sum' or 'none', got '", reduction, "'");
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_floating_input(x, name);
  const int d = wrap_dim(dim, x.dim(), name);
  // A 0-dim tensor is a softmax over a single element.
  const bool scalar = x.dim() == 0;
  const Tensor input = (scalar ? x.detach().reshape({1}) : x.detach()).contiguous();
  Tensor out = empty_tensor(input.sizes(), x.dtype(), x.device());
  backend_for(out).softmax_forward(input, out, d, log);
  if (scalar) out = out.reshape({});
  return record(name, out, {x}, {out}, [d, log](const Tensor& g, const Saved& s) {
    const Tensor y = s[0].dim() == 0 ? s[0].reshape({1}) : s[0];
    const Tensor grad_out = g.reshape(y.sizes()).contiguous();
    Tensor grad_in = empty_tensor(y.sizes(), y.dtype(), y.device());
    backend_for(y).softmax_backward(y, grad_out, grad_in, d, log);
    return Grads{grad_in.reshape(s[0].sizes())};
  });
}

// weight or bias of layer_norm: undefined, or normalized_shape-shaped like the input.
void check_layer_norm_param(const Tensor& param, const char* what, const Tensor& x, const Dims& normalized_shape) {
  if (!param.defined()) return;
  LUNA_CHECK(param.sizes() == normalized_shape, "layer_norm: ", what, " of shape ", param.sizes(),
             " does not match normalized_shape ", normalized_shape);
  LUNA_CHECK(param.dtype() == x.dtype(), "layer_norm: ", what, " has dtype ", param.dtype(), " but the input has ",
             x.dtype(), "; convert one of them");
  LUNA_CHECK(param.device() == x.device(), "layer_norm: ", what, " is on ", param.device(), " but the input is on ",
             x.device());
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }
Tensor Tensor::softmax(int64_t dim) const { return luna::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return luna::log_softmax(*this, dim); }

Tensor layer_norm(const Tensor& x, const Dims& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_floating_input(x, "layer_norm");
  const int k = normalized_shape.size();
  LUNA_CHECK(k >= 1, "layer_norm: normalized_shape is empty; name the trailing dims to normalise over");
  bool trailing_match = x.dim() >= k;
  for (int i = 0; trailing_match && i < k; ++i) trailing_match = x.sizes()[x.dim() - k + i] == normalized_shape[i];
  LUNA_CHECK(trailing_match, "layer_norm: input of shape ", x.sizes(), " does not end in normalized_shape ",
             normalized_shape);
  check_layer_norm_param(weight, "weight", x, normalized_shape);
  check_layer_norm_param(bias, "bias", x, normalized_shape);
  LUNA_CHECK(eps >= 0, "layer_norm: eps must be non-negative, got ", eps);

  int64_t rows = 1;
  for (int d = 0; d < x.dim() - k; ++d) rows *= x.sizes()[d];
  // Statistics stay in float32 (float64 for float64 input) whatever the storage type.
  const DType stat_dtype = x.dtype() == kFloat64 ? kFloat64 : kFloat32;
  const Tensor input = x.detach().contiguous();
  const Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = empty_tensor(x.sizes(), x.dtype(), x.device());
  Tensor mean = empty_tensor({rows}, stat_dtype, x.device());  // (rows)
  Tensor rstd = empty_tensor({rows}, stat_dtype, x.device());  // (rows)
  backend_for(out).layer_norm_forward(input, w, b, eps, out, mean, rstd);

  const bool weight_grad = ops::needs_grad({weight}), bias_grad = ops::needs_grad({bias});
  return record("layer_norm", out, {x, weight, bias}, {input, mean, rstd, w},
                [normalized_shape, weight_grad, bias_grad](const Tensor& g, const Saved& s) {
                  const Tensor& in = s[0];
                  Tensor grad_in = empty_tensor(in.sizes(), in.dtype(), in.device());
                  Tensor grad_weight, grad_bias;
                  if (weight_grad) grad_weight = empty_tensor(normalized_shape, in.dtype(), in.device());
                  if (bias_grad) grad_bias = empty_tensor(normalized_shape, in.dtype(), in.device());
                  backend_for(in).layer_norm_backward(g.contiguous(), in, s[1], s[2], s[3], grad_in,
                                                         grad_weight, grad_bias);
                  return Grads{grad_in, grad_weight, grad_bias};
                });
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* generator) {
  LUNA_CHECK(x.defined(), "dropout: input is undefined");
  LUNA_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  check_floating_input(x, "dropout");
  // Like PyTorch: everything dropped is the input times zero, drawing no random numbers.
  if (p == 1.0) return x * 0.0;

  Generator& gen = generator ? *generator : default_generator();
  // One uniform word per element, the layout of a float32 uniform fill.
  const GeneratorState state = gen.reserve(random_blocks_needed(RandomKind::Uniform, kFloat32, x.numel()));
  const Tensor input = x.detach().contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype(), x.device());
  Tensor mask = empty_tensor(x.sizes(), kUInt8, x.device());  // 1 = kept
  backend_for(out).dropout_forward(input, out, mask, p, state);
  const double scale = 1.0 / (1.0 - p);
  return record("dropout", out, {x}, {mask}, [scale](const Tensor& g, const Saved& s) {
    const Tensor grad = g.contiguous();
    Tensor grad_in = empty_tensor(grad.sizes(), grad.dtype(), grad.device());
    backend_for(grad).dropout_backward(grad, s[0], scale, grad_in);
    return Grads{grad_in};
  });
}

Tensor dropout_add(const Tensor& x, const Tensor& residual, double p, bool training, Generator* generator) {
  LUNA_CHECK(x.defined() && residual.defined(), "dropout_add: ", x.defined() ? "residual" : "input", " is undefined");
  LUNA_CHECK(p >= 0.0 && p <= 1.0, "dropout_add: probability p must be in [0, 1], got ", p);
  if (!training || p == 0.0 || p == 1.0 || !x.is_floating_point() || x.dtype() != residual.dtype() ||
      x.sizes() != residual.sizes() || x.device() != residual.device() || !backend_for(x).has_dropout_add(x.dtype()))
    return residual + dropout(x, p, training, generator);
  Generator& gen = generator ? *generator : default_generator();
  // The draws of dropout on a tensor of x's size.
  const GeneratorState state = gen.reserve(random_blocks_needed(RandomKind::Uniform, kFloat32, x.numel()));
  const Tensor input = x.detach().contiguous(), base = residual.detach().contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype(), x.device());
  Tensor mask = empty_tensor(x.sizes(), kUInt8, x.device());  // 1 = kept
  backend_for(out).dropout_add_forward(input, base, out, mask, p, state);
  const double scale = 1.0 / (1.0 - p);
  return record("dropout_add", out, {x, residual}, {mask}, [scale](const Tensor& g, const Saved& s) {
    const Tensor grad = g.contiguous();
    Tensor grad_in = empty_tensor(grad.sizes(), grad.dtype(), grad.device());
    backend_for(grad).dropout_backward(grad, s[0], scale, grad_in);
    return Grads{grad_in, g};  // the residual's gradient is the output's, as the add passes it on
  });
}

Tensor gelu_dropout(const Tensor& x, double p, bool training, Generator* generator) {
  LUNA_CHECK(x.defined(), "gelu_dropout: input is undefined");
  LUNA_CHECK(p >= 0.0 && p <= 1.0, "gelu_dropout: probability p must be in [0, 1], got ", p);
  if (!training || p == 0.0 || p == 1.0 || !x.is_floating_point() || !backend_for(x).has_gelu_dropout(x.dtype()))
    return dropout(gelu(x), p, training, generator);
  Generator& gen = generator ? *generator : default_generator();
  // The draws of dropout on a tensor of x's size.
  const GeneratorState state = gen.reserve(random_blocks_needed(RandomKind::Uniform, kFloat32, x.numel()));
  const Tensor input = x.detach().contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype(), x.device());
  Tensor mask = empty_tensor(x.sizes(), kUInt8, x.device());  // 1 = kept
  backend_for(out).gelu_dropout_forward(input, out, mask, p, state);
  const double scale = 1.0 / (1.0 - p);
  return record("gelu_dropout", out, {x}, {input, mask}, [scale](const Tensor& g, const Saved& s) {
    const Tensor grad = g.contiguous();
    Tensor grad_in = empty_tensor(grad.sizes(), grad.dtype(), grad.device());
    backend_for(grad).gelu_dropout_backward(grad, s[0], s[1], scale, grad_in);
    return Grads{grad_in};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  check_floating_input(logits, "cross_entropy", "logits");
  LUNA_CHECK(target.defined(), "cross_entropy: target is undefined");
  LUNA_CHECK(target.dtype() == kInt64, "cross_entropy: target must hold int64 class indices, got dtype ",
             target.dtype(), "; convert it with .to(kInt64) (probability targets are not supported)");
  LUNA_CHECK(logits.dim() == 1 || logits.dim() == 2, "cross_entropy: logits must be [N, C] or [C], got shape ",
             logits.sizes());
  const bool batched = logits.dim() == 2;
  const int64_t N = batched ? logits.size(0) : 1, C = logits.size(-1);
  LUNA_CHECK(batched ? target.dim() == 1 && target.size(0) == N : target.dim() == 0, "cross_entropy: target of shape ",
             target.sizes(), " does not match logits of shape ", logits.sizes(), " (expected target shape ",
             batched ? Dims{N} : Dims{}, ")");
  LUNA_CHECK(target.device() == logits.device(), "cross_entropy: target is on ", target.device(),
             " but logits are on ", logits.device());
  const double smoothing = options.label_smoothing;
  LUNA_CHECK(smoothing >= 0.0 && smoothing <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got ",
             smoothing);
  check_reduction(options.reduction, "cross_entropy");
  const int64_t ignore_index = options.ignore_index;

  // Kernels trust their indices, so every target is checked here (on the host).
  const Tensor labels = target.detach().contiguous().reshape({N});  // (N)
  int64_t counted = 0;
  {
    const Tensor host = labels.to(Device::cpu());
    const int64_t* t = host.data_ptr<int64_t>();
    for (int64_t n = 0; n < N; ++n) {
      if (t[n] == ignore_index) continue;
      LUNA_CHECK(t[n] >= 0 && t[n] < C, "cross_entropy: target ", t[n], " is out of bounds for ", C,
                 " classes (expected a class in [0, ", C - 1, "] or ignore_index ", ignore_index, ")");
      ++counted;
    }
  }

  const Tensor input = logits.detach().contiguous().reshape({N, C});  // (N, C)
  Tensor losses = empty_tensor({N}, logits.dtype(), logits.device());  // (N)
  Tensor lse = empty_tensor({N}, logits.dtype(), logits.device());     // (N)
  backend_for(losses).cross_entropy_forward(input, labels, ignore_index, smoothing, losses, lse);
  const Dims logits_shape = logits.sizes();
  losses = record("cross_entropy", losses, {logits}, {input, labels, lse},
                  [ignore_index, smoothing, logits_shape](const Tensor& g, const Saved& s) {
                    Tensor grad_logits = empty_tensor(s[0].sizes(), s[0].dtype(), s[0].device());
                    backend_for(g).cross_entropy_backward(s[0], s[1], s[2], g.contiguous(), ignore_index, smoothing,
                                                          grad_logits);
                    return Grads{grad_logits.reshape(logits_shape)};
                  });

  if (options.reduction == "none") return batched ? losses : losses.reshape({});
  if (options.reduction == "sum") return losses.sum();
  // 0 / 0 = NaN when every target is ignored, as in PyTorch.
  return losses.sum() / double(counted);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  check_floating_input(input, "mse_loss");
  check_floating_input(target, "mse_loss", "target");
  LUNA_CHECK(input.sizes() == target.sizes(), "mse_loss: input of shape ", input.sizes(), " and target of shape ",
             target.sizes(), " differ; reshape one of them so they match");
  check_reduction(reduction, "mse_loss");
  const Tensor squared = square(input - target);
  if (reduction == "none") return squared;
  return reduction == "sum" ? squared.sum() : squared.mean();
}

}  // namespace luna
