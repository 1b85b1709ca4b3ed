// libFuzzer target for the IDX / gzip / Fashion-MNIST readers (`make fuzz`). The input is split at
// the first "@@@@" into an images file and a labels file (either may be gzip'd); each is parsed as
// IDX, and when both parse they are paired into Fashion-MNIST examples, strictly and with
// skip_bad_records (see fuzz_data_common.h). Inflation is capped at 4 MiB to keep runs fast.
#include "fuzz_data_common.h"

#include <luna/data/fashion_mnist.h>
#include <luna/data/gzip.h>
#include <luna/data/idx.h>

namespace {
constexpr const char* kTarget = "fuzz_idx";

std::optional<luna::data::IdxArray> parse(std::string_view bytes, const char* name) {
  return luna::fuzz::read_or_reject([&] {
    if (luna::data::is_gzip(bytes)) return luna::data::parse_idx(luna::data::gunzip(bytes, name, size_t(4) << 20), name);
    return luna::data::parse_idx(bytes, name);
  });
}

void check_array(const luna::data::IdxArray& array) {
  uint64_t numel = 1;
  for (int64_t d : array.dims) {
    if (d < 0) luna::fuzz::fail(kTarget, "negative dim");
    numel *= uint64_t(d);
  }
  if (array.dims.empty() || numel != array.data.size()) luna::fuzz::fail(kTarget, "dims do not match the data");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input = luna::fuzz::as_text(data + 1, size - 1);
  const size_t cut = input.find("@@@@");
  const std::string_view images_bytes = input.substr(0, cut);
  const std::string_view labels_bytes = cut == std::string_view::npos ? std::string_view() : input.substr(cut + 4);
  const auto images = parse(images_bytes, "images");
  const auto labels = parse(labels_bytes, "labels");
  if (images) check_array(*images);
  if (labels) check_array(*labels);
  if (!images || !labels) return 0;

  luna::data::ReadOptions strict = luna::fuzz::options_from(data[0], false);
  luna::data::ReadOptions lenient = luna::fuzz::options_from(data[0], true);
  strict.max_examples = lenient.max_examples = 0;  // applied by read_fashion_mnist, not the pairing
  const auto strict_read = luna::fuzz::read_or_reject(
      [&] { return luna::data::parse_fashion_mnist(*images, *labels, luna::data::Split::train, strict); });
  const auto skipped = luna::fuzz::read_or_reject(
      [&] { return luna::data::parse_fashion_mnist(*images, *labels, luna::data::Split::train, lenient); });
  // Shape and count mismatches are file-level: then both reads refuse.
  if (strict_read.has_value() && !skipped.has_value()) luna::fuzz::fail(kTarget, "only the lenient read refused");
  if (!skipped) return 0;
  luna::fuzz::check_examples(kTarget, *skipped, lenient);
  if (int64_t(skipped->size()) + skipped->report.skipped_bad != images->dims[0]) {
    luna::fuzz::fail(kTarget, "examples + skipped != images");
  }
  if (strict_read) {
    luna::fuzz::check_examples(kTarget, *strict_read, strict);
    if (skipped->report.skipped_bad != 0) luna::fuzz::fail(kTarget, "strict read accepted what the lenient one skipped");
    luna::fuzz::check_same(kTarget, *strict_read, *skipped);
  } else if (skipped->report.skipped_bad == 0) {
    luna::fuzz::fail(kTarget, "strict read threw but the lenient one skipped nothing");
  }
  return 0;
}
