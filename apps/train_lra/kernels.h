// kernels.svg for LUNA models, like the paper's Figure 1: each layer's learned scalar maps ψ_ℓ
// plotted over the range of projections u = wᵀx + b that the layer's queries and keys actually
// produce on a batch, with a histogram of those u behind the curves.
#pragma once
#include <string>
#include <vector>

#include <luna/core/tensor.h>
#include <luna/models/lra_classifier.h>

namespace luna::train_lra {

// What one feature map saw: the u of every real (non-padded) query and key token, every projection.
struct ProjectionObservation {
  int64_t layer = 0;
  int64_t head = -1;  // -1: one feature map shared by all heads
  double u_min = 0, u_max = 0;
  std::vector<double> histogram;  // kHistogramBins counts over [u_min, u_max]
  int64_t values = 0;
};

// Runs `tokens` (B, N) int64 (0 = padding) through the model's embeddings and encoder one layer at a
// time in eval mode, without recording gradients, and records each LUNA layer's u. Only models
// built with attention = "luna" have them (an error otherwise).
std::vector<ProjectionObservation> observe_projections(const models::LraClassifier& model, const Tensor& tokens);

// ψ_ℓ(u) = relu(Σ_j g_j act(a_j u + c_j) + e) of layer `layer` (head `head` with per_head, else -1),
// channel `channel`, at each of `u`.
std::vector<double> evaluate_psi(const models::LraClassifier& model, int64_t layer, int64_t head, int64_t channel,
                                 const std::vector<double>& u);

// The whole kernels.svg document: one panel per observed feature map.
std::string render_kernels_svg(const models::LraClassifier& model, const std::vector<ProjectionObservation>& observed,
                               const std::string& title);

}  // namespace luna::train_lra
