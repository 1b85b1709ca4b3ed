// Tests for luna::optim (nn/optimizer.*, nn/sgd.cpp, nn/adam.cpp, nn/lr_scheduler.*): every
// optimizer configuration and schedule against numbers PyTorch produced
// (scripts/make_optim_fixtures.py), plus clip_grad_norm_ by hand, state_dict resume, and errors.
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include <luna/nn/optim.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;
using nlohmann::json;

namespace {

const std::filesystem::path kFixtureDir =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "optim";

json load_fixture(const std::string& name) {
  const std::filesystem::path path = kFixtureDir / name;
  std::ifstream in(path);
  INFO("fixture " << path.string() << " (regenerate with scripts/make_optim_fixtures.py)");
  REQUIRE(in.good());
  return json::parse(in);
}

Tensor f64(const std::vector<double>& v, const Dims& shape) { return tensor(v, shape); }

Tensor f64_leaf(const std::vector<double>& v, const Dims& shape) {
  Tensor t = f64(v, shape);
  t.requires_grad_(true);
  return t;
}

// max |got - want| / |want| over elements with want != 0 (absolute error where want == 0).
double max_relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / (want[i] == 0 ? 1.0 : std::abs(want[i])));
  return worst;
}

// The fixture problem: two f64 parameters (w [2,3], b [3]) at their initial values, and the
// gradients of each step (undefined where torch's was None).
struct Problem {
  json fixture;
  std::vector<Dims> shapes;

  std::vector<Tensor> initial_params() const {
    std::vector<Tensor> params;
    for (size_t i = 0; i < shapes.size(); ++i)
      params.push_back(f64_leaf(fixture["initial"][i].get<std::vector<double>>(), shapes[i]));
    return params;
  }
  void set_grads(const std::vector<Tensor>& params, size_t step) const {
    for (size_t i = 0; i < params.size(); ++i) {
      const json& g = fixture["grads"][step][i];
      params[i].set_grad(g.is_null() ? Tensor() : f64(g.get<std::vector<double>>(), shapes[i]));
    }
  }
};

Problem load_problem() {
  Problem problem{load_fixture("optimizers.json"), {}};
  for (const json& shape : problem.fixture["shapes"]) problem.shapes.emplace_back(shape.get<std::vector<int64_t>>());
  return problem;
}

// Builds the configuration's optimizer, setting only the options the fixture names so that the
// rest exercise luna's defaults (which must equal torch's).
std::unique_ptr<optim::Optimizer> make_optimizer(const json& config, const std::vector<Tensor>& params) {
  std::vector<optim::OptimizerParamGroup> groups;
  for (const json& g : config["groups"]) {
    std::vector<Tensor> group_params;
    for (const json& index : g["params"]) group_params.push_back(params[index.get<size_t>()]);
    optim::OptimizerParamGroup group(group_params);
    if (g.contains("lr")) group.lr = g["lr"].get<double>();
    if (g.contains("weight_decay")) group.weight_decay = g["weight_decay"].get<double>();
    groups.push_back(group);
  }
  const json& o = config["options"];
  const std::string type = config["type"];
  const auto betas = [&] {
    const auto b = o["betas"].get<std::vector<double>>();
    return optim::Betas(b[0], b[1]);
  };
  if (type == "SGD") {
    optim::SGDOptions options(o["lr"].get<double>());
    if (o.contains("momentum")) options.momentum(o["momentum"]);
    if (o.contains("dampening")) options.dampening(o["dampening"]);
    if (o.contains("weight_decay")) options.weight_decay(o["weight_decay"]);
    if (o.contains("nesterov")) options.nesterov(o["nesterov"]);
    return std::make_unique<optim::SGD>(groups, options);
  }
  if (type == "Adam") {
    optim::AdamOptions options(o["lr"].get<double>());
    if (o.contains("betas")) options.betas(betas());
    if (o.contains("eps")) options.eps(o["eps"]);
    if (o.contains("weight_decay")) options.weight_decay(o["weight_decay"]);
    if (o.contains("amsgrad")) options.amsgrad(o["amsgrad"]);
    return std::make_unique<optim::Adam>(groups, options);
  }
  REQUIRE(type == "AdamW");
  optim::AdamWOptions options(o["lr"].get<double>());
  if (o.contains("betas")) options.betas(betas());
  if (o.contains("eps")) options.eps(o["eps"]);
  if (o.contains("weight_decay")) options.weight_decay(o["weight_decay"]);
  if (o.contains("amsgrad")) options.amsgrad(o["amsgrad"]);
  return std::make_unique<optim::AdamW>(groups, options);
}

std::vector<Tensor> clone_leaves(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) {
    Tensor c = p.detach().clone();
    c.requires_grad_(true);
    out.push_back(c);
  }
  return out;
}

void require_params_equal_fixture(const std::vector<Tensor>& params, const json& expected, const std::string& what) {
  for (size_t i = 0; i < params.size(); ++i)
    require_close(values(params[i]), expected[i].get<std::vector<double>>(), 1e-6, 1e-12,
                  what + " param " + std::to_string(i));
}

}  // namespace

TEST_CASE("optimizers: 10 float64 steps equal PyTorch for every configuration", "[optim]") {
  const Problem problem = load_problem();
  REQUIRE(problem.fixture["configs"].size() == 7);
  for (const json& config : problem.fixture["configs"]) {
    const std::string name = config["name"];
    INFO("configuration " << name);
    const std::vector<Tensor> params = problem.initial_params();
    auto optimizer = make_optimizer(config, params);
    double worst = 0;
    for (size_t step = 0; step < 10; ++step) {
      problem.set_grads(params, step);
      optimizer->step();
      const json& expected = config["trajectory"][step];
      for (size_t i = 0; i < params.size(); ++i)
        worst = std::max(worst, max_relative_error(values(params[i]), expected[i].get<std::vector<double>>()));
      require_params_equal_fixture(params, expected, name + " step " + std::to_string(step + 1));
    }
    // The state torch kept, under luna's "<index>.<name>" keys, with the same values.
    const optim::NamedTensors state = optimizer->state_dict();
    const json& want_state = config["final_state"];
    REQUIRE(state.size() == want_state.size());
    for (const auto& [key, tensor] : state) {
      INFO("state key " << key);
      REQUIRE(want_state.contains(key));
      const std::vector<double> got = values(tensor);
      const std::vector<double> want = want_state[key].get<std::vector<double>>();
      require_close(got, want, 1e-6, 1e-12, key);
      worst = std::max(worst, max_relative_error(got, want));
    }
    std::printf("optim fixture %-24s max relative error %.3g\n", name.c_str(), worst);
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("optimizers: state_dict after 5 steps resumes to the same 10-step result", "[optim]") {
  const Problem problem = load_problem();
  for (const json& config : problem.fixture["configs"]) {
    const std::string name = config["name"];
    INFO("configuration " << name);
    std::vector<Tensor> params = problem.initial_params();
    auto first = make_optimizer(config, params);
    for (size_t step = 0; step < 5; ++step) {
      problem.set_grads(params, step);
      first->step();
    }
    // A checkpoint holds copies; the live buffers keep changing if `first` went on.
    optim::NamedTensors saved;
    for (const auto& [key, tensor] : first->state_dict()) saved.emplace_back(key, tensor.clone());

    std::vector<Tensor> resumed = clone_leaves(params);
    auto second = make_optimizer(config, resumed);
    second->load_state_dict(saved);
    REQUIRE(second->state_dict().size() == saved.size());
    for (size_t step = 5; step < 10; ++step) {
      problem.set_grads(resumed, step);
      second->step();
    }
    require_params_equal_fixture(resumed, config["trajectory"][9], name + " resumed");
    // And bit-identical to running straight through.
    for (size_t step = 5; step < 10; ++step) {
      problem.set_grads(params, step);
      first->step();
    }
    for (size_t i = 0; i < params.size(); ++i) CHECK(values(resumed[i]) == values(params[i]));
  }
}

TEST_CASE("optimizers: a fresh optimizer without loaded state does not continue the run", "[optim]") {
  // Guards the resume test: skipping load_state_dict must change the result for Adam.
  const Problem problem = load_problem();
  const json& config = problem.fixture["configs"][3];
  REQUIRE(config["name"] == "adam");
  std::vector<Tensor> params = problem.initial_params();
  auto first = make_optimizer(config, params);
  for (size_t step = 0; step < 5; ++step) {
    problem.set_grads(params, step);
    first->step();
  }
  auto second = make_optimizer(config, params);
  for (size_t step = 5; step < 10; ++step) {
    problem.set_grads(params, step);
    second->step();
  }
  const auto want = config["trajectory"][9][0].get<std::vector<double>>();
  CHECK(max_relative_error(values(params[0]), want) > 1e-3);
}

TEST_CASE("optimizers: load_state_dict names every bad key and writes nothing on failure", "[optim]") {
  Tensor w = f64_leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = f64_leaf({1, 2, 3}, {3});
  optim::Adam adam({w, b}, optim::AdamOptions(0.1).amsgrad(true));
  w.set_grad(f64({1, 1, 1, 1, 1, 1}, {2, 3}));
  b.set_grad(f64({1, 1, 1}, {3}));
  adam.step();
  const optim::NamedTensors before = adam.state_dict();
  REQUIRE(before.size() == 8);
  CHECK(before[0].first == "0.step");
  CHECK(before[0].second.dim() == 0);
  CHECK(before[0].second.dtype() == kInt64);
  CHECK(before[0].second.item<int64_t>() == 1);
  CHECK(before[1].first == "0.exp_avg");
  CHECK(before[7].first == "1.max_exp_avg_sq");
  const std::vector<double> exp_avg_before = values(before[1].second);

  optim::NamedTensors bad;
  for (const auto& [key, tensor] : before) bad.emplace_back(key, tensor.clone() * 2.0);
  bad[1].second = zeros({3, 2}, TensorOptions(kFloat64));  // 0.exp_avg, wrong shape
  bad.erase(bad.begin() + 6);                               // drops 1.exp_avg_sq
  bad.emplace_back("1.momentum_buffer", zeros({3}, TensorOptions(kFloat64)));
  bad.emplace_back("7.exp_avg", zeros({3}, TensorOptions(kFloat64)));
  bad.emplace_back("exp_avg", zeros({3}, TensorOptions(kFloat64)));
  try {
    adam.load_state_dict(bad);
    FAIL("load_state_dict accepted a broken state");
  } catch (const Error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK_THAT(message, Contains("Adam.load_state_dict"));
    CHECK_THAT(message, Contains("\"0.exp_avg\" has shape [3,2] but parameter 0 has shape [2,3]"));
    CHECK_THAT(message, Contains("missing key \"1.exp_avg_sq\""));
    CHECK_THAT(message, Contains("unexpected key \"1.momentum_buffer\""));
    CHECK_THAT(message, Contains("\"7.exp_avg\" refers to parameter 7 but the optimizer has 2"));
    CHECK_THAT(message, Contains("\"exp_avg\" is not of the form"));
  }
  // Nothing was written: the live state still holds the values from before.
  const optim::NamedTensors after = adam.state_dict();
  REQUIRE(after.size() == before.size());
  CHECK(values(after[1].second) == exp_avg_before);
  CHECK(after[0].second.item<int64_t>() == 1);

  // A state saved without AMSGrad misses max_exp_avg_sq; a negative step is rejected.
  optim::NamedTensors no_max;
  for (const auto& entry : before)
    if (entry.first.find("max_exp_avg_sq") == std::string::npos) no_max.push_back(entry);
  CHECK_THROWS_WITH(adam.load_state_dict(no_max), Contains("missing key \"0.max_exp_avg_sq\""));
  optim::NamedTensors negative_step = before;
  negative_step[0].second = scalar_tensor(-3, TensorOptions(kInt64));
  CHECK_THROWS_WITH(adam.load_state_dict(negative_step), Contains("\"0.step\" holds step -3"));

  // SGD without momentum keeps no state at all.
  optim::SGD sgd({w}, optim::SGDOptions(0.1));
  CHECK(sgd.state_dict().empty());
  CHECK_THROWS_WITH(sgd.load_state_dict({{"0.momentum_buffer", zeros({2, 3}, TensorOptions(kFloat64))}}),
                    Contains("unexpected key \"0.momentum_buffer\" (SGD with these options keeps no state)"));
  sgd.load_state_dict({});
}

TEST_CASE("optimizers: load_state_dict converts state to the parameter's dtype", "[optim]") {
  Tensor w = f64_leaf({1, 2}, {2});
  optim::SGD sgd({w}, optim::SGDOptions(0.5).momentum(0.5));
  sgd.load_state_dict({{"0.momentum_buffer", tensor(std::vector<float>{2.0f, -2.0f}, {2})}});
  w.set_grad(f64({1, 1}, {2}));
  sgd.step();
  // buffer = 0.5 * [2, -2] + [1, 1] = [2, 0];  w -= 0.5 * buffer
  require_close(values(w), {0.0, 2.0}, 0, 1e-15);
  CHECK(sgd.state_dict()[0].second.dtype() == kFloat64);
}

TEST_CASE("optimizers: option validation names the bad value", "[optim]") {
  Tensor w = f64_leaf({1, 2}, {2});
  using namespace optim;
  CHECK_THROWS_WITH(SGD({w}, SGDOptions(-0.1)), Contains("SGD: invalid learning rate -0.1"));
  CHECK_THROWS_WITH(SGD({w}, SGDOptions(0.1).momentum(-1)), Contains("SGD: invalid momentum -1"));
  CHECK_THROWS_WITH(SGD({w}, SGDOptions(0.1).nesterov(true)),
                    Contains("nesterov momentum requires a momentum > 0 and zero dampening, got momentum 0"));
  CHECK_THROWS_WITH(SGD({w}, SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)),
                    Contains("dampening 0.1"));
  CHECK_THROWS_WITH(Adam({w}, AdamOptions(0.1).betas({1.0, 0.999})), Contains("Adam: invalid beta1 1"));
  CHECK_THROWS_WITH(Adam({w}, AdamOptions(0.1).betas({0.9, -0.5})), Contains("Adam: invalid beta2 -0.5"));
  CHECK_THROWS_WITH(Adam({w}, AdamOptions(0.1).eps(-1e-8)), Contains("Adam: invalid eps -1e-08"));
  CHECK_THROWS_WITH(AdamW({w}, AdamWOptions(-1)), Contains("AdamW: invalid learning rate -1"));
  CHECK_THROWS_WITH(AdamW({w}, AdamWOptions(1e-3).weight_decay(-0.01)), Contains("AdamW: invalid weight_decay -0.01"));
  CHECK_THROWS_WITH(AdamW(std::vector<OptimizerParamGroup>{OptimizerParamGroup({w}, -2.0)}),
                    Contains("AdamW: invalid learning rate -2 in group 0"));
  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{}), Contains("SGD: got an empty parameter list"));
  CHECK_THROWS_WITH(SGD({w, w}), Contains("appears more than once"));
  CHECK_THROWS_WITH(SGD({w * 2.0}), Contains("non-leaf"));
  CHECK_THROWS_WITH(SGD({tensor(std::vector<int64_t>{1, 2})}), Contains("floating-point"));

  SGD sgd({w}, SGDOptions(0.1));
  CHECK_THROWS_WITH(sgd.set_lr(-1), Contains("SGD.set_lr: invalid learning rate -1"));
  sgd.param_groups()[0].lr = -0.5;
  w.set_grad(f64({1, 1}, {2}));
  CHECK_THROWS_WITH(sgd.step(), Contains("SGD: invalid learning rate -0.5 in group 0"));
}

TEST_CASE("optimizers: defaults equal PyTorch's", "[optim]") {
  using namespace optim;
  CHECK(AdamOptions().lr() == 1e-3);
  CHECK(AdamOptions().eps() == 1e-8);
  CHECK(AdamOptions().betas() == Betas(0.9, 0.999));
  CHECK(AdamOptions().weight_decay() == 0.0);
  CHECK_FALSE(AdamOptions().amsgrad());
  CHECK(AdamWOptions().weight_decay() == 0.01);
  CHECK(AdamWOptions(5e-4).lr() == 5e-4);
  CHECK(SGDOptions(0.1).momentum() == 0.0);
  CHECK(SGDOptions(0.1).dampening() == 0.0);
  CHECK_FALSE(SGDOptions(0.1).nesterov());
}

TEST_CASE("optimizers: parameter groups keep their own lr and weight decay", "[optim]") {
  Tensor a = f64_leaf({1, 1}, {2});
  Tensor b = f64_leaf({1, 1}, {2});
  Tensor c = f64_leaf({1}, {1});
  std::vector<optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{a});
  groups.emplace_back(std::vector<Tensor>{b, c}, 1.0, 0.5);
  optim::SGD sgd(groups, optim::SGDOptions(0.1).weight_decay(0.25));
  CHECK(sgd.lr(0) == 0.1);
  CHECK(sgd.lr(1) == 1.0);
  CHECK(*sgd.param_groups()[0].weight_decay == 0.25);
  CHECK(*sgd.param_groups()[1].weight_decay == 0.5);
  const std::vector<Tensor> flat = sgd.parameters();
  REQUIRE(flat.size() == 3);
  CHECK((flat[0].is_same(a) && flat[1].is_same(b) && flat[2].is_same(c)));
  CHECK_THROWS_WITH(sgd.lr(2), Contains("group 2 out of range (2 groups)"));

  for (const Tensor& p : {a, b, c}) p.set_grad(ones_like(p));
  sgd.step();
  // a: 1 - 0.1 * (1 + 0.25 * 1);  b, c: 1 - 1.0 * (1 + 0.5 * 1)
  require_close(values(a), {0.875, 0.875}, 0, 1e-15);
  require_close(values(b), {-0.5, -0.5}, 0, 1e-15);
  require_close(values(c), {-0.5}, 0, 1e-15);

  sgd.set_lr(0.01);
  CHECK(sgd.lr(0) == 0.01);
  CHECK(sgd.lr(1) == 0.01);
}

TEST_CASE("optimizers: zero_grad drops or zeroes gradients", "[optim]") {
  Tensor w = f64_leaf({1, 2}, {2});
  optim::SGD sgd({w}, optim::SGDOptions(0.1));
  w.set_grad(f64({3, 4}, {2}));
  sgd.zero_grad(false);
  REQUIRE(w.grad().defined());
  CHECK(values(w.grad()) == std::vector<double>{0, 0});
  sgd.zero_grad();
  CHECK_FALSE(w.grad().defined());
  sgd.step();  // no gradient: nothing moves
  CHECK(values(w) == std::vector<double>{1, 2});
}

TEST_CASE("optimizers: a float32 model trains through backward with AdamW", "[optim]") {
  // End to end through autograd: minimise |w - target|^2; the f32 run tracks an f64 run.
  const std::vector<double> target = {0.5, -1.0, 2.0};
  const auto run = [&](DType dtype) {
    Tensor w = zeros({3}, TensorOptions(dtype));
    w.requires_grad_(true);
    optim::AdamW opt({w}, optim::AdamWOptions(0.1).weight_decay(0.0));
    const Tensor t = tensor(target, {3}).to(dtype);
    for (int step = 0; step < 200; ++step) {
      opt.zero_grad();
      Tensor loss = (w - t).square().sum();
      loss.backward();
      opt.step();
    }
    CHECK(GradMode::is_enabled());  // the step restored grad mode
    return values(w);
  };
  const std::vector<double> w32 = run(kFloat32), w64 = run(kFloat64);
  require_close(w32, w64, 1e-4, 1e-5);
  require_close(w64, target, 0, 0.05);
}

TEST_CASE("param_groups_no_decay puts biases, norms and 1-D tensors in a zero-decay group", "[optim]") {
  const auto param = [](const Dims& shape) {
    Tensor t = zeros(shape, TensorOptions(kFloat64));
    t.requires_grad_(true);
    return t;
  };
  const optim::NamedTensors named = {
      {"encoder.fc.weight", param({4, 3})},         {"encoder.fc.bias", param({4})},
      {"encoder.LayerNorm.weight", param({4})},     {"encoder.layer_norm.gain", param({2, 2})},
      {"head.weight", param({2, 4})},               {"scale", param({})},
      {"pos_embed", param({1, 4})},                 {"proj_bias", param({2, 2})},
  };
  const auto groups = optim::param_groups_no_decay(named, 0.05);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.05);
  CHECK_FALSE(groups[0].lr.has_value());
  CHECK(groups[1].weight_decay == 0.0);
  const auto is = [](const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
    if (got.size() != want.size()) return false;
    for (size_t i = 0; i < got.size(); ++i)
      if (!got[i].is_same(want[i])) return false;
    return true;
  };
  CHECK(is(groups[0].params, {named[0].second, named[4].second, named[6].second}));
  CHECK(is(groups[1].params, {named[1].second, named[2].second, named[3].second, named[5].second, named[7].second}));

  optim::AdamW adamw(groups, optim::AdamWOptions(1e-3));
  CHECK(*adamw.param_groups()[0].weight_decay == 0.05);
  CHECK(*adamw.param_groups()[1].weight_decay == 0.0);
  // Only decaying matrices: the zero-decay group is left out.
  CHECK(optim::param_groups_no_decay({named[0], named[4]}, 0.1).size() == 1);
  CHECK_THROWS_WITH(optim::param_groups_no_decay(named, -1), Contains("weight_decay must be >= 0, got -1"));
}

TEST_CASE("clip_grad_norm_ matches a hand computation", "[optim]") {
  const auto make = [](const std::vector<double>& grad, const Dims& shape) {
    Tensor p = f64_leaf(std::vector<double>(grad.size(), 0.0), shape);
    p.set_grad(f64(grad, shape));
    return p;
  };
  SECTION("2-norm over all gradients, clipped") {
    // sqrt(3^2 + 4^2 + 12^2) = 13
    std::vector<Tensor> params = {make({3, 4}, {2}), make({12}, {1}), f64_leaf({1}, {1})};
    const double total = optim::clip_grad_norm_(params, 6.5);
    CHECK(total == Approx(13.0).epsilon(1e-15));
    const double coef = 6.5 / (13.0 + 1e-6);
    require_close(values(params[0].grad()), {3 * coef, 4 * coef}, 1e-14, 0);
    require_close(values(params[1].grad()), {12 * coef}, 1e-14, 0);
    CHECK_FALSE(params[2].grad().defined());
    // The clipped gradients now have norm max_norm (to within the 1e-6 guard).
    CHECK(optim::clip_grad_norm_(params, 100.0) == Approx(6.5).epsilon(1e-6));
  }
  SECTION("no clipping when the norm is below max_norm") {
    std::vector<Tensor> params = {make({3, 4}, {2}), make({12}, {1})};
    CHECK(optim::clip_grad_norm_(params, 13.5) == Approx(13.0).epsilon(1e-15));
    CHECK(values(params[0].grad()) == std::vector<double>{3, 4});
    CHECK(values(params[1].grad()) == std::vector<double>{12});
  }
  SECTION("infinity norm is the largest magnitude") {
    std::vector<Tensor> params = {make({3, -20, 4, 1}, {2, 2}), make({12}, {1})};
    const double total = optim::clip_grad_norm_(params, 5.0, INFINITY);
    CHECK(total == 20.0);
    const double coef = 5.0 / (20.0 + 1e-6);
    require_close(values(params[0].grad()), {3 * coef, -20 * coef, 4 * coef, 1 * coef}, 1e-14, 0);
    require_close(values(params[1].grad()), {12 * coef}, 1e-14, 0);
  }
  SECTION("1-norm and float32 gradients") {
    Tensor p = zeros({3}, TensorOptions(kFloat32));
    p.requires_grad_(true);
    p.set_grad(tensor({1.0f, -2.0f, 3.0f}, {3}));
    const double total = optim::clip_grad_norm_({p}, 3.0, 1.0);
    CHECK(total == Approx(6.0).epsilon(1e-7));
    require_close(values(p.grad()), {0.5, -1.0, 1.5}, 1e-6, 0);
  }
  SECTION("no gradients and bad arguments") {
    CHECK(optim::clip_grad_norm_({f64_leaf({1}, {1})}, 1.0) == 0.0);
    CHECK_THROWS_WITH(optim::clip_grad_norm_({}, 1.0, -2.0), Contains("norm_type must be positive or infinity, got -2"));
    CHECK_THROWS_WITH(optim::clip_grad_norm_({}, -1.0), Contains("max_norm must be >= 0, got -1"));
  }
}

namespace {
std::unique_ptr<optim::LRScheduler> make_schedule(const json& s, optim::Optimizer& opt) {
  const std::string type = s["type"];
  const json& a = s["args"];
  if (type == "LinearWarmupLinearDecay")
    return std::make_unique<optim::LinearWarmupLinearDecay>(opt, a["warmup_steps"], a["total_steps"]);
  if (type == "LinearWarmupCosineDecay")
    return std::make_unique<optim::LinearWarmupCosineDecay>(opt, a["warmup_steps"], a["total_steps"], a["min_lr"]);
  if (type == "RsqrtSchedule") return std::make_unique<optim::RsqrtSchedule>(opt, a["warmup_steps"]);
  if (type == "ConstantLR") {
    if (a.empty()) return std::make_unique<optim::ConstantLR>(opt);
    return std::make_unique<optim::ConstantLR>(opt, a["factor"], a["total_iters"]);
  }
  REQUIRE(type == "OneCycleLR");
  if (!a.contains("pct_start")) return std::make_unique<optim::OneCycleLR>(opt, a["max_lr"], a["total_steps"]);
  return std::make_unique<optim::OneCycleLR>(opt, a["max_lr"], a["total_steps"], a["pct_start"], a["div_factor"],
                                             a["final_div_factor"]);
}
}  // namespace

TEST_CASE("schedules: lr per step equals PyTorch / Hugging Face", "[optim][schedule]") {
  const json fixture = load_fixture("schedules.json");
  REQUIRE(fixture["schedules"].size() == 9);
  for (const json& s : fixture["schedules"]) {
    const std::string name = s["name"];
    INFO("schedule " << name);
    Tensor w = f64_leaf({0}, {1});
    optim::SGD sgd({w}, optim::SGDOptions(s["base_lr"].get<double>()));
    auto schedule = make_schedule(s, sgd);
    const auto lrs = s["lrs"].get<std::vector<double>>();
    std::vector<double> stepped = {sgd.lr()}, pure;
    for (size_t step = 1; step < lrs.size(); ++step) {
      schedule->step();
      stepped.push_back(sgd.lr());
    }
    for (size_t step = 0; step < lrs.size(); ++step) pure.push_back(schedule->get_lr(int64_t(step)));
    CHECK(schedule->last_step() == int64_t(lrs.size()) - 1);
    require_close(stepped, lrs, 1e-9, 1e-15, name + " via step()");
    require_close(pure, lrs, 1e-9, 1e-15, name + " via get_lr()");
  }
}

TEST_CASE("schedules: groups, resume, ends, and validation", "[optim][schedule]") {
  Tensor a = f64_leaf({0}, {1});
  Tensor b = f64_leaf({0}, {1});
  std::vector<optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{a}, 0.1);
  groups.emplace_back(std::vector<Tensor>{b}, 0.02);
  optim::AdamW opt(groups);

  SECTION("each group scales its own base lr; set_last_step resumes") {
    optim::LinearWarmupLinearDecay schedule(opt, 4, 10);
    CHECK(opt.lr(0) == 0.0);
    CHECK(opt.lr(1) == 0.0);
    schedule.step();
    schedule.step();
    CHECK(opt.lr(0) == Approx(0.05));
    CHECK(opt.lr(1) == Approx(0.01));
    CHECK(schedule.get_lr(7, 1) == Approx(0.02 * 3.0 / 6.0));
    schedule.set_last_step(7);
    CHECK(opt.lr(0) == Approx(0.05));
    CHECK(opt.lr(1) == Approx(0.01));
    CHECK(schedule.base_lrs() == std::vector<double>{0.1, 0.02});
  }
  SECTION("cosine stays at min_lr past total_steps; linear stays at 0") {
    optim::LinearWarmupCosineDecay cosine(opt, 2, 10, 0.01);
    CHECK(cosine.get_lr(10) == Approx(0.01));
    CHECK(cosine.get_lr(15) == Approx(0.01));
    CHECK(cosine.get_lr(1000) == Approx(0.01));
    optim::LinearWarmupLinearDecay linear(opt, 2, 10);
    CHECK(linear.get_lr(1000) == 0.0);
  }
  SECTION("rsqrt peaks at base/sqrt(warmup) and decays as 1/sqrt(step)") {
    optim::RsqrtSchedule rsqrt(opt, 100);
    CHECK(rsqrt.get_lr(0) == 0.0);
    CHECK(rsqrt.get_lr(100) == Approx(0.1 / 10.0));
    CHECK(rsqrt.get_lr(400) == Approx(0.1 / 20.0));
    CHECK(rsqrt.get_lr(50) == Approx(0.1 * 0.5 / 10.0));
  }
  SECTION("OneCycleLR sets every group from max_lr and refuses to run past total_steps") {
    optim::OneCycleLR cycle(opt, 0.4, 10);
    CHECK(opt.lr(0) == Approx(0.4 / 25));
    CHECK(opt.lr(1) == Approx(0.4 / 25));
    for (int i = 0; i < 10; ++i) cycle.step();
    CHECK_THROWS_WITH(cycle.step(), Contains("OneCycleLR: step 11 is past total_steps 10"));
  }
  SECTION("bad arguments name the value") {
    CHECK_THROWS_WITH(optim::LinearWarmupLinearDecay(opt, 20, 10),
                      Contains("warmup_steps must be in [0, total_steps=10], got 20"));
    CHECK_THROWS_WITH(optim::LinearWarmupCosineDecay(opt, 1, 0), Contains("total_steps must be > 0, got 0"));
    CHECK_THROWS_WITH(optim::LinearWarmupCosineDecay(opt, 1, 10, 0.05),
                      Contains("min_lr 0.05 must be in [0, base lr 0.02 of group 1]"));
    CHECK_THROWS_WITH(optim::RsqrtSchedule(opt, 0), Contains("RsqrtSchedule: warmup_steps must be > 0, got 0"));
    CHECK_THROWS_WITH(optim::OneCycleLR(opt, 0.1, 10, 1.5), Contains("pct_start must be in [0, 1], got 1.5"));
    CHECK_THROWS_WITH(optim::ConstantLR(opt, 2.0), Contains("factor must be in [0, 1], got 2"));
    optim::ConstantLR constant(opt, 1.0, 0);
    CHECK_THROWS_WITH(constant.get_lr(-1), Contains("step must be >= 0, got -1"));
  }
}
