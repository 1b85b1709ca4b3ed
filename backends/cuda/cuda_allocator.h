// The caching device allocator of the CUDA backend (registered for DeviceType::CUDA).
#pragma once
#include <luna/core/allocator.h>

namespace luna::cuda {

// Freed blocks are kept by rounded size and handed out again, so a training loop in steady state
// calls cudaMalloc only while it is still growing. Blocks are reused in stream order (all work
// runs on one stream). On out-of-memory the cache is released and the allocation retried once.
Allocator& device_allocator();

}  // namespace luna::cuda
