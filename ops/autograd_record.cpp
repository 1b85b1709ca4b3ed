// FunctionNode, record() and the broadcast-gradient reduction.
#include <luna/ops/autograd_record.h>
#include <luna/autograd/engine.h>
#include <luna/autograd/profiler.h>

namespace luna::ops {

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output) {
  LUNA_CHECK(fn_ != nullptr, name_, ": trying to backward through the graph a second time (the saved tensors "
             "were freed after the first backward). Pass retain_graph=true to the first backward() to keep them.");
  Saved values;
  values.reserve(saved_.size());
  for (const auto& s : saved_) values.push_back(s.unpack(*this));
  return fn_(grad_output, values);
}

void FunctionNode::release_saved() {
  for (auto& s : saved_) s.reset();
  fn_ = nullptr;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(std::initializer_list<Tensor> inputs) { return needs_grad(std::vector<Tensor>(inputs)); }

Tensor record(const char* op, Tensor out, std::initializer_list<Tensor> inputs,
              std::initializer_list<Tensor> saved, BackwardFn backward) {
  if (!needs_grad(inputs)) {
    // Ops that backward formulas run record nothing (grad mode is off); their time is their node's.
    if (autograd::op_profile_on() && GradMode::is_enabled()) autograd::op_profile_mark("forward", op);
    return out;
  }
  return record(op, std::move(out), std::vector<Tensor>(inputs), std::vector<Tensor>(saved), std::move(backward));
}

Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, const std::vector<Tensor>& saved,
              BackwardFn backward) {
  if (autograd::op_profile_on() && GradMode::is_enabled()) autograd::op_profile_mark("forward", op);
  if (!needs_grad(inputs)) return out;
  if (autograd::is_anomaly_enabled()) {
    LUNA_CHECK(!autograd::has_non_finite(out), "anomaly: forward of '", op, "' produced a non-finite value in its ",
               "output of shape ", out.sizes());
  }
  std::vector<autograd::SavedTensor> saved_tensors;
  saved_tensors.reserve(saved.size());
  for (const Tensor& t : saved) saved_tensors.emplace_back(t);
  // PyTorch-style node names: "mul" -> "MulBackward".
  std::string node_name(op);
  if (!node_name.empty() && node_name[0] >= 'a' && node_name[0] <= 'z') node_name[0] = char(node_name[0] - 'a' + 'A');
  auto node = std::make_shared<FunctionNode>(node_name + "Backward", std::move(saved_tensors),
                                             std::move(backward));
  node->op_name = op;
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    node->next_edges.push_back(autograd::gradient_edge(t));
    node->input_sizes.push_back(t.defined() ? t.sizes() : Dims{});
  }
  // A view keeps its storage but gets its own autograd identity.
  if (out.requires_grad() || out.grad_fn()) out = out.detach();
  out.impl()->autograd().requires_grad = true;
  out.impl()->autograd().grad_fn = std::move(node);
  return out;
}

Tensor sum_to(const Tensor& grad, const Dims& shape) {
  if (grad.sizes() == shape) return grad;
  const int lead = grad.dim() - shape.size();
  LUNA_CHECK(lead >= 0, "sum_to: gradient of shape ", grad.sizes(), " cannot be reduced to shape ", shape);
  Dims dims;
  for (int i = 0; i < grad.dim(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && grad.sizes()[i] != 1)) dims.push_back(i);
  }
  Tensor reduced = dims.empty() ? grad : grad.sum(dims, /*keepdim=*/true);
  return reduced.reshape(shape);
}

void check_inplace(const char* op, const Tensor& self) {
  if (!GradMode::is_enabled()) return;
  LUNA_CHECK(!(self.is_leaf() && self.requires_grad()), op, ": a leaf tensor that requires grad (", self.str(),
             ") is being used in an in-place operation; wrap it in NoGradGuard (e.g. for an optimizer step)");
  LUNA_CHECK(!self.impl()->autograd().is_view || !self.requires_grad(), op,
             ": in-place operation on a view of a tensor with autograd history is not supported; "
             "use the out-of-place form");
}

}  // namespace luna::ops
