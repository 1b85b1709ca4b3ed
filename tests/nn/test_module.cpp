// Tests of the nn::Module base (nn/module.h): registration rules, parameter order and dedup,
// state_dict / load_state_dict (round trip, every problem reported at once, failed loads change
// nothing), dtype moves that keep handles valid, zero_grad, counting, train/eval and apply.
#include "test_util.h"

#include <algorithm>

#include <luna/nn/layers.h>
#include <luna/nn/module.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

std::vector<std::string> keys(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, _] : named) out.push_back(name);
  return out;
}

// A block with its own parameter and buffer before two children, like a small model.
class BlockImpl : public nn::Module {
 public:
  BlockImpl() : Module("Block") {
    scale = register_parameter("scale", ones({3}));
    steps = register_buffer("steps", zeros({1}, TensorOptions(kInt64)));
    running = register_buffer("running", zeros({3}));
    encoder = register_module("encoder", nn::Linear(3, 4));
    decoder = register_module("decoder", nn::Linear(4, 3));
  }
  Tensor forward(const Tensor& x) const { return decoder(encoder(x * scale)); }

  Tensor scale, steps, running;
  nn::Linear encoder{nullptr}, decoder{nullptr};
};
LUNA_MODULE(Block);

// The same weight registered in two children (tied embeddings / output layer).
class TiedImpl : public nn::Module {
 public:
  TiedImpl() : Module("Tied") {
    first = register_module("first", nn::Linear(3, 3, false));
    second = register_module("second", std::make_shared<nn::Module>("Holder"));
    second->register_parameter("weight", first->weight);
  }
  nn::Linear first{nullptr};
  std::shared_ptr<nn::Module> second;
};
LUNA_MODULE(Tied);

Tensor random_tensor(const Dims& shape, uint64_t seed) {
  Generator gen(seed);
  return rand(shape, TensorOptions(kFloat32), &gen) * 2.0 - 1.0;
}

}  // namespace

TEST_CASE("Module: registration rejects bad and duplicate names", "[nn][module][errors]") {
  nn::Module m("Custom");
  m.register_parameter("w", zeros({2}));
  REQUIRE_THROWS_WITH(m.register_parameter("w", zeros({2})), Contains("Custom") && Contains("'w'") &&
                                                                  Contains("already registered"));
  REQUIRE_THROWS_WITH(m.register_buffer("w", zeros({2})), Contains("already registered"));
  REQUIRE_THROWS_WITH(m.register_module("w", nn::Linear(1, 1)), Contains("already registered"));
  REQUIRE_THROWS_WITH(m.register_parameter("a.b", zeros({2})), Contains("'a.b'") && Contains("no '.'"));
  REQUIRE_THROWS_WITH(m.register_buffer("", zeros({2})), Contains("non-empty"));
  REQUIRE_THROWS_WITH(m.register_parameter("u", Tensor()), Contains("'u'") && Contains("undefined"));
  REQUIRE_THROWS_WITH(m.register_module("child", std::shared_ptr<nn::Module>()), Contains("'child'") &&
                                                                                   Contains("null"));
  // A tensor with history is stored detached: a parameter is always a leaf.
  const Tensor source = ones({2}).requires_grad_(true);
  const Tensor& p = m.register_parameter("derived", source * 2.0);
  REQUIRE(p.is_leaf());
  REQUIRE(p.requires_grad());
  const Tensor& frozen = m.register_parameter("frozen", ones({2}), /*requires_grad=*/false);
  REQUIRE(!frozen.requires_grad());
}

TEST_CASE("Module: named_parameters order, buffers and shared parameters", "[nn][module]") {
  Block block;
  REQUIRE(keys(block->named_parameters()) ==
          std::vector<std::string>{"scale", "encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"});
  REQUIRE(keys(block->named_parameters(/*recurse=*/false)) == std::vector<std::string>{"scale"});
  REQUIRE(keys(block->named_buffers()) == std::vector<std::string>{"steps", "running"});
  REQUIRE(keys(block->state_dict()) == std::vector<std::string>{"scale", "steps", "running", "encoder.weight",
                                                                "encoder.bias", "decoder.weight", "decoder.bias"});
  REQUIRE(block->parameters()[1].is_same(block->encoder->weight));
  REQUIRE(block->children().size() == 2);

  Tied tied;
  // The shared weight is one parameter (an optimizer must update it once) but both names are
  // checkpoint keys.
  REQUIRE(keys(tied->named_parameters()) == std::vector<std::string>{"first.weight"});
  REQUIRE(keys(tied->state_dict()) == std::vector<std::string>{"first.weight", "second.weight"});
  REQUIRE(tied->num_parameters() == 9);
}

TEST_CASE("Module: state_dict / load_state_dict round trip", "[nn][module]") {
  manual_seed(1);
  Block source;
  manual_seed(2);
  Block target;
  {
    NoGradGuard no_grad;
    source->steps.fill_(7);
    source->running.copy_(random_tensor({3}, 3));
  }
  const Tensor x = random_tensor({5, 3}, 4);
  REQUIRE(values(source(x)) != values(target(x)));
  const Tensor weight_handle = target->encoder->weight;

  target->load_state_dict(source->state_dict());
  require_close(values(target(x)), values(source(x)), 0, 0);
  REQUIRE(values(target->steps) == std::vector<double>{7});
  require_close(values(target->running), values(source->running), 0, 0);
  // Values are copied into the existing tensors: handles stay valid and nothing is shared.
  REQUIRE(weight_handle.is_same(target->encoder->weight));
  REQUIRE(!target->encoder->weight.is_same(source->encoder->weight));
  REQUIRE(target->encoder->weight.data_ptr() != source->encoder->weight.data_ptr());
  REQUIRE(target->encoder->weight.requires_grad());
}

TEST_CASE("Module: a bad state lists every problem and loads nothing", "[nn][module][errors]") {
  manual_seed(5);
  Block block;
  const std::vector<std::vector<double>> before = [&] {
    std::vector<std::vector<double>> v;
    for (const auto& [_, t] : block->state_dict()) v.push_back(values(t));
    return v;
  }();

  nn::NamedTensors state = Block()->state_dict();
  // Drop two keys, add two unknown ones, break a shape and a dtype; "scale" and others stay valid.
  state.erase(std::remove_if(state.begin(), state.end(),
                             [](const auto& e) { return e.first == "decoder.bias" || e.first == "running"; }),
              state.end());
  state.emplace_back("decoder.gamma", zeros({3}));
  state.emplace_back("extra", zeros({1}));
  for (auto& [name, t] : state) {
    if (name == "encoder.weight") t = zeros({4, 5});
    if (name == "encoder.bias") t = zeros({4}, TensorOptions(kFloat64));
  }
  try {
    block->load_state_dict(state);
    FAIL("load_state_dict accepted a bad state");
  } catch (const Error& e) {
    const std::string message = e.what();
    INFO(message);
    for (const char* expected : {"Block", "missing keys (2)", "decoder.bias", "running", "unexpected keys (2)",
                                 "decoder.gamma", "extra", "encoder.weight: shape [4,5] in the checkpoint, [4,3]",
                                 "encoder.bias: dtype float64 in the checkpoint, float32", "Nothing was loaded"})
      REQUIRE(message.find(expected) != std::string::npos);
  }
  size_t i = 0;
  for (const auto& [name, t] : block->state_dict()) {
    INFO(name);
    REQUIRE(values(t) == before[i++]);
  }

  // strict = false tolerates missing and unexpected keys and loads the rest, but never a
  // mismatched shape or dtype.
  REQUIRE_THROWS_WITH(block->load_state_dict(state, /*strict=*/false),
                      Contains("encoder.weight") && !Contains("missing keys"));
  nn::NamedTensors partial = {{"scale", full({3}, 2.5)}, {"unknown", zeros({1})}};
  block->load_state_dict(partial, /*strict=*/false);
  REQUIRE(values(block->scale) == std::vector<double>{2.5, 2.5, 2.5});
  REQUIRE(values(block->encoder->weight) == before[3]);
}

TEST_CASE("Module: to(kFloat64) converts in place and keeps handle identity", "[nn][module]") {
  Block block;
  const Tensor weight = block->encoder->weight;  // held before the move, as an optimizer would
  const std::vector<Tensor> params = block->parameters();
  const std::vector<double> original = values(weight);
  (block(random_tensor({2, 3}, 6)).sum()).backward();
  REQUIRE(weight.grad().dtype() == kFloat32);

  block->to(kFloat64);
  REQUIRE(weight.dtype() == kFloat64);
  REQUIRE(weight.is_same(block->encoder->weight));
  REQUIRE(params[0].is_same(block->scale));
  REQUIRE(block->encoder->weight.requires_grad());
  REQUIRE(weight.grad().dtype() == kFloat64);
  require_close(values(weight), original, 1e-7, 0);
  // Integer buffers keep their dtype, float buffers convert.
  REQUIRE(block->steps.dtype() == kInt64);
  REQUIRE(block->running.dtype() == kFloat64);
  // The module runs in float64 now, and a write through the old handle reaches the module.
  REQUIRE(block(random_tensor({2, 3}, 6).to(kFloat64)).dtype() == kFloat64);
  {
    NoGradGuard no_grad;
    weight.fill_(0.25);
  }
  REQUIRE(values(block->encoder->weight) == std::vector<double>(12, 0.25));
}

TEST_CASE("Module: zero_grad, num_parameters, train/eval and apply", "[nn][module]") {
  Block block;
  block(random_tensor({2, 3}, 7)).sum().backward();
  REQUIRE(block->encoder->weight.grad().defined());
  block->zero_grad(/*set_to_none=*/false);
  REQUIRE(values(block->encoder->weight.grad()) == std::vector<double>(12, 0.0));
  block->zero_grad();
  for (const Tensor& p : block->parameters()) REQUIRE(!p.grad().defined());

  REQUIRE(block->num_parameters() == 3 + 12 + 4 + 12 + 3);
  block->encoder->bias.requires_grad_(false);
  REQUIRE(block->num_parameters(/*only_trainable=*/true) == 3 + 12 + 12 + 3);

  REQUIRE(block->is_training());
  block->eval();
  REQUIRE(!block->is_training());
  REQUIRE(!block->encoder->is_training());
  REQUIRE(!block->decoder->is_training());
  block->train();
  REQUIRE(block->decoder->is_training());

  std::vector<std::string> visited;
  block->apply([&](nn::Module& m) { visited.push_back(m.type_name()); });
  REQUIRE(visited == std::vector<std::string>{"Linear", "Linear", "Block"});
  // apply can initialise every Linear in a model.
  block->apply([](nn::Module& m) {
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(&m)) {
      NoGradGuard no_grad;
      linear->weight.fill_(0.5);
    }
  });
  REQUIRE(values(block->decoder->weight) == std::vector<double>(12, 0.5));
  REQUIRE(keys(block->named_parameters()).size() == 5);
}
