// Iterative backward: count each node's consumers, then run nodes whose consumers have all
// delivered their gradient, summing gradients that meet at a node.
#include <luna/autograd/engine.h>
#include <luna/autograd/grad_mode.h>
#include <luna/autograd/node.h>
#include <luna/autograd/profiler.h>

#include <cmath>
#include <unordered_map>

namespace luna::autograd {
namespace {

// Gradients to hand back instead of accumulating (autograd::grad): node -> input slot.
using CaptureMap = std::unordered_map<Node*, size_t>;

Tensor implicit_root_grad(const Tensor& root, const Tensor& grad_root) {
  if (grad_root.defined()) {
    LUNA_CHECK(grad_root.sizes() == root.sizes(), "backward: gradient shape ", grad_root.sizes(),
               " does not match the output shape ", root.sizes());
    return grad_root.to(root.device(), root.dtype());
  }
  LUNA_CHECK(root.numel() == 1, "backward: grad can be implicitly created only for single-element outputs, "
             "but the output has shape ", root.sizes(), "; pass a gradient of that shape");
  Tensor ones = empty_tensor(root.sizes(), root.dtype(), root.device());
  ones.fill_(1);
  return ones;
}

void run(const Tensor& root, const Tensor& grad_root, bool retain_graph, const CaptureMap* captures,
         std::vector<Tensor>* captured) {
  LUNA_CHECK(root.defined(), "backward: the output tensor is undefined");
  const Edge root_edge = gradient_edge(root);
  LUNA_CHECK(root_edge.node != nullptr, "backward: the output ", root.str(),
             " does not require grad and has no grad_fn (was it computed under NoGradGuard, or from inputs "
             "that do not require grad?)");

  // Count, for every node reachable from the root, how many edges point at it.
  std::unordered_map<Node*, int> pending_inputs;
  std::vector<Node*> stack{root_edge.node.get()};
  pending_inputs[root_edge.node.get()] = 0;
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& e : node->next_edges) {
      if (!e.node) continue;
      auto [it, inserted] = pending_inputs.try_emplace(e.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.node.get());
    }
  }

  NoGradGuard no_grad;
  std::unordered_map<Node*, Tensor> grad_buffers;
  grad_buffers[root_edge.node.get()] = implicit_root_grad(root, grad_root);
  std::vector<std::shared_ptr<Node>> ready{root_edge.node};
  const bool anomaly = is_anomaly_enabled();

  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor grad;
    if (auto it = grad_buffers.find(node.get()); it != grad_buffers.end()) {
      grad = std::move(it->second);
      grad_buffers.erase(it);
    }
    std::vector<Tensor> input_grads;
    bool run_node = grad.defined();
    if (captures) {
      if (auto it = captures->find(node.get()); it != captures->end()) {
        (*captured)[it->second] = grad;
        if (dynamic_cast<AccumulateGrad*>(node.get())) run_node = false;
      }
      if (dynamic_cast<AccumulateGrad*>(node.get())) run_node = false;  // grad() never touches .grad
    }
    if (run_node) {
      // A node whose saved tensors were freed reports a second backward itself (FunctionNode).
      const bool profiling = op_profile_on();
      if (profiling) op_profile_mark("backward", "(engine)");
      input_grads = node->apply(grad);
      if (profiling)
        op_profile_mark("backward", node->op_name.empty() ? "(accumulate into .grad)" : node->op_name.c_str());
      if (anomaly) {
        for (size_t i = 0; i < input_grads.size(); ++i)
          LUNA_CHECK(!input_grads[i].defined() || !has_non_finite(input_grads[i]), "anomaly: backward of '",
                     node->op_name, "' (", node->name(), ") produced a non-finite gradient for its input ", i,
                     " of shape ", input_grads[i].sizes());
      }
      if (!retain_graph) node->release_saved();
    }
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const std::shared_ptr<Node>& next = node->next_edges[i].node;
      if (!next) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        LUNA_CHECK(i >= node->input_sizes.size() || input_grads[i].sizes() == node->input_sizes[i], node->name(),
                   ": backward returned a gradient of shape ", input_grads[i].sizes(), " for input ", i,
                   " of shape ", node->input_sizes[i], " (a bug in that op's backward)");
        Tensor& buffer = grad_buffers[next.get()];
        if (buffer.defined()) {
          // Into the buffer itself when nothing else can see it (PyTorch's InputBuffer does the
          // same): a pass over memory and an allocation fewer than a fresh sum, same values.
          const Tensor& incoming = input_grads[i];
          if (sole_owner(buffer) && buffer.sizes() == incoming.sizes() && buffer.dtype() == incoming.dtype() &&
              buffer.device() == incoming.device())
            buffer.add_(incoming);
          else
            buffer = buffer + incoming;
          op_profile_mark("backward", "(sum of gradients)");
        } else {
          buffer = input_grads[i];
        }
      }
      if (--pending_inputs[next.get()] == 0) ready.push_back(next);
    }
  }
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_root, bool retain_graph) {
  run(root, grad_root, retain_graph, nullptr, nullptr);
}

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output,
                         bool retain_graph) {
  CaptureMap captures;
  // Held for the whole run: a leaf's accumulator is cached only weakly, and the capture map is
  // keyed by address.
  std::vector<Edge> input_edges;
  for (size_t i = 0; i < inputs.size(); ++i) {
    input_edges.push_back(gradient_edge(inputs[i]));
    LUNA_CHECK(input_edges.back().node != nullptr, "autograd::grad: input ", i, " (", inputs[i].str(),
               ") does not require grad");
    captures[input_edges.back().node.get()] = i;
  }
  std::vector<Tensor> captured(inputs.size());
  run(output, grad_output, retain_graph, &captures, &captured);
  return captured;
}

bool has_non_finite(const Tensor& t) {
  if (!t.is_floating_point()) return false;
  const Tensor values = t.to(Device::cpu(), kFloat64).contiguous();
  const double* p = values.data_ptr<double>();
  for (int64_t i = 0; i < values.numel(); ++i)
    if (!std::isfinite(p[i])) return true;
  return false;
}

}  // namespace luna::autograd

namespace luna {
void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward(*this, gradient, retain_graph);
}
}  // namespace luna
