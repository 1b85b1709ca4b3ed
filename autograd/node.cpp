// Node teardown without recursion, saved-tensor version checks, and leaf accumulation.
#include <luna/autograd/node.h>
#include <luna/autograd/grad_mode.h>

namespace luna::autograd {
namespace {
// Long chains (a 100k-op graph) would recurse once per node when the last owner lets go; instead
// children are parked here and released by a loop in the outermost destructor.
thread_local bool tearing_down = false;
thread_local std::vector<std::shared_ptr<Node>> deferred_nodes;
}  // namespace

Node::~Node() {
  for (auto& edge : next_edges)
    if (edge.node) deferred_nodes.push_back(std::move(edge.node));
  if (tearing_down) return;
  tearing_down = true;
  while (!deferred_nodes.empty()) {
    std::shared_ptr<Node> node = std::move(deferred_nodes.back());
    deferred_nodes.pop_back();
    node.reset();
  }
  tearing_down = false;
}

const Tensor& SavedTensor::unpack(const Node& owner) const {
  LUNA_CHECK(!released_, owner.name(), ": trying to backward through the graph a second time (the saved tensors "
             "were freed after the first backward). Pass retain_graph=true to the first backward() to keep them.");
  if (data_.defined()) {
    LUNA_CHECK(data_.version() == version_, owner.name(), ": a tensor of shape ", data_.sizes(),
               " saved for backward by '", owner.op_name, "' was modified by an in-place operation (version ",
               version_, " when saved, now ", data_.version(), "). Clone it before modifying it in place.");
  }
  return data_;
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_output) {
  Tensor leaf(leaf_);
  Tensor existing = leaf.grad();
  if (!existing.defined()) {
    // Keep the incoming buffer only if nothing else can see it; otherwise store a private copy so
    // that in-place updates of one .grad never leak into another tensor.
    leaf.set_grad(sole_owner(grad_output) ? grad_output : grad_output.clone());
  } else {
    NoGradGuard no_grad;
    existing.add_(grad_output);
  }
  return {};
}

bool sole_owner(const Tensor& t) {
  return t.defined() && t.impl_ptr().use_count() == 1 && t.is_contiguous() &&
         t.impl()->storage().use_count() == 1 && t.nbytes() == t.impl()->storage()->nbytes();
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined()) return {};
  if (t.grad_fn()) return {t.grad_fn()};
  if (!t.requires_grad()) return {};
  auto& meta = t.impl()->autograd();
  std::shared_ptr<Node> accumulator = meta.grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
    meta.grad_accumulator = accumulator;
  }
  return {accumulator};
}

}  // namespace luna::autograd
