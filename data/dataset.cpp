// Split names, the packed token sequences and the example containers shared by all readers.
#include <luna/data/dataset.h>

#include <algorithm>
#include <sstream>

#include <luna/core/error.h>

namespace luna::data {

const char* split_name(Split split) {
  switch (split) {
    case Split::train: return "train";
    case Split::dev: return "dev";
    case Split::test: return "test";
  }
  return "?";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::train;
  if (name == "dev" || name == "val" || name == "eval") return Split::dev;
  if (name == "test") return Split::test;
  LUNA_FAIL("unknown split \"", name, "\" (expected train, dev, val, eval or test)");
}

std::string ReadReport::summary() const {
  std::ostringstream os;
  os << records << " records, " << skipped_bad << " skipped (bad), " << skipped_empty << " skipped (empty), "
     << truncated << " truncated to max_len";
  return os.str();
}

std::span<const int32_t> TokenSequences::operator[](size_t i) const {
  LUNA_CHECK(i < size(), "TokenSequences: index ", i, " out of range for ", size(), " sequences");
  return std::span<const int32_t>(ids_.data() + offsets_[i], size_t(offsets_[i + 1] - offsets_[i]));
}

int64_t TokenSequences::max_length() const {
  int64_t longest = 0;
  for (size_t i = 0; i + 1 < offsets_.size(); ++i) longest = std::max(longest, offsets_[i + 1] - offsets_[i]);
  return longest;
}

void TokenSequences::push_back(std::span<const int32_t> tokens) {
  ids_.insert(ids_.end(), tokens.begin(), tokens.end());
  offsets_.push_back(int64_t(ids_.size()));
}

void TokenSequences::reserve(size_t sequences, size_t tokens) {
  offsets_.reserve(sequences + 1);
  ids_.reserve(tokens);
}

TokenSequences TokenSequences::select(std::span<const size_t> indices) const {
  TokenSequences out;
  size_t tokens = 0;
  for (size_t i : indices) tokens += (*this)[i].size();
  out.reserve(indices.size(), tokens);
  for (size_t i : indices) out.push_back((*this)[i]);
  return out;
}

ClassificationExamples ClassificationExamples::select(std::span<const size_t> indices) const {
  ClassificationExamples out;
  out.tokens = tokens.select(indices);
  out.labels.reserve(indices.size());
  for (size_t i : indices) out.labels.push_back(labels.at(i));
  out.num_classes = num_classes;
  out.vocabulary = vocabulary;
  out.max_len = max_len;
  out.split = split;
  out.source = source;
  out.report = report;
  return out;
}

namespace {
std::vector<int64_t> histogram(const std::vector<int64_t>& labels, int64_t num_classes) {
  std::vector<int64_t> counts(size_t(std::max<int64_t>(num_classes, 0)), 0);
  for (int64_t label : labels) {
    LUNA_CHECK(label >= 0 && label < num_classes, "label_histogram: label ", label, " outside [0, ", num_classes, ")");
    ++counts[size_t(label)];
  }
  return counts;
}
}  // namespace

std::vector<int64_t> ClassificationExamples::label_histogram() const { return histogram(labels, num_classes); }
std::vector<int64_t> PairExamples::label_histogram() const { return histogram(labels, num_classes); }

}  // namespace luna::data
