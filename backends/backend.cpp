// Backend registry, op name tables, and the default "no kernel on this device" behaviour.
#include <luna/backends/backend.h>
#include <luna/core/threads.h>

namespace luna {

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Log1p: return "log1p";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Gelu: return "gelu";
    case UnaryOp::GeluTanh: return "gelu_tanh";
    case UnaryOp::Elu: return "elu";
    case UnaryOp::Silu: return "silu";
    case UnaryOp::Softplus: return "softplus";
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
    case UnaryOp::Square: return "square";
    case UnaryOp::Reciprocal: return "reciprocal";
    case UnaryOp::Clamp: return "clamp";
    case UnaryOp::PowScalar: return "pow";
    case UnaryOp::Erf: return "erf";
  }
  return "unary";
}

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::LogicalAnd: return "logical_and";
    case BinaryOp::LogicalOr: return "logical_or";
  }
  return "binary";
}

uint64_t random_blocks_needed(RandomKind kind, DType dtype, int64_t numel) {
  const uint64_t n = uint64_t(numel);
  switch (kind) {
    case RandomKind::Uniform: return dtype == kFloat64 ? (n + 1) / 2 : (n + 3) / 4;
    case RandomKind::Normal: return (n + 1) / 2;
    case RandomKind::Int: return (n + 3) / 4;
  }
  return n;
}

void Backend::missing(const char* kernel) const {
  LUNA_FAIL(kernel, ": no kernel on device ", device(), "; move the tensors to a device that has one (e.g. .cpu())");
}

void Backend::copy(const Tensor&, const Tensor&) { missing("copy"); }
void Backend::linear_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&) {
  missing("linear_backward");
}
void Backend::copy_from_cpu(const Tensor&, const Tensor&) { missing("copy_from_cpu"); }
void Backend::copy_to_cpu(const Tensor&, const Tensor&) { missing("copy_to_cpu"); }
void Backend::fill(const Tensor&, Scalar) { missing("fill"); }
void Backend::arange(const Tensor&, double, double) { missing("arange"); }
void Backend::random(const Tensor&, RandomKind, double, double, GeneratorState) { missing("random"); }
void Backend::unary(UnaryOp op, const Tensor&, const Tensor&, const UnaryParams&) { missing(unary_op_name(op)); }
void Backend::unary_backward(UnaryOp op, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const UnaryParams&) {
  missing(unary_op_name(op));
}
void Backend::binary(BinaryOp op, const Tensor&, const Tensor&, const Tensor&) { missing(binary_op_name(op)); }
void Backend::where(const Tensor&, const Tensor&, const Tensor&, const Tensor&) { missing("where"); }
void Backend::reduce(ReduceOp, const Tensor&, const Tensor&, uint32_t) { missing("reduce"); }
void Backend::arg_reduce(ReduceOp, const Tensor&, int, const Tensor&, const Tensor&) { missing("arg_reduce"); }
void Backend::gemm(const GemmArgs&) { missing("gemm"); }
void Backend::index_select(const Tensor&, int, const Tensor&, const Tensor&) { missing("index_select"); }
void Backend::index_add(const Tensor&, int, const Tensor&, const Tensor&) { missing("index_add"); }
void Backend::gather(const Tensor&, int, const Tensor&, const Tensor&) { missing("gather"); }
void Backend::scatter_add(const Tensor&, int, const Tensor&, const Tensor&) { missing("scatter_add"); }
void Backend::softmax_forward(const Tensor&, const Tensor&, int, bool) { missing("softmax"); }
void Backend::softmax_backward(const Tensor&, const Tensor&, const Tensor&, int, bool) { missing("softmax_backward"); }
void Backend::layer_norm_forward(const Tensor&, const Tensor&, const Tensor&, double, const Tensor&, const Tensor&,
                                 const Tensor&) {
  missing("layer_norm");
}
void Backend::layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&, const Tensor&, const Tensor&) {
  missing("layer_norm_backward");
}
void Backend::cross_entropy_forward(const Tensor&, const Tensor&, int64_t, double, const Tensor&, const Tensor&) {
  missing("cross_entropy");
}
void Backend::cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t, double,
                                     const Tensor&) {
  missing("cross_entropy_backward");
}
void Backend::dropout_forward(const Tensor&, const Tensor&, const Tensor&, double, GeneratorState) { missing("dropout"); }
void Backend::dropout_backward(const Tensor&, const Tensor&, double, const Tensor&) { missing("dropout_backward"); }
void Backend::dropout_add_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, GeneratorState) {
  missing("dropout_add");
}
void Backend::gelu_dropout_forward(const Tensor&, const Tensor&, const Tensor&, double, GeneratorState) {
  missing("gelu_dropout");
}
void Backend::gelu_dropout_backward(const Tensor&, const Tensor&, const Tensor&, double, const Tensor&) {
  missing("gelu_dropout_backward");
}
void Backend::adam_update(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const AdamUpdateScalars&) {
  missing("adam_update");
}

Backend& cpu_backend();  // backends/cpu/cpu_backend.cpp

namespace {
Backend* registered_backends[2] = {nullptr, nullptr};
}

void register_backend(DeviceType type, Backend* backend) { registered_backends[int(type)] = backend; }

bool is_backend_available(DeviceType type) {
  return type == DeviceType::CPU || registered_backends[int(type)] != nullptr;
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu_backend();
  Backend* backend = registered_backends[int(device.type)];
  LUNA_CHECK(backend != nullptr, "device ", device,
             " is not available: luna was built without its backend or no such device was found");
  return *backend;
}

}  // namespace luna
