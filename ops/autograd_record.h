// How an op records itself for autograd. Each op computes its output, then calls record() with
// the inputs it differentiates against, the tensors its backward reads, and the backward formula
// as a lambda written right next to the forward. Nothing is saved when no input needs a gradient.
//
//   return record("exp", out, {x}, {out}, [](const Tensor& g, const Saved& s) {
//     return Grads{g * s[0]};
//   });
#pragma once
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <luna/autograd/grad_mode.h>
#include <luna/autograd/node.h>
#include <luna/core/tensor.h>

namespace luna::ops {

using Grads = std::vector<Tensor>;
using Saved = std::vector<Tensor>;
// Lambdas capture only plain values (dims, scalars); tensors they need go through `saved`, so
// that they are version-checked and freed after backward.
using BackwardFn = std::function<Grads(const Tensor& grad_output, const Saved& saved)>;

class FunctionNode final : public autograd::Node {
 public:
  FunctionNode(std::string name, std::vector<autograd::SavedTensor> saved, BackwardFn fn)
      : name_(std::move(name)), saved_(std::move(saved)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return name_; }
  void release_saved() override;

 private:
  std::string name_;
  std::vector<autograd::SavedTensor> saved_;
  BackwardFn fn_;
};

// True when grad mode is on and any input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a backward node to `out` if needed (see above) and, in anomaly mode, checks `out`.
Tensor record(const char* op, Tensor out, std::initializer_list<Tensor> inputs,
              std::initializer_list<Tensor> saved, BackwardFn backward);
// The same for a runtime-sized list of inputs (cat).
Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, const std::vector<Tensor>& saved,
              BackwardFn backward);

// Sums a broadcast gradient back to `shape` (the inverse of expanding shape to grad's shape).
Tensor sum_to(const Tensor& grad, const Dims& shape);

// Rejects in-place writes autograd cannot follow: into a leaf that requires grad, or, while
// recording, into a view of a tensor that has history.
void check_inplace(const char* op, const Tensor& self);

// For in-place ops: writes the out-of-place `result` into `self` and makes self take over
// result's history (so x.clamp_(...) differentiates like x = x.clamp(...)).
const Tensor& assign_result_inplace(const char* op, const Tensor& self, const Tensor& result);

}  // namespace luna::ops
