// Observing LUNA's projections u layer by layer and plotting ψ_ℓ over their range (kernels.svg).
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include <luna/autograd/grad_mode.h>
#include <luna/core/error.h>
#include <luna/ops/factories.h>
#include <luna/ops/linalg.h>

#include "common/svg.h"

namespace luna::train_lra {
using namespace luna::apps;  // NOLINT: the shared app helpers (apps/common)


namespace {

constexpr size_t kHistogramBins = 60;
constexpr size_t kCurvePoints = 241;

nn::TransformerEncoderLayerImpl& layer_at(const models::LraClassifier& model, int64_t layer) {
  return model->encoder->layers->at<nn::TransformerEncoderLayerImpl>(size_t(layer));
}

const nn::LunaFeatureMapImpl& feature_map_of(const models::LraClassifier& model, int64_t layer) {
  const auto& attention = layer_at(model, layer).self_attn;
  LUNA_CHECK(attention->options.attention() == "luna" && !attention->feature_map.is_empty(),
             "kernels.svg: layer ", layer, " has attention '", attention->options.attention(), "', not 'luna'");
  return *attention->feature_map;
}

std::vector<double> as_doubles(const Tensor& t) {
  const Tensor c = t.detach().to(Device::cpu(), kFloat64).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

double activation(const std::string& name, double x) {
  if (name == "relu") return x > 0 ? x : 0;
  if (name == "gelu") return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  return x / (1.0 + std::exp(-x));  // silu
}

// The model's input embedding (token + position), as LraClassifierImpl::encode computes it; the
// classifier exposes no embedding step of its own, so this repeats its two lines.
Tensor embed(const models::LraClassifier& model, const Tensor& tokens) {
  const int64_t n = tokens.size(1), dim = model->options().dim();
  Tensor x = model->token_embedding(tokens);  // (B, N, D)
  if (!model->position_embedding.is_empty())
    return x + model->position_embedding(arange(n, TensorOptions(kInt64).device(tokens.device())));
  std::vector<float> table(size_t(n * dim));  // the classifier's sinusoidal table, rows 0..N-1
  for (int64_t pos = 0; pos < n; ++pos)
    for (int64_t i = 0; i < dim; ++i) {
      const double rate = std::pow(10000.0, -double(2 * (i / 2)) / double(dim));
      table[size_t(pos * dim + i)] = float(i % 2 == 0 ? std::sin(pos * rate) : std::cos(pos * rate));
    }
  return x + tensor(table, {n, dim}).to(x.device(), x.dtype());
}

}  // namespace

std::vector<ProjectionObservation> observe_projections(const models::LraClassifier& model, const Tensor& tokens) {
  LUNA_CHECK(model->options().attention() == "luna", "kernels.svg: the model's attention is '",
             model->options().attention(), "', not 'luna'");
  LUNA_CHECK(tokens.defined() && tokens.dim() == 2, "kernels.svg: tokens must be (B, N)");
  NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const int64_t B = tokens.size(0), N = tokens.size(1);
  const int64_t H = model->options().heads(), d = model->options().dim() / H;
  const Tensor padding_mask = tokens.eq(zeros({}, TensorOptions(tokens.dtype())));  // (B, N) true = pad
  const std::vector<double> is_pad = as_doubles(padding_mask);                        // (B, N)
  Tensor x = embed(model, tokens);                                                    // (B, N, D)
  std::vector<ProjectionObservation> out;
  const int64_t depth = model->options().depth();
  for (int64_t l = 0; l < depth; ++l) {
    const auto& layer = layer_at(model, l);
    const auto& fm = feature_map_of(model, l);
    const Tensor h = layer.options.norm_first() ? layer.norm1(x) : x;  // the attention's input (B, N, D)
    const int64_t M = fm.options.num_projections;
    const bool per_head = fm.options.per_head;
    // u for queries and keys: (B, H, N, d) @ (d, M) or per head (H, d, M) -> (B, H, N, M)
    const Tensor weight_t = per_head ? fm.proj->weight.transpose(1, 2) : fm.proj->weight.t();
    const Tensor bias = per_head ? fm.proj->bias.unsqueeze(1) : fm.proj->bias;  // (H, 1, M) or (M)
    std::vector<std::vector<double>> us;
    for (const auto* proj : {&layer.self_attn->q_proj, &layer.self_attn->k_proj}) {
      const Tensor heads = (*proj)(h).reshape({B, N, H, d}).transpose(1, 2);  // (B, H, N, d)
      us.push_back(as_doubles(heads.matmul(weight_t) + bias));                // (B, H, N, M)
    }
    const int64_t groups = per_head ? H : 1;
    for (int64_t g = 0; g < groups; ++g) {
      ProjectionObservation obs;
      obs.layer = l;
      obs.head = per_head ? g : -1;
      auto visit = [&](auto&& fn) {
        for (const auto& u : us)
          for (int64_t b = 0; b < B; ++b)
            for (int64_t hh = per_head ? g : 0; hh < (per_head ? g + 1 : H); ++hh)
              for (int64_t n = 0; n < N; ++n) {
                if (is_pad[size_t(b * N + n)] != 0) continue;
                const double* row = &u[size_t(((b * H + hh) * N + n) * M)];
                for (int64_t m = 0; m < M; ++m) fn(row[m]);
              }
      };
      obs.u_min = std::numeric_limits<double>::infinity();
      obs.u_max = -std::numeric_limits<double>::infinity();
      visit([&](double v) {
        obs.u_min = std::min(obs.u_min, v);
        obs.u_max = std::max(obs.u_max, v);
        ++obs.values;
      });
      if (obs.values == 0) obs.u_min = -1, obs.u_max = 1;
      if (obs.u_max - obs.u_min < 1e-9) obs.u_min -= 0.5, obs.u_max += 0.5;
      obs.histogram.assign(kHistogramBins, 0.0);
      const double width = (obs.u_max - obs.u_min) / double(kHistogramBins);
      visit([&](double v) {
        const auto bin = std::min(kHistogramBins - 1, size_t(std::max(0.0, (v - obs.u_min) / width)));
        obs.histogram[bin] += 1;
      });
      out.push_back(std::move(obs));
    }
    x = layer.forward(x, padding_mask);  // (B, N, D)
  }
  model->train(was_training);
  return out;
}

std::vector<double> evaluate_psi(const models::LraClassifier& model, int64_t layer, int64_t head, int64_t channel,
                                 const std::vector<double>& u) {
  const auto& fm = feature_map_of(model, layer);
  const auto& o = fm.options;
  const int64_t L = o.channels, hidden = o.hidden;
  LUNA_CHECK(channel >= 0 && channel < L, "kernels.svg: channel ", channel, " outside [0, ", L, ")");
  LUNA_CHECK(o.per_head == (head >= 0), "kernels.svg: head ", head, " does not fit per_head = ", o.per_head);
  const bool shared = o.layout == "shared";
  const auto& psi = fm.psi->at<nn::LunaPsiImpl>(shared ? 0 : size_t(channel));
  // Per head, every tensor has a leading H dim: take row `head`.
  auto pick = [&](const Tensor& t) { return as_doubles(head >= 0 ? t.select(0, head) : t); };
  const std::vector<double> a = pick(psi.fc1->weight);  // (Hψ, 1) -> Hψ
  const std::vector<double> c = pick(psi.fc1->bias);    // (Hψ)
  const std::vector<double> g_all = pick(psi.fc2->weight);  // (L_out, Hψ)
  const std::vector<double> e_all = pick(psi.fc2->bias);    // (L_out)
  const int64_t row = shared ? channel : 0;
  std::vector<double> out(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    double s = e_all[size_t(row)];
    for (int64_t j = 0; j < hidden; ++j)
      s += g_all[size_t(row * hidden + j)] * activation(o.activation, a[size_t(j)] * u[i] + c[size_t(j)]);
    out[i] = s > 0 ? s : 0;  // the final ReLU keeps features non-negative
  }
  return out;
}

std::string render_kernels_svg(const models::LraClassifier& model, const std::vector<ProjectionObservation>& observed,
                               const std::string& title) {
  std::vector<Panel> panels;
  for (const auto& obs : observed) {
    const auto& o = feature_map_of(model, obs.layer).options;
    Panel panel;
    std::ostringstream name;
    name << "layer " << obs.layer;
    if (obs.head >= 0) name << ", head " << obs.head;
    name << ": psi_l(u), M=" << o.num_projections << " L=" << o.channels << " H_psi=" << o.hidden << " " << o.activation;
    panel.title = name.str();
    panel.x_label = "u = w.x + b (range seen on a dev batch; grey: how often)";
    panel.y_label = "psi_l(u)";
    std::vector<double> grid(kCurvePoints);
    for (size_t i = 0; i < kCurvePoints; ++i)
      grid[i] = obs.u_min + (obs.u_max - obs.u_min) * double(i) / double(kCurvePoints - 1);
    for (int64_t l = 0; l < o.channels; ++l) {
      Series s;
      s.label = "channel " + std::to_string(l);
      s.x = grid;
      s.y = evaluate_psi(model, obs.layer, obs.head, l, grid);
      panel.series.push_back(std::move(s));
    }
    panel.histogram = Histogram{obs.u_min, obs.u_max, obs.histogram, "u"};
    panel.y_min = 0.0;
    panels.push_back(std::move(panel));
  }
  return render_svg(title, panels, 2);
}

}  // namespace luna::train_lra
