// GEMM: luna's thin-shape kernel where it applies (sgemm_thin.h: float32 products with one large and
// otherwise small dimensions), OpenBLAS for everything else. Row-major with
// transpose flags, so transposed views never get copied.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/sgemm_thin.h>

#include <cblas.h>

#include <algorithm>
#include <limits>

namespace luna::cpu {

void CpuBackend::gemm(const GemmArgs& g) {
  const CBLAS_TRANSPOSE ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = g.trans_b ? CblasTrans : CblasNoTrans;
  if (g.m == 0 || g.n == 0) return;
  // blasint may be 32-bit (it is in Debian's OpenBLAS); a larger size would wrap around silently.
  const int64_t largest = std::max({g.m, g.n, g.k, g.lda, g.ldb, g.ldc});
  LUNA_CHECK(largest <= int64_t(std::numeric_limits<blasint>::max()), "matmul: a matrix dimension or leading ",
             "dimension of ", largest, " exceeds what this BLAS indexes (", std::numeric_limits<blasint>::max(),
             "); split the product into smaller blocks");
  if (sgemm_thin_applies(g)) return sgemm_thin(g);
  double beta = g.beta;
  if (g.bias != nullptr) {  // OpenBLAS has no bias: broadcast it into C and accumulate onto it
    LUNA_CHECK(g.dtype == kFloat32 || g.dtype == kFloat64, "matmul: dtype ", g.dtype,
               " is not supported on the CPU (expected float32 or float64)");
    for (int64_t i = 0; i < g.batch; ++i)
      for (int64_t r = 0; r < g.m; ++r) {
        if (g.dtype == kFloat32) {
          float* row = static_cast<float*>(g.c) + i * g.stride_c + r * g.ldc;
          const float* bias = static_cast<const float*>(g.bias);
          for (int64_t j = 0; j < g.n; ++j) row[j] = (beta == 0.0 ? 0.0f : float(beta) * row[j]) + bias[j];
        } else {
          double* row = static_cast<double*>(g.c) + i * g.stride_c + r * g.ldc;
          const double* bias = static_cast<const double*>(g.bias);
          for (int64_t j = 0; j < g.n; ++j) row[j] = (beta == 0.0 ? 0.0 : beta * row[j]) + bias[j];
        }
      }
    beta = 1.0;
  }
  for (int64_t i = 0; i < g.batch; ++i) {
    if (g.dtype == kFloat32) {
      const float* a = static_cast<const float*>(g.a) + i * g.stride_a;
      const float* b = static_cast<const float*>(g.b) + i * g.stride_b;
      float* c = static_cast<float*>(g.c) + i * g.stride_c;
      cblas_sgemm(CblasRowMajor, ta, tb, blasint(g.m), blasint(g.n), blasint(g.k), float(g.alpha), a,
                  blasint(g.lda), b, blasint(g.ldb), float(beta), c, blasint(g.ldc));
    } else if (g.dtype == kFloat64) {
      const double* a = static_cast<const double*>(g.a) + i * g.stride_a;
      const double* b = static_cast<const double*>(g.b) + i * g.stride_b;
      double* c = static_cast<double*>(g.c) + i * g.stride_c;
      cblas_dgemm(CblasRowMajor, ta, tb, blasint(g.m), blasint(g.n), blasint(g.k), g.alpha, a, blasint(g.lda),
                  b, blasint(g.ldb), beta, c, blasint(g.ldc));
    } else {
      LUNA_FAIL("matmul: dtype ", g.dtype, " is not supported on the CPU (expected float32 or float64)");
    }
  }
}

bool CpuBackend::has_linear_backward(DType dtype) const { return dtype == kFloat32 && sgemm_thin_allowed(); }

void CpuBackend::linear_backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight,
                                 const Tensor& grad_input, const Tensor& grad_weight, const Tensor& grad_bias) {
  // input is given when grad_weight is wanted, weight when grad_input is.
  const int64_t rows = grad_out.size(0), out = grad_out.size(1);
  const int64_t in = input.defined() ? input.size(1) : weight.defined() ? weight.size(1) : 0;
  auto data = [](const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; };
  if (sgemm_linear_backward_applies(rows, in, out))
    return sgemm_linear_backward(grad_out.data_ptr<float>(), data(input), data(weight), rows, in, out,
                                 data(grad_input), data(grad_weight), data(grad_bias));
  // Other shapes: the two products and the sum one after the other.
  GemmArgs g;
  g.dtype = kFloat32;
  if (grad_input.defined()) {
    g.m = rows, g.n = in, g.k = out;
    g.a = grad_out.data_ptr(), g.lda = out, g.b = weight.data_ptr(), g.ldb = in;
    g.c = grad_input.data_ptr(), g.ldc = in;
    if (out == 0) fill(grad_input, 0);
    else gemm(g);
  }
  if (grad_weight.defined()) {
    g.trans_a = true, g.m = out, g.n = in, g.k = rows;
    g.a = grad_out.data_ptr(), g.lda = out, g.b = input.data_ptr(), g.ldb = in;
    g.c = grad_weight.data_ptr(), g.ldc = in;
    if (rows == 0) fill(grad_weight, 0);
    else gemm(g);
  }
  if (grad_bias.defined()) reduce(ReduceOp::Sum, grad_out, grad_bias.view({1, out}), 1u);
}

}  // namespace luna::cpu
