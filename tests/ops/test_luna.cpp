// Forward tests of the LUNA op (ops/luna.h) against plain-loop references written here: the feature
// map with its hidden activations materialised, the exact ReLU path against the direct path (also
// on kinks), positive semidefinite Gram matrices, linear attention against the explicit N×N kernel,
// padding, streaming, and the errors bad input gets.
#include "test_util.h"

#include <algorithm>
#include <cmath>

#include <luna/ops/luna.h>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

using Values = std::vector<double>;

double activation_value(const std::string& act, double pre) {
  if (act == "relu") return pre > 0 ? pre : 0;
  if (act == "gelu") return 0.5 * pre * (1 + std::erf(pre / std::sqrt(2.0)));
  return pre / (1 + std::exp(-pre));  // silu
}

// φ(x) for x (B, H, N, d) with every hidden activation materialised, as the paper's code does.
Values reference_feature_map(const Tensor& x, const LunaFeatureMapParams& p, const LunaFeatureMapOptions& o) {
  const int64_t B = x.size(0), H = x.size(1), N = x.size(2), d = x.size(3);
  const int64_t M = o.num_projections, L = o.channels, Hh = o.hidden, F = M * L;
  const bool shared = o.layout == "shared";
  const Values xs = values(x), W = values(p.proj_weight), bias = values(p.proj_bias);
  const Values a = values(p.fc1_weight), c = values(p.fc1_bias), g = values(p.fc2_weight), e = values(p.fc2_bias);
  const double beta = o.envelope ? values(p.envelope_beta)[0] : 0.0;
  Values phi(B * H * N * F);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t group = o.per_head ? h : 0;
        const double* xr = &xs[((b * H + h) * N + n) * d];
        double norm2 = 0;
        for (int64_t k = 0; k < d; ++k) norm2 += xr[k] * xr[k];
        const double envelope = o.envelope ? std::exp(beta * norm2 / (2 * std::sqrt(double(d)))) : 1.0;
        for (int64_t i = 0; i < M; ++i) {
          double u = bias[group * M + i];
          for (int64_t k = 0; k < d; ++k) u += W[(group * M + i) * d + k] * xr[k];
          for (int64_t l = 0; l < L; ++l) {
            std::vector<double> hidden(Hh);  // materialised on purpose: this is the naive form
            for (int64_t j = 0; j < Hh; ++j) {
              const int64_t first = shared ? group * Hh + j : (group * L + l) * Hh + j;
              hidden[j] = activation_value(o.activation, a[first] * u + c[first]);
            }
            double s = e[group * L + l];
            for (int64_t j = 0; j < Hh; ++j) s += g[(group * L + l) * Hh + j] * hidden[j];
            phi[((b * H + h) * N + n) * F + i * L + l] = envelope * std::max(s, 0.0) / std::sqrt(double(M));
          }
        }
      }
  if (o.channel_rms_limit) {
    for (int64_t l = 0; l < L; ++l) {
      double sum = 0;
      for (size_t t = l; t < phi.size(); t += L) sum += phi[t] * phi[t];
      const double rms = std::sqrt(sum / double(phi.size() / L));
      const double factor = std::min(1.0, 0.1 / rms);
      for (size_t t = l; t < phi.size(); t += L) phi[t] *= factor;
    }
  }
  return phi;
}

// out_i = Σ_j K_ij v_j / (Σ_j K_ij + ε) with the kernel matrix K_ij = φ(q_i)·φ(k_j) written out.
Values reference_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, const Tensor& mask,
                           bool causal, double eps = 1e-6) {
  const int64_t B = phi_q.size(0), H = phi_q.size(1), Nq = phi_q.size(2), Nk = phi_k.size(2), F = phi_q.size(3);
  const int64_t dv = v.size(3);
  const Values q = values(phi_q), k = values(phi_k), vs = values(v);
  const Values padded = mask.defined() ? values(mask) : Values(B * Nk, 0.0);
  Values out(B * H * Nq * dv);
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H;
    std::vector<double> kernel(Nq * Nk, 0.0);  // (Nq, Nk)
    for (int64_t i = 0; i < Nq; ++i)
      for (int64_t j = 0; j < Nk; ++j) {
        if (padded[b * Nk + j] != 0 || (causal && j > i)) continue;
        for (int64_t f = 0; f < F; ++f) kernel[i * Nk + j] += q[(bh * Nq + i) * F + f] * k[(bh * Nk + j) * F + f];
      }
    for (int64_t i = 0; i < Nq; ++i) {
      double den = eps;
      for (int64_t j = 0; j < Nk; ++j) den += kernel[i * Nk + j];
      for (int64_t e = 0; e < dv; ++e) {
        double num = 0;
        for (int64_t j = 0; j < Nk; ++j) num += kernel[i * Nk + j] * vs[(bh * Nk + j) * dv + e];
        out[(bh * Nq + i) * dv + e] = num / den;
      }
    }
  }
  return out;
}

Tensor uniform(const Dims& shape, uint64_t seed, double lo, double hi, DType dtype = kFloat64) {
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * (hi - lo) + lo).to(dtype);
}

LunaFeatureMapParams random_params(int64_t d, int64_t H, const LunaFeatureMapOptions& o, uint64_t seed,
                                   DType dtype = kFloat64) {
  Generator gen(seed);
  LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(dtype), &gen);
  // Nonzero bias and β so every term of the map is exercised.
  NoGradGuard no_grad;
  p.proj_bias.copy_(uniform(p.proj_bias.sizes(), seed + 1, -0.5, 0.5, dtype));
  p.fc2_bias.copy_(uniform(p.fc2_bias.sizes(), seed + 2, 0.0, 0.5, dtype));
  if (o.envelope) p.envelope_beta.fill_(0.3);
  return p;
}

std::vector<Tensor> param_list(const LunaFeatureMapParams& p) {
  std::vector<Tensor> out{p.proj_weight, p.proj_bias, p.fc1_weight, p.fc1_bias, p.fc2_weight, p.fc2_bias};
  if (p.envelope_beta.defined()) out.push_back(p.envelope_beta);
  return out;
}

// Symmetric eigenvalues by cyclic Jacobi rotations (fine for a 64×64 Gram matrix).
std::vector<double> symmetric_eigenvalues(std::vector<double> A, int64_t n) {
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += A[p * n + q] * A[p * n + q];
    if (off < 1e-30) break;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        const double apq = A[p * n + q];
        if (std::abs(apq) < 1e-300) continue;
        const double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double cs = 1 / std::sqrt(t * t + 1), sn = t * cs;
        for (int64_t k = 0; k < n; ++k) {  // columns p, q
          const double akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = cs * akp - sn * akq;
          A[k * n + q] = sn * akp + cs * akq;
        }
        for (int64_t k = 0; k < n; ++k) {  // rows p, q
          const double apk = A[p * n + k], aqk = A[q * n + k];
          A[p * n + k] = cs * apk - sn * aqk;
          A[q * n + k] = sn * apk + cs * aqk;
        }
      }
  }
  std::vector<double> eig(n);
  for (int64_t i = 0; i < n; ++i) eig[i] = A[i * n + i];
  return eig;
}

}  // namespace

TEST_CASE("luna_feature_map matches a plain-loop reference with materialised hidden units", "[luna]") {
  const int64_t B = 2, H = 2, N = 5, d = 3;
  uint64_t seed = 10;
  for (const char* act : {"relu", "gelu", "silu"})
    for (const char* layout : {"per_channel", "shared"})
      for (bool envelope : {false, true})
        for (bool per_head : {false, true})
          for (bool force_direct : {false, true}) {
            if (force_direct && std::string(act) != "relu") continue;
            LunaFeatureMapOptions o;
            o.num_projections = 4;
            o.channels = 3;
            o.hidden = 6;
            o.activation = act;
            o.layout = layout;
            o.envelope = envelope;
            o.per_head = per_head;
            o.force_direct = force_direct;
            CAPTURE(act, layout, envelope, per_head, force_direct);
            const LunaFeatureMapParams p = random_params(d, H, o, ++seed);
            const Tensor x = uniform({B, H, N, d}, ++seed, -2, 2);
            const Tensor phi = luna_feature_map(x, p, o);
            REQUIRE(phi.sizes() == Dims({B, H, N, 12}));
            require_close(values(phi), reference_feature_map(x, p, o), 1e-10, 1e-12, "float64");
            // float32 runs the same kernels in single precision.
            LunaFeatureMapParams p32;
            p32.proj_weight = p.proj_weight.detach().to(kFloat32);
            p32.proj_bias = p.proj_bias.detach().to(kFloat32);
            p32.fc1_weight = p.fc1_weight.detach().to(kFloat32);
            p32.fc1_bias = p.fc1_bias.detach().to(kFloat32);
            p32.fc2_weight = p.fc2_weight.detach().to(kFloat32);
            p32.fc2_bias = p.fc2_bias.detach().to(kFloat32);
            if (envelope) p32.envelope_beta = p.envelope_beta.detach().to(kFloat32);
            require_close(values(luna_feature_map(x.to(kFloat32), p32, o)), reference_feature_map(x, p, o), 1e-4,
                          1e-5, "float32");
          }
}

TEST_CASE("luna_feature_map channel_rms_limit scales loud channels to RMS 0.1", "[luna]") {
  LunaFeatureMapOptions o;
  o.num_projections = 4;
  o.channels = 3;
  o.hidden = 5;
  o.channel_rms_limit = true;
  const LunaFeatureMapParams p = random_params(3, 2, o, 77);
  {
    NoGradGuard no_grad;  // channel 0 loud; channel 2 the constant 0.05/√M, well under RMS 0.1
    p.fc2_bias.copy_(tensor(std::vector<double>{3.0, 0.5, 0.05}));
    p.fc2_weight.select(0, 2).zero_();
  }
  const Tensor x = uniform({2, 2, 6, 3}, 78, -1, 1);
  const Tensor phi = luna_feature_map(x, p, o);
  const Values got = values(phi);
  require_close(got, reference_feature_map(x, p, o), 1e-10, 1e-12);
  double loud = 0;
  for (size_t t = 0; t < got.size(); t += 3) loud += got[t] * got[t];
  REQUIRE(std::sqrt(loud / double(got.size() / 3)) == Approx(0.1).epsilon(1e-9));
  // The quiet channel is left alone.
  LunaFeatureMapOptions unlimited = o;
  unlimited.channel_rms_limit = false;
  const Values raw = values(luna_feature_map(x, p, unlimited));
  for (size_t t = 2; t < got.size(); t += 3) REQUIRE(got[t] == raw[t]);
}

TEST_CASE("ReLU exact piecewise path equals the direct path, forward and every gradient", "[luna]") {
  for (DType dtype : {kFloat64, kFloat32}) {
    for (const char* layout : {"per_channel", "shared"})
      for (bool per_head : {false, true}) {
        CAPTURE(dtype, layout, per_head);
        LunaFeatureMapOptions o;
        o.num_projections = 6;
        o.channels = 3;
        o.hidden = 16;
        o.layout = layout;
        o.per_head = per_head;
        o.envelope = true;
        const LunaFeatureMapParams p = random_params(5, 2, o, 300 + per_head, dtype);
        const Tensor x = uniform({2, 2, 40, 5}, 301, -3, 3, dtype).requires_grad_(true);
        const Tensor weights = uniform({2, 2, 40, 18}, 302, -1, 1, dtype);
        std::vector<Values> results[2];
        for (bool direct : {false, true}) {
          o.force_direct = direct;
          std::vector<Tensor> leaves = param_list(p);
          leaves.push_back(x);
          for (Tensor& t : leaves) t.set_grad(Tensor());
          const Tensor phi = luna_feature_map(x, p, o);
          (phi * weights).sum().backward();
          results[direct].push_back(values(phi));
          for (Tensor& t : leaves) results[direct].push_back(values(t.grad()));
        }
        const double rtol = dtype == kFloat64 ? 1e-10 : 2e-4, atol = dtype == kFloat64 ? 1e-11 : 2e-4;
        for (size_t r = 0; r < results[0].size(); ++r) {
          CAPTURE(r);  // 0 = φ, then the parameter gradients in param_list order, then x
          require_close(results[0][r], results[1][r], rtol, atol);
        }
      }
  }
}

TEST_CASE("ReLU exact path is exact on kinks, duplicate kinks and a = 0 units", "[luna]") {
  // u = x exactly (W = I, b = 0) and dyadic parameters, so a·(−c/a) + c is exactly 0 in both paths.
  const int64_t d = 4, Hh = 6;
  LunaFeatureMapOptions o;
  o.num_projections = d;
  o.channels = 2;
  o.hidden = Hh;
  LunaFeatureMapParams p;
  p.proj_weight = eye(d, TensorOptions(kFloat64)).requires_grad_(true);
  p.proj_bias = zeros({d}, TensorOptions(kFloat64)).requires_grad_(true);
  // Kinks at 0.5, 0.5 (twice, opposite sides), −1, 0 and one a = 0 unit per channel.
  const std::vector<double> a = {2, -1, 0.5, 1, -4, 0, /**/ 1, -2, 0.25, 0, 1, -1};
  const std::vector<double> c = {-1, 0.5, 0.5, 0, 0, 0.75, /**/ -0.5, -2, 0.25, -0.25, 1, 0.5};
  const std::vector<double> g = {0.5, -0.75, 1, 0.25, -0.5, 0.125, /**/ 1, 0.5, -0.25, 0.75, -1, 0.5};
  p.fc1_weight = tensor(a, {2, Hh}).requires_grad_(true);
  p.fc1_bias = tensor(c, {2, Hh}).requires_grad_(true);
  p.fc2_weight = tensor(g, {2, Hh}).requires_grad_(true);
  p.fc2_bias = tensor(std::vector<double>{1.5, 2.5}).requires_grad_(true);
  // Every kink of both channels, plus points between and beyond them.
  const std::vector<double> xs = {0.5, -1, 0, 0.5, 1, -0.5, -0.25, 2, -3, 0.125, 0.75, 3};
  const Tensor x = tensor(xs, {1, 1, 3, d}).requires_grad_(true);
  const Tensor weights = uniform({1, 1, 3, 2 * d}, 5, -1, 1);
  std::vector<Values> results[2];
  for (bool direct : {false, true}) {
    o.force_direct = direct;
    std::vector<Tensor> leaves = param_list(p);
    leaves.push_back(x);
    for (Tensor& t : leaves) t.set_grad(Tensor());
    const Tensor phi = luna_feature_map(x, p, o);
    (phi * weights).sum().backward();
    results[direct].push_back(values(phi));
    for (Tensor& t : leaves) results[direct].push_back(values(t.grad()));
  }
  for (size_t r = 0; r < results[0].size(); ++r) {
    CAPTURE(r);
    require_close(results[0][r], results[1][r], 1e-12, 1e-14);
  }
  // And both equal the materialised reference (the map is continuous, so kinks change no value).
  require_close(results[0][0], reference_feature_map(x, p, o), 1e-12, 1e-14);
}

TEST_CASE("Gram matrices of the LUNA feature map are positive semidefinite", "[luna]") {
  for (const char* act : {"relu", "gelu", "silu"})
    for (bool envelope : {false, true}) {
      CAPTURE(act, envelope);
      LunaFeatureMapOptions o;
      o.num_projections = 8;
      o.channels = 4;
      o.hidden = 16;
      o.activation = act;
      o.envelope = envelope;
      const LunaFeatureMapParams p = random_params(6, 1, o, 500);
      const int64_t n = 64, F = 32;
      const Values phi = values(luna_feature_map(uniform({1, 1, n, 6}, 501, -2, 2), p, o));  // (n, F)
      std::vector<double> gram(n * n, 0.0);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t f = 0; f < F; ++f) gram[i * n + j] += phi[i * F + f] * phi[j * F + f];
      const std::vector<double> eig = symmetric_eigenvalues(gram, n);
      const double largest = *std::max_element(eig.begin(), eig.end());
      const double smallest = *std::min_element(eig.begin(), eig.end());
      REQUIRE(largest > 0);
      REQUIRE(smallest >= -1e-6 * largest);
      // Eigenvalues sum to the trace: guards the Jacobi routine itself.
      double trace = 0, sum = 0;
      for (int64_t i = 0; i < n; ++i) trace += gram[i * n + i];
      for (double e : eig) sum += e;
      REQUIRE(sum == Approx(trace).epsilon(1e-9));
    }
}

TEST_CASE("linear_attention matches the explicit N×N kernel reference", "[luna]") {
  const int64_t B = 2, H = 2, F = 6, dv = 3;
  Tensor mask = tensor(std::vector<uint8_t>{0, 0, 1, 0, 0, 0, 1, 1, /**/ 0, 0, 0, 0, 0, 0, 0, 1}, {B, 8}).to(kBool);
  for (DType dtype : {kFloat64, kFloat32})
    for (bool causal : {false, true})
      for (bool masked : {false, true})
        for (int64_t Nq : {int64_t(8), int64_t(5)}) {
          if (causal && Nq != 8) continue;
          CAPTURE(dtype, causal, masked, Nq);
          const Tensor phi_q = uniform({B, H, Nq, F}, 1, 0, 1, dtype);
          // Some exactly-zero features, as the final ReLU produces.
          const Tensor phi_k = uniform({B, H, 8, F}, 2, -0.5, 1, dtype).clamp(0);
          const Tensor v = uniform({B, H, 8, dv}, 3, -1, 1, dtype);
          LinearAttentionOptions options;
          options.causal = causal;
          if (masked) options.key_padding_mask = mask;
          const Tensor out = linear_attention(phi_q, phi_k, v, options);
          REQUIRE(out.sizes() == Dims({B, H, Nq, dv}));
          const double tol = dtype == kFloat64 ? 1e-12 : 1e-5;
          require_close(values(out), reference_attention(phi_q, phi_k, v, options.key_padding_mask, causal), tol,
                        tol);
        }
}

TEST_CASE("linear_attention float32 gradients match float64 ones", "[luna]") {
  // The f64 backward is gradchecked; this pins the single-precision instantiation to it. dv = 16 with
  // N = 19 runs the float rows 8 at a time (AVX2) and the last 3 one by one.
  const int64_t B = 2, H = 2, F = 5;
  for (const auto [N, dv] : {std::pair<int64_t, int64_t>{9, 4}, {19, 16}}) {
    std::vector<uint8_t> padding(size_t(B * N), 0);
    padding[size_t(N - 2)] = padding[size_t(N - 1)] = 1;  // the last two keys of sequence 0
    padding[size_t(N + 1)] = 1;                            // the second key of sequence 1
    const Tensor mask = tensor(padding, {B, N}).to(kBool);
    for (bool causal : {false, true}) {
      CAPTURE(N, dv, causal);
      std::vector<Values> grads[2];
      for (DType dtype : {kFloat64, kFloat32}) {
        const Tensor phi_q = uniform({B, H, N, F}, 11, 0, 1, dtype).requires_grad_(true);
        const Tensor phi_k = uniform({B, H, N, F}, 12, 0, 1, dtype).requires_grad_(true);
        const Tensor v = uniform({B, H, N, dv}, 13, -1, 1, dtype).requires_grad_(true);
        LinearAttentionOptions options;
        options.causal = causal;
        options.key_padding_mask = mask;
        (linear_attention(phi_q, phi_k, v, options) * uniform({B, H, N, dv}, 14, -1, 1, dtype)).sum().backward();
        for (const Tensor& t : {phi_q, phi_k, v}) grads[dtype == kFloat32].push_back(values(t.grad()));
      }
      for (int i = 0; i < 3; ++i) require_close(grads[1][i], grads[0][i], 1e-4, 1e-5);
      // Padded keys get no gradient.
      for (int64_t h = 0; h < H; ++h)
        for (int64_t f = 0; f < F; ++f) REQUIRE(grads[0][1][((0 * H + h) * N + N - 1) * F + f] == 0);
    }
  }
}

TEST_CASE("luna_feature_map on a head split equals it on a contiguous copy, values and gradients", "[luna]") {
  // Multi-head attention hands q and k over as (B, H, N, d) views of (B, N, H, d) memory; the feature
  // map then computes u and ψ in that layout without copies. Every ψ path, both dtypes.
  for (DType dtype : {kFloat32, kFloat64})
    for (const char* path : {"relu", "relu direct", "gelu"}) {
      CAPTURE(dtype, path);
      const int64_t B = 2, H = 3, N = 37, d = 8;
      LunaFeatureMapOptions o;
      o.num_projections = 16;
      o.channels = 4;
      o.hidden = 12;
      o.activation = std::string(path).substr(0, 4);
      o.force_direct = std::string(path) == "relu direct";
      const LunaFeatureMapParams p = luna_feature_map_init(d, H, o, TensorOptions(dtype));
      const Tensor x_store = uniform({B, N, H, d}, 41, -2, 2, dtype).requires_grad_(true);
      const Tensor weights = uniform({B, H, N, o.num_projections * o.channels}, 42, -1, 1, dtype);
      (luna_feature_map(x_store.transpose(1, 2), p, o) * weights).sum().backward();
      const Values split_grad = values(x_store.grad());
      std::vector<Values> split_params;
      for (const Tensor& t : {p.proj_weight, p.proj_bias, p.fc1_weight, p.fc1_bias, p.fc2_weight, p.fc2_bias}) {
        split_params.push_back(values(t.grad()));
        t.set_grad(Tensor());
      }
      const Tensor x2 = x_store.detach().transpose(1, 2).contiguous().requires_grad_(true);
      (luna_feature_map(x2, p, o) * weights).sum().backward();
      const double tol = dtype == kFloat64 ? 1e-12 : 1e-5;
      require_close(split_grad, values(x2.grad().transpose(1, 2)), tol, tol);
      int i = 0;
      for (const Tensor& t : {p.proj_weight, p.proj_bias, p.fc1_weight, p.fc1_bias, p.fc2_weight, p.fc2_bias})
        require_close(split_params[size_t(i++)], values(t.grad()), tol, tol);
    }
}

TEST_CASE("linear_attention reads and writes head-interleaved (B, N, H, d) layouts in place", "[luna]") {
  // Multi-head attention hands v over as a head split, a (B, H, N, d) view of (B, N, H, d) memory. The
  // output then comes back in that layout (so merging the heads is free) and so does v's gradient;
  // values and gradients equal those of the same call on contiguous copies. Large enough for the
  // heads to run on several threads; one head alone runs serially.
  for (DType dtype : {kFloat32, kFloat64})
    for (int64_t H : {int64_t(1), int64_t(3)})
      for (bool masked : {false, true}) {
        CAPTURE(dtype, H, masked);
        const int64_t B = 2, N = 300, F = 40, dv = 32;
        std::vector<uint8_t> pad(size_t(B * N), 0);
        for (int64_t j = 250; j < N; ++j) pad[size_t(N + j)] = 1;  // the second sequence ends at 250
        const Tensor mask = tensor(pad, {B, N}).to(kBool);
        const Tensor phi_q = uniform({B, H, N, F}, 21, 0, 1, dtype).clamp(0.1).requires_grad_(true);
        const Tensor phi_k = uniform({B, H, N, F}, 22, -0.2, 1, dtype).clamp(0).requires_grad_(true);
        const Tensor v_store = uniform({B, N, H, dv}, 23, -1, 1, dtype).requires_grad_(true);
        const Tensor weights = uniform({B, H, N, dv}, 24, -1, 1, dtype);
        LinearAttentionOptions options;
        if (masked) options.key_padding_mask = mask;
        const Tensor v_split = v_store.transpose(1, 2);  // (B, H, N, dv), interleaved
        const Tensor out = linear_attention(phi_q, phi_k, v_split, options);
        if (H > 1) REQUIRE(out.transpose(1, 2).is_contiguous());  // heads merge without a copy
        (out * weights).sum().backward();
        const std::vector<Values> split_grads = {values(phi_q.grad()), values(phi_k.grad()), values(v_store.grad())};
        if (H > 1) REQUIRE(v_store.grad().is_contiguous());

        const Tensor q2 = phi_q.detach().clone().requires_grad_(true), k2 = phi_k.detach().clone().requires_grad_(true);
        const Tensor v2 = v_split.detach().contiguous().requires_grad_(true);
        const Tensor out2 = linear_attention(q2, k2, v2, options);
        REQUIRE(out2.is_contiguous());
        (out2 * weights).sum().backward();
        const double tol = dtype == kFloat64 ? 1e-12 : 2e-6;
        require_close(values(out), values(out2), tol, tol);
        require_close(split_grads[0], values(q2.grad()), tol, tol);
        require_close(split_grads[1], values(k2.grad()), tol, tol);
        require_close(split_grads[2], values(v2.grad().transpose(1, 2)), tol, tol);
      }
}

TEST_CASE("luna_attention on a padded batch equals the unpadded sequences", "[luna]") {
  const int64_t H = 2, N = 7, d = 4, real = 4;
  LunaFeatureMapOptions o;
  o.num_projections = 5;
  o.channels = 2;
  o.hidden = 8;
  o.envelope = true;
  const LunaFeatureMapParams p = random_params(d, H, o, 900);
  const Tensor q = uniform({2, H, N, d}, 901, -1, 1), k = uniform({2, H, N, d}, 902, -1, 1);
  const Tensor v = uniform({2, H, N, 3}, 903, -1, 1);
  // Sequence 0 is full; sequence 1 has `real` tokens and 3 garbage pads at the end.
  std::vector<uint8_t> padded(2 * N, 0);
  for (int64_t t = real; t < N; ++t) padded[N + t] = 1;
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    LinearAttentionOptions options;
    options.causal = causal;
    options.key_padding_mask = tensor(padded, {2, N}).to(kBool);
    const Tensor batched = luna_attention(q, k, v, p, o, options);
    LinearAttentionOptions plain;
    plain.causal = causal;
    const Tensor alone = luna_attention(q.narrow(0, 1, 1).narrow(2, 0, real), k.narrow(0, 1, 1).narrow(2, 0, real),
                                        v.narrow(0, 1, 1).narrow(2, 0, real), p, o, plain);
    require_close(values(batched.narrow(0, 1, 1).narrow(2, 0, real)), values(alone), 1e-12, 1e-14);
    const Tensor first = luna_attention(q.narrow(0, 0, 1), k.narrow(0, 0, 1), v.narrow(0, 0, 1), p, o, plain);
    require_close(values(batched.narrow(0, 0, 1)), values(first), 1e-12, 1e-14);
  }
}

TEST_CASE("streaming linear_attention_step in chunks equals one causal call", "[luna]") {
  const int64_t B = 2, H = 2, N = 150, F = 8, dv = 3;
  for (DType dtype : {kFloat64, kFloat32}) {
    const Tensor phi_q = uniform({B, H, N, F}, 21, 0, 1, dtype), phi_k = uniform({B, H, N, F}, 22, -0.2, 1, dtype)
                                                                                .clamp(0);
    const Tensor v = uniform({B, H, N, dv}, 23, -1, 1, dtype);
    LinearAttentionOptions causal;
    causal.causal = true;
    const Values whole = values(linear_attention(phi_q, phi_k, v, causal));
    for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(64)}) {
      CAPTURE(dtype, chunk);
      LinearAttentionState state;
      std::vector<Tensor> pieces;
      for (int64_t start = 0; start < N; start += chunk) {
        const int64_t len = std::min(chunk, N - start);
        pieces.push_back(linear_attention_step(phi_q.narrow(2, start, len), phi_k.narrow(2, start, len),
                                               v.narrow(2, start, len), state));
      }
      require_close(values(cat(pieces, 2)), whole, dtype == kFloat64 ? 1e-13 : 1e-6, 1e-7);
      REQUIRE(state.S.sizes() == Dims({B, H, F, dv}));
      // The final state holds the full sums: z = Σ_j φ(k_j).
      const Values z = values(state.z), k = values(phi_k);
      for (int64_t f = 0; f < F; ++f) {
        double want = 0;
        for (int64_t j = 0; j < N; ++j) want += k[j * F + f];
        REQUIRE(z[f] == Approx(want).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("LUNA ops reject bad input with errors naming the values", "[luna]") {
  LunaFeatureMapOptions o;
  o.num_projections = 3;
  o.channels = 2;
  o.hidden = 4;
  const LunaFeatureMapParams p = random_params(4, 2, o, 1);
  const Tensor q = uniform({2, 2, 5, 4}, 2, -1, 1), k = uniform({2, 2, 6, 4}, 3, -1, 1);
  const Tensor v = uniform({2, 2, 6, 3}, 4, -1, 1);
  using Catch::Contains;

  REQUIRE_THROWS_WITH(luna_attention(q, uniform({2, 2, 6, 5}, 5, -1, 1), v, p, o),
                      Contains("k of shape [2,2,6,5]") && Contains("[2,2,5,4]"));
  REQUIRE_THROWS_WITH(luna_attention(q, k, uniform({2, 2, 7, 3}, 6, -1, 1), p, o),
                      Contains("v of shape [2,2,7,3]"));
  LinearAttentionOptions bad_shape;
  bad_shape.key_padding_mask = zeros({2, 5}, TensorOptions(kBool));
  REQUIRE_THROWS_WITH(luna_attention(q, k, v, p, o, bad_shape),
                      Contains("key_padding_mask has shape [2,5]") && Contains("[2,6]"));
  LinearAttentionOptions bad_dtype;
  bad_dtype.key_padding_mask = zeros({2, 6});
  REQUIRE_THROWS_WITH(luna_attention(q, k, v, p, o, bad_dtype), Contains("must be bool") && Contains("float32"));
  LinearAttentionOptions causal;
  causal.causal = true;
  REQUIRE_THROWS_WITH(luna_attention(q, k, v, p, o, causal), Contains("Nq=5") && Contains("Nk=6"));

  LunaFeatureMapOptions zero = o;
  zero.hidden = 0;
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, zero), Contains("Hψ=0"));
  zero = o;
  zero.num_projections = 0;
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, zero), Contains("M=0"));
  zero = o;
  zero.channels = 0;
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, zero), Contains("L=0"));
  LunaFeatureMapOptions bad = o;
  bad.activation = "tanh";
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, bad), Contains("unknown activation 'tanh'"));
  bad = o;
  bad.layout = "grouped";
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, bad), Contains("unknown layout 'grouped'"));
  // Parameters that do not fit the options (shared layout expects 1-D fc1 tensors).
  bad = o;
  bad.layout = "shared";
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, bad), Contains("fc1_weight has shape [2,4]") && Contains("[4]"));
  bad = o;
  bad.envelope = true;
  REQUIRE_THROWS_WITH(luna_feature_map(q, p, bad), Contains("envelope_beta is undefined"));
  REQUIRE_THROWS_WITH(luna_feature_map(uniform({2, 2, 5, 3}, 7, -1, 1), p, o),
                      Contains("proj_weight has shape [3,4]") && Contains("[3,3]"));
  REQUIRE_THROWS_WITH(linear_attention(q, k.narrow(3, 0, 3), v), Contains("phi_k of shape [2,2,6,3]"));
  REQUIRE_THROWS_WITH(linear_attention(q.to(kFloat32), k, v), Contains("float32") && Contains("float64"));
}

TEST_CASE("streaming elu+1 equals causal elu+1 attention", "[luna]") {
  // The loop of docs/STREAMING.md for elu+1 features.
  const int64_t B = 2, H = 2, N = 40, d = 4;
  const Tensor q = uniform({B, H, N, d}, 31, -2, 2, kFloat64), k = uniform({B, H, N, d}, 32, -2, 2, kFloat64);
  const Tensor v = uniform({B, H, N, d}, 33, -1, 1, kFloat64);
  LinearAttentionOptions causal;
  causal.causal = true;
  const Values whole = values(linear_attention(elu(q) + 1.0, elu(k) + 1.0, v, causal));
  for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(64)}) {
    CAPTURE(chunk);
    LinearAttentionState state;
    std::vector<Tensor> pieces;
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t n = std::min(chunk, N - start);
      const Tensor q_chunk = q.narrow(2, start, n), k_chunk = k.narrow(2, start, n);  // (B, H, n, d)
      pieces.push_back(linear_attention_step(elu(q_chunk) + 1.0, elu(k_chunk) + 1.0, v.narrow(2, start, n), state));
    }
    require_close(values(cat(pieces, 2)), whole, 1e-13, 1e-14);
  }
  // And the stream is really causal: changing the last token leaves every earlier output alone.
  const Tensor k2 = k.clone();
  {
    NoGradGuard no_grad;
    k2.narrow(2, N - 1, 1).fill_(5.0);
  }
  const Values changed = values(linear_attention(elu(q) + 1.0, elu(k2) + 1.0, v, causal));
  for (int64_t b = 0; b < B * H; ++b)
    for (int64_t i = 0; i < (N - 1) * d; ++i) REQUIRE(changed[b * N * d + i] == whole[b * N * d + i]);
}

TEST_CASE("anomaly mode names the LUNA op that produced a non-finite value", "[luna]") {
  LunaFeatureMapOptions o;
  o.num_projections = 3;
  o.channels = 2;
  o.hidden = 4;
  const LunaFeatureMapParams p = random_params(4, 1, o, 1);
  {
    // Every parameter finite, but ψ = 1e308 + Σ 1e308·relu(1) overflows inside the fused op.
    NoGradGuard no_grad;
    p.fc1_weight.zero_();
    p.fc1_bias.fill_(1.0);
    p.fc2_weight.fill_(1e308);
    p.fc2_bias.fill_(1e308);
  }
  const Tensor x = uniform({1, 1, 3, 4}, 2, -1, 1);
  autograd::DetectAnomalyGuard anomaly;
  REQUIRE_THROWS_WITH(luna_feature_map(x, p, o), Catch::Contains("luna_psi"));
  const Tensor phi = full({1, 1, 3, 2}, std::numeric_limits<double>::infinity(), TensorOptions(kFloat64))
                         .requires_grad_(true);
  REQUIRE_THROWS_WITH(linear_attention(phi, phi, uniform({1, 1, 3, 2}, 3, -1, 1)),
                      Catch::Contains("linear_attention"));
}
