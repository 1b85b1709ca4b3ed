// Joining, splitting and index-driven ops (torch.cat, torch.gather, F.one_hot, F.pad, ...).
#pragma once
#include <string>
#include <vector>

#include <luna/core/tensor.h>

namespace luna {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Pieces of split_size along dim (the last may be smaller); views of the input.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
// Pieces with the given sizes (must sum to the dim's size).
std::vector<Tensor> split_with_sizes(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
// index: int64, same rank as x; out[i][j] = x[i][index[i][j]] along dim.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// index: 1-D int64.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// Out of place: a copy of self with src[..., i, ...] added at self[..., index[i], ...] along dim
// (torch.index_add); index: 1-D int64 with one entry per src slice.
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
// Out of place: a copy of self with src added at index along dim (torch.scatter_add).
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
// int64 [..] -> int64 [.., num_classes]; num_classes = -1 infers max + 1.
Tensor one_hot(const Tensor& index, int64_t num_classes = -1);
// F.pad: `pad` lists (left, right) pairs starting from the last dim; mode "constant" only.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pad, const std::string& mode = "constant", double value = 0.0);
// weight [num_embeddings, D], indices int64 [...] -> [..., D]. Rows at padding_idx get no gradient;
// a negative padding_idx (the default) means no padding row.
Tensor embedding(const Tensor& indices, const Tensor& weight, int64_t padding_idx = -1);

}  // namespace luna
