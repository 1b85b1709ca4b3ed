// Matrix products on BLAS. Transposed views go to GEMM as transpose flags, never as copies.
#pragma once
#include <luna/core/tensor.h>

namespace luna {

// torch.matmul: 1-D, 2-D and batched with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
// [M,K] x [K,N]
Tensor mm(const Tensor& a, const Tensor& b);
// [B,M,K] x [B,K,N]
Tensor bmm(const Tensor& a, const Tensor& b);
// y = x Wᵀ + b with x [..., in], weight [out, in], bias [out] (optional); the bias is fused into
// the GEMM (beta = 1 over a bias-filled output).
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace luna
