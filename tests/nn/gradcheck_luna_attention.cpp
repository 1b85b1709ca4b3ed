// Float64 gradchecks of nn::MultiHeadAttention with the linear kinds: "luna" (input, q_proj, the
// feature map's proj.weight, one ψ parameter and the envelope β, with padding and causal masks) and
// "elu". They check that gradients reach the module's named parameters through LunaFeatureMap.
#include "test_util.h"

#include <luna/nn/attention.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

// Parameters from U(-0.5, 0.5), ψ output biases and β positive (the final ReLU of ψ mostly on, the
// envelope away from its β = 0 start), then the module in float64.
void prepare(nn::Module& module, uint64_t seed) {
  module.to(kFloat64);
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const auto& [name, p] : module.named_parameters()) {
    if (name.ends_with("fc2.bias")) uniform_(p, 0.1, 0.6, &gen);
    else if (name.ends_with("envelope.beta")) uniform_(p, 0.2, 0.5, &gen);
    else uniform_(p, -0.5, 0.5, &gen);
  }
}

}  // namespace

TEST_CASE("gradcheck: MultiHeadAttention luna with padding and causal masks", "[nn][gradcheck][luna]") {
  const int64_t B = 2, N = 4, D = 4;
  struct Case {
    const char* name;
    const char* activation;
    const char* layout;
    bool causal;
    bool masked;
  };
  const std::vector<Case> cases = {
      {"relu per_channel", "relu", "per_channel", false, false},
      {"relu per_channel + key padding", "relu", "per_channel", false, true},
      {"relu shared + causal", "relu", "shared", true, false},
      {"gelu per_channel + causal + key padding", "gelu", "per_channel", true, true},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    LunaFeatureMapOptions luna;
    luna.num_projections = 3;
    luna.channels = 2;
    luna.hidden = 4;
    luna.activation = c.activation;
    luna.layout = c.layout;
    luna.envelope = true;
    nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(D, 2).attention("luna").luna(luna).causal(c.causal));
    prepare(*mha, 20);
    const Tensor x = random_leaf({B, N, D}, 21);
    const std::vector<bool> padded{false, false, false, true, false, true, true, false};
    const Tensor mask = c.masked ? tensor(padded, {B, N}) : Tensor();
    auto psi = mha->feature_map->psi->ptr<nn::LunaPsiImpl>(0);
    require_gradcheck([&](const std::vector<Tensor>&) { return mha(x, Tensor(), Tensor(), mask); },
                      {x, mha->q_proj->weight, mha->feature_map->proj->weight, psi->fc2->weight,
                       mha->feature_map->envelope->beta});
  }
}

TEST_CASE("gradcheck: MultiHeadAttention elu", "[nn][gradcheck][luna]") {
  for (const bool causal : {false, true}) {
    INFO("causal " << causal);
    nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions(4, 2).attention("elu").causal(causal));
    prepare(*mha, 30);
    const Tensor x = random_leaf({2, 4, 4}, 31);
    const Tensor mask = tensor(std::vector<bool>{false, false, true, true, false, false, false, true}, {2, 4});
    require_gradcheck([&](const std::vector<Tensor>&) { return mha(x, Tensor(), Tensor(), mask); },
                      {x, mha->q_proj->weight, mha->k_proj->bias, mha->v_proj->weight, mha->out_proj->bias});
  }
}
