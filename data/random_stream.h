// A sequential random stream for the dataset generators. It draws from Philox 4x32-10, the same
// function behind luna::Generator, keyed by the seed; the high 64 bits of the counter name an
// independent stream (one per Pathfinder batch, say), so batches can be generated in parallel
// and a seed still gives byte-identical files whatever the thread count.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include <luna/core/error.h>
#include <luna/core/generator.h>

namespace luna::data {

// Progress of a long generation: items done out of total (called from one thread at a time).
using GeneratorProgress = std::function<void(int64_t done, int64_t total)>;

class RandomStream {
 public:
  explicit RandomStream(uint64_t seed, uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  uint32_t next_u32() {
    if (used_ == 4) {
      words_ = philox4x32_10(seed_, block_++, stream_);
      used_ = 0;
    }
    return words_[used_++];
  }

  // Uniform in [0, 1) with 53 random bits, like Python's random.random().
  double uniform() {
    const uint32_t lo = next_u32();
    const uint32_t hi = next_u32();
    return uniform_double(lo, hi);
  }

  // Uniform integer in [low, high), like numpy.random.randint(low, high). Unbiased (Lemire's
  // multiply-and-reject), so every value of a small range is exactly equally likely.
  int64_t randint(int64_t low, int64_t high) {
    LUNA_CHECK(high > low && uint64_t(high - low) <= 0xFFFFFFFFull, "RandomStream::randint: empty or too wide range [",
               low, ", ", high, ")");
    const uint64_t range = uint64_t(high - low);
    uint64_t product = uint64_t(next_u32()) * range;
    if (uint32_t(product) < range) {
      const uint32_t threshold = uint32_t((0x100000000ull - range) % range);
      while (uint32_t(product) < threshold) product = uint64_t(next_u32()) * range;
    }
    return low + int64_t(product >> 32);
  }

 private:
  uint64_t seed_;
  uint64_t stream_;
  uint64_t block_ = 0;
  PhiloxBlock words_{};
  int used_ = 4;
};

// Fisher-Yates in place, drawing like Python's random.shuffle (from the last position down).
template <class T>
void shuffle_in_place(std::vector<T>& items, RandomStream& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    const size_t j = size_t(rng.randint(0, int64_t(i)));
    std::swap(items[i - 1], items[j]);
  }
}

}  // namespace luna::data
