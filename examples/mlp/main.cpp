// Example research code on an installed luna: define a module, train it with AdamW on a toy
// task (the sign of x*y, not linearly separable), save it as safetensors, reload it into a fresh
// model and check the reloaded model predicts identically.
#include <luna/luna.h>

#include <cstdio>
#include <filesystem>

using namespace luna;

struct NetImpl : nn::Module {
  NetImpl() : nn::Module("Net") {
    fc1 = register_module("fc1", nn::Linear(2, 32));
    fc2 = register_module("fc2", nn::Linear(32, 2));
  }
  Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))); }  // x (N, 2) -> logits (N, 2)
  nn::Linear fc1{nullptr}, fc2{nullptr};
};
LUNA_MODULE(Net);

int main(int argc, char** argv) {
  manual_seed(0);
  const Tensor x = rand({512, 2}) * 2.0 - 1.0;                               // (N, 2)
  const Tensor y = gt(x.select(1, 0) * x.select(1, 1), zeros({})).to(kInt64);  // (N)

  Net net;
  optim::AdamW optimizer(net->parameters(), optim::AdamWOptions(1e-2).weight_decay(1e-4));
  for (int step = 1; step <= 400; ++step) {
    optimizer.zero_grad();
    const Tensor loss = cross_entropy(net(x), y);
    loss.backward();
    optimizer.step();
    if (step % 100 == 0) std::printf("step %d loss %.4f\n", step, loss.item<double>());
  }

  NoGradGuard no_grad;
  const Tensor predictions = net(x).argmax(1);
  const double accuracy = predictions.eq(y).to(kFloat64).mean().item<double>();
  const std::string path = argc > 1 ? argv[1] : (std::filesystem::temp_directory_path() / "luna_mlp.safetensors").string();
  save_safetensors(path, net->state_dict(), {{"example", "mlp"}});

  Net reloaded;
  reloaded->load_state_dict(load_safetensors(path).tensors);
  const bool same = reloaded(x).argmax(1).eq(predictions).to(kFloat64).min().item<double>() == 1.0;
  std::printf("accuracy %.3f, reloaded from %s: %s\n", accuracy, path.c_str(), same ? "identical" : "DIFFERENT");
  return accuracy > 0.9 && same ? 0 : 1;
}
