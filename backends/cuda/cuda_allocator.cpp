// Caching CUDA device allocator: size buckets like the CPU allocator's, cudaMalloc only on a miss.
#include <luna/backends/cuda/cuda_allocator.h>
#include <luna/backends/cuda/cuda_context.h>

#include <unordered_map>
#include <vector>

namespace luna::cuda {
namespace {

// Small blocks round to 512 bytes (cudaMalloc aligns to 256); large ones to 1/8 of their power
// of two, which bounds the waste at 12.5% while letting slightly different sizes share a bucket.
size_t round_size(size_t nbytes) {
  constexpr size_t kSmallStep = 512;
  if (nbytes == 0) nbytes = 1;
  if (nbytes <= (size_t(1) << 20)) return (nbytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  const size_t power = size_t(1) << (63 - __builtin_clzll(nbytes));
  const size_t step = power / 8;
  return (nbytes + step - 1) / step * step;
}

class CachingDeviceAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    context();  // throws, naming the device, when there is none
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.requests;
    void* ptr = nullptr;
    auto it = free_blocks_.find(size);
    if (it != free_blocks_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= size;
      ++stats_.cache_hits;
    } else {
      cudaError_t error = cudaMalloc(&ptr, size);
      if (error == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        release_cached_locked();
        error = cudaMalloc(&ptr, size);
      }
      if (error != cudaSuccess) {
        cudaGetLastError();
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        LUNA_FAIL("cuda allocator: cannot allocate ", size, " bytes on cuda:0 (", cudaGetErrorString(error), "; ",
                  stats_.bytes_in_use, " bytes in use by luna, ", free_bytes, " of ", total_bytes,
                  " bytes free on the device)");
      }
      ++stats_.system_allocations;
    }
    stats_.bytes_in_use += size;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return ptr;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use -= size;
    free_blocks_[size].push_back(ptr);
    stats_.bytes_cached += size;
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

 private:
  // cudaFree waits for the device, so no queued kernel still uses a block it returns.
  // Errors are ignored: this also runs while the process tears the runtime down.
  void release_cached_locked() {
    for (auto& [size, blocks] : free_blocks_)
      for (void* p : blocks) cudaFree(p);
    free_blocks_.clear();
    stats_.bytes_cached = 0;
    cudaGetLastError();
  }

  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;
  AllocatorStats stats_;
};

}  // namespace

Allocator& device_allocator() {
  // Leaked on purpose, like the CPU allocator: tensors in static storage may outlive main.
  static auto* allocator = new CachingDeviceAllocator();
  return *allocator;
}

}  // namespace luna::cuda
