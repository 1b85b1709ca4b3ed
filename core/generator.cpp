// The process-wide default generator.
#include <luna/core/generator.h>

namespace luna {

Generator& default_generator() {
  static Generator generator;
  return generator;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace luna
