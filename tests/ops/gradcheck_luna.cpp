// Float64 finite-difference checks of luna_attention (ops/luna.h) with respect to q, k, v and every
// feature-map parameter, over the option combinations that change the backward: exact ReLU tables,
// the direct kernel (relu, gelu, silu), both layouts, envelope, per_head, padding, causal, RMS limit.
#include "test_util.h"

#include <luna/ops/luna.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

struct GradcheckCase {
  const char* activation;
  bool force_direct;
  const char* layout;
  bool envelope = false, per_head = false, masked = false, causal = false, rms_limit = false;
};

void check_case(const GradcheckCase& c, uint64_t seed) {
  const int64_t B = 2, H = 2, N = 5, d = 3, dv = 2;
  LunaFeatureMapOptions o;
  o.num_projections = 3;
  o.channels = 2;
  o.hidden = 4;
  o.activation = c.activation;
  o.force_direct = c.force_direct;
  o.layout = c.layout;
  o.envelope = c.envelope;
  o.per_head = c.per_head;
  o.channel_rms_limit = c.rms_limit;
  Generator gen(seed);
  LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(kFloat64), &gen);
  // Leaves with a positive ψ bias so the final ReLU is mostly on; random values keep every scalar
  // away from a kink of the hidden ReLU by far more than the finite-difference step.
  p.proj_bias = random_leaf(p.proj_bias.sizes(), seed + 1, -0.5, 0.5);
  p.fc2_bias = random_leaf(p.fc2_bias.sizes(), seed + 2, 0.1, 0.6);
  if (c.envelope) p.envelope_beta = random_leaf({1}, seed + 3, 0.2, 0.5);

  LinearAttentionOptions attention;
  attention.causal = c.causal;
  if (c.masked) {
    std::vector<uint8_t> padded(B * N, 0);
    padded[N - 1] = 1;          // sequence 0: last token padded
    padded[N + N - 2] = padded[N + N - 1] = 1;  // sequence 1: two pads
    attention.key_padding_mask = tensor(padded, {B, N}).to(kBool);
  }
  std::vector<Tensor> inputs{random_leaf({B, H, N, d}, seed + 4), random_leaf({B, H, N, d}, seed + 5),
                             random_leaf({B, H, N, dv}, seed + 6),
                             p.proj_weight, p.proj_bias, p.fc1_weight, p.fc1_bias, p.fc2_weight, p.fc2_bias};
  if (c.envelope) inputs.push_back(p.envelope_beta);
  auto fn = [&](const std::vector<Tensor>& in) {
    LunaFeatureMapParams q{in[3], in[4], in[5], in[6], in[7], in[8], c.envelope ? in[9] : Tensor()};
    return luna_attention(in[0], in[1], in[2], q, o, attention);
  };
  require_gradcheck(fn, inputs);
}

}  // namespace

TEST_CASE("gradcheck luna_attention for every activation path and layout", "[gradcheck][luna]") {
  uint64_t seed = 100;
  for (const char* layout : {"per_channel", "shared"}) {
    for (bool direct : {false, true}) {
      CAPTURE(layout, "relu", direct);
      check_case({"relu", direct, layout}, seed += 10);
    }
    for (const char* act : {"gelu", "silu"}) {
      CAPTURE(layout, act);
      check_case({act, false, layout}, seed += 10);
    }
  }
}

TEST_CASE("gradcheck luna_attention with envelope, per-head maps, padding and causal", "[gradcheck][luna]") {
  uint64_t seed = 500;
  for (bool direct : {false, true})
    for (const char* layout : {"per_channel", "shared"}) {
      const char* act = direct ? "silu" : "relu";
      CAPTURE(act, layout);
      GradcheckCase everything{act, false, layout};
      everything.envelope = everything.per_head = everything.masked = everything.causal = true;
      check_case(everything, seed += 10);
      GradcheckCase masked{act, false, layout};
      masked.masked = true;
      masked.envelope = true;
      check_case(masked, seed += 10);
      GradcheckCase causal{act, false, layout};
      causal.causal = true;
      causal.per_head = true;
      check_case(causal, seed += 10);
    }
  GradcheckCase forced{"relu", true, "per_channel"};
  forced.per_head = forced.causal = forced.masked = forced.envelope = true;
  check_case(forced, seed += 10);
}

TEST_CASE("gradcheck luna_attention with the channel RMS limit", "[gradcheck][luna]") {
  uint64_t seed = 900;
  for (bool masked : {false, true})
    for (const char* act : {"relu", "gelu"}) {
      CAPTURE(masked, act);
      GradcheckCase c{act, false, "per_channel"};
      c.rms_limit = true;
      c.masked = masked;
      check_case(c, seed += 10);
    }
}

TEST_CASE("gradcheck linear_attention alone, with mask, causal and Nq != Nk", "[gradcheck][luna]") {
  const int64_t B = 2, H = 2, F = 4, dv = 3;
  const Tensor mask = tensor(std::vector<uint8_t>{0, 0, 0, 1, 1, /**/ 0, 1, 0, 0, 0}, {B, 5}).to(kBool);
  for (bool causal : {false, true})
    for (bool masked : {false, true})
      for (int64_t Nq : {int64_t(5), int64_t(3)}) {
        if (causal && Nq != 5) continue;
        CAPTURE(causal, masked, Nq);
        LinearAttentionOptions options;
        options.causal = causal;
        if (masked) options.key_padding_mask = mask;
        auto fn = [&](const std::vector<Tensor>& in) { return linear_attention(in[0], in[1], in[2], options); };
        require_gradcheck(fn, {random_leaf({B, H, Nq, F}, 1, 0.1, 1), random_leaf({B, H, 5, F}, 2, 0.1, 1),
                               random_leaf({B, H, 5, dv}, 3)});
      }
}
