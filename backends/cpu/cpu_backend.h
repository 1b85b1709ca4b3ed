// The CPU backend: OpenBLAS for GEMM, OpenMP loops for everything else. Its kernels are split by
// concern across backends/cpu/*.cpp; this class only declares them.
#pragma once
#include <luna/backends/backend.h>

namespace luna::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }

  // memory.cpp
  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, Scalar value) override;
  void arange(const Tensor& out, double start, double step) override;
  void random(const Tensor& out, RandomKind kind, double a, double b, GeneratorState state) override;

  // unary.cpp (unary, unary_backward, where) and binary.cpp (binary)
  void unary(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& params) override;
  void unary_backward(UnaryOp op, const Tensor& in, const Tensor& result, const Tensor& grad_out,
                      const Tensor& grad_in, const UnaryParams& params) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;

  // reduce.cpp
  void reduce(ReduceOp op, const Tensor& in, const Tensor& out, uint32_t reduce_mask) override;
  void arg_reduce(ReduceOp op, const Tensor& in, int dim, const Tensor& values, const Tensor& indices) override;

  // gemm.cpp
  void gemm(const GemmArgs& args) override;
  bool gemm_bias() const override { return true; }
  bool has_linear_backward(DType dtype) const override;
  void linear_backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight, const Tensor& grad_input,
                       const Tensor& grad_weight, const Tensor& grad_bias) override;

  // index.cpp: index_select, index_add, gather, scatter_add (added with their kernels)
  void index_select(const Tensor& in, int dim, const Tensor& index, const Tensor& out) override;
  void index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) override;
  void gather(const Tensor& in, int dim, const Tensor& index, const Tensor& out) override;
  void scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) override;

  // nn_kernels.cpp: softmax, layer_norm, cross_entropy, dropout (added with their kernels)
  void softmax_forward(const Tensor& in, const Tensor& out, int dim, bool log) override;
  void softmax_backward(const Tensor& out, const Tensor& grad_out, const Tensor& grad_in, int dim, bool log) override;
  void layer_norm_forward(const Tensor& in, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                          const Tensor& mean, const Tensor& rstd) override;
  void layer_norm_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mean, const Tensor& rstd,
                           const Tensor& weight, const Tensor& grad_in, const Tensor& grad_weight,
                           const Tensor& grad_bias) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing,
                             const Tensor& losses, const Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grad_losses,
                              int64_t ignore_index, double label_smoothing, const Tensor& grad_logits) override;
  void dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                       GeneratorState state) override;
  void dropout_backward(const Tensor& grad_out, const Tensor& mask, double scale, const Tensor& grad_in) override;
  bool has_dropout_add(DType dtype) const override { return dtype == kFloat32 || dtype == kFloat64; }
  void dropout_add_forward(const Tensor& in, const Tensor& residual, const Tensor& out, const Tensor& mask, double p,
                           GeneratorState state) override;
  bool has_gelu_dropout(DType dtype) const override { return dtype == kFloat32 || dtype == kFloat64; }
  void gelu_dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                            GeneratorState state) override;
  void gelu_dropout_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mask, double scale,
                             const Tensor& grad_in) override;
  bool has_adam_update(DType dtype) const override { return dtype == kFloat32 || dtype == kFloat64; }
  void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                   const Tensor& max_exp_avg_sq, const AdamUpdateScalars& scalars) override;
};

}  // namespace luna::cpu
