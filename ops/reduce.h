// Reductions over any set of dims, with keepdim, named as in PyTorch.
#pragma once
#include <tuple>

#include <luna/core/tensor.h>

namespace luna {

// Integer and bool inputs sum to int64, like PyTorch.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim = false);
// correction = 1 is the unbiased estimator (PyTorch's default).
Tensor var(const Tensor& x, const Dims& dims, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const Dims& dims, int64_t correction = 1, bool keepdim = false);
// Over all elements; gradient shared evenly among ties.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// (values, indices) along dim; gradient goes to the returned index.
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
// Max over several dims (no indices); ties share the gradient evenly.
Tensor amax(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor amin(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
// The index into the flattened tensor (a 0-dim int64), as torch.argmax(x) without dim.
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x);
Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim = false);
// p-norm over all elements or over dims (p = inf gives the max magnitude).
Tensor norm(const Tensor& x, double p = 2.0);
Tensor norm(const Tensor& x, double p, const Dims& dims, bool keepdim = false);

}  // namespace luna
