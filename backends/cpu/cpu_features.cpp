// Runtime CPU feature checks (cpu_features.h), evaluated once.
#include <luna/backends/cpu/cpu_features.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace luna::cpu {
namespace {

std::atomic<bool>& allowed() {
  static std::atomic<bool> flag = [] {
    const char* off = std::getenv("LUNA_DISABLE_AVX512");
    return off == nullptr || std::strcmp(off, "") == 0 || std::strcmp(off, "0") == 0;
  }();
  return flag;
}

}  // namespace

bool cpu_has_avx512() {
  static const bool detected = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return detected && allowed().load(std::memory_order_relaxed);
}

void allow_avx512(bool allowed_now) { allowed().store(allowed_now, std::memory_order_relaxed); }

}  // namespace luna::cpu
