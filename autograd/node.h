// A node of the dynamic graph: one per recorded op. It holds only what its backward needs
// (saved tensors carry the version they had, so an in-place change is caught) and one edge per
// input to the node that receives that input's gradient.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <luna/core/tensor.h>

namespace luna::autograd {

class Node;

// Where an input's gradient goes. A null node means the input needs no gradient.
struct Edge {
  std::shared_ptr<Node> node;
};

// A tensor saved for backward: its data without history, plus its version at save time.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t) : data_(t.defined() ? t.detach() : Tensor()),
                                          version_(t.defined() ? t.version() : 0) {}
  // The saved data; throws if it was modified in place since it was saved.
  const Tensor& unpack(const Node& owner) const;
  void reset() { data_ = Tensor(); released_ = true; }
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint32_t version_ = 0;
  bool released_ = false;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  virtual ~Node();
  // Gradients for each input, in the order of `next_edges`; undefined where none.
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  // "MulBackward"
  virtual std::string name() const = 0;
  // Frees saved tensors after backward (unless retain_graph).
  virtual void release_saved() {}

  std::vector<Edge> next_edges;
  std::vector<Dims> input_sizes;  // one per edge: the engine checks every gradient against it
  std::string op_name;        // the forward op, for anomaly messages ("log")
};

// The leaf sink: adds the incoming gradient into the leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return "AccumulateGrad"; }
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// Nothing but this handle can see t's memory: it is the only handle on its TensorImpl, the only
// tensor on its storage, and dense over all of it. Such a gradient may be kept or updated in place.
bool sole_owner(const Tensor& t);

// The edge along which `t`'s gradient flows: its grad_fn, its leaf accumulator, or none.
Edge gradient_edge(const Tensor& t);

}  // namespace luna::autograd
