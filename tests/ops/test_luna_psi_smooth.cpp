// LUNA's ψ with a smooth activation (gelu, silu) in float32 runs 8 values of u at a time through the
// 8-lane erf/exp of backends/cpu/fast_math.h (ops/luna_kernels.cpp); float64 runs the scalar loop
// with std::erf/std::exp. Here the float32 map, its input gradient and every ψ-parameter gradient
// are held to the float64 ones: M with and without a tail of lanes, L = 1 and L > 1, shared and
// per-channel ψ, per-head maps, head-split inputs, enough rows for several threads and for the
// backward's lane sums to be folded more than once, and inputs large enough that exp overflows.
#include "test_util.h"

#include <algorithm>
#include <cmath>

#include <luna/ops/luna.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::values;

namespace {

Tensor uniform(const Dims& shape, uint64_t seed, double lo, double hi) {
  return random_leaf(shape, seed, lo, hi).detach();  // float64 values in [lo, hi)
}

struct SmoothCase {
  int64_t M, L;
  const char* layout;
  bool per_head, head_split;
  double input_range;  // x uniform in (−range, range)
};

// Everything that depends on the dtype: φ, then x's gradient, then the ψ and projection gradients.
std::vector<std::vector<double>> run(const SmoothCase& c, const std::string& activation, DType dtype) {
  const int64_t B = 2, H = 3, N = 41, d = 8;
  LunaFeatureMapOptions o;
  o.num_projections = c.M;
  o.channels = c.L;
  o.hidden = 12;
  o.activation = activation;
  o.layout = c.layout;
  o.per_head = c.per_head;
  Generator gen(7);
  LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(kFloat64), &gen);
  {
    NoGradGuard no_grad;  // nonzero biases so that every term is exercised
    p.proj_bias.copy_(uniform(p.proj_bias.sizes(), 8, -0.5, 0.5));
    p.fc2_bias.copy_(uniform(p.fc2_bias.sizes(), 9, 0.0, 0.5));
  }
  std::vector<Tensor> leaves;
  for (Tensor* t : {&p.proj_weight, &p.proj_bias, &p.fc1_weight, &p.fc1_bias, &p.fc2_weight, &p.fc2_bias}) {
    *t = t->detach().to(dtype).requires_grad_(true);
    leaves.push_back(*t);
  }
  // x as (B, N, H, d) memory, handed over as its head split or as a contiguous (B, H, N, d) tensor.
  const Tensor x_store = (c.head_split ? uniform({B, N, H, d}, 10, -c.input_range, c.input_range)
                                       : uniform({B, H, N, d}, 10, -c.input_range, c.input_range))
                             .to(dtype)
                             .requires_grad_(true);
  const Tensor x = c.head_split ? x_store.transpose(1, 2) : x_store;
  const Tensor weights = uniform({B, H, N, c.M * c.L}, 11, -1, 1).to(dtype);
  const Tensor phi = luna_feature_map(x, p, o);
  (phi * weights).sum().backward();
  std::vector<std::vector<double>> out{values(phi), values(x_store.grad())};
  for (const Tensor& t : leaves) out.push_back(values(t.grad()));
  return out;
}

// max |got − want| over max |want|: the sums behind a gradient cancel, so an elementwise relative
// bound would be meaningless where they nearly do.
double normwise_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(std::isfinite(got[i]));
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

}  // namespace

TEST_CASE("float32 ψ with gelu and silu matches float64: values, input and parameter gradients", "[luna]") {
  const char* names[] = {"phi", "grad x", "grad proj_weight", "grad proj_bias", "grad fc1_weight",
                         "grad fc1_bias", "grad fc2_weight", "grad fc2_bias"};
  for (const char* activation : {"gelu", "silu"})
    for (const SmoothCase& c : {SmoothCase{13, 3, "per_channel", false, false, 2.0},
                                SmoothCase{32, 4, "per_channel", true, true, 2.0},
                                SmoothCase{8, 1, "shared", false, false, 2.0},
                                SmoothCase{5, 2, "shared", true, true, 2.0},
                                // u up to about ±60: exp(−pre) overflows float32 in silu, erf saturates
                                SmoothCase{16, 2, "per_channel", false, false, 40.0}}) {
      CAPTURE(activation, c.M, c.L, c.layout, c.per_head, c.head_split, c.input_range);
      const auto want = run(c, activation, kFloat64);
      const auto got = run(c, activation, kFloat32);
      REQUIRE(got.size() == want.size());
      // Something must flow: a map that the final ReLU switched off everywhere would pass vacuously.
      REQUIRE(*std::max_element(want[0].begin(), want[0].end()) > 0);
      for (size_t r = 0; r < want.size(); ++r) {
        CAPTURE(names[r]);
        CHECK(normwise_error(got[r], want[r]) < 1e-4);
      }
    }
}
