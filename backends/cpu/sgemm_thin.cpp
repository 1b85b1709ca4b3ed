// luna's thin-shape float32 GEMM (see sgemm_thin.h): an 8×32 AVX-512 register tile that broadcasts
// A from wherever it lies and reads B from 32-column panels packed once per call (or per k block, or
// once for many calls: sgemm_thin_pack_b), or from B's own rows when they are contiguous and n is a
// multiple of 32.
//
// Work split: a batch of at least as many products as threads runs one product per thread; a single
// tall product splits its rows; a product with long k (the weight gradients) splits k, every thread
// summing its slice into a private C that is added up in thread order, so a thread count always
// gives the same bits.
#include <luna/backends/cpu/sgemm_thin.h>
#include <luna/backends/cpu/cpu_features.h>
#include <luna/core/error.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <omp.h>

#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12's AVX-512 intrinsic headers trip this warning on their own internals (setzero and friends).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace luna::cpu {
namespace {

constexpr int kTileRows = 8;         // rows of C per AVX-512 register tile
constexpr int kTileRowsAvx2 = 6;     // rows of C per AVX2 register tile (12 accumulators of 16)
constexpr int64_t kPanel = 32;       // columns per packed B panel: two 16-lane vectors
constexpr int64_t kMaxDepth = 512;   // k up to this runs in one pass over a fully packed B
constexpr int64_t kDepthBlockBytes = 24 << 10;  // longer k runs in blocks, each summed in registers,
                                                // of as many k steps as keep a block's rows of A and B
                                                // within this much (in L1): 48 at m = n = 64
constexpr int64_t kDepthSlice = 256; // long k is split over threads, and the linear backward walks its
                                     // rows, in slices of this many
// C's rows are fetched a tile ahead only for k below this: at k = 33 (the attention's ∂φ) that was
// about 5% faster, at k = 64 and 128 (the linear layers) 2-5% slower (Zen 3, scratch timings of
// rows_times_panels alone).
constexpr int64_t kPrefetchOutputDepth = 48;
// From that depth on, A's rows (kc floats each, a tile's worth 2-4 KiB at k = 64-128) are fetched into
// L2, both for the next tile and kFarTiles ahead, rather than into L1 for the next tile only. Zen 4,
// scratch timings of 65536-row products, 21 interleaved rounds, twice: k = 128 13% faster (15.1-15.6
// against 13.2-13.4 ms), n = 128 at k = 64 3% faster, n = k = 64 within 1%. A burst of a whole tile's
// lines into L1 seems to outrun its miss buffers; L2 keeps more in flight.
constexpr int64_t kFarTiles = 4;
constexpr int64_t kRowTask = 96;     // rows per parallel task of a tall product (16 tiles)
constexpr double kParallelFlops = 1 << 21;

// Element (i, j) of a matrix operand is data[i·rs + j·cs].
struct View {
  const float* data;
  int64_t rs, cs;
};

// B as the tiles read it, in panels of kPanel columns: row p of panel q at data + q·step + p·rs. Packed
// panels (rs = kPanel, zero past n), or B itself when its rows are contiguous and n fills whole panels.
struct Panels {
  const float* data;
  int64_t step, rs;
};

// A thread's scratch, grown as needed and kept: packing buffers and partial sums are then not
// allocated per call. 0: packed B, 1: partial sums.
std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[2];
  return buffers[which];
}

// `count` floats of `buffer` (grown as needed) starting at a 64-byte boundary, for sgemm_thin_row_packed:
// it feeds each 32-byte load of B to one multiply-add, and from the heap's 16-byte alignment half of
// those loads split a cache line (19.8 against 13.4 µs per 128 rows of the attention's ∂φ). The
// register tiles, six multiply-adds per load, did not gain from it (per-call packs stay as they are).
float* cache_aligned(std::vector<float>& buffer, size_t count) {
  constexpr size_t kLineFloats = 64 / sizeof(float);
  if (buffer.size() < count + kLineFloats - 1) buffer.resize(count + kLineFloats - 1);
  const uintptr_t address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// Whether the tiles read B's rows as they lie rather than packed: when they are contiguous and fill
// whole panels (the weight gradients' inputs, the fused attention's S, ∂S and [v, 1] tiles), the
// same values in the same order as packed ones, without the copy.
bool reads_b_in_place(const View& b, int64_t n) { return b.cs == 1 && n % kPanel == 0; }

// B rows [k0, k0 + kc), all n columns, as panels of kPanel (32) columns: element (p, j) of panel q at
// q·kc·32 + p·32 + (j − 32q); columns past n are zero.
void pack_b(const View& b, int64_t k0, int64_t kc, int64_t n, float* packed) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  for (int64_t q = 0; q < panels; ++q) {
    float* dst = packed + q * kc * kPanel;
    const int64_t j0 = q * kPanel, width = std::min(kPanel, n - j0);
    if (width < kPanel)
      for (int64_t p = 0; p < kc; ++p) std::fill(dst + p * kPanel + width, dst + (p + 1) * kPanel, 0.0f);
    if (b.cs == 1) {  // rows of B contiguous
      for (int64_t p = 0; p < kc; ++p)
        std::memcpy(dst + p * kPanel, b.data + (k0 + p) * b.rs + j0, size_t(width) * sizeof(float));
    } else {  // a transposed B: walk each column of the panel, contiguous when rs = 1
      for (int64_t j = 0; j < width; ++j) {
        const float* src = b.data + (j0 + j) * b.cs + k0 * b.rs;
        for (int64_t p = 0; p < kc; ++p) dst[p * kPanel + j] = src[p * b.rs];
      }
    }
  }
}

// The register tile runs in AVX-512 (16 lanes, 32 registers) where the CPU has it, as OpenBLAS's own
// kernels do there; it is compiled for AVX-512 by function attribute and only called after the
// runtime check. Elsewhere an AVX2 tile (8 lanes, 16 registers: 6 rows × 16 columns) takes its
// place; both do the same multiply-adds per element in the same order.
#define LUNA_AVX512 LUNA_TARGET_AVX512

// C tile (R rows × up to 16·V columns, `cols` of them real) = alpha·A_tile·B_panel + beta·C_tile
// (+ bias, one value per column, when not null), over kc steps. A's R rows are broadcast one element
// at a time from wherever they lie.
template <int R, int V>
LUNA_AVX512 void tile(int64_t kc, const float* a, int64_t rs_a, int64_t cs_a, const float* panel, int64_t panel_rs,
                      float* c, int64_t ldc, int cols, float alpha, float beta, const float* bias) {
  __m512 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  if (cs_a == 1) {  // A's rows run along k
    const float* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = a + r * rs_a;
    for (int64_t p = 0; p < kc; ++p) {
      __m512 b[V];
      for (int v = 0; v < V; ++v) b[v] = _mm512_loadu_ps(panel + p * panel_rs + 16 * v);
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(rows[r][p]);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
      }
    }
  } else {  // A transposed: the R values of one k step are rs_a apart (usually adjacent)
    const float* column = a;
    for (int64_t p = 0; p < kc; ++p, column += cs_a) {
      __m512 b[V];
      for (int v = 0; v < V; ++v) b[v] = _mm512_loadu_ps(panel + p * panel_rs + 16 * v);
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(column[r * rs_a]);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
      }
    }
  }
  const __m512 alpha16 = _mm512_set1_ps(alpha), beta16 = _mm512_set1_ps(beta);
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
    for (int v = 0; v < V; ++v) {
      const int valid = cols - 16 * v;
      if (valid <= 0) break;
      const __mmask16 mask = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
      __m512 value = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(alpha16, acc[r][v]);
      if (beta != 0.0f) value = _mm512_fmadd_ps(beta16, _mm512_maskz_loadu_ps(mask, row + 16 * v), value);
      if (bias != nullptr) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, bias + 16 * v));
      _mm512_mask_storeu_ps(row + 16 * v, mask, value);
    }
  }
}

// C[0, valid) of one row (valid ≤ 8 of the vector's lanes) = alpha·value + beta·C (+ bias). A helper
// taking the accumulator by value, so the tile's accumulators stay in registers (indexed in a loop
// with a break, GCC kept them in memory).
inline void store_avx2(float* row, __m256 value, int valid, float alpha, float beta, const float* bias) {
  if (alpha != 1.0f) value = _mm256_mul_ps(_mm256_set1_ps(alpha), value);
  if (valid >= 8) {  // whole vectors without masks: AMD's masked stores are slow
    if (beta != 0.0f) value = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(row), value);
    if (bias != nullptr) value = _mm256_add_ps(value, _mm256_loadu_ps(bias));
    _mm256_storeu_ps(row, value);
    return;
  }
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (beta != 0.0f) value = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(row, mask), value);
  if (bias != nullptr) value = _mm256_add_ps(value, _mm256_maskload_ps(bias, mask));
  _mm256_maskstore_ps(row, mask, value);
}

// The AVX2 tile: R rows × 16 columns (two 8-lane vectors; `cols` ≤ 16 of them real) of a panel,
// `panel` pointing at the panel's first or second 16 columns. Per element the same multiply-adds in
// the same order as the AVX-512 tile, so both give the same bits.
template <int R>
void tile_avx2(int64_t kc, const float* a, int64_t rs_a, int64_t cs_a, const float* panel, int64_t panel_rs, float* c,
               int64_t ldc, int cols, float alpha, float beta, const float* bias) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  if (cs_a == 1) {
    const float* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = a + r * rs_a;
    for (int64_t p = 0; p < kc; ++p) {
      const __m256 b0 = _mm256_loadu_ps(panel + p * panel_rs), b1 = _mm256_loadu_ps(panel + p * panel_rs + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 x = _mm256_broadcast_ss(rows[r] + p);
        acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
      }
    }
  } else {
    const float* column = a;
    for (int64_t p = 0; p < kc; ++p, column += cs_a) {
      const __m256 b0 = _mm256_loadu_ps(panel + p * panel_rs), b1 = _mm256_loadu_ps(panel + p * panel_rs + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 x = _mm256_broadcast_ss(column + r * rs_a);
        acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    store_avx2(c + r * ldc, acc[r][0], cols, alpha, beta, bias);
    if (cols > 8) store_avx2(c + r * ldc + 8, acc[r][1], cols - 8, alpha, beta, bias != nullptr ? bias + 8 : nullptr);
  }
}

void tile_rows_avx2(int rows, int64_t kc, const float* a, int64_t rs_a, int64_t cs_a, const float* panel,
                    int64_t panel_rs, float* c, int64_t ldc, int cols, float alpha, float beta, const float* bias) {
  switch (rows) {
    case 6: return tile_avx2<6>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 5: return tile_avx2<5>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 4: return tile_avx2<4>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 3: return tile_avx2<3>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 2: return tile_avx2<2>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    default: return tile_avx2<1>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
  }
}

// Rows of C per register tile on this CPU.
int64_t tile_height() { return cpu_has_avx512() ? kTileRows : kTileRowsAvx2; }

template <int V>
void tile_rows(int rows, int64_t kc, const float* a, int64_t rs_a, int64_t cs_a, const float* panel, int64_t panel_rs,
               float* c, int64_t ldc, int cols, float alpha, float beta, const float* bias) {
  switch (rows) {
    case 8: return tile<8, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 7: return tile<7, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 6: return tile<6, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 5: return tile<5, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 4: return tile<4, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 3: return tile<3, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    case 2: return tile<2, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
    default: return tile<1, V>(kc, a, rs_a, cs_a, panel, panel_rs, c, ldc, cols, alpha, beta, bias);
  }
}


// C rows [i0, i1) over k steps [k0, k0 + kc), B's block already packed.
// Asks for the cache lines of `rows` rows of `width` floats, `stride` apart, ahead of their use. The
// products here are short on arithmetic per byte (k or n of 32 to 128), so a tile waiting for DRAM
// at its start costs about as much as its multiply-adds; hardware prefetchers do not cross into the
// next tile's rows (a new 4 KiB page for each row when rows are long).
enum class Prefetch { Read, Write, ReadToL2 };
inline void prefetch_rows(const float* first, int64_t rows, int64_t width, int64_t stride, Prefetch kind) {
  for (int64_t r = 0; r < rows; ++r) {
    const char* row = reinterpret_cast<const char*>(first + r * stride);
    for (int64_t byte = 0; byte < width * int64_t(sizeof(float)); byte += 64) {
      if (kind == Prefetch::Write) _mm_prefetch(row + byte, _MM_HINT_ET0);
      else if (kind == Prefetch::Read) _mm_prefetch(row + byte, _MM_HINT_T0);
      else _mm_prefetch(row + byte, _MM_HINT_T1);
    }
  }
}

void rows_times_panels(const View& a, int64_t k0, int64_t kc, const Panels& b, int64_t n, float* c, int64_t ldc,
                       int64_t i0, int64_t i1, float alpha, float beta, const float* bias = nullptr) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const bool avx512 = cpu_has_avx512();
  const int64_t height = tile_height();
  for (int64_t i = i0; i < i1; i += height) {
    const int rows = int(std::min<int64_t>(height, i1 - i));
    const float* a_tile = a.data + i * a.rs + k0 * a.cs;
    const int64_t next = i + height, next_rows = std::min<int64_t>(height, i1 - next);
    const bool short_depth = kc < kPrefetchOutputDepth;
    if (next_rows > 0) {  // the next tile's A rows (when they run along k) and, for short k, C rows
      if (a.cs == 1) prefetch_rows(a_tile + height * a.rs, next_rows, kc, a.rs,
                                   short_depth ? Prefetch::Read : Prefetch::ReadToL2);
      if (short_depth)
        prefetch_rows(c + next * ldc, next_rows, n, ldc, beta == 0.0f ? Prefetch::Write : Prefetch::Read);
    }
    const int64_t far = i + kFarTiles * height;  // longer k: A's rows also that many tiles ahead, into L2
    if (!short_depth && a.cs == 1 && far < i1)
      prefetch_rows(a_tile + kFarTiles * height * a.rs, std::min(height, i1 - far), kc, a.rs, Prefetch::ReadToL2);
    for (int64_t q = 0; q < panels; ++q) {
      const int cols = int(std::min(kPanel, n - q * kPanel));
      const float* panel = b.data + q * b.step;
      float* c_tile = c + i * ldc + q * kPanel;
      const float* panel_bias = bias != nullptr ? bias + q * kPanel : nullptr;
      if (!avx512) {  // the panel's two halves, A's rows read from L1 the second time
        tile_rows_avx2(rows, kc, a_tile, a.rs, a.cs, panel, b.rs, c_tile, ldc, std::min(cols, 16), alpha, beta,
                       panel_bias);
        if (cols > 16)
          tile_rows_avx2(rows, kc, a_tile, a.rs, a.cs, panel + 16, b.rs, c_tile + 16, ldc, cols - 16, alpha, beta,
                         panel_bias != nullptr ? panel_bias + 16 : nullptr);
      } else if (cols > 16) {
        tile_rows<2>(rows, kc, a_tile, a.rs, a.cs, panel, b.rs, c_tile, ldc, cols, alpha, beta, panel_bias);
      } else {
        tile_rows<1>(rows, kc, a_tile, a.rs, a.cs, panel, b.rs, c_tile, ldc, cols, alpha, beta, panel_bias);
      }
    }
  }
}

void scale_c(float* c, int64_t ldc, int64_t m, int64_t n, float beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// C = alpha·A·B + beta·C over k in blocks, serially: the first block applies beta, later ones add.
// While a block's tiles run, the next block's rows of A and B are fetched into L2, spread over the
// tiles: here A is often transposed (a weight gradient's Gᵀ, φ(k)ᵀ), so each k step of a tile reads
// 32 bytes of a new row, a pattern the hardware prefetchers do not follow across pages.
void long_depth_serial(const View& a, const View& b, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k0,
                       int64_t k1, float alpha, float beta) {
  std::vector<float>& packed = scratch(0);
  const int64_t height = tile_height();
  const int64_t panels = (n + kPanel - 1) / kPanel, tiles = (m + height - 1) / height;
  const int64_t depth_block = std::clamp<int64_t>(kDepthBlockBytes / (int64_t(sizeof(float)) * (m + n)) / 16 * 16, 16,
                                                  kDepthSlice);
  const bool in_place = reads_b_in_place(b, n);
  if (!in_place) packed.resize(size_t(std::min(depth_block, k1 - k0) * panels * kPanel));
  for (int64_t kb = k0; kb < k1; kb += depth_block) {
    const int64_t kc = std::min(depth_block, k1 - kb), next_kc = std::min(depth_block, k1 - kb - kc);
    const float block_beta = kb == k0 ? beta : 1.0f;
    if (!in_place) pack_b(b, kb, kc, n, packed.data());
    const Panels block = in_place ? Panels{b.data + kb * b.rs, kPanel, b.rs} : Panels{packed.data(), kc * kPanel, kPanel};
    for (int64_t t = 0; t < tiles; ++t) {
      if (next_kc > 0 && a.rs == 1) {
        const int64_t first = kb + kc + next_kc * t / tiles, last = kb + kc + next_kc * (t + 1) / tiles;
        prefetch_rows(a.data + first * a.cs, last - first, m, a.cs, Prefetch::ReadToL2);
        if (b.cs == 1) prefetch_rows(b.data + first * b.rs, last - first, n, b.rs, Prefetch::ReadToL2);
      }
      rows_times_panels(a, kb, kc, block, n, c, ldc, t * height, std::min(m, (t + 1) * height), alpha, block_beta);
    }
  }
}

// One product, C = alpha·A·B + beta·C (+ bias per column). `threads` > 1 lets it split rows (short
// k) or k (long k) over that many threads.
void gemm_single(const View& a, const View& b, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha,
                 float beta, const float* bias, int threads) {
  if (bias != nullptr && (k == 0 || k > kMaxDepth)) {  // rare: the bias goes into C first
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]) + bias[j];
    beta = 1.0f;
    bias = nullptr;
  }
  if (k == 0) return scale_c(c, ldc, m, n, beta);
  if (k <= kMaxDepth) {
    Panels panels{b.data, kPanel, b.rs};
    if (!reads_b_in_place(b, n)) {
      std::vector<float>& packed = scratch(0);
      packed.resize(size_t(k * ((n + kPanel - 1) / kPanel) * kPanel));
      pack_b(b, 0, k, n, packed.data());
      panels = {packed.data(), k * kPanel, kPanel};
    }
    const int64_t tasks = (m + kRowTask - 1) / kRowTask;
    // A serial call (the fused attention's per-tile products, about 20,000 per training step of the
    // listops benchmark) must not reach an OpenMP construct at all: even an `if (false)` parallel
    // region costs 0.4 µs to set up its team of one, 0.7 µs inside another region.
    if (threads <= 1 || tasks <= 1) return rows_times_panels(a, 0, k, panels, n, c, ldc, 0, m, alpha, beta, bias);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t t = 0; t < tasks; ++t)
      rows_times_panels(a, 0, k, panels, n, c, ldc, t * kRowTask, std::min(m, (t + 1) * kRowTask), alpha, beta,
                        bias);
    return;
  }
  const int64_t blocks = (k + kDepthSlice - 1) / kDepthSlice;
  const int parts = int(std::min<int64_t>(threads, blocks));
  if (parts <= 1) return long_depth_serial(a, b, c, ldc, m, n, 0, k, alpha, beta);
  // Each part sums its k slice into a private (m, n) buffer; the parts are then added in order.
  std::vector<float*> partial(static_cast<size_t>(parts));
#pragma omp parallel num_threads(parts)
  {
    const int part = omp_get_thread_num();
    const int64_t first = blocks * part / parts, last = blocks * (part + 1) / parts;
    std::vector<float>& sum = scratch(1);
    sum.resize(size_t(m * n));
    partial[size_t(part)] = sum.data();
    long_depth_serial(a, b, sum.data(), n, m, n, first * kDepthSlice, std::min(k, last * kDepthSlice), 1.0f, 0.0f);
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      float* row = c + i * ldc;
      for (int64_t j = 0; j < n; ++j) {
        float total = partial[0][i * n + j];
        for (int p = 1; p < parts; ++p) total += partial[size_t(p)][i * n + j];
        row[j] = beta == 0.0f ? alpha * total : alpha * total + beta * row[j];
      }
    }
  }
}

std::atomic<bool>& thin_allowed() {
  static std::atomic<bool> flag = [] {
    const char* off = std::getenv("LUNA_DISABLE_THIN_GEMM");
    return off == nullptr || std::strcmp(off, "") == 0 || std::strcmp(off, "0") == 0;
  }();
  return flag;
}

}  // namespace

bool sgemm_thin_allowed() { return thin_allowed().load(std::memory_order_relaxed); }
void allow_sgemm_thin(bool allowed) { thin_allowed().store(allowed, std::memory_order_relaxed); }

bool sgemm_thin_applies(const GemmArgs& g) {
  if (g.dtype != kFloat32 || g.m <= 0 || g.n <= 0 || !sgemm_thin_allowed()) return false;
  const bool tall = g.k <= kMaxDepth && g.n <= 256 && g.m >= 64;
  const bool long_depth = g.k > kMaxDepth && g.m <= 256 && g.n <= 256;
  return tall || long_depth;
}

void sgemm_thin(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return;
  const float* a = static_cast<const float*>(g.a);
  const float* b = static_cast<const float*>(g.b);
  float* c = static_cast<float*>(g.c);
  const View a_view{a, g.trans_a ? 1 : g.lda, g.trans_a ? g.lda : 1};
  const View b_view{b, g.trans_b ? 1 : g.ldb, g.trans_b ? g.ldb : 1};
  const float alpha = float(g.alpha), beta = float(g.beta);
  const float* bias = static_cast<const float*>(g.bias);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const double flops = 2.0 * double(g.batch) * double(g.m) * double(g.n) * double(g.k);
  if (threads > 1 && g.batch >= threads && flops >= kParallelFlops) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < g.batch; ++i)
      gemm_single({a + i * g.stride_a, a_view.rs, a_view.cs}, {b + i * g.stride_b, b_view.rs, b_view.cs},
                  c + i * g.stride_c, g.ldc, g.m, g.n, g.k, alpha, beta, bias, 1);
    return;
  }
  const int inner_threads = flops / double(g.batch) >= kParallelFlops ? threads : 1;
  for (int64_t i = 0; i < g.batch; ++i)
    gemm_single({a + i * g.stride_a, a_view.rs, a_view.cs}, {b + i * g.stride_b, b_view.rs, b_view.cs},
                c + i * g.stride_c, g.ldc, g.m, g.n, g.k, alpha, beta, bias, inner_threads);
}

void sgemm_thin_serial(const float* a, int64_t rs_a, int64_t cs_a, const float* b, int64_t rs_b, int64_t cs_b,
                       float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  gemm_single({a, rs_a, cs_a}, {b, rs_b, cs_b}, c, ldc, m, n, k, alpha, beta, nullptr, 1);
}

void sgemm_thin_pack_b(const float* b, int64_t rs_b, int64_t cs_b, int64_t k, int64_t n, PackedB& packed) {
  LUNA_CHECK(k >= 0 && n >= 0, "sgemm_thin_pack_b: k (", k, ") and n (", n, ") must not be negative");
  float* panels = cache_aligned(packed.storage_, size_t(k * ((n + kPanel - 1) / kPanel) * kPanel));
  if (k > 0 && n > 0) pack_b({b, rs_b, cs_b}, 0, k, n, panels);
  packed.data_ = panels;
  packed.k_ = k;
  packed.n_ = n;
}

void sgemm_thin_row_packed(const float* a, int64_t cs_a, const PackedB& packed, float* c) {
  LUNA_CHECK(!packed.empty(), "sgemm_thin_row_packed: B has not been packed (sgemm_thin_pack_b)");
  const int64_t n = packed.n(), k = packed.k(), panels = (n + kPanel - 1) / kPanel;
  alignas(32) float row[2 * kPanel];  // (64) the columns of one or two panels
  // Two panels at a time: 8 accumulators, as many as keep both FMA pipes busy through the latency.
  for (int64_t q = 0; q < panels; q += 2) {
    const int64_t width = std::min<int64_t>(2, panels - q) * kPanel;
    const float* b0 = packed.data_ + q * k * kPanel;
    const float* b1 = width > kPanel ? b0 + k * kPanel : b0;  // b0 again for a lone last panel, discarded
    __m256 acc[8];
    for (int v = 0; v < 8; ++v) acc[v] = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; ++p) {
      const __m256 x = _mm256_broadcast_ss(a + p * cs_a);
      for (int v = 0; v < 4; ++v) {
        acc[v] = _mm256_fmadd_ps(x, _mm256_load_ps(b0 + p * kPanel + 8 * v), acc[v]);
        acc[4 + v] = _mm256_fmadd_ps(x, _mm256_load_ps(b1 + p * kPanel + 8 * v), acc[4 + v]);
      }
    }
    const int64_t valid = std::min(width, n - q * kPanel);
    if (valid == 2 * kPanel) {
      for (int v = 0; v < 8; ++v) _mm256_storeu_ps(c + q * kPanel + 8 * v, acc[v]);
    } else {
      for (int v = 0; v < 8; ++v) _mm256_store_ps(row + 8 * v, acc[v]);
      std::memcpy(c + q * kPanel, row, size_t(valid) * sizeof(float));
    }
  }
}

bool sgemm_linear_backward_applies(int64_t rows, int64_t in, int64_t out) {
  return sgemm_thin_allowed() && rows >= 1024 && in > 0 && out > 0 && in <= 256 && out <= 256;
}

void sgemm_linear_backward(const float* grad_out, const float* input, const float* weight, int64_t rows, int64_t in,
                           int64_t out, float* grad_input, float* grad_weight, float* grad_bias) {
  const int64_t blocks = (rows + kDepthSlice - 1) / kDepthSlice;
  const double flops = 2.0 * double(rows) * double(in) * double(out);
  const int threads = omp_in_parallel() || flops < kParallelFlops ? 1 : omp_get_max_threads();
  const int parts = int(std::min<int64_t>(threads, blocks));
  // W (out, in) packed once as the B of grad_input = dy·W (k = out), shared read-only.
  std::vector<float> packed_weight;
  if (grad_input != nullptr) {
    packed_weight.resize(size_t(out * ((in + kPanel - 1) / kPanel) * kPanel));
    pack_b({weight, in, 1}, 0, out, in, packed_weight.data());
  }
  std::vector<float*> weight_parts(static_cast<size_t>(parts));
  std::vector<std::vector<double>> bias_parts(static_cast<size_t>(parts), std::vector<double>(size_t(out), 0.0));
  const View dy{grad_out, out, 1}, dy_t{grad_out, 1, out}, x{input, in, 1};
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int part = omp_get_thread_num();
    const int64_t first = blocks * part / parts, last = blocks * (part + 1) / parts;
    std::vector<float>& weight_sum = scratch(1);  // (out, in)
    if (grad_weight != nullptr) weight_sum.resize(size_t(out * in));
    weight_parts[size_t(part)] = weight_sum.data();
    double* bias_sum = bias_parts[size_t(part)].data();
    for (int64_t block = first; block < last; ++block) {
      const int64_t r0 = block * kDepthSlice, r1 = std::min(rows, r0 + kDepthSlice);
      if (grad_input != nullptr)
        rows_times_panels(dy, 0, out, {packed_weight.data(), out * kPanel, kPanel}, in, grad_input, in, r0, r1, 1.0f,
                          0.0f);
      if (grad_weight != nullptr)
        long_depth_serial(dy_t, x, weight_sum.data(), in, out, in, r0, r1, 1.0f, block == first ? 0.0f : 1.0f);
      if (grad_bias != nullptr)
        for (int64_t r = r0; r < r1; ++r) {
          const float* row = grad_out + r * out;
          for (int64_t o = 0; o < out; ++o) bias_sum[o] += double(row[o]);
        }
    }
    if (first == last && grad_weight != nullptr) std::fill(weight_sum.begin(), weight_sum.end(), 0.0f);
#pragma omp barrier
    if (grad_weight != nullptr) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < out * in; ++i) {
        float total = weight_parts[0][i];
        for (int p = 1; p < parts; ++p) total += weight_parts[size_t(p)][i];
        grad_weight[i] = total;
      }
    }
  }
  if (grad_bias != nullptr)
    for (int64_t o = 0; o < out; ++o) {
      double total = bias_parts[0][size_t(o)];
      for (int p = 1; p < parts; ++p) total += bias_parts[size_t(p)][size_t(o)];
      grad_bias[o] = float(total);
    }
}

}  // namespace luna::cpu
