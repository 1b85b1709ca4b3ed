// torch.nn.init in luna: fan computation, gains, and the uniform / normal / truncated-normal fills
// built on luna::uniform_ and luna::normal_ (ops/factories.h), all without recording history.
#include <luna/nn/init.h>

#include <cmath>
#include <limits>
#include <vector>

#include <luna/autograd/grad_mode.h>
#include <luna/ops/factories.h>

namespace luna::nn::init {
namespace {

void check_defined(const Tensor& tensor, const char* op) {
  LUNA_CHECK(tensor.defined(), "nn::init::", op, ": tensor is undefined");
}

void check_floating(const Tensor& tensor, const char* op) {
  check_defined(tensor, op);
  LUNA_CHECK(tensor.is_floating_point(), "nn::init::", op, ": tensor must be floating point, got ", tensor.str());
}

int64_t select_fan(const Tensor& tensor, const std::string& mode, const char* op) {
  LUNA_CHECK(mode == "fan_in" || mode == "fan_out", "nn::init::", op, ": mode must be 'fan_in' or 'fan_out', got '",
             mode, "'");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  const int64_t fan = mode == "fan_in" ? fan_in : fan_out;
  LUNA_CHECK(fan > 0, "nn::init::", op, ": ", mode, " of a tensor of shape ", tensor.sizes(),
             " is 0; cannot initialise an empty tensor");
  return fan;
}

// Standard normal CDF, accurate in both tails (erfc keeps relative precision for negative x).
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Inverse standard normal CDF for p in (0, 1): Acklam's rational approximation (relative error
// 1.2e-9) refined by one Halley step on normal_cdf, which brings it to double precision.
double normal_icdf(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - p_low) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = normal_cdf(x) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

}  // namespace

double calculate_gain(const std::string& nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "sigmoid" || nonlinearity.rfind("conv", 0) == 0) return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") {
    const double slope = param < 0 ? 0.01 : param;
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  if (nonlinearity == "selu") return 3.0 / 4.0;
  LUNA_FAIL("nn::init::calculate_gain: unsupported nonlinearity '", nonlinearity,
            "' (expected linear, conv1d/2d/3d, sigmoid, tanh, relu, leaky_relu or selu)");
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& tensor) {
  check_defined(tensor, "calculate_fan_in_and_fan_out");
  LUNA_CHECK(tensor.dim() >= 2, "nn::init::calculate_fan_in_and_fan_out: fan in and fan out need a tensor of at ",
             "least 2 dims, got shape ", tensor.sizes());
  int64_t receptive_field = 1;
  for (int d = 2; d < tensor.dim(); ++d) receptive_field *= tensor.size(d);
  return {tensor.size(1) * receptive_field, tensor.size(0) * receptive_field};
}

Tensor uniform_(Tensor tensor, double a, double b, Generator* generator) {
  check_floating(tensor, "uniform_");
  LUNA_CHECK(a <= b, "nn::init::uniform_: lower bound ", a, " exceeds upper bound ", b);
  NoGradGuard no_grad;
  luna::uniform_(tensor, a, b, generator);
  return tensor;
}

Tensor normal_(Tensor tensor, double mean, double std, Generator* generator) {
  check_floating(tensor, "normal_");
  LUNA_CHECK(std >= 0, "nn::init::normal_: std must be non-negative, got ", std);
  NoGradGuard no_grad;
  luna::normal_(tensor, mean, std, generator);
  return tensor;
}

Tensor constant_(Tensor tensor, double value) {
  check_defined(tensor, "constant_");
  NoGradGuard no_grad;
  tensor.fill_(value);
  return tensor;
}

Tensor zeros_(Tensor tensor) { return constant_(std::move(tensor), 0.0); }
Tensor ones_(Tensor tensor) { return constant_(std::move(tensor), 1.0); }

Tensor xavier_uniform_(Tensor tensor, double gain, Generator* generator) {
  check_floating(tensor, "xavier_uniform_");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  LUNA_CHECK(fan_in + fan_out > 0, "nn::init::xavier_uniform_: tensor of shape ", tensor.sizes(), " is empty");
  const double bound = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  return init::uniform_(std::move(tensor), -bound, bound, generator);
}

Tensor xavier_normal_(Tensor tensor, double gain, Generator* generator) {
  check_floating(tensor, "xavier_normal_");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  LUNA_CHECK(fan_in + fan_out > 0, "nn::init::xavier_normal_: tensor of shape ", tensor.sizes(), " is empty");
  return init::normal_(std::move(tensor), 0.0, gain * std::sqrt(2.0 / double(fan_in + fan_out)), generator);
}

Tensor kaiming_uniform_(Tensor tensor, double a, const std::string& mode, const std::string& nonlinearity,
                        Generator* generator) {
  check_floating(tensor, "kaiming_uniform_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(double(select_fan(tensor, mode, "kaiming_uniform_")));
  const double bound = std::sqrt(3.0) * std;
  return init::uniform_(std::move(tensor), -bound, bound, generator);
}

Tensor kaiming_normal_(Tensor tensor, double a, const std::string& mode, const std::string& nonlinearity,
                       Generator* generator) {
  check_floating(tensor, "kaiming_normal_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(double(select_fan(tensor, mode, "kaiming_normal_")));
  return init::normal_(std::move(tensor), 0.0, std, generator);
}

Tensor trunc_normal_(Tensor tensor, double mean, double std, double a, double b, Generator* generator) {
  check_floating(tensor, "trunc_normal_");
  LUNA_CHECK(std > 0, "nn::init::trunc_normal_: std must be positive, got ", std);
  LUNA_CHECK(a < b, "nn::init::trunc_normal_: lower bound a = ", a, " must be below upper bound b = ", b);
  double alpha = (a - mean) / std, beta = (b - mean) / std;
  // Sample in whichever tail keeps Phi small: for an interval above the mean, draw the mirrored
  // interval below it and negate, so Phi never rounds to 1 and loses the interval.
  const bool mirrored = alpha > 0;
  if (mirrored) {
    const double lower = -beta;
    beta = -alpha;
    alpha = lower;
  }
  const double cdf_low = normal_cdf(alpha), cdf_high = normal_cdf(beta);

  NoGradGuard no_grad;
  // The uniforms are drawn in float64 on the CPU so the inverse CDF runs at full precision,
  // then copied into the tensor's dtype and device.
  Tensor uniforms = empty_tensor(tensor.sizes(), kFloat64, Device::cpu());  // (numel of tensor)
  luna::uniform_(uniforms, 0.0, 1.0, generator);
  double* u = uniforms.data_ptr<double>();
  const double lowest = std::numeric_limits<double>::min();
  for (int64_t i = 0; i < uniforms.numel(); ++i) {
    const double p = std::max(lowest, cdf_low + u[i] * (cdf_high - cdf_low));
    double z = p >= 1.0 ? beta : normal_icdf(p);
    z = std::min(std::max(z, alpha), beta);  // rounding at the ends only
    if (mirrored) z = -z;
    u[i] = std::min(std::max(mean + std * z, a), b);
  }
  tensor.copy_(uniforms);
  return tensor;
}

}  // namespace luna::nn::init
