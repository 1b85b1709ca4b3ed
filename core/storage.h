// A block of device memory shared by a tensor and all its views, plus the version counter that
// in-place ops bump so autograd can detect a saved tensor that was modified.
#pragma once
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

#include <luna/core/allocator.h>
#include <luna/core/device.h>

namespace luna {

class StorageImpl {
 public:
  // Owned memory from `allocator`.
  StorageImpl(size_t nbytes, Device device, Allocator* allocator)
      : nbytes_(nbytes), device_(device), allocator_(allocator) {
    data_ = nbytes ? allocator->allocate(nbytes) : nullptr;
  }
  // Borrowed memory (from_blob): `deleter` runs when the last view goes away (may be empty).
  StorageImpl(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter)
      : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}
  ~StorageImpl() {
    if (allocator_) allocator_->deallocate(data_, nbytes_);
    else if (deleter_) deleter_(data_);
  }
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
  std::function<void(void*)> deleter_;
  std::atomic<uint32_t> version_{0};
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace luna
