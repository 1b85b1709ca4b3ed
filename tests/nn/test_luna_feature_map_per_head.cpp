// nn::LunaFeatureMap with options.per_head: parameter names and shapes (a leading H dim on every
// tensor but envelope.beta), forward against the luna_feature_map op with per-head parameters built
// element by element from the state_dict, head h against a shared map holding slice h, gradients
// that stay in their head, initialisation, bad arguments, and f64 gradchecks through the module.
#include "test_util.h"

#include <map>

#include <luna/nn/luna_feature_map.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_close;
using luna::testing::require_gradcheck;
using luna::testing::values;

namespace {

LunaFeatureMapOptions small_options(const std::string& layout, const std::string& activation = "relu",
                                    bool envelope = false) {
  LunaFeatureMapOptions o;
  o.num_projections = 3;
  o.channels = 2;
  o.hidden = 4;
  o.layout = layout;
  o.activation = activation;
  o.envelope = envelope;
  o.per_head = true;
  return o;
}

// Every parameter from U(-0.5, 0.5) (zero biases would hide a missing bias), ψ output biases
// positive so the final ReLU of ψ is mostly on, β away from 0.
void randomize(nn::Module& module, uint64_t seed) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const auto& [name, p] : module.named_parameters()) {
    if (name.ends_with("fc2.bias")) uniform_(p, 0.1, 0.6, &gen);
    else if (name.ends_with("envelope.beta")) uniform_(p, 0.2, 0.4, &gen);
    else uniform_(p, -0.5, 0.5, &gen);
  }
}

std::map<std::string, Tensor> state_of(const nn::Module& module) {
  std::map<std::string, Tensor> sd;
  for (const auto& [name, t] : module.state_dict()) sd[name] = t.detach();
  return sd;
}

// The op's per-head parameters rebuilt element by element from the state_dict (layout of ops/luna.h
// with a leading H), independently of LunaFeatureMap::params().
LunaFeatureMapParams per_head_params_from_state(const nn::Module& module, const LunaFeatureMapOptions& o,
                                                int64_t H) {
  const std::map<std::string, Tensor> sd = state_of(module);
  const int64_t L = o.channels, Hh = o.hidden;
  LunaFeatureMapParams p;
  p.proj_weight = sd.at("proj.weight").clone();
  p.proj_bias = sd.at("proj.bias").clone();
  if (o.layout == "per_channel") {
    std::vector<double> fc1_w(size_t(H * L * Hh)), fc1_b(fc1_w.size()), fc2_w(fc1_w.size()), fc2_b(size_t(H * L));
    for (int64_t l = 0; l < L; ++l) {
      const std::string prefix = "psi." + std::to_string(l) + ".";
      const std::vector<double> w1 = values(sd.at(prefix + "fc1.weight")), b1 = values(sd.at(prefix + "fc1.bias"));
      const std::vector<double> w2 = values(sd.at(prefix + "fc2.weight")), b2 = values(sd.at(prefix + "fc2.bias"));
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t j = 0; j < Hh; ++j) {
          const size_t to = size_t((h * L + l) * Hh + j), from = size_t(h * Hh + j);  // [H, Hψ, 1] / [H, Hψ] / [H, 1, Hψ]
          fc1_w[to] = w1[from];
          fc1_b[to] = b1[from];
          fc2_w[to] = w2[from];
        }
        fc2_b[size_t(h * L + l)] = b2[size_t(h)];  // [H, 1]
      }
    }
    p.fc1_weight = tensor(fc1_w, {H, L, Hh});
    p.fc1_bias = tensor(fc1_b, {H, L, Hh});
    p.fc2_weight = tensor(fc2_w, {H, L, Hh});
    p.fc2_bias = tensor(fc2_b, {H, L});
  } else {
    p.fc1_weight = tensor(values(sd.at("psi.0.fc1.weight")), {H, Hh});
    p.fc1_bias = sd.at("psi.0.fc1.bias").clone();
    p.fc2_weight = sd.at("psi.0.fc2.weight").clone();
    p.fc2_bias = sd.at("psi.0.fc2.bias").clone();
  }
  if (o.envelope) p.envelope_beta = sd.at("envelope.beta").clone();
  for (Tensor* t : {&p.proj_weight, &p.proj_bias, &p.fc1_weight, &p.fc1_bias, &p.fc2_weight, &p.fc2_bias})
    *t = t->to(kFloat32);
  return p;
}

// A map shared by all heads holding slice h of every per-head parameter.
nn::LunaFeatureMap shared_copy_of_head(const nn::LunaFeatureMapImpl& per_head, int64_t h) {
  LunaFeatureMapOptions o = per_head.options;
  o.per_head = false;
  nn::LunaFeatureMap shared(per_head.head_dim, o);
  nn::NamedTensors state;
  for (const auto& [name, t] : per_head.state_dict())
    state.emplace_back(name, name == "envelope.beta" ? t : t.select(0, h));
  shared->load_state_dict(state);
  return shared;
}

}  // namespace

TEST_CASE("LunaFeatureMap per_head: names stay, every tensor but envelope.beta gets a leading H", "[nn][luna]") {
  const int64_t H = 3, d = 5;
  nn::LunaFeatureMap per_channel(d, small_options("per_channel", "relu", true), H);
  std::vector<std::pair<std::string, Dims>> got;
  for (const auto& [name, t] : per_channel->named_parameters()) got.emplace_back(name, t.sizes());
  REQUIRE(got == std::vector<std::pair<std::string, Dims>>{
                     {"proj.weight", {3, 3, 5}},     {"proj.bias", {3, 3}},           {"psi.0.fc1.weight", {3, 4, 1}},
                     {"psi.0.fc1.bias", {3, 4}},     {"psi.0.fc2.weight", {3, 1, 4}}, {"psi.0.fc2.bias", {3, 1}},
                     {"psi.1.fc1.weight", {3, 4, 1}}, {"psi.1.fc1.bias", {3, 4}},     {"psi.1.fc2.weight", {3, 1, 4}},
                     {"psi.1.fc2.bias", {3, 1}},     {"envelope.beta", {1}}});

  nn::LunaFeatureMap shared(d, small_options("shared"), H);
  got.clear();
  for (const auto& [name, t] : shared->named_parameters()) got.emplace_back(name, t.sizes());
  REQUIRE(got == std::vector<std::pair<std::string, Dims>>{{"proj.weight", {3, 3, 5}},
                                                           {"proj.bias", {3, 3}},
                                                           {"psi.0.fc1.weight", {3, 4, 1}},
                                                           {"psi.0.fc1.bias", {3, 4}},
                                                           {"psi.0.fc2.weight", {3, 2, 4}},
                                                           {"psi.0.fc2.bias", {3, 2}}});

  // Without per_head, num_heads changes nothing: the spec's shapes.
  LunaFeatureMapOptions one_map = small_options("per_channel");
  one_map.per_head = false;
  nn::LunaFeatureMap not_per_head(d, one_map, H);
  REQUIRE(not_per_head->proj->weight.sizes() == Dims({3, 5}));
  REQUIRE(not_per_head->psi->ptr<nn::LunaPsiImpl>(1)->fc2->bias.sizes() == Dims({1}));
}

TEST_CASE("LunaFeatureMap per_head: initialisation draws every head independently", "[nn][luna]") {
  const int64_t H = 2, d = 16;
  LunaFeatureMapOptions o = small_options("per_channel");
  o.hidden = 9;
  Generator gen(5);
  nn::LunaFeatureMap fm(d, o, H);
  fm->reset_parameters(&gen);
  const std::map<std::string, Tensor> sd = state_of(*fm);
  REQUIRE(values(sd.at("proj.bias")) == std::vector<double>(size_t(H * 3), 0.0));
  // W ~ N(0, 1/d): 3·16 values per head with std 0.25, and the heads differ.
  const std::vector<double> w0 = values(sd.at("proj.weight").select(0, 0)), w1 = values(sd.at("proj.weight").select(0, 1));
  REQUIRE(w0 != w1);
  double sum_squares = 0;
  for (double w : w0) sum_squares += w * w;
  for (double w : w1) sum_squares += w * w;
  const double std_estimate = std::sqrt(sum_squares / double(w0.size() + w1.size()));
  CHECK(std_estimate > 0.25 * 0.75);
  CHECK(std_estimate < 0.25 * 1.25);
  // ψ: fc1 U(±1), fc2 U(±1/√Hψ) = U(±1/3); heads differ.
  for (int64_t l = 0; l < 2; ++l) {
    const std::string prefix = "psi." + std::to_string(l) + ".";
    for (const char* name : {"fc1.weight", "fc1.bias"})
      for (double v : values(sd.at(prefix + name))) REQUIRE(std::abs(v) <= 1.0);
    for (const char* name : {"fc2.weight", "fc2.bias"})
      for (double v : values(sd.at(prefix + name))) REQUIRE(std::abs(v) <= 1.0 / 3.0);
    REQUIRE(values(sd.at(prefix + "fc1.weight").select(0, 0)) != values(sd.at(prefix + "fc1.weight").select(0, 1)));
    REQUIRE(values(sd.at(prefix + "fc2.weight").select(0, 0)) != values(sd.at(prefix + "fc2.weight").select(0, 1)));
  }
}

TEST_CASE("LunaFeatureMap per_head: forward equals the op with per-head parameters", "[nn][luna]") {
  const int64_t B = 2, H = 3, N = 5, d = 4;
  for (const std::string layout : {"per_channel", "shared"}) {
    for (const std::string activation : {"relu", "gelu"}) {
      for (const bool envelope : {false, true}) {
        INFO(layout << " " << activation << " envelope " << envelope);
        const LunaFeatureMapOptions o = small_options(layout, activation, envelope);
        nn::LunaFeatureMap fm(d, o, H);
        randomize(*fm, 11);
        const Tensor x = random_leaf({B, H, N, d}, 12).detach().to(kFloat32);  // (B, H, N, d)
        NoGradGuard no_grad;
        const Tensor got = fm(x);  // (B, H, N, F)
        REQUIRE(got.sizes() == Dims({B, H, N, 6}));
        const Tensor want = luna_feature_map(x, per_head_params_from_state(*fm, o, H), o);
        require_close(got, want, 1e-6, 1e-7);
        REQUIRE(values(got.abs().sum()).front() > 0);  // features are not all zero

        // Head h of the per-head map is a shared map holding slice h of every parameter.
        for (int64_t h = 0; h < H; ++h) {
          nn::LunaFeatureMap head = shared_copy_of_head(*fm, h);
          const Tensor x_h = x.narrow(1, h, 1).contiguous();  // (B, 1, N, d)
          require_close(head(x_h), got.narrow(1, h, 1), 1e-6, 1e-7);
        }
      }
    }
  }
}

TEST_CASE("LunaFeatureMap per_head: heads differ when their parameters differ, agree when equal", "[nn][luna]") {
  const int64_t B = 2, H = 2, N = 4, d = 4;
  nn::LunaFeatureMap fm(d, small_options("per_channel"), H);
  randomize(*fm, 21);
  // The same tokens fed to both heads.
  const Tensor one_head = random_leaf({B, 1, N, d}, 22).detach().to(kFloat32);
  const Tensor x = one_head.expand({B, H, N, d}).contiguous();  // (B, H, N, d)
  NoGradGuard no_grad;
  const std::vector<double> head0 = values(fm(x).select(1, 0)), head1 = values(fm(x).select(1, 1));
  double largest_difference = 0;
  for (size_t i = 0; i < head0.size(); ++i) largest_difference = std::max(largest_difference, std::abs(head0[i] - head1[i]));
  REQUIRE(largest_difference > 1e-2);

  // Copy head 0's parameters into head 1: the heads now agree exactly.
  for (const auto& [name, p] : fm->named_parameters()) p.select(0, 1).copy_(p.select(0, 0));
  REQUIRE(values(fm(x).select(1, 0)) == values(fm(x).select(1, 1)));
}

TEST_CASE("LunaFeatureMap per_head: a head's output depends only on that head's parameters", "[nn][luna]") {
  const int64_t B = 2, H = 3, N = 4, d = 4;
  for (const std::string layout : {"per_channel", "shared"}) {
    INFO(layout);
    nn::LunaFeatureMap fm(d, small_options(layout, "relu", true), H);
    randomize(*fm, 31);
    const Tensor x = random_leaf({B, H, N, d}, 32).detach().to(kFloat32);
    fm(x).select(1, 1).sum().backward();  // a loss on head 1 only
    for (const auto& [name, p] : fm->named_parameters()) {
      INFO(name);
      REQUIRE(p.grad().defined());
      if (name == "envelope.beta") {
        CHECK(std::abs(values(p.grad()).front()) > 0);
        continue;
      }
      for (int64_t h = 0; h < H; ++h) {
        const double magnitude = values(p.grad().select(0, h).abs().sum()).front();
        if (h == 1) CHECK(magnitude > 0);
        else CHECK(magnitude == 0);
      }
    }
  }
}

TEST_CASE("LunaFeatureMap per_head: bad arguments are reported", "[nn][luna]") {
  REQUIRE_THROWS_WITH(nn::LunaFeatureMap(4, small_options("per_channel")), Catch::Contains("per_head") &&
                                                                                Catch::Contains("num_heads"));
  REQUIRE_THROWS_WITH(nn::LunaFeatureMap(4, small_options("per_channel"), -1), Catch::Contains("num_heads"));
  nn::LunaFeatureMap fm(4, small_options("shared"), 2);
  const Tensor three_heads = zeros({1, 3, 5, 4});
  REQUIRE_THROWS_WITH(fm(three_heads), Catch::Contains("2 heads") && Catch::Contains("has 3 heads"));
  // A checkpoint of a map shared by the heads does not load into a per-head one: the shapes differ.
  LunaFeatureMapOptions shared_options = small_options("shared");
  shared_options.per_head = false;
  nn::LunaFeatureMap not_per_head(4, shared_options);
  REQUIRE_THROWS_WITH(fm->load_state_dict(not_per_head->state_dict()), Catch::Contains("proj.weight"));
}

TEST_CASE("gradcheck: LunaFeatureMap per_head through the module (f64)", "[nn][gradcheck][luna]") {
  const int64_t B = 2, H = 2, N = 3, d = 3;
  struct Case {
    const char* layout;
    const char* activation;
    bool envelope;
    bool rms_limit;
  };
  for (const Case& c : {Case{"per_channel", "relu", false, false}, Case{"shared", "relu", true, false},
                        Case{"per_channel", "gelu", true, false}, Case{"shared", "silu", false, true}}) {
    INFO(c.layout << " " << c.activation << " envelope " << c.envelope << " channel_rms_limit " << c.rms_limit);
    LunaFeatureMapOptions o = small_options(c.layout, c.activation, c.envelope);
    o.channel_rms_limit = c.rms_limit;
    nn::LunaFeatureMap fm(d, o, H);
    fm->to(kFloat64);
    randomize(*fm, 41);
    const Tensor x = random_leaf({B, H, N, d}, 42);
    const Tensor mask = tensor(std::vector<bool>{false, false, true, false, false, false}, {B, N});
    std::vector<Tensor> inputs{x};
    for (const Tensor& p : fm->parameters()) inputs.push_back(p);  // every parameter, every head
    require_gradcheck([&](const std::vector<Tensor>&) { return fm(x, c.rms_limit ? mask : Tensor()); }, inputs);
  }
}
