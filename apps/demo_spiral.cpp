// `make demo` until apps/train_lra exists: an MLP learns the 3-arm spiral (a dataset no linear
// model can fit) with plain full-batch gradient descent on luna's autograd, then reports accuracy
// on a held-out spiral drawn with another seed.
#include <luna/luna.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

using namespace luna;

namespace {

struct Spiral {
  Tensor points;  // (N, 2) float32
  Tensor labels;  // (N) int64
};

// `classes` arms of `per_class` points; the angle along each arm gets Gaussian jitter.
Spiral make_spiral(int64_t per_class, int64_t classes, uint64_t seed) {
  Generator gen(seed);
  const Tensor jitter = randn({per_class * classes}, {}, &gen);  // (N)
  const float* noise = jitter.data_ptr<float>();
  std::vector<float> xy;
  std::vector<int64_t> labels;
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t i = 0; i < per_class; ++i) {
      const double r = double(i) / double(per_class - 1);
      const double theta = double(c) * 4.0 + 4.0 * r + 0.2 * noise[c * per_class + i];
      xy.push_back(float(r * std::sin(theta)));
      xy.push_back(float(r * std::cos(theta)));
      labels.push_back(c);
    }
  }
  return {tensor(xy, {per_class * classes, 2}), tensor(labels)};
}

struct Mlp {
  Tensor w1, b1, w2, b2, w3, b3;

  explicit Mlp(int64_t hidden, int64_t classes, uint64_t seed) {
    Generator gen(seed);
    // Kaiming-uniform-like scale, as nn.Linear's default.
    auto init = [&](const Dims& shape, int64_t fan_in) {
      const double bound = 1.0 / std::sqrt(double(fan_in));
      Tensor t = rand(shape, {}, &gen) * (2 * bound) - bound;
      t = t.detach();
      t.requires_grad_(true);
      return t;
    };
    w1 = init({hidden, 2}, 2);
    b1 = init({hidden}, 2);
    w2 = init({hidden, hidden}, hidden);
    b2 = init({hidden}, hidden);
    w3 = init({classes, hidden}, hidden);
    b3 = init({classes}, hidden);
  }
  Tensor forward(const Tensor& x) const {  // x (N, 2) -> logits (N, classes)
    Tensor h = relu(linear(x, w1, b1));
    h = relu(linear(h, w2, b2));
    return linear(h, w3, b3);
  }
  std::vector<Tensor> parameters() const { return {w1, b1, w2, b2, w3, b3}; }
};

double accuracy(const Tensor& logits, const Tensor& labels) {
  return logits.argmax(1).eq(labels).to(kFloat64).mean().item<double>();
}

}  // namespace

int main() {
  const int64_t per_class = 200, classes = 3, hidden = 64, steps = 1000;
  const double lr = 1.0;
  const Spiral train = make_spiral(per_class, classes, 1);
  const Spiral test = make_spiral(per_class, classes, 2);
  Mlp model(hidden, classes, 0);
  std::printf("luna demo: %lld-class spiral, MLP 2-%lld-%lld-%lld, full-batch gradient descent, %d threads\n",
              (long long)classes, (long long)hidden, (long long)hidden, (long long)classes, get_num_threads());
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= steps; ++step) {
    const Tensor logits = model.forward(train.points);
    const Tensor loss = cross_entropy(logits, train.labels);
    for (const Tensor& p : model.parameters()) p.set_grad(Tensor());
    loss.backward();
    {
      NoGradGuard no_grad;
      for (const Tensor& p : model.parameters()) p.sub_(p.grad() * lr);
    }
    if (step % 200 == 0 || step == 1) {
      NoGradGuard no_grad;
      std::printf("step %5lld  loss %.4f  train acc %.3f\n", (long long)step, loss.item<double>(),
                  accuracy(logits, train.labels));
    }
  }
  NoGradGuard no_grad;
  const double test_acc = accuracy(model.forward(test.points), test.labels);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("held-out spiral accuracy: %.3f (chance %.3f), %.1f s\n", test_acc, 1.0 / double(classes), seconds);
  return test_acc > 0.9 ? 0 : 1;
}
