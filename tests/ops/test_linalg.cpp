// Forward tests for matmul / mm / bmm / linear (ops/linalg.cpp) against plain triple loops in
// double: every rank combination torch.matmul accepts, broadcast batch dims, transposed, sliced
// and stepped operands, degenerate sizes, the error messages, and that the layouts GEMM can read
// directly (transposed or with a leading dimension) reach BLAS without a hidden copy.
#include "test_util.h"

#include <luna/backends/cpu/sgemm_thin.h>

#include <array>
#include <functional>
#include <string>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

Tensor random_tensor(const Dims& shape, uint64_t seed, DType dtype) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * 2 - 1).to(dtype);
}

double rtol(DType d) { return d == kFloat64 ? 1e-12 : 1e-5; }
double atol(DType d) { return d == kFloat64 ? 1e-12 : 1e-5; }

// Row-major index into a batch of shape `in` (right-aligned, size-1 dims broadcast) of element
// `i` of the broadcast batch shape `out`.
int64_t broadcast_index(const Dims& out, const Dims& in, int64_t i) {
  int64_t index = 0, multiplier = 1;
  const int lead = out.size() - in.size();
  for (int d = out.size() - 1; d >= 0; --d) {
    const int64_t coord = i % out[d];
    i /= out[d];
    const int di = d - lead;
    if (di < 0) continue;
    if (in[di] != 1) index += coord * multiplier;
    multiplier *= in[di];
  }
  return index;
}

struct Reference {
  Dims shape;
  std::vector<double> values;
};

// torch.matmul by definition: 1-D operands promoted to a row / column and the added dim dropped
// again; batch dims broadcast; every output element a plain loop over k.
Reference reference_matmul(const Tensor& a, const Tensor& b) {
  Dims sa = a.sizes(), sb = b.sizes();
  const bool a_vector = sa.size() == 1, b_vector = sb.size() == 1;
  if (a_vector) sa = Dims{1, sa[0]};
  if (b_vector) sb = Dims{sb[0], 1};
  const int64_t m = sa[sa.size() - 2], k = sa[sa.size() - 1], n = sb[sb.size() - 1];
  REQUIRE(sb[sb.size() - 2] == k);
  const Dims batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  const Dims batch = broadcast_shapes(batch_a, batch_b, "reference");
  const std::vector<double> va = values(a), vb = values(b);  // row-major
  Reference r;
  r.values.assign(size_t(batch.product() * m * n), 0.0);
  for (int64_t bi = 0; bi < batch.product(); ++bi) {
    const int64_t base_a = broadcast_index(batch, batch_a, bi) * m * k;
    const int64_t base_b = broadcast_index(batch, batch_b, bi) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += va[size_t(base_a + i * k + p)] * vb[size_t(base_b + p * n + j)];
        r.values[size_t((bi * m + i) * n + j)] = s;
      }
  }
  r.shape = batch;
  if (!a_vector) r.shape.push_back(m);
  if (!b_vector) r.shape.push_back(n);
  return r;
}

void require_matches_reference(const Tensor& got, const Tensor& a, const Tensor& b) {
  const Reference want = reference_matmul(a, b);
  REQUIRE(got.sizes() == want.shape);
  REQUIRE(got.dtype() == a.dtype());
  require_close(values(got), want.values, rtol(a.dtype()), atol(a.dtype()));
}

// A [rows, cols] operand in one of the layouts a view can have. The comment on each says how
// ops/linalg.cpp hands it to GEMM.
struct Layout {
  const char* name;
  std::function<Tensor(int64_t rows, int64_t cols, uint64_t seed, DType dtype)> make;
};

std::vector<Layout> layouts() {
  return {
      // row-major, ld = cols
      {"contiguous", [](int64_t r, int64_t c, uint64_t s, DType d) { return random_tensor({r, c}, s, d); }},
      // column-major: the transpose flag, ld = rows
      {"transposed", [](int64_t r, int64_t c, uint64_t s, DType d) { return random_tensor({c, r}, s, d).t(); }},
      // row-major with ld = cols + 5 (a column window of a wider matrix)
      {"column window", [](int64_t r, int64_t c, uint64_t s, DType d) {
         return random_tensor({r, c + 5}, s, d).narrow(1, 2, c);
       }},
      // column-major with ld = rows + 4
      {"transposed window", [](int64_t r, int64_t c, uint64_t s, DType d) {
         return random_tensor({c, r + 4}, s, d).narrow(1, 1, r).t();
       }},
      // every other row: row stride 2 cols, still row-major for GEMM
      {"row step 2", [](int64_t r, int64_t c, uint64_t s, DType d) {
         return random_tensor({2 * r, c}, s, d).slice(0, 0, 2 * r, 2);
       }},
      // column stride 2: no GEMM layout fits, so the op makes it contiguous
      {"column step 2", [](int64_t r, int64_t c, uint64_t s, DType d) {
         return random_tensor({r, 2 * c}, s, d).slice(1, 0, 2 * c, 2);
       }},
      // one row broadcast to every row (stride 0): copied as well
      {"expanded row", [](int64_t r, int64_t c, uint64_t s, DType d) {
         return random_tensor({1, c}, s, d).expand({r, c});
       }},
  };
}

uint64_t allocator_requests() { return memory_stats().requests; }

}  // namespace

TEST_CASE("mm matches a triple loop for every operand layout, f32 and f64", "[linalg]") {
  // Odd sizes plus every degenerate 1 (the layout analysis treats rows == 1 / cols == 1 specially).
  const std::vector<std::array<int64_t, 3>> sizes{{5, 7, 3}, {1, 7, 3}, {5, 1, 3}, {5, 7, 1}, {1, 1, 1}, {1, 9, 1}};
  for (DType dtype : {kFloat32, kFloat64})
    for (const auto& [m, k, n] : sizes)
      for (const Layout& la : layouts())
        for (const Layout& lb : layouts()) {
          CAPTURE(dtype_name(dtype), m, k, n, la.name, lb.name);
          const Tensor a = la.make(m, k, 11, dtype), b = lb.make(k, n, 12, dtype);
          require_matches_reference(mm(a, b), a, b);
          require_matches_reference(matmul(a, b), a, b);
          require_matches_reference(a.mm(b), a, b);
        }
}

TEST_CASE("matmul handles 1-D operands like torch.matmul", "[linalg]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor v = random_tensor({4}, 1, dtype), w = random_tensor({4}, 2, dtype);
    const Tensor dot = matmul(v, w);
    REQUIRE(dot.dim() == 0);
    require_matches_reference(dot, v, w);
    const Tensor m = random_tensor({4, 3}, 3, dtype), mt = random_tensor({3, 4}, 4, dtype);
    require_matches_reference(matmul(v, m), v, m);    // [4] x [4,3] -> [3]
    require_matches_reference(matmul(mt, v), mt, v);  // [3,4] x [4] -> [3]
    require_matches_reference(matmul(v, random_tensor({3, 4}, 5, dtype).t()), v,
                              random_tensor({3, 4}, 5, dtype).t());
    const Tensor batched = random_tensor({2, 4, 5}, 6, dtype), batched_left = random_tensor({2, 3, 4}, 7, dtype);
    require_matches_reference(matmul(v, batched), v, batched);            // [4] x [2,4,5] -> [2,5]
    require_matches_reference(matmul(batched_left, v), batched_left, v);  // [2,3,4] x [4] -> [2,3]
    const Tensor strided_vector = random_tensor({8}, 8, dtype).slice(0, 0, 8, 2);
    require_matches_reference(matmul(strided_vector, m), strided_vector, m);
    require_matches_reference(matmul(m.t(), strided_vector), m.t(), strided_vector);
  }
}

TEST_CASE("batched matmul broadcasts batch dims", "[linalg]") {
  struct Case {
    const char* name;
    std::function<Tensor(DType)> a, b;
  };
  const std::vector<Case> cases{
      {"[2,1,3,4] x [5,4,2]", [](DType d) { return random_tensor({2, 1, 3, 4}, 1, d); },
       [](DType d) { return random_tensor({5, 4, 2}, 2, d); }},
      {"[3,4] x [2,4,5]", [](DType d) { return random_tensor({3, 4}, 3, d); },
       [](DType d) { return random_tensor({2, 4, 5}, 4, d); }},
      {"[1,3,4] x [2,4,5]", [](DType d) { return random_tensor({1, 3, 4}, 5, d); },
       [](DType d) { return random_tensor({2, 4, 5}, 6, d); }},
      // A shared weight: one big GEMM over all batch rows.
      {"[2,3,4] x [4,5]", [](DType d) { return random_tensor({2, 3, 4}, 7, d); },
       [](DType d) { return random_tensor({4, 5}, 8, d); }},
      {"[2,3,4] x [5,4]^T", [](DType d) { return random_tensor({2, 3, 4}, 9, d); },
       [](DType d) { return random_tensor({5, 4}, 10, d).t(); }},
      // Shared weight, left operand with padded rows (ld 6 > k 4): still one GEMM.
      {"[2,3,6][...,:4] x [4,5]", [](DType d) { return random_tensor({2, 3, 6}, 11, d).narrow(2, 1, 4); },
       [](DType d) { return random_tensor({4, 5}, 12, d); }},
      // Shared weight, left batches not evenly spaced: one GEMM per batch.
      {"[3,2,4]^T(0,1) x [4,5]", [](DType d) { return random_tensor({3, 2, 4}, 13, d).transpose(0, 1); },
       [](DType d) { return random_tensor({4, 5}, 14, d); }},
      {"[2,4,3]^T(1,2) x [2,5,4]^T(1,2)", [](DType d) { return random_tensor({2, 4, 3}, 15, d).transpose(1, 2); },
       [](DType d) { return random_tensor({2, 5, 4}, 16, d).transpose(1, 2); }},
      {"[2,2,3,4] x [2,1,4,5] (4-D)", [](DType d) { return random_tensor({2, 2, 3, 4}, 17, d); },
       [](DType d) { return random_tensor({2, 1, 4, 5}, 18, d); }},
      // Three batch dims, broadcast both ways, transposed right operand: the looped path.
      {"[2,1,3,2,4] x [3,1,5,4]^T(-1,-2)", [](DType d) { return random_tensor({2, 1, 3, 2, 4}, 21, d); },
       [](DType d) { return random_tensor({3, 1, 5, 4}, 22, d).transpose(-1, -2); }},
      {"empty batch [0,3,4] x [0,4,5]", [](DType d) { return random_tensor({0, 3, 4}, 19, d); },
       [](DType d) { return random_tensor({0, 4, 5}, 20, d); }},
  };
  for (DType dtype : {kFloat32, kFloat64})
    for (const Case& c : cases) {
      CAPTURE(dtype_name(dtype), c.name);
      const Tensor a = c.a(dtype), b = c.b(dtype);
      require_matches_reference(matmul(a, b), a, b);
    }
}

TEST_CASE("matmul with an empty inner dim gives zeros, empty outer dims give empty results", "[linalg]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor zero_k = matmul(random_tensor({3, 0}, 1, dtype), random_tensor({0, 4}, 2, dtype));
    REQUIRE(zero_k.sizes() == Dims{3, 4});
    require_close(values(zero_k), std::vector<double>(12, 0.0), 0, 0);
    const Tensor batched_zero_k = matmul(random_tensor({2, 3, 0}, 3, dtype), random_tensor({0, 4}, 4, dtype));
    require_close(values(batched_zero_k), std::vector<double>(24, 0.0), 0, 0);
    REQUIRE(matmul(random_tensor({0, 3}, 5, dtype), random_tensor({3, 4}, 6, dtype)).sizes() == Dims{0, 4});
    REQUIRE(matmul(random_tensor({2, 3}, 7, dtype), random_tensor({3, 0}, 8, dtype)).sizes() == Dims{2, 0});
  }
}

TEST_CASE("bmm matches per-batch products, including transposed batches", "[linalg]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor a = random_tensor({3, 2, 4}, 1, dtype), b = random_tensor({3, 4, 5}, 2, dtype);
    require_matches_reference(bmm(a, b), a, b);
    require_matches_reference(a.bmm(b), a, b);
    const Tensor bt = random_tensor({3, 5, 4}, 3, dtype).transpose(1, 2);  // [3,4,5], column-major batches
    const Tensor at = random_tensor({3, 4, 2}, 4, dtype).transpose(1, 2);  // [3,2,4]
    require_matches_reference(bmm(at, bt), at, bt);
    const Tensor batch_major = random_tensor({2, 3, 4}, 5, dtype).transpose(0, 1);  // [3,2,4], batch stride 4
    require_matches_reference(bmm(batch_major, b), batch_major, b);
  }
}

TEST_CASE("linear equals x W^T + b with and without bias, any leading dims", "[linalg]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor w = random_tensor({5, 4}, 1, dtype), bias = random_tensor({5}, 2, dtype);
    const std::vector<double> vb = values(bias);
    const std::vector<std::pair<const char*, Tensor>> inputs{
        {"1-D", random_tensor({4}, 3, dtype)},
        {"2-D", random_tensor({3, 4}, 4, dtype)},
        {"3-D", random_tensor({2, 3, 4}, 5, dtype)},
        {"3-D non-contiguous", random_tensor({3, 2, 4}, 6, dtype).transpose(0, 1)},
        {"2-D transposed", random_tensor({4, 3}, 7, dtype).t()},
    };
    for (const auto& [name, x] : inputs) {
      CAPTURE(name);
      const Reference xw = reference_matmul(x, w.t());
      Dims want_shape = x.sizes();
      want_shape[want_shape.size() - 1] = 5;
      const Tensor no_bias = linear(x, w);
      REQUIRE(no_bias.sizes() == want_shape);
      require_close(values(no_bias), xw.values, rtol(dtype), atol(dtype));
      std::vector<double> with_bias = xw.values;
      for (size_t i = 0; i < with_bias.size(); ++i) with_bias[i] += vb[i % 5];
      const Tensor biased = linear(x, w, bias);
      REQUIRE(biased.sizes() == want_shape);
      require_close(values(biased), with_bias, rtol(dtype), atol(dtype));
      // A transposed weight view ([4,5] stored, used as [5,4]) gives the same result.
      const Tensor w_view = w.t().contiguous().t();
      require_close(values(linear(x, w_view, bias)), with_bias, rtol(dtype), atol(dtype));
    }
  }
}

TEST_CASE("linear's fused backward equals the composed one for every set of needed gradients", "[linalg]") {
  // The CPU fuses float32 linear backward (Backend::linear_backward: one pass over the gradient, on
  // luna's thin GEMM); allow_sgemm_thin(false) makes ops compose matmul, matmul and sum (OpenBLAS)
  // instead. Shapes the fused kernel takes (many rows, odd widths, a ragged last row block) and one
  // it hands on.
  const int saved_threads = get_num_threads();
  for (int threads : {1, 2})
    for (const auto& [rows, in, out] : std::vector<std::array<int64_t, 3>>{{3000, 64, 64}, {1301, 37, 129},
                                                                           {2048, 300, 20}})
      for (int needs = 1; needs < 8; ++needs) {  // bit 0: x, bit 1: W, bit 2: bias
        CAPTURE(threads, rows, in, out, needs);
        set_num_threads(threads);
        const Tensor x0 = random_tensor({rows, in}, 71, kFloat32), w0 = random_tensor({out, in}, 72, kFloat32);
        const Tensor b0 = random_tensor({out}, 73, kFloat32), weights = random_tensor({rows, out}, 74, kFloat32);
        std::vector<std::vector<double>> grads[2];
        for (bool fused : {true, false}) {
          cpu::allow_sgemm_thin(fused);
          const Tensor x = x0.clone().requires_grad_((needs & 1) != 0), w = w0.clone().requires_grad_((needs & 2) != 0);
          const Tensor b = b0.clone().requires_grad_((needs & 4) != 0);
          (linear(x, w, b) * weights).sum().backward();
          for (const Tensor& t : {x, w, b}) grads[fused].push_back(t.grad().defined() ? values(t.grad()) : std::vector<double>{});
        }
        cpu::allow_sgemm_thin(true);
        for (int i = 0; i < 3; ++i) {
          REQUIRE(grads[0][size_t(i)].size() == grads[1][size_t(i)].size());
          require_close(grads[1][size_t(i)], grads[0][size_t(i)], 1e-5, 1e-4);
        }
      }
  set_num_threads(saved_threads);
}

TEST_CASE("matmul error messages name the shapes and the mismatch", "[linalg]") {
  const Tensor a = random_tensor({2, 3}, 1, kFloat32), b = random_tensor({4, 5}, 2, kFloat32);
  REQUIRE_THROWS_WITH(matmul(a, b), Catch::Contains("[2,3]") && Catch::Contains("[4,5]") &&
                                        Catch::Contains("inner dims 3 != 4"));
  REQUIRE_THROWS_WITH(mm(a, b), Catch::Contains("mm: shapes [2,3] and [4,5]") && Catch::Contains("3 != 4"));
  REQUIRE_THROWS_WITH(matmul(random_tensor({2, 2, 3}, 3, kFloat32), random_tensor({2, 4, 5}, 4, kFloat32)),
                      Catch::Contains("[2,2,3]") && Catch::Contains("[2,4,5]") && Catch::Contains("3 != 4"));
  REQUIRE_THROWS_WITH(matmul(random_tensor({3}, 5, kFloat32), random_tensor({4}, 6, kFloat32)),
                      Catch::Contains("sizes 3 and 4"));
  REQUIRE_THROWS_WITH(matmul(random_tensor({2, 3}, 7, kFloat32), random_tensor({3, 4}, 8, kFloat64)),
                      Catch::Contains("same dtype") && Catch::Contains("float32") && Catch::Contains("float64"));
  REQUIRE_THROWS_WITH(matmul(random_tensor({2, 3}, 7, kInt64), random_tensor({3, 4}, 8, kInt64)),
                      Catch::Contains("int64") && Catch::Contains("not supported"));
  REQUIRE_THROWS_WITH(matmul(random_tensor({3, 2, 3}, 9, kFloat32), random_tensor({2, 3, 4}, 10, kFloat32)),
                      Catch::Contains("[3]") && Catch::Contains("[2]"));  // batch dims do not broadcast
  REQUIRE_THROWS_WITH(matmul(random_tensor({}, 11, kFloat32), a), Catch::Contains("at least 1 dim"));
  REQUIRE_THROWS_WITH(mm(random_tensor({2, 2, 3}, 12, kFloat32), b), Catch::Contains("expected 2-D"));
  REQUIRE_THROWS_WITH(bmm(random_tensor({3, 2, 4}, 13, kFloat32), random_tensor({2, 4, 5}, 14, kFloat32)),
                      Catch::Contains("batch sizes differ: 3 vs 2"));
  REQUIRE_THROWS_WITH(bmm(a, b), Catch::Contains("expected 3-D"));
  REQUIRE_THROWS_WITH(linear(random_tensor({2, 3}, 15, kFloat32), random_tensor({5, 4}, 16, kFloat32)),
                      Catch::Contains("[2,3]") && Catch::Contains("3 features") && Catch::Contains("[5,4]"));
  REQUIRE_THROWS_WITH(linear(random_tensor({2, 4}, 17, kFloat32), random_tensor({5, 4}, 18, kFloat32),
                             random_tensor({4}, 19, kFloat32)),
                      Catch::Contains("bias must have shape [5]"));
}

TEST_CASE("GEMM-readable layouts reach BLAS without a copy: one allocation, the output", "[linalg]") {
  NoGradGuard no_grad;
  const Tensor A = random_tensor({64, 32}, 1, kFloat32);  // (M, K)
  const Tensor B = random_tensor({32, 48}, 2, kFloat32);  // (K, N)
  const Tensor G = random_tensor({64, 48}, 3, kFloat32);  // (M, N), the output gradient
  const Tensor wide = random_tensor({64, 40}, 4, kFloat32);
  const Tensor batched_bt = random_tensor({4, 48, 32}, 5, kFloat32).transpose(1, 2);  // (4, K, N), column-major
  const Tensor x4 = random_tensor({2, 1, 16, 32}, 6, kFloat32), w3 = random_tensor({5, 32, 48}, 7, kFloat32);
  struct Case {
    const char* name;
    std::function<Tensor()> run;
  };
  const std::vector<Case> cases{
      {"forward A @ B", [&] { return matmul(A, B); }},
      {"grad of A: G @ B^T", [&] { return matmul(G, B.t()); }},
      {"grad of B: A^T @ G", [&] { return matmul(A.t(), G); }},
      {"column window", [&] { return mm(wide.narrow(1, 3, 32), B); }},
      {"batched shared weight", [&] { return matmul(A.view({4, 16, 32}), B); }},
      {"batched transposed", [&] { return bmm(A.view({4, 16, 32}), batched_bt); }},
      {"batched transposed left", [&] { return bmm(A.view({4, 16, 32}).transpose(1, 2), G.view({4, 16, 48})); }},
      // Two batch dims with a broadcast: looped over, the broadcast operand is not materialised.
      {"broadcast batch [2,1,16,32] x [5,32,48]", [&] { return matmul(x4, w3); }},
      {"linear", [&] { return linear(A, B.t()); }},
      {"linear with bias", [&] { return linear(A, B.t(), G.select(0, 0)); }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const uint64_t before = allocator_requests();
    const Tensor out = c.run();
    REQUIRE(allocator_requests() - before == 1);
  }
}
