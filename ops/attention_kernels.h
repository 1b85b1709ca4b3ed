// Internal CPU kernels of fused softmax attention (ops/attention.cpp): flash-attention style
// forward and backward on OpenBLAS GEMM tiles, parallel over (batch, head, query block) with
// OpenMP. No kernel ever holds more than one (query block × key tile) piece of the N×N weights.
#pragma once
#include <cstdint>

namespace luna::cpu::attention_kernels {

// Rows of a (B, H, N, C) tensor whose last dim is unit-stride: element (b, h, n, c) lives at
// data[b·stride_batch + h·stride_head + n·stride_row + c]. Per (b, h) this is a row-major N×C
// matrix with leading dimension stride_row, which BLAS takes as is, so head-interleaved
// (B, N, H, C) buffers are used without a copy.
template <class T>
struct HeadRows {
  T* data = nullptr;
  int64_t stride_batch = 0, stride_head = 0, stride_row = 0;
  T* head(int64_t b, int64_t h) const { return data + b * stride_batch + h * stride_head; }
};

struct SdpaShape {
  int64_t batch = 0, heads = 0, queries = 0, keys = 0, head_dim = 0, value_dim = 0;
};

struct SdpaConfig {
  double scale = 1.0;                        // scores = scale · q·k
  bool causal = false;                       // query i sees keys j <= i
  const uint8_t* key_padding_mask = nullptr;  // (B, Nk) contiguous, nonzero = padded, or null
  // Dropout on the normalised weights: weight (b, h, i, j) is kept when the uniform float from
  // word e % 4 of Philox block offset + e / 4 is >= p, e = ((b·H + h)·Nq + i)·Nk + j — the layout
  // of luna::dropout on the contiguous (B, H, Nq, Nk) weights, so both draw the same mask.
  double dropout_p = 0.0;  // 0: no dropout
  uint64_t seed = 0, offset = 0;
};

// out (B, H, Nq, dv) = softmax(scale·q kᵀ, masked) v; logsumexp (B, H, Nq) contiguous receives the
// log of each row's normaliser (+inf for a row whose keys are all masked; its output is zero).
template <class T>
void sdpa_forward(const HeadRows<const T>& q, const HeadRows<const T>& k, const HeadRows<const T>& v,
                  const SdpaShape& shape, const SdpaConfig& config, const HeadRows<T>& out, T* logsumexp);

// Gradients from the forward's inputs, output and logsumexp: the probabilities are recomputed
// tile by tile. grad_q/grad_k/grad_v are overwritten.
template <class T>
void sdpa_backward(const HeadRows<const T>& grad_out, const HeadRows<const T>& q, const HeadRows<const T>& k,
                   const HeadRows<const T>& v, const HeadRows<const T>& out, const T* logsumexp,
                   const SdpaShape& shape, const SdpaConfig& config, const HeadRows<T>& grad_q,
                   const HeadRows<T>& grad_k, const HeadRows<T>& grad_v);

// Tile sizes: a query block of kQueryBlock rows against key tiles of kKeyTile columns, so the
// per-thread score tiles (a few of kQueryBlock × kKeyTile) stay in the L2 cache.
inline constexpr int64_t kQueryBlock = 64;
inline constexpr int64_t kKeyTile = 256;

}  // namespace luna::cpu::attention_kernels
