// CUDA backend benchmarks, run by scripts/gpu-check.sh: GEMM through luna::matmul against the
// backend's bare cuBLAS call into a preallocated output (what the op adds: layout analysis,
// output allocation), in float32 with TF32 off and on and in bf16; memory-bound kernels in GB/s;
// host<->device copies through the pinned staging buffers. Prints a note and exits 0 where
// there is no CUDA build or no device.
//
//   bench_cuda [--quick]
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <luna/backends/backend.h>
#include <luna/luna.h>
#if LUNA_WITH_CUDA
#include <luna/backends/cuda/cuda.h>
#endif

#include "bench_timing.h"

namespace {
using namespace luna;

#if LUNA_WITH_CUDA
const Device kCuda = Device::cuda(0);

void sync() { backend_for(kCuda).synchronize(); }

// Median milliseconds of each function, every call followed by a device synchronisation.
std::vector<double> gpu_medians(const std::vector<std::function<void()>>& fns, int reps) {
  std::vector<std::function<void()>> synced;
  for (const auto& f : fns)
    synced.push_back([f] {
      f();
      sync();
    });
  return bench::interleaved_medians(synced, 2, reps);
}

void bench_gemm(int reps) {
  struct Shape {
    const char* name;
    int64_t m, n, k;
  };
  const std::vector<Shape> shapes = {{"square 1024", 1024, 1024, 1024},
                                     {"square 4096", 4096, 4096, 4096},
                                     {"proj 32768x512 @ 512x512", 32768, 512, 512},
                                     {"mlp 32768x512 @ 512x2048", 32768, 2048, 512},
                                     {"mlp 32768x2048 @ 2048x512", 32768, 512, 2048}};
  std::printf("\n%-28s %-6s %10s %10s %10s %8s\n", "GEMM", "dtype", "op ms", "raw ms", "TFLOP/s", "raw/op");
  for (const Shape& s : shapes) {
    for (const char* mode : {"f32", "tf32", "bf16"}) {
      const DType dtype = std::string(mode) == "bf16" ? kBFloat16 : kFloat32;
      cuda::set_allow_tf32(std::string(mode) == "tf32");
      const Tensor a = randn({s.m, s.k}, TensorOptions(dtype).device(kCuda));
      const Tensor b = randn({s.k, s.n}, TensorOptions(dtype).device(kCuda));
      const Tensor c = empty({s.m, s.n}, TensorOptions(dtype).device(kCuda));
      GemmArgs g;
      g.dtype = dtype;
      g.m = s.m;
      g.n = s.n;
      g.k = s.k;
      g.a = a.data_ptr();
      g.lda = s.k;
      g.b = b.data_ptr();
      g.ldb = s.n;
      g.c = c.data_ptr();
      g.ldc = s.n;
      NoGradGuard no_grad;
      const std::vector<double> ms =
          gpu_medians({[&] { (void)matmul(a, b); }, [&] { backend_for(kCuda).gemm(g); }}, reps);
      const double tflops = 2.0 * double(s.m) * double(s.n) * double(s.k) / (ms[0] * 1e-3) / 1e12;
      std::printf("%-28s %-6s %10.3f %10.3f %10.1f %7.1f%%\n", s.name, mode, ms[0], ms[1], tflops,
                  100.0 * ms[1] / ms[0]);
    }
  }
  cuda::set_allow_tf32(false);
}

void bench_memory_bound(int reps) {
  const int64_t rows = 65536, cols = 1024, n = rows * cols;  // 64M float32 = 256 MB per tensor
  const Tensor x = randn({rows, cols}, TensorOptions().device(kCuda));
  const Tensor y = randn({rows, cols}, TensorOptions().device(kCuda));
  const Tensor bias = randn({cols}, TensorOptions().device(kCuda));
  const Tensor w = ones({cols}, TensorOptions().device(kCuda));
  const double mb = double(n) * 4.0;  // bytes of one tensor
  struct Case {
    const char* name;
    double bytes;
    std::function<void()> fn;
  };
  NoGradGuard no_grad;
  const std::vector<Case> cases = {
      {"clone (copy)", 2 * mb, [&] { (void)x.clone(); }},
      {"x + y", 3 * mb, [&] { (void)(x + y); }},
      {"x + bias (broadcast)", 2 * mb, [&] { (void)(x + bias); }},
      {"gelu(x)", 2 * mb, [&] { (void)gelu(x); }},
      {"x.t().contiguous()", 2 * mb, [&] { (void)x.t().contiguous(); }},
      {"sum(x, rows)", mb, [&] { (void)sum(x, {1}); }},
      {"sum(x, columns)", mb, [&] { (void)sum(x, {0}); }},
      {"sum(x)", mb, [&] { (void)sum(x); }},
      {"softmax(x, -1)", 2 * mb, [&] { (void)softmax(x, -1); }},
      {"layer_norm(x)", 2 * mb, [&] { (void)layer_norm(x, {cols}, w, bias); }},
  };
  std::printf("\n%-28s %10s %10s\n", "memory-bound, 256 MB inputs", "ms", "GB/s");
  for (const Case& c : cases) {
    const double ms = gpu_medians({c.fn}, reps)[0];
    std::printf("%-28s %10.3f %10.0f\n", c.name, ms, c.bytes / (ms * 1e-3) / 1e9);
  }
}

void bench_transfers(int reps) {
  const Tensor host = randn({64 * 1024 * 1024});  // 256 MB
  const Tensor device = host.to(kCuda);
  const double bytes = double(host.nbytes());
  const std::vector<double> ms = gpu_medians({[&] { (void)host.to(kCuda); }, [&] { (void)device.cpu(); }}, reps);
  std::printf("\n%-28s %10s %10s\n", "host <-> device, 256 MB", "ms", "GB/s");
  std::printf("%-28s %10.3f %10.1f\n", "to(cuda)", ms[0], bytes / (ms[0] * 1e-3) / 1e9);
  std::printf("%-28s %10.3f %10.1f\n", "cpu()", ms[1], bytes / (ms[1] * 1e-3) / 1e9);
}
#endif

}  // namespace

int main(int argc, char** argv) {
#if !LUNA_WITH_CUDA
  (void)argc;
  (void)argv;
  std::printf("bench_cuda: luna was built without the CUDA backend (LUNA_CUDA=OFF or no nvcc found)\n");
  return 0;
#else
  if (cuda::device_count() == 0) {
    std::printf("bench_cuda: no CUDA device (%s)\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  const int reps = bench::has_flag(argc, argv, "--quick") ? 5 : 20;
  std::printf("bench_cuda: %d timed rounds per case (median), cuBLAS from %s\n", reps, cuda::cublas_library().c_str());
  bench_gemm(reps);
  bench_memory_bound(reps);
  bench_transfers(reps);
  const AllocatorStats stats = memory_stats(Device::cuda());
  std::printf("\nallocator: %llu cudaMalloc calls for %llu requests, peak %.1f MB\n",
              static_cast<unsigned long long>(stats.system_allocations),
              static_cast<unsigned long long>(stats.requests), double(stats.peak_bytes_in_use) / 1e6);
  return 0;
#endif
}
