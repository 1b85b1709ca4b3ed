// Fused optimizer updates: one pass over a parameter and its state where the backend has the kernel
// (the CPU), the same tensor ops composed otherwise; both give the same bits.
#pragma once
#include <luna/backends/backend.h>  // AdamUpdateScalars
#include <luna/core/tensor.h>

namespace luna {

// torch.optim.Adam's update after any weight decay, in place, without autograd:
//   exp_avg    = exp_avg · beta1 + grad · (1 − beta1)
//   exp_avg_sq = exp_avg_sq · beta2 + (grad · grad) · (1 − beta2)
//   with AMSGrad (max_exp_avg_sq defined): max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq)
//   param      = param + (exp_avg / (sqrt(v) / bias_correction2_sqrt + eps)) · (−step_size)
// where v is max_exp_avg_sq with AMSGrad, else exp_avg_sq; each product and sum rounded to the
// tensors' dtype in this order, as the separate tensor ops round them (each scalar rounded to that
// dtype first). grad and the state have param's shape; the state tensors do not share memory.
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamUpdateScalars& scalars);

}  // namespace luna
