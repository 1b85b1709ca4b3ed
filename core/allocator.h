// Memory for tensors. The CPU allocator caches freed blocks by rounded size so a training loop in
// steady state reuses memory instead of calling the system allocator for every op output.
#pragma once
#include <cstddef>
#include <cstdint>

#include <luna/core/device.h>

namespace luna {

struct AllocatorStats {
  uint64_t system_allocations = 0;  // blocks obtained from the OS / driver
  uint64_t cache_hits = 0;          // requests served from the cache
  uint64_t requests = 0;            // every allocate() call
  uint64_t bytes_in_use = 0;
  uint64_t peak_bytes_in_use = 0;
  uint64_t bytes_cached = 0;        // freed blocks held for reuse
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;  // hands cached blocks back to the system
};

Allocator& cpu_allocator();
// Backends for other devices register their allocator here at start-up.
void register_allocator(DeviceType type, Allocator* allocator);
// The allocator for a device, or an error naming the device if no backend registered one.
Allocator& allocator_for(Device device);
// Stats of the allocator for a device.
AllocatorStats memory_stats(Device device = Device::cpu());
void reset_peak_memory_stats(Device device = Device::cpu());
void empty_cache(Device device = Device::cpu());

}  // namespace luna
