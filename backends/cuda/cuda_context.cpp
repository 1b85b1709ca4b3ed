// Device probing, the device context (stream, cuBLAS handle, pinned staging) and the staged
// host<->device copies. Probing swallows errors: a machine without a driver has 0 devices.
#include <luna/backends/cuda/cuda.h>
#include <luna/backends/cuda/cuda_context.h>
#include <luna/backends/cuda/cublas_loader.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace luna::cuda {
namespace {

struct Probe {
  int count = 0;
  std::string reason;  // why count is 0
};

const Probe& probe() {
  static const Probe result = [] {
    Probe p;
    int count = 0;
    const cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess) {
      p.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(error);
      cudaGetLastError();  // clear the error so later runtime calls do not report it again
      count = 0;
    } else if (count == 0) {
      p.reason = "the CUDA driver reports no device";
    }
    p.count = count;
    return p;
  }();
  return result;
}

std::atomic<bool> tf32_allowed{false};

DeviceContext* create_context(int index) {
  auto* ctx = new DeviceContext();
  ctx->index = index;
  LUNA_CUDA_CHECK(cudaSetDevice(index), "cudaSetDevice");
  LUNA_CUDA_CHECK(cudaDeviceGetAttribute(&ctx->sm_count, cudaDevAttrMultiProcessorCount, index),
                  "cudaDeviceGetAttribute(multiprocessor count)");
  // Non-blocking: nothing luna queues waits on work another library puts on the legacy stream.
  LUNA_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  for (int s = 0; s < PinnedStaging::kSlots; ++s) {
    LUNA_CUDA_CHECK(cudaMallocHost(&ctx->staging.slot[s], PinnedStaging::kSlotBytes), "cudaMallocHost (staging)");
    LUNA_CUDA_CHECK(cudaEventCreateWithFlags(&ctx->staging.done[s], cudaEventDisableTiming), "cudaEventCreate");
  }
  return ctx;
}

}  // namespace

void fail_cuda(cudaError_t error, const char* what) {
  cudaGetLastError();  // leave no stale (non-sticky) error behind for the next call to trip over
  LUNA_FAIL(what, ": CUDA error ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")");
}

void fail_cublas(cublasStatus_t status, const char* what) {
  LUNA_FAIL(what, ": cuBLAS error ", cublas().status_name(status), " (", cublas().status_string(status), ")");
}

int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }

void set_allow_tf32(bool allow) { tf32_allowed.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return tf32_allowed.load(std::memory_order_relaxed); }

void synchronize(int device_index) {
  if (device_count() == 0) return;  // nothing can have been queued
  DeviceContext& ctx = context(Device::cuda(device_index));
  LUNA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream), "synchronize");
}

void require_device(Device device) {
  const Probe& p = probe();
  LUNA_CHECK(p.count > 0, "device ", device, " is not available: no CUDA device was found (", p.reason, ")");
  LUNA_CHECK(device.index == 0, "device ", device, " is not available: luna drives one CUDA device per process ",
             "(cuda:0; ", p.count, " visible); choose the GPU with CUDA_VISIBLE_DEVICES");
}

cublasHandle_t cublas_handle(DeviceContext& ctx) {
  if (!ctx.cublas) {
    const CublasApi& api = cublas();
    cublasHandle_t handle = nullptr;
    LUNA_CUBLAS_CHECK(api.create(&handle), "cublasCreate");
    LUNA_CUBLAS_CHECK(api.set_stream(handle, ctx.stream), "cublasSetStream");
    ctx.cublas = handle;
  }
  return ctx.cublas;
}

DeviceContext& context(Device device) {
  require_device(device);
  // Leaked on purpose: tensors in static storage may be freed after the runtime's own teardown.
  static DeviceContext* ctx = create_context(0);
  return *ctx;
}

void copy_host_to_device(DeviceContext& ctx, void* device_dst, const void* host_src, size_t bytes) {
  PinnedStaging& st = ctx.staging;
  std::lock_guard<std::mutex> lock(st.mutex);
  const char* src = static_cast<const char*>(host_src);
  char* dst = static_cast<char*>(device_dst);
  for (size_t offset = 0; offset < bytes;) {
    const size_t chunk = std::min(PinnedStaging::kSlotBytes, bytes - offset);
    const int s = st.next;
    st.next = (s + 1) % PinnedStaging::kSlots;
    // The slot's previous transfer must have read it before it is overwritten.
    LUNA_CUDA_CHECK(cudaEventSynchronize(st.done[s]), "copy_from_cpu (waiting for a staging slot)");
    std::memcpy(st.slot[s], src + offset, chunk);
    LUNA_CUDA_CHECK(cudaMemcpyAsync(dst + offset, st.slot[s], chunk, cudaMemcpyHostToDevice, ctx.stream),
                    "copy_from_cpu");
    LUNA_CUDA_CHECK(cudaEventRecord(st.done[s], ctx.stream), "copy_from_cpu (cudaEventRecord)");
    offset += chunk;
  }
}

void copy_device_to_host(DeviceContext& ctx, void* host_dst, const void* device_src, size_t bytes) {
  PinnedStaging& st = ctx.staging;
  std::lock_guard<std::mutex> lock(st.mutex);
  const char* src = static_cast<const char*>(device_src);
  char* dst = static_cast<char*>(host_dst);
  // Chunk c lands in slot c % 2; while it is in flight the previous chunk is copied out.
  size_t pending_offset = 0, pending_bytes = 0;
  int pending_slot = -1;
  const auto drain = [&] {
    if (pending_slot < 0) return;
    LUNA_CUDA_CHECK(cudaEventSynchronize(st.done[pending_slot]), "copy_to_cpu");
    std::memcpy(dst + pending_offset, st.slot[pending_slot], pending_bytes);
    pending_slot = -1;
  };
  for (size_t offset = 0; offset < bytes;) {
    const size_t chunk = std::min(PinnedStaging::kSlotBytes, bytes - offset);
    const int s = st.next;
    st.next = (s + 1) % PinnedStaging::kSlots;
    LUNA_CUDA_CHECK(cudaMemcpyAsync(st.slot[s], src + offset, chunk, cudaMemcpyDeviceToHost, ctx.stream),
                    "copy_to_cpu");
    LUNA_CUDA_CHECK(cudaEventRecord(st.done[s], ctx.stream), "copy_to_cpu (cudaEventRecord)");
    drain();
    pending_slot = s;
    pending_offset = offset;
    pending_bytes = chunk;
    offset += chunk;
  }
  drain();
}

}  // namespace luna::cuda
