// Feature maps of the linear-attention baselines of spec/LUNA.md §4 — performer (FAVOR+ with
// orthogonal random features), cosformer and hedgehog — composed from differentiable ops, so their
// gradients come from those ops; the attention itself is linear_attention (ops/luna.h).
#include <luna/ops/attention.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <luna/autograd/grad_mode.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/indexing.h>
#include <luna/ops/linalg.h>
#include <luna/ops/nn_functional.h>
#include <luna/ops/reduce.h>

namespace luna {
namespace {

void check_float_4d(const Tensor& t, const char* op, const char* what) {
  LUNA_CHECK(t.defined(), op, ": ", what, " is undefined");
  LUNA_CHECK(t.dim() == 4, op, ": ", what, " must be 4-D (B, H, N, ·), got shape ", t.sizes());
  LUNA_CHECK(t.dtype() == kFloat32 || t.dtype() == kFloat64, op, ": ", what, " must be float32 or float64, got ",
             t.dtype());
}

void check_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* what, const char* like_what) {
  LUNA_CHECK(t.dtype() == like.dtype(), op, ": ", what, " has dtype ", t.dtype(), " but ", like_what, " has ",
             like.dtype(), "; convert one of them");
  LUNA_CHECK(t.device() == like.device(), op, ": ", what, " is on ", t.device(), " but ", like_what, " is on ",
             like.device());
}

void check_padding_mask(const Tensor& mask, int64_t B, int64_t N, const char* op) {
  LUNA_CHECK(mask.dtype() == kBool, op, ": key_padding_mask must be bool (true = padded), got ", mask.str());
  LUNA_CHECK(mask.sizes() == Dims({B, N}), op, ": key_padding_mask has shape ", mask.sizes(), ", expected (B, N) = ",
             Dims({B, N}));
}

// ---- performer ----

// ωᵢᵀx̂ − ‖x̂‖²/2 with x̂ = x·d^(-1/4): (B, H, N, m).
Tensor performer_logits(const Tensor& x, const Tensor& omega) {
  const Tensor scaled = x * std::pow(double(x.size(3)), -0.25);                 // (B, H, N, d)
  return linear(scaled, omega) - (scaled * scaled).sum({-1}, /*keepdim=*/true) * 0.5;  // (B, H, N, m)
}

// Per-(b, h) max of the key logits over unpadded keys and all features: (B, H, 1, 1), no history.
Tensor key_stabiliser(const Tensor& logits, const Tensor& key_padding_mask) {
  NoGradGuard no_grad;
  const int64_t B = logits.size(0), N = logits.size(2);
  const double minus_infinity = -std::numeric_limits<double>::infinity();
  Tensor visible = logits.detach();  // (B, H, N, m)
  if (key_padding_mask.defined()) visible = visible.masked_fill(key_padding_mask.view({B, 1, N, 1}), minus_infinity);
  const Tensor stabiliser = amax(visible, {2, 3}, /*keepdim=*/true);  // (B, H, 1, 1)
  // A head whose keys are all padded has no max; any finite value serves (its keys are masked out).
  return stabiliser.masked_fill(stabiliser.eq(wrap_scalar(minus_infinity, stabiliser)), 0.0);
}

void check_performer_inputs(const Tensor& x, const Tensor& omega, const char* op) {
  check_float_4d(x, op, "x");
  LUNA_CHECK(omega.defined() && omega.dim() == 2, op, ": omega must be the (m, d) random features, got ",
             omega.defined() ? omega.str() : std::string("an undefined tensor"));
  LUNA_CHECK(omega.size(1) == x.size(3), op, ": omega of shape ", omega.sizes(), " does not match the head width d = ",
             x.size(3), " of x ", x.sizes(), " (expected (m, ", x.size(3), "))");
  LUNA_CHECK(omega.size(0) > 0, op, ": omega has no features (shape ", omega.sizes(), ")");
  check_same_dtype(omega, x, op, "omega", "x");
}

// φ from logits and a detached stabiliser broadcastable to them.
Tensor performer_features(const Tensor& logits, const Tensor& stabiliser) {
  return (logits - stabiliser).exp() * (1.0 / std::sqrt(double(logits.size(3))));
}

Tensor query_stabiliser(const Tensor& logits) {
  NoGradGuard no_grad;
  return amax(logits.detach(), {-1}, /*keepdim=*/true);  // (B, H, N, 1)
}

// ---- orthogonal blocks ----

// Orthonormalises the rows of the row-major n×n matrix `a` in place: Gram–Schmidt with a second
// orthogonalisation pass ("twice is enough"), i.e. the Q of a QR with positive diagonal.
void orthonormalise_rows(std::vector<double>& a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double* row = a.data() + i * n;
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t j = 0; j < i; ++j) {
        const double* done = a.data() + j * n;
        double dot = 0;
        for (int64_t c = 0; c < n; ++c) dot += row[c] * done[c];
        for (int64_t c = 0; c < n; ++c) row[c] -= dot * done[c];
      }
    double norm = 0;
    for (int64_t c = 0; c < n; ++c) norm += row[c] * row[c];
    norm = std::sqrt(norm);
    // A Gaussian matrix is singular with probability 0; a zero here means a broken generator.
    LUNA_CHECK(norm > 1e-12, "orthogonal_random_features: a Gaussian block was numerically singular (row ", i,
               " has norm ", norm, " after orthogonalisation)");
    for (int64_t c = 0; c < n; ++c) row[c] /= norm;
  }
}

}  // namespace

Tensor orthogonal_random_features(int64_t m, int64_t d, Generator* generator, TensorOptions options) {
  LUNA_CHECK(m > 0 && d > 0, "orthogonal_random_features: the number of features m and the dimension d must be ",
             "positive, got m = ", m, " and d = ", d);
  NoGradGuard no_grad;
  const TensorOptions f64 = TensorOptions(kFloat64);
  std::vector<double> features(size_t(m * d));  // (m, d)
  for (int64_t first = 0; first < m; first += d) {
    const Tensor gaussian = randn({d, d}, f64, generator).contiguous();  // (d, d)
    std::vector<double> block(gaussian.data_ptr<double>(), gaussian.data_ptr<double>() + d * d);
    orthonormalise_rows(block, d);
    const int64_t rows = std::min(d, m - first);
    std::copy(block.begin(), block.begin() + rows * d, features.begin() + first * d);
  }
  // Row norms from χ_d: the norms of the rows of an independent (m, d) Gaussian.
  const Tensor norms = randn({m, d}, f64, generator).square().sum({1}).sqrt().contiguous();  // (m)
  const double* norm = norms.data_ptr<double>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < d; ++c) features[size_t(i * d + c)] *= norm[i];
  return tensor(features, {m, d}).to(options.device_, options.dtype_);
}

Tensor performer_feature_map(const Tensor& x, const Tensor& omega, bool is_query, const Tensor& key_padding_mask) {
  const char* op = "performer_feature_map";
  check_performer_inputs(x, omega, op);
  if (key_padding_mask.defined()) check_padding_mask(key_padding_mask, x.size(0), x.size(2), op);
  const Tensor logits = performer_logits(x, omega);  // (B, H, N, m)
  return performer_features(logits, is_query ? query_stabiliser(logits) : key_stabiliser(logits, key_padding_mask));
}

Tensor performer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& omega,
                           const LinearAttentionOptions& options) {
  const char* op = "performer_attention";
  check_performer_inputs(q, omega, op);
  check_performer_inputs(k, omega, op);
  const Tensor& mask = options.key_padding_mask;
  if (mask.defined()) check_padding_mask(mask, k.size(0), k.size(2), op);
  const Tensor query_logits = performer_logits(q, omega);  // (B, H, Nq, m)
  const Tensor key_logits = performer_logits(k, omega);    // (B, H, Nk, m)
  const Tensor key_shift = key_stabiliser(key_logits, mask);  // (B, H, 1, 1)
  Tensor query_shift = query_stabiliser(query_logits);        // (B, H, Nq, 1)
  // Causal: move the key stabiliser onto the queries (see the header), so no product depends on it.
  if (options.causal) query_shift = query_shift - key_shift;
  return linear_attention(performer_features(query_logits, query_shift), performer_features(key_logits, key_shift), v,
                          options);
}

// ---- cosformer ----

Tensor cosformer_feature_map(const Tensor& x, int64_t max_len) {
  const char* op = "cosformer_feature_map";
  check_float_4d(x, op, "x");
  const int64_t N = x.size(2);
  LUNA_CHECK(max_len > 0, op, ": max_len (M) must be positive, got ", max_len);
  LUNA_CHECK(N <= max_len, op, ": sequence length ", N, " exceeds max_len ", max_len,
             "; the re-weighting cos(π/2·(i−j)/M) needs every position below M, so raise max_len");
  Tensor cos_weight, sin_weight;  // (1, 1, N, 1) constants
  {
    NoGradGuard no_grad;
    const Tensor angle = arange(N, TensorOptions(kFloat64)) * (std::numbers::pi / (2.0 * double(max_len)));  // (N)
    cos_weight = angle.cos().to(x.device(), x.dtype()).view({1, 1, N, 1});
    sin_weight = angle.sin().to(x.device(), x.dtype()).view({1, 1, N, 1});
  }
  const Tensor positive = relu(x);  // (B, H, N, d)
  return cat({positive * cos_weight, positive * sin_weight}, -1);  // (B, H, N, 2d)
}

Tensor cosformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t max_len,
                           const LinearAttentionOptions& options) {
  const char* op = "cosformer_attention";
  check_float_4d(q, op, "q");
  check_float_4d(k, op, "k");
  LUNA_CHECK(max_len >= 0, op, ": max_len must be >= 0 (0 = the longest sequence of the call), got ", max_len);
  const int64_t M = max_len > 0 ? max_len : std::max(q.size(2), k.size(2));
  return linear_attention(cosformer_feature_map(q, M), cosformer_feature_map(k, M), v, options);
}

// ---- hedgehog ----

Tensor hedgehog_feature_map(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "hedgehog_feature_map";
  check_float_4d(x, op, "x");
  const int64_t H = x.size(1), d = x.size(3);
  LUNA_CHECK(weight.defined() && weight.dim() == 3 && weight.size(0) == H && weight.size(1) == d, op,
             ": weight must have shape (H, d, F) = (", H, ", ", d, ", F) for x of shape ", x.sizes(), ", got ",
             weight.defined() ? weight.str() : std::string("an undefined tensor"));
  const int64_t F = weight.size(2);
  LUNA_CHECK(bias.defined() && bias.sizes() == Dims({H, F}), op, ": bias must have shape (H, F) = ", Dims({H, F}),
             ", got ", bias.defined() ? bias.str() : std::string("an undefined tensor"));
  check_same_dtype(weight, x, op, "weight", "x");
  check_same_dtype(bias, x, op, "bias", "x");
  const Tensor u = matmul(x, weight) + bias.unsqueeze(1);  // (B, H, N, F)
  return cat({softmax(u, -1), softmax(-u, -1)}, -1);      // (B, H, N, 2F)
}

}  // namespace luna
