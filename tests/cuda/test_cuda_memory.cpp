// The CUDA backend's memory side: registration, the error where no device exists, round trips
// through pinned staging for every dtype, device copies and conversions, fills, arange, Philox
// fills against the CPU's numbers, and the caching allocator's steady state. Tests that need a
// GPU end with a "no CUDA device" warning where there is none.
#include "cuda_test_util.h"

#include <cstring>

#include <luna/backends/backend.h>

using namespace luna;
using namespace luna::testing;

TEST_CASE("without a CUDA device, moving a tensor there is a clear error, not a crash", "[cuda]") {
  if (cuda_device_present()) {
    WARN("a CUDA device is present; this test covers machines without one");
    return;
  }
  const Tensor x = arange(6).to(kFloat32);
  REQUIRE_THROWS_AS(x.to(Device::cuda()), Error);
  REQUIRE_THROWS_WITH(x.to(Device::cuda()), Catch::Contains("cuda:0 is not available"));
  REQUIRE_THROWS_WITH(zeros({2, 3}, TensorOptions().device(Device::cuda())), Catch::Contains("cuda:0 is not available"));
#if LUNA_WITH_CUDA
  // The message says why: no device was found, with the runtime's own words.
  REQUIRE_THROWS_WITH(x.to(Device::cuda()), Catch::Contains("no CUDA device was found"));
  REQUIRE(!cuda::unavailable_reason().empty());
  REQUIRE(cuda::device_count() == 0);
  REQUIRE_FALSE(cuda::is_available());
  cuda::synchronize();  // nothing queued, nothing to wait for: no error
#endif
  // The CPU side is untouched by the failed attempts.
  REQUIRE(values(x * 2.0) == std::vector<double>{0, 2, 4, 6, 8, 10});
}

#if LUNA_WITH_CUDA
TEST_CASE("the CUDA backend is registered in CUDA builds and cuBLAS loads without a GPU", "[cuda]") {
  // Registration runs from a static initializer kept in the archive by a linker anchor; if the
  // anchor broke, backend_for would report the device as missing from the build.
  REQUIRE(is_backend_available(DeviceType::CUDA));
  REQUIRE(backend_for(Device::cuda()).device() == Device::cuda(0));
  const AllocatorStats stats = memory_stats(Device::cuda());
  REQUIRE(stats.bytes_in_use == 0);
  // cuBLAS is dlopen()ed on the first GEMM; loading it needs only the library, not a GPU.
  const std::string library = cuda::cublas_library();
  INFO(library);
  REQUIRE(library.find("libcublas.so") != std::string::npos);
}

TEST_CASE("TF32 is off by default and switchable", "[cuda]") {
  REQUIRE_FALSE(cuda::allow_tf32());
  cuda::set_allow_tf32(true);
  REQUIRE(cuda::allow_tf32());
  cuda::set_allow_tf32(false);
  REQUIRE_FALSE(cuda::allow_tf32());
}
#endif

TEST_CASE("cuda: every dtype round-trips to the device and back bit for bit", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor base = uniform_cpu({5, 7}, 11, -100.0, 100.0, kFloat64);
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kInt8, kUInt8, kBool}) {
    const Tensor cpu = base.to(dtype);
    const Tensor device = cpu.to(kCuda);
    REQUIRE(device.device() == kCuda);
    REQUIRE(device.dtype() == dtype);
    const Tensor back = device.to(Device::cpu());
    REQUIRE(back.device().is_cpu());
    REQUIRE(std::memcmp(back.data_ptr(), cpu.data_ptr(), cpu.nbytes()) == 0);
  }
}

TEST_CASE("cuda: copies larger than a staging slot and non-contiguous sources round-trip", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  // 3M floats = 12 MB: three 4 MB pinned slots' worth, so chunks alternate between both slots.
  const Tensor big = uniform_cpu({3 * 1024 * 1024 + 5}, 12);
  const Tensor back = big.to(kCuda).cpu();
  REQUIRE(std::memcmp(back.data_ptr(), big.data_ptr(), big.nbytes()) == 0);
  // A transposed CPU view lands contiguous on the device with the view's values.
  const Tensor matrix = uniform_cpu({64, 48}, 13);
  require_matches_cpu(matrix.t().to(kCuda), matrix.t().contiguous(), 0, 0, "transposed upload");
  // A strided device view downloads with the view's values.
  const Tensor device = matrix.to(kCuda);
  require_close(values(device.t()), values(matrix.t()), 0, 0, "transposed download");
  require_close(values(device.slice(1, 1, 48, 3)), values(matrix.slice(1, 1, 48, 3)), 0, 0, "sliced download");
}

TEST_CASE("cuda: device copies into strided views and between dtypes match the CPU", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor src = uniform_cpu({6, 10}, 14, -300.0, 300.0);
  // copy_ from the CPU into every other column of a device tensor.
  Tensor device = zeros({6, 20}, TensorOptions().device(kCuda));
  Tensor cpu = zeros({6, 20});
  device.slice(1, 0, 20, 2).copy_(src);
  cpu.slice(1, 0, 20, 2).copy_(src);
  require_matches_cpu(device, cpu, 0, 0, "copy_ into a strided device view");
  // Device-to-device strided copy (transpose) and dtype conversions on the device.
  const Tensor on_device = src.to(kCuda);
  require_matches_cpu(on_device.t().contiguous(), src.t().contiguous(), 0, 0, "device transpose copy");
  for (DType dtype : {kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kInt8, kUInt8, kBool}) {
    INFO("float32 -> " << dtype);
    const Tensor in_range = dtype == kUInt8 ? src.abs() / 2.0 : (dtype == kInt8 ? src / 3.0 : src);
    require_matches_cpu(in_range.to(kCuda).to(dtype), in_range.to(dtype), 0, 0, "conversion on the device");
    // And back to float32 from that dtype.
    const Tensor typed = in_range.to(dtype);
    require_matches_cpu(typed.to(kCuda).to(kFloat32), typed.to(kFloat32), 0, 0, "conversion back");
  }
  // int64 beyond 2^53 survives an int64 -> int64 strided copy and int64 -> int32 truncation.
  const Tensor large = tensor(std::vector<int64_t>{(int64_t(1) << 60) + 1, -((int64_t(1) << 55) + 3), 7});
  require_matches_cpu(large.to(kCuda).to(kInt32), large.to(kInt32), 0, 0, "int64 -> int32");
  REQUIRE(large.to(kCuda).cpu().data_ptr<int64_t>()[0] == (int64_t(1) << 60) + 1);
}

TEST_CASE("cuda: fill, zeros, full and arange match the CPU", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt8, kUInt8, kBool}) {
    INFO(dtype);
    require_matches_cpu(full({3, 5}, 2.5, TensorOptions(dtype).device(kCuda)), full({3, 5}, 2.5, TensorOptions(dtype)),
                        0, 0, "full 2.5");
    require_matches_cpu(zeros({4}, TensorOptions(dtype).device(kCuda)), zeros({4}, TensorOptions(dtype)), 0, 0, "zeros");
  }
  // fill_ of a strided view writes only the view.
  Tensor device = zeros({4, 9}, TensorOptions().device(kCuda));
  Tensor cpu = zeros({4, 9});
  device.slice(1, 1, 9, 2).fill_(-3);
  cpu.slice(1, 1, 9, 2).fill_(-3);
  require_matches_cpu(device, cpu, 0, 0, "fill_ of a strided view");
  require_matches_cpu(arange(0.0, 10.0, 0.25, TensorOptions(kFloat32).device(kCuda)),
                      arange(0.0, 10.0, 0.25, TensorOptions(kFloat32)), 0, 0, "arange f32");
  require_matches_cpu(arange(-7, 40, 3, TensorOptions(kInt64).device(kCuda)), arange(-7, 40, 3, TensorOptions(kInt64)),
                      0, 0, "arange int64");
}

TEST_CASE("cuda: random fills draw the CPU's numbers for the same generator state", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const auto both = [](auto make) {
    Generator cpu_gen(1234), cuda_gen(1234);
    return std::pair<Tensor, Tensor>{make(Device::cpu(), &cpu_gen), make(kCuda, &cuda_gen)};
  };
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    INFO(dtype);
    auto [cpu_u, cuda_u] = both([dtype](Device d, Generator* g) { return rand({1001}, TensorOptions(dtype).device(d), g); });
    require_matches_cpu(cuda_u, cpu_u, 0, 0, "rand");
    // Box-Muller in double on both sides; device libm may differ from glibc in the last bit.
    auto [cpu_n, cuda_n] = both([dtype](Device d, Generator* g) { return randn({1001}, TensorOptions(dtype).device(d), g); });
    require_matches_cpu(cuda_n, cpu_n, 1e-6, 1e-7, "randn");
  }
  auto [cpu_i, cuda_i] =
      both([](Device d, Generator* g) { return randint(-50, 1000, {777}, TensorOptions(kInt64).device(d), g); });
  require_matches_cpu(cuda_i, cpu_i, 0, 0, "randint");
}

TEST_CASE("cuda: the caching allocator stops calling cudaMalloc in steady state", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor x = uniform_cpu({64, 128}, 15).to(kCuda);
  Tensor w = uniform_cpu({128, 32}, 16).to(kCuda);
  w.requires_grad_(true);
  const auto step = [&] {
    const Tensor loss = (x.matmul(w).relu() * 0.5).sum();
    loss.backward();
    w.grad().zero_();
    backend_for(kCuda).synchronize();
  };
  // Two warm-up steps: the second is the first to accumulate into an existing .grad.
  step();
  step();
  const AllocatorStats warm = memory_stats(kCuda);
  for (int i = 0; i < 5; ++i) step();
  const AllocatorStats later = memory_stats(kCuda);
  REQUIRE(later.system_allocations == warm.system_allocations);
  REQUIRE(later.cache_hits > warm.cache_hits);
  REQUIRE(later.requests > warm.requests);
  REQUIRE(later.peak_bytes_in_use >= later.bytes_in_use);
  // empty_cache hands the cached blocks back; in-use blocks stay.
  empty_cache(kCuda);
  REQUIRE(memory_stats(kCuda).bytes_cached == 0);
  REQUIRE(memory_stats(kCuda).bytes_in_use == later.bytes_in_use);
}

TEST_CASE("cuda: a device index other than cuda:0 and mixed-device operands are errors", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  REQUIRE_THROWS_WITH(zeros({2}, TensorOptions().device(Device::cuda(1))), Catch::Contains("cuda:1 is not available"));
  const Tensor cpu = ones({3});
  const Tensor device = ones({3}, TensorOptions().device(kCuda));
  REQUIRE_THROWS_WITH(cpu + device, Catch::Contains("different devices"));
  // The failed calls left the device usable.
  require_matches_cpu(device + device, cpu + cpu, 0, 0, "after the errors");
}
