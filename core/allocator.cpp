// Caching CPU allocator: 64-byte aligned blocks, bucketed by rounded size, guarded by a mutex.
#include <luna/core/allocator.h>
#include <luna/core/error.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace luna {
namespace {

constexpr size_t kAlignment = 64;
// Beyond this many cached bytes, freed blocks go straight back to the system.
constexpr size_t kMaxCachedBytes = size_t(4) << 30;

// Small blocks round to 64 bytes; large ones to 1/8 of their power of two, which bounds the
// waste at 12.5% while letting slightly different sizes share a bucket.
size_t round_size(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  if (nbytes <= (size_t(1) << 20)) return (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t power = size_t(1) << (63 - __builtin_clzll(nbytes));
  const size_t step = power / 8;
  return (nbytes + step - 1) / step * step;
}

class CachingCpuAllocator final : public Allocator {
 public:
  ~CachingCpuAllocator() override { empty_cache(); }

  void* allocate(size_t nbytes) override {
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.requests;
    auto it = free_blocks_.find(size);
    void* ptr = nullptr;
    if (it != free_blocks_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= size;
      ++stats_.cache_hits;
    } else {
      ptr = std::aligned_alloc(kAlignment, size);
      LUNA_CHECK(ptr != nullptr, "cpu allocator: out of memory allocating ", size, " bytes (",
                 stats_.bytes_in_use, " bytes in use)");
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
    if (stats_.bytes_cached + size > kMaxCachedBytes) {
      std::free(ptr);
      return;
    }
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
    for (auto& [size, blocks] : free_blocks_)
      for (void* p : blocks) std::free(p);
    free_blocks_.clear();
    stats_.bytes_cached = 0;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;
  AllocatorStats stats_;
};

}  // namespace

Allocator& cpu_allocator() {
  // Leaked on purpose: tensors in static storage may be freed after main returns.
  static auto* allocator = new CachingCpuAllocator();
  return *allocator;
}

namespace {
Allocator* registered_allocators[2] = {nullptr, nullptr};
}

void register_allocator(DeviceType type, Allocator* allocator) {
  registered_allocators[int(type)] = allocator;
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  Allocator* allocator = registered_allocators[int(device.type)];
  LUNA_CHECK(allocator != nullptr, "device ", device,
             " is not available: luna was built without its backend or no such device was found");
  return *allocator;
}

AllocatorStats memory_stats(Device device) { return allocator_for(device).stats(); }
void reset_peak_memory_stats(Device device) { allocator_for(device).reset_peak(); }
void empty_cache(Device device) { allocator_for(device).empty_cache(); }

}  // namespace luna
