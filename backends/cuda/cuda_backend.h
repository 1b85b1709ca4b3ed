// The CUDA backend: cuBLAS for GEMM, grid-stride kernels for everything else, all queued on the
// device context's stream. Kernels are split by concern across backends/cuda/*.cu; this class
// only declares them. An entry point not listed here keeps Backend's "no kernel on device" error.
#pragma once
#include <luna/backends/backend.h>

namespace luna::cuda {

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda(0); }
  void synchronize() override;

  // cuda_backend.cpp
  void copy_from_cpu(const Tensor& src_cpu, const Tensor& dst) override;
  void copy_to_cpu(const Tensor& src, const Tensor& dst_cpu) override;
  void gemm(const GemmArgs& args) override;

  // memory.cu
  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, Scalar value) override;
  void arange(const Tensor& out, double start, double step) override;
  void random(const Tensor& out, RandomKind kind, double a, double b, GeneratorState state) override;

  // elementwise.cu
  void unary(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& params) override;
  void unary_backward(UnaryOp op, const Tensor& in, const Tensor& result, const Tensor& grad_out,
                      const Tensor& grad_in, const UnaryParams& params) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;

  // reduce.cu
  void reduce(ReduceOp op, const Tensor& in, const Tensor& out, uint32_t reduce_mask) override;
  void arg_reduce(ReduceOp op, const Tensor& in, int dim, const Tensor& values, const Tensor& indices) override;

  // index.cu
  void index_select(const Tensor& in, int dim, const Tensor& index, const Tensor& out) override;
  void index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) override;
  void gather(const Tensor& in, int dim, const Tensor& index, const Tensor& out) override;
  void scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) override;

  // nn_kernels.cu
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
};

}  // namespace luna::cuda
