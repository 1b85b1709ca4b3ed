// libFuzzer target for the safetensors reader (`make fuzz`). Any byte string must either parse or
// be rejected with luna::Error; a parsed file must read the same when borrowed instead of copied,
// and must survive being written again and re-parsed. Anything else aborts and is a bug.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <luna/core/safetensors.h>

namespace {

[[noreturn]] void report(const char* what, const std::string& name) {
  std::fprintf(stderr, "fuzz_safetensors: %s (tensor '%s')\n", what, name.c_str());
  std::abort();
}

// Same names in the same order, same dtypes, shapes and bytes; reading every byte also lets ASan
// check that each tensor lies inside its buffer.
void require_same(const luna::SafetensorsFile& a, const luna::SafetensorsFile& b) {
  if (a.tensors.size() != b.tensors.size()) report("tensor count differs", "");
  if (a.metadata != b.metadata) report("metadata differs", "");
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& [name, x] = a.tensors[i];
    const auto& [other_name, y] = b.tensors[i];
    if (name != other_name) report("tensor order differs", name);
    if (x.dtype() != y.dtype() || !(x.sizes() == y.sizes())) report("dtype or shape differs", name);
    if (!x.is_contiguous() && x.numel() > 0) report("loaded tensor is not contiguous", name);
    if (x.nbytes() && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) != 0) report("bytes differ", name);
  }
}

std::optional<luna::SafetensorsFile> parse_or_reject(const uint8_t* data, size_t size,
                                                     std::shared_ptr<const void> keep_alive) {
  try {
    return luna::parse_safetensors(data, size, "fuzz-input", std::move(keep_alive));
  } catch (const luna::Error&) {
    return std::nullopt;  // rejected with a proper error: the expected outcome for most inputs
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::optional<luna::SafetensorsFile> copied = parse_or_reject(data, size, nullptr);

  // The borrowing path gets its own heap copy so ASan bounds-checks it exactly; the tensors keep
  // the copy alive after the last handle here is dropped.
  auto image = std::make_shared<std::vector<uint8_t>>(data, data + size);
  const std::optional<luna::SafetensorsFile> borrowed = parse_or_reject(image->data(), image->size(), image);
  image.reset();
  if (copied.has_value() != borrowed.has_value()) report("copying and borrowing parses disagree", "");
  if (!copied) return 0;
  require_same(*copied, *borrowed);

  // Everything accepted must be writable and read back identically (exceptions here are bugs).
  const std::vector<uint8_t> rewritten = luna::serialize_safetensors(copied->tensors, copied->metadata);
  const luna::SafetensorsFile reparsed = luna::parse_safetensors(rewritten.data(), rewritten.size(), "fuzz-rewritten");
  require_same(*copied, reparsed);
  return 0;
}
