// LunaFeatureMapImpl::init_softmax_kernel_: ψ interpolates exp on its knot range (and stays at
// exp(t_0) below it), φ(x) is FAVOR+'s h(x)·exp(ωᵀx̂)/√M there, the row-normalised kernel
// φ(q)ᵀφ(k) approaches softmax(qkᵀ/√d) (and does not without the envelope's β = −1, nor with the
// paper's initialisation), per head draws differ, and options it cannot serve are refused by name.
#include "test_util.h"

#include <cmath>

#include <luna/nn/luna_feature_map.h>
#include <luna/ops/attention.h>
#include <luna/ops/factories.h>
#include <luna/ops/linalg.h>
#include <luna/ops/nn_functional.h>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

LunaFeatureMapOptions softmax_init_options(int64_t projections) {
  LunaFeatureMapOptions o;
  o.num_projections = projections;
  o.channels = 1;
  o.hidden = 64;
  o.envelope = true;
  return o;
}

// x (1, 1, N, d) with N(0, std²) entries.
Tensor gaussian_tokens(int64_t n, int64_t d, double std, uint64_t seed) {
  Generator generator(seed);
  return randn({1, 1, n, d}, {}, &generator) * std;
}

// Row-normalised kernel matrix of φ: A[i, j] = φ(q_i)ᵀφ(k_j) / Σ_j φ(q_i)ᵀφ(k_j), (N, N).
Tensor normalised_kernel(const nn::LunaFeatureMap& feature_map, const Tensor& q, const Tensor& k) {
  const int64_t n = q.size(2);
  const Tensor phi_q = feature_map(q).reshape({n, -1});  // (N, F)
  const Tensor phi_k = feature_map(k).reshape({n, -1});  // (N, F)
  const Tensor kernel = matmul(phi_q, phi_k.transpose(0, 1));  // (N, N)
  return kernel / kernel.sum({1}, true);
}

double relative_frobenius_error(const Tensor& got, const Tensor& want) {
  const std::vector<double> a = values(got), b = values(want);
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace

TEST_CASE("LUNA softmax-kernel init: psi interpolates exp on the knot range, phi is FAVOR+'s feature", "[nn][luna]") {
  const int64_t d = 16, M = 64, N = 256;
  nn::LunaFeatureMap feature_map(d, softmax_init_options(M));
  Generator generator(3);
  feature_map->init_softmax_kernel_(&generator, 8.0);
  CHECK(values(feature_map->envelope->beta) == std::vector<double>{-1.0});
  CHECK(values(feature_map->proj->bias) == std::vector<double>(M, 0.0));

  const Tensor x = gaussian_tokens(N, d, 2.0, 5);                                    // (1, 1, N, d)
  const std::vector<double> phi = values(feature_map(x));                           // (1, 1, N, M)
  const std::vector<double> u = values(matmul(x.reshape({N, d}), feature_map->proj->weight.transpose(0, 1)));  // (N, M)
  const std::vector<double> xs = values(x);
  int64_t inside = 0, below = 0;
  double worst_inside = 0.0;
  for (int64_t t = 0; t < N; ++t) {
    double squared_norm = 0.0;
    for (int64_t c = 0; c < d; ++c) squared_norm += xs[size_t(t * d + c)] * xs[size_t(t * d + c)];
    const double envelope = std::exp(-squared_norm / (2.0 * std::sqrt(double(d))));
    for (int64_t i = 0; i < M; ++i) {
      const double ui = u[size_t(t * M + i)];
      const double psi = phi[size_t(t * M + i)] * std::sqrt(double(M)) / envelope;  // ψ(u) recovered
      if (std::abs(ui) <= 8.0) {
        ++inside;
        worst_inside = std::max(worst_inside, std::abs(psi / std::exp(ui) - 1.0));
      } else if (ui < -8.0) {
        ++below;
        CHECK(psi == Approx(std::exp(-8.0)).epsilon(1e-3));
      }
    }
  }
  // Linear interpolation of exp at knots 16/63 apart overestimates by at most h²/8 ≈ 0.8%.
  INFO("worst relative error of psi against exp on [-8, 8]: " << worst_inside);
  CHECK(inside > N * M / 2);
  CHECK(below > 0);
  CHECK(worst_inside < 0.0085);
  CHECK(worst_inside > 1e-4);  // a piecewise-linear ψ, not exp itself
}

TEST_CASE("LUNA softmax-kernel init: the normalised kernel approaches softmax attention", "[nn][luna]") {
  const int64_t d = 16, N = 48;
  const Tensor q = gaussian_tokens(N, d, 0.6, 11), k = gaussian_tokens(N, d, 0.6, 12);
  const Tensor softmax_rows = softmax(matmul(q.reshape({N, d}), k.reshape({N, d}).transpose(0, 1)) /
                                          std::sqrt(double(d)), 1);  // (N, N)
  auto error_with = [&](int64_t projections, uint64_t seed) {
    nn::LunaFeatureMap feature_map(d, softmax_init_options(projections));
    Generator generator(seed);
    feature_map->init_softmax_kernel_(&generator);
    return relative_frobenius_error(normalised_kernel(feature_map, q, k), softmax_rows);
  };
  const double few = error_with(128, 1), many = error_with(16384, 1);
  INFO("relative error of the attention rows: M = 128: " << few << ", M = 16384: " << many);
  CHECK(many < 0.06);
  CHECK(many < few / 4);  // a random-feature estimate: 128 times the features, about √128 less error

  // Without the envelope's β = −1 the key-norm factor exp(‖k̂‖²/2) stays and the rows are off.
  nn::LunaFeatureMap no_envelope(d, softmax_init_options(16384));
  Generator generator(1);
  no_envelope->init_softmax_kernel_(&generator);
  {
    NoGradGuard no_grad;
    no_envelope->envelope->beta.fill_(0.0);
  }
  const double without = relative_frobenius_error(normalised_kernel(no_envelope, q, k), softmax_rows);
  // The paper's initialisation (its default M = 32, L = 4) is another kernel altogether.
  LunaFeatureMapOptions paper_options;
  paper_options.envelope = true;
  nn::LunaFeatureMap paper(d, paper_options);
  const double paper_error = relative_frobenius_error(normalised_kernel(paper, q, k), softmax_rows);
  // The rows a kernel that ignores q and k would give: uniform.
  const Tensor uniform_rows = full({N, N}, 1.0 / double(N));
  const double uniform_error = relative_frobenius_error(uniform_rows, softmax_rows);
  INFO("beta = 0: " << without << ", paper's initialisation: " << paper_error << ", uniform rows: " << uniform_error);
  CHECK(many < uniform_error / 5);
  CHECK(without > 3 * many);
  CHECK(paper_error > 3 * many);
}

TEST_CASE("LUNA softmax-kernel init: with the same draw, the kernel is performer's up to psi's rounding", "[nn][luna]") {
  const int64_t d = 16, N = 40, M = 128;
  const Tensor q = gaussian_tokens(N, d, 0.8, 31), k = gaussian_tokens(N, d, 0.8, 32);
  nn::LunaFeatureMap feature_map(d, softmax_init_options(M));
  Generator generator(6);
  feature_map->init_softmax_kernel_(&generator);
  Generator same_draw(6);  // init_softmax_kernel_ draws ω first: orthogonal_random_features(M, d)
  const Tensor omega = orthogonal_random_features(M, d, &same_draw);  // (M, d)
  require_close(feature_map->proj->weight, omega * std::pow(double(d), -0.25), 1e-6, 1e-7);
  const Tensor phi_q = performer_feature_map(q, omega, /*is_query=*/true).reshape({N, M});   // (N, M)
  const Tensor phi_k = performer_feature_map(k, omega, /*is_query=*/false).reshape({N, M});  // (N, M)
  const Tensor performer_kernel = matmul(phi_q, phi_k.transpose(0, 1));                       // (N, N)
  const std::vector<double> performer_rows = values(performer_kernel / performer_kernel.sum({1}, true));
  const std::vector<double> luna_rows = values(normalised_kernel(feature_map, q, k));
  double worst = 0.0;
  for (size_t i = 0; i < luna_rows.size(); ++i)
    worst = std::max(worst, std::abs(luna_rows[i] / performer_rows[i] - 1.0));
  // Each factor ψ(u) is exp(u)·(1 + δ) with 0 <= δ <= 0.8%; the row normalisation leaves the
  // spread of the δs, so every normalised entry is within about 1.6% of performer's.
  INFO("worst relative difference from performer's normalised kernel: " << worst);
  CHECK(worst < 0.017);
  // Mostly the interpolation, which is not exact.
  CHECK(worst > 1e-4);
}

TEST_CASE("LUNA softmax-kernel init: per head, each head draws its own projections", "[nn][luna]") {
  LunaFeatureMapOptions options = softmax_init_options(8);
  options.per_head = true;
  nn::LunaFeatureMap feature_map(4, options, 2);
  Generator generator(9);
  feature_map->init_softmax_kernel_(&generator);
  const Tensor weight = feature_map->proj->weight;  // (H, M, d)
  CHECK(values(weight.select(0, 0)) != values(weight.select(0, 1)));
  // ψ is the same exp interpolant in every head.
  const Tensor fc2 = feature_map->psi->ptr<nn::LunaPsiImpl>(0)->fc2->weight;  // (H, 1, Hψ)
  CHECK(values(fc2.select(0, 0)) == values(fc2.select(0, 1)));
}

TEST_CASE("LUNA softmax-kernel init: options it cannot serve are refused by name", "[nn][luna]") {
  auto message_for = [](const LunaFeatureMapOptions& options) {
    nn::LunaFeatureMap feature_map(8, options);
    try {
      feature_map->init_softmax_kernel_();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  LunaFeatureMapOptions no_envelope = softmax_init_options(8);
  no_envelope.envelope = false;
  CHECK_THAT(message_for(no_envelope), Catch::Matchers::Contains("needs the envelope"));
  LunaFeatureMapOptions channels = softmax_init_options(8);
  channels.channels = 4;
  CHECK_THAT(message_for(channels), Catch::Matchers::Contains("channels L = 1") &&
                                        Catch::Matchers::Contains("got L = 4") &&
                                        Catch::Matchers::Contains("M = 32"));
  LunaFeatureMapOptions gelu = softmax_init_options(8);
  gelu.activation = "gelu";
  CHECK_THAT(message_for(gelu), Catch::Matchers::Contains("\"gelu\""));
  LunaFeatureMapOptions one_knot = softmax_init_options(8);
  one_knot.hidden = 1;
  CHECK_THAT(message_for(one_knot), Catch::Matchers::Contains("got 1"));
  nn::LunaFeatureMap fine(8, softmax_init_options(8));
  CHECK_THROWS_WITH(fine->init_softmax_kernel_(nullptr, -1.0), Catch::Matchers::Contains("knot_range"));
}
