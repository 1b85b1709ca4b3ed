// The backward engine: iterative (never recursive), dependency-ordered, accumulating gradients of
// shared subgraphs before passing them on. Frees saved tensors afterwards unless retain_graph.
#pragma once
#include <luna/core/tensor.h>

namespace luna::autograd {

// Computes gradients of `root` w.r.t. every leaf that requires grad, accumulating into .grad().
// `grad_root` may be undefined only for a single-element root (then it is 1).
void backward(const Tensor& root, const Tensor& grad_root = Tensor(), bool retain_graph = false);

// Returns d(outputs · grad_outputs)/d(inputs) without touching .grad() (like torch.autograd.grad).
// An input the output does not depend on gets an undefined tensor, or zeros if allow_unused.
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs,
                         const Tensor& grad_output = Tensor(), bool retain_graph = false);

// True if a floating-point tensor holds NaN or Inf.
bool has_non_finite(const Tensor& t);

}  // namespace luna::autograd
