// luna_attention with ψ fused into the attention loop (ops/luna.cpp, fused_luna_attention; kernels
// in ops/luna_linear_attention.cpp) against the unfused composition linear_attention(luna_feature_map(q),
// luna_feature_map(k), v): outputs and every gradient, in float32 and float64, across tile
// boundaries, padding, Nq != Nk, per-head maps, both layouts, head-split inputs and the vector and
// plain ψ paths. Also a float64 gradcheck over several tiles, and which options take the fused path.
#include "test_util.h"

#include <luna/autograd/engine.h>
#include <luna/autograd/node.h>
#include <luna/ops/luna.h>
#include <luna/ops/luna_kernels.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_close;
using luna::testing::require_gradcheck;

namespace {

using cpu::luna_kernels::kFusedTile;

// Two whole tiles and a partial one.
constexpr int64_t kSeveralTiles = 2 * kFusedTile + 17;

struct FusedCase {
  int64_t B = 2, H = 2, Nq = kSeveralTiles, Nk = kSeveralTiles, d = 8, dv = 5;
  int64_t M = 16, L = 4, hidden = 8;
  const char* layout = "per_channel";
  bool per_head = false, masked = false, head_split = false;
};

std::string describe(const FusedCase& c) {
  std::ostringstream s;
  s << "B=" << c.B << " H=" << c.H << " Nq=" << c.Nq << " Nk=" << c.Nk << " d=" << c.d << " dv=" << c.dv
    << " M=" << c.M << " L=" << c.L << " Hpsi=" << c.hidden << " layout=" << c.layout << " per_head=" << c.per_head
    << " masked=" << c.masked << " head_split=" << c.head_split;
  return s.str();
}

// A (B, H, N, w) leaf, or with head_split the (B, H, N, w) view of a (B, N, H, w) leaf as multi-head
// attention hands its heads over; the leaf is what gradients land on. view() makes a fresh view for
// each graph.
struct Input {
  Tensor leaf;
  bool head_split;
  Tensor view() const { return head_split ? leaf.transpose(1, 2) : leaf; }
};
Input make_input(const FusedCase& c, int64_t N, int64_t width, uint64_t seed, DType dtype) {
  if (!c.head_split) {
    Tensor t = random_leaf({c.B, c.H, N, width}, seed).detach().to(dtype);
    t.requires_grad_(true);
    return {t, false};
  }
  Tensor t = random_leaf({c.B, N, c.H, width}, seed).detach().to(dtype);
  t.requires_grad_(true);
  return {t, true};
}

// Runs one case through luna_attention (fused) and the composition, comparing outputs and the
// gradients of q, k, v and every parameter for one random upstream gradient.
void compare_case(const FusedCase& c, DType dtype, double rtol, double atol, uint64_t seed) {
  INFO(describe(c) << " dtype=" << dtype);
  LunaFeatureMapOptions o;
  o.num_projections = c.M;
  o.channels = c.L;
  o.hidden = c.hidden;
  o.layout = c.layout;
  o.per_head = c.per_head;
  Generator gen(seed);
  const LunaFeatureMapParams init = luna_feature_map_init(c.d, c.H, o, TensorOptions(kFloat64), &gen);
  // A positive ψ bias keeps most outputs active; the projection bias moves u off zero.
  auto leaf = [&](const Tensor& t) {
    Tensor out = t.detach().to(dtype);
    out.requires_grad_(true);
    return out;
  };
  LunaFeatureMapParams p{leaf(init.proj_weight), leaf(random_leaf(init.proj_bias.sizes(), seed + 1, -0.5, 0.5)),
                         leaf(init.fc1_weight),  leaf(init.fc1_bias),
                         leaf(init.fc2_weight),  leaf(random_leaf(init.fc2_bias.sizes(), seed + 2, 0.0, 0.5)),
                         Tensor()};
  const Input q = make_input(c, c.Nq, c.d, seed + 3, dtype), k = make_input(c, c.Nk, c.d, seed + 4, dtype);
  const Input v = make_input(c, c.Nk, c.dv, seed + 5, dtype);
  LinearAttentionOptions attention;
  if (c.masked) {
    std::vector<uint8_t> padded(size_t(c.B * c.Nk), 0);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = c.Nk - 1 - 7 * b; j < c.Nk; ++j) padded[size_t(b * c.Nk + j)] = 1;  // 1, 8, ... pads
    padded[0] = 1;  // a pad that is not at the end
    attention.key_padding_mask = tensor(padded, {c.B, c.Nk}).to(kBool);
  }
  const std::vector<Tensor> leaves{q.leaf,        k.leaf,       v.leaf,        p.proj_weight, p.proj_bias,
                                   p.fc1_weight, p.fc1_bias,   p.fc2_weight, p.fc2_bias};
  const Tensor upstream = random_leaf({c.B, c.H, c.Nq, c.dv}, seed + 6).detach().to(dtype);

  const Tensor fused = luna_attention(q.view(), k.view(), v.view(), p, o, attention);
  REQUIRE(fused.grad_fn() != nullptr);
  REQUIRE(fused.grad_fn()->op_name == "luna_attention_fused");
  const std::vector<Tensor> fused_grads = autograd::grad(fused, leaves, upstream);

  const Tensor query_mask = c.Nq == c.Nk ? attention.key_padding_mask : Tensor();
  const Tensor composed = linear_attention(luna_feature_map(q.view(), p, o, query_mask),
                                           luna_feature_map(k.view(), p, o, attention.key_padding_mask), v.view(),
                                           attention);
  REQUIRE(composed.grad_fn()->op_name != "luna_attention_fused");
  const std::vector<Tensor> composed_grads = autograd::grad(composed, leaves, upstream);

  require_close(fused, composed, rtol, atol);
  const char* names[] = {"q", "k", "v", "proj_weight", "proj_bias", "fc1_weight", "fc1_bias", "fc2_weight",
                         "fc2_bias"};
  for (size_t i = 0; i < leaves.size(); ++i) {
    INFO("gradient of " << names[i]);
    REQUIRE(fused_grads[i].defined());
    REQUIRE(fused_grads[i].sizes() == composed_grads[i].sizes());
    require_close(fused_grads[i], composed_grads[i], rtol, atol);
  }
  if (c.masked) {  // a padded key gets no gradient, through v or through ψ
    const std::vector<double> gv = luna::testing::values(fused_grads[2]);
    const std::vector<double> gk = luna::testing::values(fused_grads[1]);
    const int64_t vw = c.dv, kw = c.d;
    // Key 0 of sequence 0 is padded; its rows are the first of v and k in either layout.
    for (int64_t e = 0; e < vw; ++e) REQUIRE(gv[size_t(e)] == 0.0);
    for (int64_t e = 0; e < kw; ++e) REQUIRE(gk[size_t(e)] == 0.0);
  }
}

std::vector<FusedCase> cases() {
  std::vector<FusedCase> all;
  all.push_back({});     // two tiles plus a partial one, per_channel
  FusedCase one_tile;    // fewer tokens than a tile, M below a vector width
  one_tile.Nq = one_tile.Nk = 9;
  one_tile.M = 5;
  all.push_back(one_tile);
  FusedCase shared;
  shared.layout = "shared";
  shared.masked = true;
  all.push_back(shared);
  FusedCase per_head;
  per_head.per_head = true;
  per_head.masked = true;
  per_head.H = 3;
  all.push_back(per_head);
  FusedCase cross;  // Nq != Nk, queries fewer than a tile, keys several tiles
  cross.Nq = 33;
  cross.masked = true;
  all.push_back(cross);
  FusedCase split;  // q, k, v head splits of (B, N, H, ·) memory, as MultiHeadAttention passes them
  split.head_split = true;
  split.masked = true;
  split.M = 32;
  all.push_back(split);
  FusedCase three_channels;  // L != 4: the 8-lane ψ path without the 16-lane one
  three_channels.L = 3;
  three_channels.head_split = true;
  all.push_back(three_channels);
  FusedCase one_head;
  one_head.H = 1;
  one_head.B = 3;
  one_head.Nq = one_head.Nk = 2 * kFusedTile;  // exactly two tiles
  all.push_back(one_head);
  return all;
}

}  // namespace

TEST_CASE("fused luna_attention equals the composition of luna_feature_map and linear_attention", "[luna]") {
  uint64_t seed = 3000;
  for (const FusedCase& c : cases()) {
    compare_case(c, kFloat64, 1e-10, 1e-12, seed += 10);
    // float32: the tiled sums round differently from one GEMM over all keys.
    compare_case(c, kFloat32, 2e-4, 2e-5, seed += 10);
  }
}

TEST_CASE("gradcheck fused luna_attention over several tiles, padding and Nq != Nk", "[gradcheck][luna]") {
  const int64_t B = 2, H = 2, d = 3, dv = 2;
  uint64_t seed = 3500;
  for (bool per_head : {false, true})
    for (int64_t Nq : {kFusedTile + 6, int64_t(20)}) {
      const int64_t Nk = kFusedTile + 6;
      CAPTURE(per_head, Nq);
      LunaFeatureMapOptions o;
      o.num_projections = 3;
      o.channels = 2;
      o.hidden = 4;
      o.per_head = per_head;
      Generator gen(seed += 10);
      LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(kFloat64), &gen);
      p.proj_bias = random_leaf(p.proj_bias.sizes(), seed + 1, -0.5, 0.5);
      p.fc2_bias = random_leaf(p.fc2_bias.sizes(), seed + 2, 0.1, 0.6);
      std::vector<uint8_t> padded(size_t(B * Nk), 0);
      padded[5] = padded[size_t(Nk + Nk - 1)] = padded[size_t(Nk + kFusedTile)] = 1;
      LinearAttentionOptions attention;
      attention.key_padding_mask = tensor(padded, {B, Nk}).to(kBool);
      const std::vector<Tensor> inputs{random_leaf({B, H, Nq, d}, seed + 4), random_leaf({B, H, Nk, d}, seed + 5),
                                       random_leaf({B, H, Nk, dv}, seed + 6), p.proj_weight, p.proj_bias,
                                       p.fc1_weight, p.fc1_bias, p.fc2_weight, p.fc2_bias};
      auto fn = [&](const std::vector<Tensor>& in) {
        const LunaFeatureMapParams q{in[3], in[4], in[5], in[6], in[7], in[8], Tensor()};
        const Tensor out = luna_attention(in[0], in[1], in[2], q, o, attention);
        // (gradcheck also evaluates without grad mode, where no node is recorded)
        LUNA_CHECK(!out.grad_fn() || out.grad_fn()->op_name == "luna_attention_fused", "expected the fused path");
        return out;
      };
      require_gradcheck(fn, inputs);
    }
}

TEST_CASE("luna_attention takes the fused path only where ψ's output goes straight to the attention", "[luna]") {
  const int64_t B = 1, H = 2, N = 6, d = 4;
  const Tensor q = random_leaf({B, H, N, d}, 1), k = random_leaf({B, H, N, d}, 2), v = random_leaf({B, H, N, 3}, 3);
  auto path = [&](LunaFeatureMapOptions o, bool causal) {
    Generator gen(7);
    const LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(kFloat64), &gen);
    LinearAttentionOptions attention;
    attention.causal = causal;
    return luna_attention(q, k, v, p, o, attention).grad_fn()->op_name;
  };
  LunaFeatureMapOptions o;
  CHECK(path(o, false) == "luna_attention_fused");
  o.layout = "shared";
  o.per_head = true;
  CHECK(path(o, false) == "luna_attention_fused");
  CHECK(path(o, true) != "luna_attention_fused");  // causal: prefix sums
  LunaFeatureMapOptions envelope;
  envelope.envelope = true;
  CHECK(path(envelope, false) != "luna_attention_fused");
  LunaFeatureMapOptions rms;
  rms.channel_rms_limit = true;
  CHECK(path(rms, false) != "luna_attention_fused");
  LunaFeatureMapOptions gelu;
  gelu.activation = "gelu";
  CHECK(path(gelu, false) != "luna_attention_fused");
  LunaFeatureMapOptions direct;
  direct.force_direct = true;
  CHECK(path(direct, false) != "luna_attention_fused");
  LunaFeatureMapOptions wide;  // buckets no longer fit a byte
  wide.hidden = 128;
  CHECK(path(wide, false) != "luna_attention_fused");
}

TEST_CASE("fused luna_attention: bad inputs name the problem and the values", "[luna]") {
  const int64_t B = 1, H = 2, N = 6, d = 4;
  const Tensor q = zeros({B, H, N, d}), k = zeros({B, H, N, d}), v = zeros({B, H, N, 3});
  const LunaFeatureMapOptions o;  // the defaults take the fused path
  Generator gen(7);
  const LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(kFloat32), &gen);
  REQUIRE(luna_attention(q, k, v, p, o, {}).sizes() == Dims{B, H, N, 3});
  REQUIRE_THROWS_WITH(luna_attention(q, k.to(kFloat64), v, p, o, {}),
                      Catch::Contains("dtypes differ") && Catch::Contains("k float64") && Catch::Contains("q float32"));
  REQUIRE_THROWS_WITH(luna_attention(q, k, v.to(kFloat64), p, o, {}),
                      Catch::Contains("dtypes differ") && Catch::Contains("v float64"));
  LinearAttentionOptions negative_eps;
  negative_eps.eps = -1e-3;
  REQUIRE_THROWS_WITH(luna_attention(q, k, v, p, o, negative_eps),
                      Catch::Contains("eps must be non-negative") && Catch::Contains("-0.001"));
  // Parameters made for another head width.
  const LunaFeatureMapParams wrong_width = luna_feature_map_init(d + 1, H, o, TensorOptions(kFloat32), &gen);
  REQUIRE_THROWS_WITH(luna_attention(q, k, v, wrong_width, o, {}),
                      Catch::Contains("proj_weight has shape [32,5]") && Catch::Contains("expected [32,4]"));
}
