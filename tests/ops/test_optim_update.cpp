// Tests of adam_update_ (ops/optim_update.h), torch.optim.Adam's update in one pass on the CPU:
// against the same update as separate tensor ops written out here, bit for bit in float32 and
// float64 over several steps, with and without AMSGrad, on awkward gradients (zeros of both signs,
// infinities, NaN, huge and tiny values) and on a size split between threads; the strided case the
// op composes itself; the version counters it bumps; and the shapes it refuses.
#include "test_util.h"

#include <cmath>
#include <cstring>

#include <luna/autograd/grad_mode.h>
#include <luna/ops/optim_update.h>

using namespace luna;
using luna::testing::awkward_input;

namespace {

struct AdamTensors {
  Tensor param, exp_avg, exp_avg_sq, max_exp_avg_sq;  // max_exp_avg_sq undefined without AMSGrad
};

AdamTensors fresh(const Dims& shape, DType dtype, bool amsgrad) {
  Generator gen(7);
  AdamTensors t;
  t.param = randn(shape, TensorOptions(kFloat64), &gen).to(dtype).contiguous();
  t.exp_avg = zeros(shape, TensorOptions(dtype));
  t.exp_avg_sq = zeros(shape, TensorOptions(dtype));
  if (amsgrad) t.max_exp_avg_sq = zeros(shape, TensorOptions(dtype));
  return t;
}

AdamUpdateScalars scalars_at(int step) {
  AdamUpdateScalars s;
  s.beta1 = 0.9;
  s.beta2 = 0.999;
  s.eps = 1e-6;
  s.step_size = 1e-3 / (1 - std::pow(s.beta1, step));
  s.bias_correction2_sqrt = std::sqrt(1 - std::pow(s.beta2, step));
  return s;
}

// torch.optim.Adam's update written as tensor ops, one rounding each.
void composed_update(const AdamTensors& t, const Tensor& grad, const AdamUpdateScalars& s) {
  NoGradGuard no_grad;
  t.exp_avg.mul_(s.beta1);
  t.exp_avg.add_(grad * (1 - s.beta1));
  t.exp_avg_sq.mul_(s.beta2);
  t.exp_avg_sq.add_(grad * grad * (1 - s.beta2));
  Tensor second_moment = t.exp_avg_sq;
  if (t.max_exp_avg_sq.defined()) {
    t.max_exp_avg_sq.copy_(maximum(t.max_exp_avg_sq, t.exp_avg_sq));
    second_moment = t.max_exp_avg_sq;
  }
  const Tensor denom = second_moment.sqrt() / s.bias_correction2_sqrt + s.eps;
  t.param.add_(t.exp_avg / denom * (-s.step_size));
}

// Equal bits, except that any NaN equals any NaN (which NaN an operation passes on may depend on
// the order of its operands).
void require_same(const Tensor& got, const Tensor& want, const char* what) {
  const Tensor a = got.to(kFloat64).contiguous(), b = want.to(kFloat64).contiguous();
  REQUIRE(a.numel() == b.numel());
  int64_t differing = 0, first = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data_ptr<double>()[i], y = b.data_ptr<double>()[i];
    if (std::isnan(x) && std::isnan(y)) continue;
    if (std::memcmp(&x, &y, sizeof x) != 0) {
      if (first < 0) first = i;
      ++differing;
    }
  }
  INFO(what << ": " << differing << " elements differ, the first at " << first);
  REQUIRE(differing == 0);
}

}  // namespace

TEST_CASE("adam_update_ equals the composed tensor ops bit for bit", "[optim][fused]") {
  for (DType dtype : {kFloat32, kFloat64})
    for (bool amsgrad : {false, true})
      for (int64_t n : {int64_t(1), int64_t(37), int64_t(300'001)}) {  // the last splits between threads
        INFO("dtype " << dtype_name(dtype) << " amsgrad " << amsgrad << " n " << n);
        const AdamTensors fused = fresh({n}, dtype, amsgrad), composed = fresh({n}, dtype, amsgrad);
        for (int step = 1; step <= 4; ++step) {
          // Awkward gradients on odd steps, plain ones on even steps (so later steps start from
          // finite moments too).
          const Tensor grad = step % 2 == 1 ? awkward_input({n}, dtype, uint64_t(100 + step))
                                            : randn({n}, TensorOptions(kFloat64)).to(dtype).contiguous();
          adam_update_(fused.param, grad, fused.exp_avg, fused.exp_avg_sq, fused.max_exp_avg_sq, scalars_at(step));
          composed_update(composed, grad, scalars_at(step));
          require_same(fused.param, composed.param, "param");
          require_same(fused.exp_avg, composed.exp_avg, "exp_avg");
          require_same(fused.exp_avg_sq, composed.exp_avg_sq, "exp_avg_sq");
          if (amsgrad) require_same(fused.max_exp_avg_sq, composed.max_exp_avg_sq, "max_exp_avg_sq");
        }
        // The update moved the parameter (so equal results are not two untouched tensors).
        REQUIRE(luna::testing::bits(fresh({n}, dtype, amsgrad).param) != luna::testing::bits(fused.param));
      }
}

TEST_CASE("adam_update_ on strided tensors composes the ops, with the fused path's bits", "[optim][fused]") {
  const AdamTensors contiguous = fresh({64, 48}, kFloat32, true);
  AdamTensors strided;  // the same values seen through transposes: no fused kernel applies
  strided.param = contiguous.param.t().contiguous().t();
  strided.exp_avg = contiguous.exp_avg.t().contiguous().t();
  strided.exp_avg_sq = contiguous.exp_avg_sq.t().contiguous().t();
  strided.max_exp_avg_sq = contiguous.max_exp_avg_sq.t().contiguous().t();
  REQUIRE_FALSE(strided.param.is_contiguous());
  for (int step = 1; step <= 3; ++step) {
    const Tensor grad = awkward_input({64, 48}, kFloat32, uint64_t(200 + step));
    adam_update_(contiguous.param, grad, contiguous.exp_avg, contiguous.exp_avg_sq, contiguous.max_exp_avg_sq,
                 scalars_at(step));
    adam_update_(strided.param, grad, strided.exp_avg, strided.exp_avg_sq, strided.max_exp_avg_sq, scalars_at(step));
  }
  require_same(strided.param, contiguous.param, "param");
  require_same(strided.exp_avg_sq, contiguous.exp_avg_sq, "exp_avg_sq");
  require_same(strided.max_exp_avg_sq, contiguous.max_exp_avg_sq, "max_exp_avg_sq");
}

TEST_CASE("adam_update_ bumps the versions of what it writes and refuses mismatched shapes", "[optim][fused]") {
  const AdamTensors t = fresh({10}, kFloat32, false);
  const Tensor grad = randn({10});
  const uint32_t param_version = t.param.version(), avg_version = t.exp_avg.version();
  const uint32_t grad_version = grad.version();
  adam_update_(t.param, grad, t.exp_avg, t.exp_avg_sq, Tensor(), scalars_at(1));
  CHECK(t.param.version() != param_version);
  CHECK(t.exp_avg.version() != avg_version);
  CHECK(grad.version() == grad_version);

  REQUIRE_THROWS_WITH(adam_update_(t.param, randn({11}), t.exp_avg, t.exp_avg_sq, Tensor(), scalars_at(2)),
                      Catch::Contains("grad of shape [11]") && Catch::Contains("[10]"));
  REQUIRE_THROWS_WITH(adam_update_(t.param, grad, zeros({3}), t.exp_avg_sq, Tensor(), scalars_at(2)),
                      Catch::Contains("exp_avg [3]"));
  REQUIRE_THROWS_WITH(adam_update_(t.param, grad, t.exp_avg, t.exp_avg_sq, zeros({2, 5}), scalars_at(2)),
                      Catch::Contains("max_exp_avg_sq [2,5]"));
}
