// Internal plumbing of the CUDA backend: error checks that turn CUDA and cuBLAS status codes into
// luna::Error, and the one device context (stream, cuBLAS handle, pinned staging buffers) every
// kernel and copy goes through. Everything runs on a single stream, so stream order alone makes
// reusing a freed block safe.
#pragma once
#include <cstddef>
#include <mutex>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <luna/core/device.h>
#include <luna/core/error.h>

namespace luna::cuda {

[[noreturn]] void fail_cuda(cudaError_t error, const char* what);
[[noreturn]] void fail_cublas(cublasStatus_t status, const char* what);

}  // namespace luna::cuda

// LUNA_CUDA_CHECK(cudaMemcpyAsync(...), "copy_to_cpu"): throws naming the step and CUDA's message.
#define LUNA_CUDA_CHECK(expr, what)                                     \
  do {                                                                  \
    const cudaError_t luna_cuda_error_ = (expr);                        \
    if (luna_cuda_error_ != cudaSuccess) ::luna::cuda::fail_cuda(luna_cuda_error_, what); \
  } while (0)
#define LUNA_CUBLAS_CHECK(expr, what)                                        \
  do {                                                                       \
    const cublasStatus_t luna_cublas_status_ = (expr);                       \
    if (luna_cublas_status_ != CUBLAS_STATUS_SUCCESS) ::luna::cuda::fail_cublas(luna_cublas_status_, what); \
  } while (0)
// After a kernel launch: reports a bad launch configuration at once (execution errors surface at
// the next synchronizing call).
#define LUNA_CUDA_CHECK_LAUNCH(what) LUNA_CUDA_CHECK(cudaGetLastError(), what)

namespace luna::cuda {

// Pinned host buffers for host<->device copies: the host side is copied through them so
// cudaMemcpyAsync never sees pageable memory, and two of them alternate so filling one overlaps
// the transfer of the other.
struct PinnedStaging {
  static constexpr size_t kSlotBytes = size_t(4) << 20;
  static constexpr int kSlots = 2;
  void* slot[kSlots] = {nullptr, nullptr};
  cudaEvent_t done[kSlots] = {nullptr, nullptr};  // recorded after each slot's last transfer
  int next = 0;
  std::mutex mutex;
};

struct DeviceContext {
  int index = 0;
  int sm_count = 1;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;  // created on the first GEMM (cublas_handle)
  std::mutex cublas_mutex;          // a cuBLAS handle must not be used by two threads at once
  PinnedStaging staging;
};

// Throws "device cuda:N is not available: ..." unless `device` is a CUDA device this process can
// drive: some GPU must be visible, and luna drives one per process (cuda:0).
void require_device(Device device);

// The context of `device` (checked with require_device), created on first use; makes it the
// calling thread's current device.
DeviceContext& context(Device device = Device::cuda(0));

// The context's cuBLAS handle, bound to its stream; loads cuBLAS and creates the handle on first
// use. The caller holds ctx.cublas_mutex.
cublasHandle_t cublas_handle(DeviceContext& ctx);

// Host <-> device byte copies through the pinned staging slots. The host-to-device copy returns
// as soon as the bytes are staged (the source may be freed at once); the device-to-host copy
// returns when the bytes have landed.
void copy_host_to_device(DeviceContext& ctx, void* device_dst, const void* host_src, size_t bytes);
void copy_device_to_host(DeviceContext& ctx, void* host_dst, const void* device_src, size_t bytes);

}  // namespace luna::cuda
