// CPU kernels of fused softmax attention (see ops/attention_kernels.h). The forward walks key
// tiles with an online softmax (running row max and sum), the backward recomputes each tile's
// probabilities from the saved per-row logsumexp. GEMMs go to OpenBLAS on tiles; everything else
// (masking, exp, dropout) is a pass over a tile that is still in cache.
#include <luna/ops/attention_kernels.h>

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <luna/backends/cpu/blas_threads.h>
#include <luna/backends/cpu/fast_math.h>
#include <luna/core/generator.h>

namespace luna::cpu::attention_kernels {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// BLAS inside our parallel regions runs single-threaded: SingleThreadedBlas (backends/cpu/blas_threads.h).
using cpu::SingleThreadedBlas;

// Row-major C = alpha·op(A)·op(B) + beta·C. Sizes were checked against blasint by the op.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, blasint(m),
              blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
}
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, blasint(m),
              blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
}

// ---------------------------------------------------------------------------------------------
// Row passes over a score tile: max, and exp(s - shift) in place with its sum. float goes through
// the 8-lane exp of backends/cpu/fast_math.h (std::exp would cost more than both GEMMs together);
// double keeps std::exp for the gradchecks. exp(-inf) is 0 in both, which is how masked keys and
// fully masked rows (shift = +inf) drop out.

inline double row_max(const double* s, int64_t n) {
  double m = -kInfinity;
  for (int64_t j = 0; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

inline float row_max(const float* s, int64_t n) {
  using fast::F8;
  F8 m8 = fast::splat(-INFINITY);
  int64_t j = 0;
  for (; j + fast::kLanes <= n; j += fast::kLanes) {
    F8 x;
    std::memcpy(&x, s + j, sizeof(x));
    m8 = x > m8 ? x : m8;
  }
  float m = -INFINITY;
  for (int lane = 0; lane < fast::kLanes; ++lane) m = m8[lane] > m ? m8[lane] : m;
  for (; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

inline double exp_shifted_sum(double* s, int64_t n, double shift) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - shift);
    sum += s[j];
  }
  return sum;
}

inline double exp_shifted_sum(float* s, int64_t n, float shift) {
  using fast::F8;
  F8 sum8 = {};
  int64_t j = 0;
  for (; j + fast::kLanes <= n; j += fast::kLanes) {
    F8 x;
    std::memcpy(&x, s + j, sizeof(x));
    x = fast::exp8(x - shift);
    std::memcpy(s + j, &x, sizeof(x));
    sum8 += x;
  }
  double sum = 0;
  for (int lane = 0; lane < fast::kLanes; ++lane) sum += double(sum8[lane]);
  if (j < n) {
    const int64_t rest = n - j;
    F8 x = fast::splat(-INFINITY);
    std::memcpy(&x, s + j, size_t(rest) * sizeof(float));
    x = fast::exp8(x - shift);
    std::memcpy(s + j, &x, size_t(rest) * sizeof(float));
    for (int64_t lane = 0; lane < rest; ++lane) sum += double(x[lane]);
  }
  return sum;
}

// keep[c] = 1 when weight e_first + c survives dropout (the layout of luna::dropout, see the header).
void dropout_keep(const SdpaConfig& config, uint64_t e_first, int64_t count, uint8_t* keep) {
  uint64_t e = e_first;
  const uint64_t e_end = e_first + uint64_t(count);
  while (e < e_end) {
    const PhiloxBlock words = philox4x32_10(config.seed, config.offset + e / 4);
    for (uint64_t word = e % 4; word < 4 && e < e_end; ++word, ++e)
      keep[e - e_first] = uint8_t(double(uniform_float(words[word])) >= config.dropout_p);
  }
}

// Which key columns of a tile row are visible: the first `visible` by position (causal), minus the
// padded ones. Hidden columns are set to -inf.
template <class T>
void hide_columns(T* s, int64_t cols, int64_t visible, const uint8_t* padded) {
  const T minus_infinity = -std::numeric_limits<T>::infinity();
  for (int64_t c = visible; c < cols; ++c) s[c] = minus_infinity;
  if (padded)
    for (int64_t c = 0; c < visible; ++c)
      if (padded[c]) s[c] = minus_infinity;
}

bool all_padded(const uint8_t* padded, int64_t count) {
  for (int64_t c = 0; c < count; ++c)
    if (!padded[c]) return false;
  return true;
}

// Key tiles of one query block: [0, end) in steps of kKeyTile; causal blocks stop at their last row.
struct TileRange {
  int64_t end = 0;
  TileRange(const SdpaShape& shape, const SdpaConfig& config, int64_t first_query, int64_t rows)
      : end(config.causal ? std::min(shape.keys, first_query + rows) : shape.keys) {}
};

// Columns of tile [j0, j0 + cols) visible to query i by position.
inline int64_t visible_columns(const SdpaConfig& config, int64_t i, int64_t j0, int64_t cols) {
  return config.causal ? std::clamp<int64_t>(i - j0 + 1, 0, cols) : cols;
}

template <class T>
void zero_rows(const HeadRows<T>& m, const SdpaShape& shape, int64_t rows, int64_t cols) {
  if (cols == 0) return;
#pragma omp parallel for collapse(2) schedule(static) if (shape.batch * shape.heads * rows * cols > 65536)
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t h = 0; h < shape.heads; ++h)
      for (int64_t r = 0; r < rows; ++r) std::fill_n(m.head(b, h) + r * m.stride_row, cols, T(0));
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

// ---------------------------------------------------------------------------------------------

template <class T>
void sdpa_forward(const HeadRows<const T>& q, const HeadRows<const T>& k, const HeadRows<const T>& v,
                  const SdpaShape& shape, const SdpaConfig& config, const HeadRows<T>& out, T* logsumexp) {
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, Nk = shape.keys;
  const int64_t d = shape.head_dim, dv = shape.value_dim;
  const int64_t query_blocks = ceil_div(Nq, kQueryBlock), tasks = B * H * query_blocks;
  const bool dropout = config.dropout_p > 0;
  const double keep_scale = dropout ? 1.0 / (1.0 - config.dropout_p) : 1.0;
  const bool parallel = omp_get_max_threads() > 1 && tasks > 1;
  SingleThreadedBlas single_threaded_blas(parallel);
#pragma omp parallel if (parallel)
  {
    std::vector<T> scores(size_t(kQueryBlock * kKeyTile));  // (kQueryBlock, kKeyTile) scores, then weights
    std::vector<T> running_max(kQueryBlock);                 // (kQueryBlock)
    std::vector<double> running_sum(kQueryBlock);            // (kQueryBlock) Σ exp(s - running_max)
    std::vector<uint8_t> keep(dropout ? kKeyTile : 0);       // (kKeyTile)
    // Causal blocks further down have more tiles: hand those out first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t bh = task / query_blocks, b = bh / H, h = bh % H;
      const int64_t block = config.causal ? query_blocks - 1 - task % query_blocks : task % query_blocks;
      const int64_t i0 = block * kQueryBlock, rows = std::min(kQueryBlock, Nq - i0);
      const T* q_block = q.head(b, h) + i0 * q.stride_row;  // (rows, d)
      const T* k_head = k.head(b, h);                       // (Nk, d)
      const T* v_head = v.head(b, h);                       // (Nk, dv)
      T* out_block = out.head(b, h) + i0 * out.stride_row;  // (rows, dv), accumulated unnormalised
      const uint8_t* padded = config.key_padding_mask ? config.key_padding_mask + b * Nk : nullptr;  // (Nk)
      for (int64_t r = 0; r < rows; ++r) std::fill_n(out_block + r * out.stride_row, dv, T(0));
      std::fill(running_max.begin(), running_max.end(), -std::numeric_limits<T>::infinity());
      std::fill(running_sum.begin(), running_sum.end(), 0.0);

      const TileRange tiles(shape, config, i0, rows);
      for (int64_t j0 = 0; j0 < tiles.end; j0 += kKeyTile) {
        const int64_t cols = std::min(kKeyTile, tiles.end - j0);
        if (padded && all_padded(padded + j0, cols)) continue;
        gemm(false, true, rows, cols, d, T(config.scale), q_block, q.stride_row, k_head + j0 * k.stride_row,
             k.stride_row, T(0), scores.data(), kKeyTile);
        for (int64_t r = 0; r < rows; ++r) {
          T* s = scores.data() + r * kKeyTile;
          const int64_t visible = visible_columns(config, i0 + r, j0, cols);
          hide_columns(s, cols, visible, padded ? padded + j0 : nullptr);
          const T tile_max = row_max(s, visible);
          const T new_max = std::max(running_max[r], tile_max);
          if (new_max == -std::numeric_limits<T>::infinity()) {  // nothing visible yet
            std::fill_n(s, cols, T(0));
            continue;
          }
          if (new_max > running_max[r] && running_sum[r] > 0) {  // rescale what earlier tiles summed
            const T correction = T(std::exp(double(running_max[r]) - double(new_max)));
            running_sum[r] *= double(correction);
            T* acc = out_block + r * out.stride_row;
            for (int64_t c = 0; c < dv; ++c) acc[c] *= correction;
          }
          running_max[r] = new_max;
          running_sum[r] += exp_shifted_sum(s, cols, new_max);
          if (dropout) {
            dropout_keep(config, uint64_t((bh * Nq + i0 + r) * Nk + j0), cols, keep.data());
            for (int64_t c = 0; c < cols; ++c) s[c] = keep[c] ? s[c] * T(keep_scale) : T(0);
          }
        }
        gemm(false, false, rows, dv, cols, T(1), scores.data(), kKeyTile, v_head + j0 * v.stride_row, v.stride_row,
             T(1), out_block, out.stride_row);
      }
      for (int64_t r = 0; r < rows; ++r) {
        T* row = out_block + r * out.stride_row;
        T& lse = logsumexp[bh * Nq + i0 + r];
        if (running_sum[r] == 0) {  // every key masked: zero output (the accumulator is zero already)
          lse = std::numeric_limits<T>::infinity();
          continue;
        }
        const T inverse = T(1.0 / running_sum[r]);
        for (int64_t c = 0; c < dv; ++c) row[c] *= inverse;
        lse = T(double(running_max[r]) + std::log(running_sum[r]));
      }
    }
  }
}

// Backward, per query block and key tile (P recomputed, D_i = dO_i·O_i):
//   dV_j += P̃ᵀ dO     dP̃ = dO Vᵀ     dP = dP̃ ∘ keep/(1-p)     dS = P ∘ (dP - D)
//   dQ_i += scale·dS K_j     dK_j += scale·dSᵀ Q_i
// where P̃ = P ∘ keep/(1-p) is what multiplied V (P̃ = P without dropout). Tasks are (batch·head,
// chunk of query blocks); dQ rows belong to one task, while dK and dV of a head are summed over
// its chunks: chunk 0 writes the gradients directly, chunk c > 0 its own zeroed slot, and the slots
// are added in chunk order afterwards, so the result does not depend on thread timing.
template <class T>
void sdpa_backward(const HeadRows<const T>& grad_out, const HeadRows<const T>& q, const HeadRows<const T>& k,
                   const HeadRows<const T>& v, const HeadRows<const T>& out, const T* logsumexp,
                   const SdpaShape& shape, const SdpaConfig& config, const HeadRows<T>& grad_q,
                   const HeadRows<T>& grad_k, const HeadRows<T>& grad_v) {
  const int64_t B = shape.batch, H = shape.heads, BH = B * H, Nq = shape.queries, Nk = shape.keys;
  const int64_t d = shape.head_dim, dv = shape.value_dim;
  zero_rows(grad_q, shape, Nq, d);
  zero_rows(grad_k, shape, Nk, d);
  zero_rows(grad_v, shape, Nk, dv);
  if (Nq == 0 || Nk == 0) return;
  const int64_t query_blocks = ceil_div(Nq, kQueryBlock);
  const int threads = omp_get_max_threads();
  // Enough chunks for two tasks per thread when there are few heads.
  const int64_t chunks = std::clamp<int64_t>(ceil_div(2 * int64_t(threads), BH), 1, query_blocks);
  const int64_t tasks = BH * chunks;
  // Causal: block b costs ~b tiles, so chunk boundaries sit at sqrt(c/chunks) of the blocks.
  std::vector<int64_t> chunk_start(size_t(chunks + 1));
  for (int64_t c = 0; c <= chunks; ++c)
    chunk_start[size_t(c)] = config.causal ? int64_t(std::llround(double(query_blocks) * std::sqrt(double(c) / chunks)))
                                           : c * query_blocks / chunks;
  const int64_t slot_size = Nk * (d + dv);
  std::vector<T> slots(size_t(BH * (chunks - 1) * slot_size), T(0));  // (BH, chunks-1, Nk, d + dv)

  const bool dropout = config.dropout_p > 0;
  const T keep_scale = T(dropout ? 1.0 / (1.0 - config.dropout_p) : 1.0);
  const bool parallel = threads > 1 && tasks > 1;
  SingleThreadedBlas single_threaded_blas(parallel);
#pragma omp parallel if (parallel)
  {
    std::vector<T> probabilities(size_t(kQueryBlock * kKeyTile));  // (kQueryBlock, kKeyTile) P
    std::vector<T> grad_scores(size_t(kQueryBlock * kKeyTile));    // (kQueryBlock, kKeyTile) dP, then dS
    std::vector<T> dropped(dropout ? size_t(kQueryBlock * kKeyTile) : 0);  // (kQueryBlock, kKeyTile) P̃
    std::vector<T> row_dot(kQueryBlock);                                   // (kQueryBlock) D = dO·O
    std::vector<uint8_t> keep(dropout ? kKeyTile : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t bh = task / chunks, b = bh / H, h = bh % H;
      const int64_t chunk = config.causal ? chunks - 1 - task % chunks : task % chunks;
      const T* q_head = q.head(b, h);
      const T* k_head = k.head(b, h);
      const T* v_head = v.head(b, h);
      // dK, dV of this (head, chunk): (Nk, d) and (Nk, dv) with their leading dimensions.
      T* slot = chunk == 0 ? nullptr : slots.data() + (bh * (chunks - 1) + chunk - 1) * slot_size;
      T* grad_k_head = chunk == 0 ? grad_k.head(b, h) : slot;
      T* grad_v_head = chunk == 0 ? grad_v.head(b, h) : slot + Nk * d;
      const int64_t grad_k_ld = chunk == 0 ? grad_k.stride_row : d;
      const int64_t grad_v_ld = chunk == 0 ? grad_v.stride_row : dv;
      const uint8_t* padded = config.key_padding_mask ? config.key_padding_mask + b * Nk : nullptr;

      for (int64_t block = chunk_start[size_t(chunk)]; block < chunk_start[size_t(chunk + 1)]; ++block) {
        const int64_t i0 = block * kQueryBlock, rows = std::min(kQueryBlock, Nq - i0);
        const T* q_block = q_head + i0 * q.stride_row;                     // (rows, d)
        const T* grad_out_block = grad_out.head(b, h) + i0 * grad_out.stride_row;  // (rows, dv)
        const T* out_block = out.head(b, h) + i0 * out.stride_row;         // (rows, dv)
        T* grad_q_block = grad_q.head(b, h) + i0 * grad_q.stride_row;      // (rows, d)
        const T* lse = logsumexp + bh * Nq + i0;                           // (rows)
        for (int64_t r = 0; r < rows; ++r) {
          double dot = 0;
          for (int64_t c = 0; c < dv; ++c)
            dot += double(grad_out_block[r * grad_out.stride_row + c]) * double(out_block[r * out.stride_row + c]);
          row_dot[size_t(r)] = T(dot);
        }

        const TileRange tiles(shape, config, i0, rows);
        for (int64_t j0 = 0; j0 < tiles.end; j0 += kKeyTile) {
          const int64_t cols = std::min(kKeyTile, tiles.end - j0);
          if (padded && all_padded(padded + j0, cols)) continue;
          T* P = probabilities.data();
          T* dS = grad_scores.data();
          gemm(false, true, rows, cols, d, T(config.scale), q_block, q.stride_row, k_head + j0 * k.stride_row,
               k.stride_row, T(0), P, kKeyTile);
          gemm(false, true, rows, cols, dv, T(1), grad_out_block, grad_out.stride_row, v_head + j0 * v.stride_row,
               v.stride_row, T(0), dS, kKeyTile);
          for (int64_t r = 0; r < rows; ++r) {
            T* p = P + r * kKeyTile;
            hide_columns(p, cols, visible_columns(config, i0 + r, j0, cols), padded ? padded + j0 : nullptr);
            exp_shifted_sum(p, cols, lse[r]);  // P = exp(s - lse); a fully masked row (lse = +inf) gives 0
            if (dropout) {
              T* p_dropped = dropped.data() + r * kKeyTile;
              T* dp = dS + r * kKeyTile;
              dropout_keep(config, uint64_t((bh * Nq + i0 + r) * Nk + j0), cols, keep.data());
              for (int64_t c = 0; c < cols; ++c) {
                p_dropped[c] = keep[c] ? p[c] * keep_scale : T(0);
                dp[c] = keep[c] ? dp[c] * keep_scale : T(0);
              }
            }
          }
          gemm(true, false, cols, dv, rows, T(1), dropout ? dropped.data() : P, kKeyTile, grad_out_block,
               grad_out.stride_row, T(1), grad_v_head + j0 * grad_v_ld, grad_v_ld);
          for (int64_t r = 0; r < rows; ++r) {
            const T* p = P + r * kKeyTile;
            T* ds = dS + r * kKeyTile;
            const T D = row_dot[size_t(r)];
            for (int64_t c = 0; c < cols; ++c) ds[c] = p[c] * (ds[c] - D);
          }
          gemm(false, false, rows, d, cols, T(config.scale), dS, kKeyTile, k_head + j0 * k.stride_row, k.stride_row,
               T(1), grad_q_block, grad_q.stride_row);
          gemm(true, false, cols, d, rows, T(config.scale), dS, kKeyTile, q_block, q.stride_row, T(1),
               grad_k_head + j0 * grad_k_ld, grad_k_ld);
        }
      }
    }
  }
  if (chunks == 1) return;
#pragma omp parallel for schedule(static) if (BH * slot_size > 65536)
  for (int64_t bh = 0; bh < BH; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    T* grad_k_head = grad_k.head(b, h);
    T* grad_v_head = grad_v.head(b, h);
    for (int64_t chunk = 1; chunk < chunks; ++chunk) {
      const T* slot = slots.data() + (bh * (chunks - 1) + chunk - 1) * slot_size;
      for (int64_t j = 0; j < Nk; ++j) {
        for (int64_t c = 0; c < d; ++c) grad_k_head[j * grad_k.stride_row + c] += slot[j * d + c];
        for (int64_t c = 0; c < dv; ++c) grad_v_head[j * grad_v.stride_row + c] += slot[Nk * d + j * dv + c];
      }
    }
  }
}

template void sdpa_forward<float>(const HeadRows<const float>&, const HeadRows<const float>&,
                                  const HeadRows<const float>&, const SdpaShape&, const SdpaConfig&,
                                  const HeadRows<float>&, float*);
template void sdpa_forward<double>(const HeadRows<const double>&, const HeadRows<const double>&,
                                   const HeadRows<const double>&, const SdpaShape&, const SdpaConfig&,
                                   const HeadRows<double>&, double*);
template void sdpa_backward<float>(const HeadRows<const float>&, const HeadRows<const float>&,
                                   const HeadRows<const float>&, const HeadRows<const float>&,
                                   const HeadRows<const float>&, const float*, const SdpaShape&, const SdpaConfig&,
                                   const HeadRows<float>&, const HeadRows<float>&, const HeadRows<float>&);
template void sdpa_backward<double>(const HeadRows<const double>&, const HeadRows<const double>&,
                                    const HeadRows<const double>&, const HeadRows<const double>&,
                                    const HeadRows<const double>&, const double*, const SdpaShape&,
                                    const SdpaConfig&, const HeadRows<double>&, const HeadRows<double>&,
                                    const HeadRows<double>&);

}  // namespace luna::cpu::attention_kernels
