// Joining, splitting and index-driven ops with PyTorch semantics: cat/stack, split/chunk (views),
// gather/scatter_add, index_select/index_add, one_hot, constant pad and embedding. Each op
// validates shapes and dtypes here, runs one backend kernel, and records its backward beside it.
#include <luna/ops/indexing.h>

#include <algorithm>
#include <cctype>

#include <luna/autograd/engine.h>
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/factories.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

void check_same_device(const Tensor& a, const Tensor& b, const char* op, const char* a_name, const char* b_name) {
  LUNA_CHECK(a.device() == b.device(), op, ": ", a_name, " is on ", a.device(), " but ", b_name, " is on ",
             b.device(), "; move both to the same device");
}

// The index as int64. Ops that accept int32 like PyTorch (index_select, embedding) convert it.
Tensor int64_index(const Tensor& index, const char* op, bool allow_int32) {
  LUNA_CHECK(index.defined(), op, ": index is undefined");
  if (allow_int32 && index.dtype() == kInt32) return index.detach().to(kInt64);
  LUNA_CHECK(index.dtype() == kInt64, op, ": index must be int64", allow_int32 ? " or int32" : "", ", got ",
             index.dtype());
  return index.detach();
}

// A copy of `self` that a kernel may add into (index_add / scatter_add are out of place).
Tensor contiguous_copy(const Tensor& self) {
  Tensor out = empty_tensor(self.sizes(), self.dtype(), self.device());
  backend_for(out).copy(self, out);
  return out;
}

// A legacy 1-D empty tensor, which cat skips whatever the other shapes (as PyTorch does).
bool is_skippable_in_cat(const Tensor& t) { return t.dim() == 1 && t.numel() == 0; }

}  // namespace

// ---- cat / stack ----

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  LUNA_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  int reference = -1;  // the first tensor that sets the shape
  DType dtype = kFloat32;  // the promotion of every input's dtype (set from tensor 0 first)
  for (size_t i = 0; i < tensors.size(); ++i) {
    LUNA_CHECK(tensors[i].defined(), "cat: tensor ", i, " is undefined");
    LUNA_CHECK(tensors[i].dim() > 0, "cat: zero-dimensional tensor (at position ", i,
               ") cannot be concatenated; unsqueeze it or use stack");
    check_same_device(tensors[i], tensors[0], "cat", "a tensor", "tensor 0");
    dtype = i == 0 ? tensors[i].dtype() : promote_types(dtype, tensors[i].dtype());
    if (reference < 0 && !is_skippable_in_cat(tensors[i])) reference = int(i);
  }
  if (reference < 0) return empty_tensor({0}, dtype, tensors[0].device());  // only empty 1-D inputs

  const Tensor& first = tensors[reference];
  const int d = wrap_dim(dim, first.dim(), "cat");
  Dims out_sizes = first.sizes();
  out_sizes[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (is_skippable_in_cat(t)) continue;
    LUNA_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has ", t.dim(), " dims (shape ", t.sizes(),
               ") but tensor ", reference, " has ", first.dim(), " (shape ", first.sizes(),
               "); all tensors must have the same number of dims");
    for (int k = 0; k < t.dim(); ++k) {
      LUNA_CHECK(k == d || t.sizes()[k] == first.sizes()[k], "cat: sizes of tensors must match except in dim ", d,
                 ": tensor ", i, " has size ", t.sizes()[k], " at dim ", k, " but tensor ", reference, " has size ",
                 first.sizes()[k], " (shapes ", t.sizes(), " and ", first.sizes(), ")");
    }
    out_sizes[d] += t.sizes()[d];
  }

  Tensor out = empty_tensor(out_sizes, dtype, first.device());
  std::vector<int64_t> offsets(tensors.size(), 0), lengths(tensors.size(), -1);  // -1: skipped
  std::vector<DType> dtypes(tensors.size());
  {
    NoGradGuard no_grad;
    int64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      dtypes[i] = tensors[i].dtype();
      if (is_skippable_in_cat(tensors[i])) continue;
      const int64_t length = tensors[i].sizes()[d];
      offsets[i] = offset;
      lengths[i] = length;
      if (length > 0) out.narrow(d, offset, length).copy_(tensors[i]);
      offset += length;
    }
  }
  // A skipped (empty 1-D) input gets no gradient.
  return ops::record("cat", out, tensors, {}, [d, offsets, lengths, dtypes](const Tensor& g, const Saved&) {
    Grads grads(offsets.size());
    for (size_t i = 0; i < offsets.size(); ++i) {
      if (lengths[i] < 0) continue;
      Tensor piece = g.narrow(d, offsets[i], lengths[i]);
      grads[i] = piece.dtype() == dtypes[i] ? piece : piece.to(dtypes[i]);
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  LUNA_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    LUNA_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    LUNA_CHECK(tensors[i].sizes() == tensors[0].sizes(), "stack: expects each tensor to be equal size, but got ",
               tensors[0].sizes(), " at entry 0 and ", tensors[i].sizes(), " at entry ", i);
  }
  const int d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> unsqueezed;
  unsqueezed.reserve(tensors.size());
  for (const Tensor& t : tensors) unsqueezed.push_back(t.unsqueeze(d));
  return cat(unsqueezed, d);
}

// ---- split / chunk (views; each piece's narrow() carries its own backward) ----

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  LUNA_CHECK(x.dim() > 0, "split: cannot split a 0-dim tensor");
  const int d = wrap_dim(dim, x.dim(), "split");
  const int64_t n = x.sizes()[d];
  LUNA_CHECK(split_size > 0 || (split_size == 0 && n == 0), "split: split_size must be positive, got ", split_size,
             " for dim ", d, " of size ", n);
  const int64_t pieces = n == 0 ? 1 : (n + split_size - 1) / split_size;
  std::vector<Tensor> out;
  out.reserve(pieces);
  for (int64_t i = 0; i < pieces; ++i) {
    const int64_t start = i * split_size;
    out.push_back(x.narrow(d, start, std::min(split_size, n - start)));
  }
  return out;
}

std::vector<Tensor> split_with_sizes(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  LUNA_CHECK(x.dim() > 0, "split_with_sizes: cannot split a 0-dim tensor");
  const int d = wrap_dim(dim, x.dim(), "split_with_sizes");
  const int64_t n = x.sizes()[d];
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    LUNA_CHECK(sizes[i] >= 0, "split_with_sizes: split size ", sizes[i], " at position ", i, " is negative");
    total += sizes[i];
  }
  LUNA_CHECK(total == n, "split_with_sizes: split sizes sum to ", total, " but dim ", d, " has size ", n,
             " (shape ", x.sizes(), ")");
  std::vector<Tensor> out;
  out.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t size : sizes) {
    out.push_back(x.narrow(d, start, size));
    start += size;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  LUNA_CHECK(x.dim() > 0, "chunk: cannot chunk a 0-dim tensor");
  LUNA_CHECK(chunks > 0, "chunk: number of chunks must be positive, got ", chunks);
  const int d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t n = x.sizes()[d];
  // PyTorch returns `chunks` empty pieces for an empty dim, fewer pieces when n is not divisible.
  if (n == 0) return split_with_sizes(x, std::vector<int64_t>(chunks, 0), d);
  return split(x, (n + chunks - 1) / chunks, d);
}

// ---- gather / scatter_add ----

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index_in) {
  LUNA_CHECK(x.defined(), "gather: input is undefined");
  const Tensor index = int64_index(index_in, "gather", false);
  check_same_device(x, index, "gather", "input", "index");
  LUNA_CHECK(index.dim() == x.dim(), "gather: index has ", index.dim(), " dims (shape ", index.sizes(),
             ") but input has ", x.dim(), " (shape ", x.sizes(), "); they must have the same number of dims");
  const int d = wrap_dim(dim, x.dim(), "gather");
  for (int k = 0; k < x.dim(); ++k) {
    LUNA_CHECK(k == d || index.sizes()[k] <= x.sizes()[k], "gather: index size ", index.sizes()[k], " at dim ", k,
               " exceeds the input size ", x.sizes()[k], " (index ", index.sizes(), ", input ", x.sizes(),
               "); only dim ", d, " may be larger");
  }
  Tensor out = empty_tensor(index.sizes(), x.dtype(), x.device());
  backend_for(x).gather(x.detach(), d, index, out);
  const Dims x_sizes = x.sizes();
  return record("gather", out, {x}, {index}, [x_sizes, d](const Tensor& g, const Saved& s) {
    return Grads{scatter_add(zeros(x_sizes, TensorOptions(g.dtype()).device(g.device())), d, s[0], g)};
  });
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index_in, const Tensor& src) {
  LUNA_CHECK(self.defined() && src.defined(), "scatter_add: self or src is undefined");
  const Tensor index = int64_index(index_in, "scatter_add", false);
  check_same_device(self, index, "scatter_add", "self", "index");
  check_same_device(self, src, "scatter_add", "self", "src");
  LUNA_CHECK(self.dtype() == src.dtype(), "scatter_add: self has dtype ", self.dtype(), " but src has ",
             src.dtype(), "; they must match");
  LUNA_CHECK(index.dim() == self.dim() && src.dim() == self.dim(), "scatter_add: self, index and src must have ",
             "the same number of dims, got shapes ", self.sizes(), ", ", index.sizes(), " and ", src.sizes());
  const int d = wrap_dim(dim, self.dim(), "scatter_add");
  for (int k = 0; k < self.dim(); ++k) {
    LUNA_CHECK(index.sizes()[k] <= src.sizes()[k], "scatter_add: index size ", index.sizes()[k], " at dim ", k,
               " exceeds the src size ", src.sizes()[k], " (index ", index.sizes(), ", src ", src.sizes(), ")");
    LUNA_CHECK(k == d || index.sizes()[k] <= self.sizes()[k], "scatter_add: index size ", index.sizes()[k],
               " at dim ", k, " exceeds the self size ", self.sizes()[k], " (index ", index.sizes(), ", self ",
               self.sizes(), "); only dim ", d, " may be larger");
  }
  Tensor out = contiguous_copy(self);
  backend_for(out).scatter_add(out, d, index, src.detach());
  const Dims src_sizes = src.sizes(), index_sizes = index.sizes();
  const bool need_src = ops::needs_grad({src});
  return record("scatter_add", out, {self, src}, {index},
                [d, need_src, src_sizes, index_sizes](const Tensor& g, const Saved& s) {
                  if (!need_src) return Grads{g, Tensor()};
                  // src elements beyond the index's extent were never added: zero gradient there.
                  std::vector<int64_t> fill;
                  for (int k = int(src_sizes.size()) - 1; k >= 0; --k) {
                    fill.push_back(0);
                    fill.push_back(src_sizes[k] - index_sizes[k]);
                  }
                  return Grads{g, pad(gather(g, d, s[0]), fill)};
                });
}

// ---- index_select / index_add ----

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index_in) {
  LUNA_CHECK(x.defined(), "index_select: input is undefined");
  const Tensor index = int64_index(index_in, "index_select", true);
  check_same_device(x, index, "index_select", "input", "index");
  LUNA_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got shape ", index.sizes());
  const int d = wrap_dim(dim, x.dim(), "index_select");
  Dims out_sizes = x.sizes();
  if (x.dim() > 0) out_sizes[d] = index.numel();
  else LUNA_CHECK(index.numel() == 1, "index_select: a 0-dim input takes exactly one index, got ", index.numel());
  Tensor out = empty_tensor(out_sizes, x.dtype(), x.device());
  backend_for(x).index_select(x.detach(), d, index, out);
  const Dims x_sizes = x.sizes();
  return record("index_select", out, {x}, {index}, [x_sizes, d](const Tensor& g, const Saved& s) {
    return Grads{index_add(zeros(x_sizes, TensorOptions(g.dtype()).device(g.device())), d, s[0], g)};
  });
}

Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index_in, const Tensor& src) {
  LUNA_CHECK(self.defined() && src.defined(), "index_add: self or src is undefined");
  const Tensor index = int64_index(index_in, "index_add", true);
  check_same_device(self, index, "index_add", "self", "index");
  check_same_device(self, src, "index_add", "self", "src");
  LUNA_CHECK(self.dtype() == src.dtype(), "index_add: self has dtype ", self.dtype(), " but src has ", src.dtype(),
             "; they must match");
  LUNA_CHECK(index.dim() <= 1, "index_add: index must be 1-D, got shape ", index.sizes());
  LUNA_CHECK(src.dim() == self.dim(), "index_add: src has ", src.dim(), " dims (shape ", src.sizes(),
             ") but self has ", self.dim(), " (shape ", self.sizes(), ")");
  const int d = wrap_dim(dim, self.dim(), "index_add");
  const int64_t src_count = src.dim() ? src.sizes()[d] : 1;
  LUNA_CHECK(src_count == index.numel(), "index_add: src has size ", src_count, " at dim ", d, " but index has ",
             index.numel(), " entries; they must match");
  for (int k = 0; k < self.dim(); ++k) {
    LUNA_CHECK(k == d || src.sizes()[k] == self.sizes()[k], "index_add: src size ", src.sizes()[k], " at dim ", k,
               " does not match the self size ", self.sizes()[k], " (src ", src.sizes(), ", self ", self.sizes(),
               ")");
  }
  Tensor out = contiguous_copy(self);
  backend_for(out).index_add(out, d, index, src.detach());
  const bool need_src = ops::needs_grad({src});
  return record("index_add", out, {self, src}, {index}, [d, need_src](const Tensor& g, const Saved& s) {
    return Grads{g, need_src ? index_select(g, d, s[0]) : Tensor()};
  });
}

// ---- one_hot ----

Tensor one_hot(const Tensor& index, int64_t num_classes) {
  LUNA_CHECK(index.defined(), "one_hot: input is undefined");
  LUNA_CHECK(index.dtype() == kInt64, "one_hot: class values must be int64, got ", index.dtype());
  LUNA_CHECK(num_classes >= -1, "one_hot: num_classes must be -1 (infer) or non-negative, got ", num_classes);
  if (index.numel() == 0) {
    LUNA_CHECK(num_classes >= 0, "one_hot: cannot infer num_classes from an empty tensor of shape ",
               index.sizes(), "; pass num_classes");
  } else {
    NoGradGuard no_grad;
    const int64_t smallest = index.min().item<int64_t>();
    const int64_t largest = index.max().item<int64_t>();
    LUNA_CHECK(smallest >= 0, "one_hot: class values must be non-negative, got ", smallest);
    if (num_classes == -1) num_classes = largest + 1;
    LUNA_CHECK(largest < num_classes, "one_hot: class value ", largest, " is out of range for num_classes ",
               num_classes, " (expected values in [0, ", num_classes - 1, "])");
  }
  Dims out_sizes = index.sizes();
  out_sizes.push_back(num_classes);
  Tensor out = zeros(out_sizes, TensorOptions(kInt64).device(index.device()));
  if (index.numel() == 0) return out;
  // One 1 per index entry, scattered along the new last dim from a stride-0 tensor of ones.
  const Tensor positions = index.detach().unsqueeze(-1);  // (..., 1)
  const Tensor ones_src = full({}, 1, TensorOptions(kInt64).device(index.device())).expand(positions.sizes());
  backend_for(out).scatter_add(out, out.dim() - 1, positions, ones_src);
  return out;
}

// ---- pad ----

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode, double value) {
  LUNA_CHECK(x.defined(), "pad: input is undefined");
  LUNA_CHECK(mode == "constant", "pad: mode '", mode, "' is not supported; only \"constant\" is");
  LUNA_CHECK(pads.size() % 2 == 0, "pad: padding length ", pads.size(), " must be even ((left, right) pairs)");
  const int padded_dims = int(pads.size() / 2);
  LUNA_CHECK(padded_dims <= x.dim(), "pad: ", pads.size(), " padding values pad ", padded_dims,
             " dims but the input has only ", x.dim(), " (shape ", x.sizes(), ")");
  Dims out_sizes = x.sizes();
  for (int i = 0; i < padded_dims; ++i) {
    const int d = x.dim() - 1 - i;
    const int64_t left = pads[2 * i], right = pads[2 * i + 1];
    out_sizes[d] = x.sizes()[d] + left + right;
    LUNA_CHECK(out_sizes[d] >= 0, "pad: dim ", d, " of size ", x.sizes()[d], " padded by (", left, ", ", right,
               ") would have negative size ", out_sizes[d]);
  }
  Tensor out = empty_tensor(out_sizes, x.dtype(), x.device());
  {
    NoGradGuard no_grad;
    out.fill_(value);
    // Negative pads crop: the kept part of x lands at max(left, 0) in out.
    Tensor source = x.detach(), target = out;
    bool anything_kept = true;
    for (int i = 0; i < padded_dims; ++i) {
      const int d = x.dim() - 1 - i;
      const int64_t left = pads[2 * i], right = pads[2 * i + 1];
      const int64_t kept = x.sizes()[d] - std::max<int64_t>(-left, 0) - std::max<int64_t>(-right, 0);
      if (kept <= 0) {
        anything_kept = false;
        break;
      }
      source = source.narrow(d, std::max<int64_t>(-left, 0), kept);
      target = target.narrow(d, std::max<int64_t>(left, 0), kept);
    }
    if (anything_kept && source.numel() > 0) target.copy_(source);
  }
  std::vector<int64_t> inverse(pads.size());
  for (size_t i = 0; i < pads.size(); ++i) inverse[i] = -pads[i];
  // The gradient is the output gradient cropped back: padding by the negated amounts does that.
  return record("pad", out, {x}, {}, [inverse](const Tensor& g, const Saved&) { return Grads{pad(g, inverse)}; });
}

// ---- embedding ----

Tensor embedding(const Tensor& indices_in, const Tensor& weight, int64_t padding_idx) {
  LUNA_CHECK(weight.defined(), "embedding: weight is undefined");
  LUNA_CHECK(weight.dim() == 2, "embedding: weight must be 2-D [num_embeddings, D], got shape ", weight.sizes());
  const Tensor indices = int64_index(indices_in, "embedding", true);
  check_same_device(weight, indices, "embedding", "weight", "indices");
  const int64_t num_embeddings = weight.sizes()[0], D = weight.sizes()[1];
  LUNA_CHECK(padding_idx < num_embeddings, "embedding: padding_idx ", padding_idx, " is out of range for ",
             num_embeddings, " embeddings (negative means no padding row)");
  const Tensor flat = indices.reshape({-1});  // (N)
  Dims out_sizes = indices.sizes();
  out_sizes.push_back(D);
  // Allocated in its final shape and filled through a (N, D) alias, so the result is not a view
  // (in-place ops on it stay allowed).
  Tensor out = empty_tensor(out_sizes, weight.dtype(), weight.device());  // (..., D)
  try {
    backend_for(weight).index_select(weight.detach(), 0, flat, out.view({flat.numel(), D}));
  } catch (const Error& e) {
    LUNA_FAIL("embedding: ", e.what(), " (the weight has ", num_embeddings, " rows)");
  }
  const DType dtype = weight.dtype();
  return record("embedding", out, {weight}, {flat},
                [num_embeddings, D, dtype, padding_idx](const Tensor& g, const Saved& s) {
                  Tensor grad = index_add(zeros({num_embeddings, D}, TensorOptions(dtype).device(g.device())), 0,
                                          s[0], g.reshape({-1, D}));
                  // Backward runs with grad mode off, so zeroing the fresh buffer in place is safe.
                  if (padding_idx >= 0) grad.select(0, padding_idx).zero_();
                  return Grads{grad};
                });
}

}  // namespace luna
