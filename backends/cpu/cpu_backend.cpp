// The CPU backend instance.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/core/threads.h>

namespace luna {

Backend& cpu_backend() {
  static cpu::CpuBackend* backend = [] {
    init_threads();
    return new cpu::CpuBackend();
  }();
  return *backend;
}

}  // namespace luna
