// Philox 4x32-10, the one counter-based random generator. A stream is (seed, offset): element i
// of a random fill reads counter block offset + i/k, so CPU and CUDA produce the same numbers and
// a stream is saved and restored exactly as two integers.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>

namespace luna {

using PhiloxBlock = std::array<uint32_t, 4>;

// One Philox4x32-10 evaluation: 4 random words for a 128-bit counter under a 64-bit key.
inline PhiloxBlock philox4x32_10(uint64_t key, uint64_t counter_lo, uint64_t counter_hi = 0) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {c0, c1, c2, c3};
}

// [0,1) from 24 or 53 random bits.
inline float uniform_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
inline double uniform_double(uint32_t lo, uint32_t hi) {
  const uint64_t bits = (uint64_t(hi) << 32 | lo) >> 11;
  return double(bits) * (1.0 / 9007199254740992.0);
}

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;  // next unused counter block
  bool operator==(const GeneratorState&) const = default;
};

class Generator {
 public:
  static constexpr uint64_t kDefaultSeed = 67280421310721ull;
  explicit Generator(uint64_t seed = kDefaultSeed) : state_{seed, 0} {}

  void manual_seed(uint64_t seed) {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = {seed, 0};
  }
  uint64_t seed() const { return state_.seed; }
  GeneratorState get_state() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_;
  }
  void set_state(GeneratorState state) {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = state;
  }
  // Claims `blocks` consecutive counter blocks; returns (seed, first block).
  GeneratorState reserve(uint64_t blocks) {
    std::lock_guard<std::mutex> lock(mutex_);
    GeneratorState claimed = state_;
    state_.offset += blocks;
    return claimed;
  }

 private:
  mutable std::mutex mutex_;
  GeneratorState state_;
};

// The generator used when an op is given none.
Generator& default_generator();
// Seeds every default stream (init, dropout, random features, data order).
void manual_seed(uint64_t seed);

}  // namespace luna
