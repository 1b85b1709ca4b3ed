// Float64 gradchecks of nn::MultiHeadAttention for the kinds of spec/LUNA.md §4 (softmax, performer,
// cosformer, hedgehog) with and without padding and causal mode, checking the input and every
// parameter (the module's parameters are gradcheck inputs, perturbed in place).
#include "test_util.h"

#include <luna/nn/attention.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

TEST_CASE("gradcheck: MultiHeadAttention for every baseline kind", "[nn][gradcheck][kinds]") {
  const int64_t B = 2, N = 4, D = 4;
  // Right padding, so every causal row sees at least its first key.
  const Tensor mask = tensor(std::vector<bool>{false, false, false, true, false, false, true, true}, {B, N});
  uint64_t seed = 10;
  for (const std::string kind : {"softmax", "performer", "cosformer", "hedgehog"})
    for (bool causal : {false, true})
      for (bool masked : {false, true}) {
        CAPTURE(kind, causal, masked);
        nn::MultiHeadAttentionOptions options(D, 2);
        // performer: ε = 0 makes the detached stabilisers cancel exactly (they move with x).
        options.attention(kind).causal(causal).performer_features(6).cosformer_max_len(8).linear_eps(
            kind == "performer" ? 0.0 : 1e-6);
        manual_seed(seed);
        nn::MultiHeadAttention mha(options);
        mha->to(kFloat64);
        mha->eval();  // performer: no redraw between gradcheck's evaluations
        {
          Generator gen(seed + 1);
          NoGradGuard no_grad;
          for (const Tensor& p : mha->parameters()) uniform_(p, -0.5, 0.5, &gen);
        }
        std::vector<Tensor> inputs{random_leaf({B, N, D}, seed + 2)};
        for (const Tensor& p : mha->parameters()) inputs.push_back(p);
        seed += 10;
        require_gradcheck(
            [&](const std::vector<Tensor>& in) { return mha(in[0], Tensor(), Tensor(), masked ? mask : Tensor()); },
            inputs);
      }
}
