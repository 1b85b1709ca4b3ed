// Parameter initialisation with PyTorch's names, formulas and defaults (torch.nn.init).
// Every function fills its tensor in place under NoGradGuard, draws from `generator` (the default
// generator if null) and returns the tensor, so it can be applied to parameters directly.
#pragma once
#include <string>
#include <utility>

#include <luna/core/generator.h>
#include <luna/core/tensor.h>

namespace luna::nn::init {

// The recommended gain for a nonlinearity (torch.nn.init.calculate_gain): linear, conv*, sigmoid
// -> 1; tanh -> 5/3; relu -> sqrt(2); leaky_relu -> sqrt(2 / (1 + slope^2)) with `param` the
// negative slope (0.01 when param < 0, i.e. not given); selu -> 3/4.
double calculate_gain(const std::string& nonlinearity, double param = -1.0);

// (fan_in, fan_out) of a weight of at least 2 dims: [out, in, k...] gives
// fan_in = in * prod(k), fan_out = out * prod(k).
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& tensor);

Tensor uniform_(Tensor tensor, double a = 0.0, double b = 1.0, Generator* generator = nullptr);
Tensor normal_(Tensor tensor, double mean = 0.0, double std = 1.0, Generator* generator = nullptr);
Tensor constant_(Tensor tensor, double value);
Tensor zeros_(Tensor tensor);
Tensor ones_(Tensor tensor);

// U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(Tensor tensor, double gain = 1.0, Generator* generator = nullptr);
// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(Tensor tensor, double gain = 1.0, Generator* generator = nullptr);

// std = gain / sqrt(fan) with gain = calculate_gain(nonlinearity, a) and fan chosen by mode
// ("fan_in" keeps forward activations' variance, "fan_out" the backward gradients').
// Uniform: U(-sqrt(3) std, sqrt(3) std). Normal: N(0, std^2).
Tensor kaiming_uniform_(Tensor tensor, double a = 0.0, const std::string& mode = "fan_in",
                        const std::string& nonlinearity = "leaky_relu", Generator* generator = nullptr);
Tensor kaiming_normal_(Tensor tensor, double a = 0.0, const std::string& mode = "fan_in",
                       const std::string& nonlinearity = "leaky_relu", Generator* generator = nullptr);

// N(mean, std^2) conditioned on [a, b] (absolute bounds, as in PyTorch), drawn exactly by the
// inverse CDF: u ~ U(Phi(alpha), Phi(beta)), x = mean + std * Phi^-1(u).
Tensor trunc_normal_(Tensor tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                     Generator* generator = nullptr);

}  // namespace luna::nn::init
