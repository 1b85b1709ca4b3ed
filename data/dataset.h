// The types every LRA reader returns: token-id sequences packed back to back, integer labels, the
// split they came from, and a report of what was skipped. Readers live one per file
// (listops.h, aan.h, imdb.h, cifar10.h, pathfinder.h, fashion_mnist.h); tokenisers in tokenizers.h.
//
// Contract shared by every reader (generators that write these formats can rely on it):
//   - token id 0 is padding and never a real token; sequences are NOT padded (the batcher pads);
//   - a sequence is truncated to ReadOptions::max_len (the task's default when 0), CLS included;
//   - a malformed record throws luna::Error naming the reader, the file, the line (text) or record
//     index (binary) and the offending value; with skip_bad_records it is skipped and counted in
//     ReadReport::skipped_bad instead. Damage to a whole file (missing file, wrong IDX magic, corrupt
//     gzip, unreadable metadata folder) is always an error: nothing after it can be trusted.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace luna::data {

// LRA's three splits. "dev" is what the release calls val/eval; IMDB has none and reuses test.
enum class Split { train, dev, test };
const char* split_name(Split split);  // "train" | "dev" | "test"
// "train" | "dev" | "val" | "eval" | "test" -> Split; anything else is an error naming the value.
Split parse_split(const std::string& name);

struct ReadOptions {
  // Tokens kept per sequence, CLS included; 0 = the task's default (kListOpsMaxLen, ...). Longer
  // sequences are cut at the end and counted in ReadReport::truncated.
  int64_t max_len = 0;
  // Prepend the tokeniser's CLS id (the `lra` protocol's CLS pooling).
  bool add_cls = false;
  // Skip malformed records (counted in ReadReport::skipped_bad) instead of throwing.
  bool skip_bad_records = false;
  // Keep at most this many examples of the split (0 = all): Path-X's full train split is ~10 GB
  // of int32 tokens. For Pathfinder the cap applies after the seeded split, so it is a random subset.
  int64_t max_examples = 0;
  // Seed of Pathfinder's 80/10/10 split (the release has no split of its own).
  uint64_t split_seed = 0;
};

// What a reader saw besides the examples it returned; apps print it.
struct ReadReport {
  int64_t records = 0;        // records looked at (lines, files, binary records), bad ones included
  int64_t skipped_bad = 0;    // malformed records skipped under skip_bad_records
  int64_t skipped_empty = 0;  // empty image files skipped (the Pathfinder release has one)
  int64_t truncated = 0;      // sequences cut to max_len
  // The messages of the first few skipped records, so a user can see what was wrong.
  std::vector<std::string> first_errors;
  static constexpr size_t kMaxKeptErrors = 5;

  // One line for logs: "96000 records, 0 skipped (bad), 0 skipped (empty), 12 truncated to max_len".
  std::string summary() const;
};

// Variable-length int32 token sequences stored back to back (one allocation for a whole split).
class TokenSequences {
 public:
  size_t size() const { return offsets_.size() - 1; }
  bool empty() const { return size() == 0; }
  // Sequence i (bounds-checked: an index past the end is an error naming it).
  std::span<const int32_t> operator[](size_t i) const;
  int64_t length(size_t i) const { return (*this)[i].size(); }
  int64_t max_length() const;
  int64_t total_tokens() const { return int64_t(ids_.size()); }

  void push_back(std::span<const int32_t> tokens);
  void reserve(size_t sequences, size_t tokens);
  // Keeps the sequences whose index is in `indices` (in that order).
  TokenSequences select(std::span<const size_t> indices) const;

  const std::vector<int32_t>& ids() const { return ids_; }         // all tokens, back to back
  const std::vector<int64_t>& offsets() const { return offsets_; } // size()+1 entries, offsets[0] = 0

 private:
  std::vector<int32_t> ids_;
  std::vector<int64_t> offsets_{0};
};

// How a task's token ids are laid out; the model's embedding needs vocab_size rows.
struct Vocabulary {
  int64_t vocab_size = 0;
  int32_t pad_id = 0;
  int32_t cls_id = -1;
};

// Single-input classification (ListOps, text, image, Pathfinder, Fashion-MNIST).
struct ClassificationExamples {
  TokenSequences tokens;
  std::vector<int64_t> labels;  // one per sequence, in [0, num_classes)
  int64_t num_classes = 0;
  Vocabulary vocabulary;
  int64_t max_len = 0;          // the truncation length that was applied
  Split split = Split::train;
  std::string source;           // file or folder it was read from
  ReadReport report;

  size_t size() const { return labels.size(); }
  // Keeps the examples whose index is in `indices` (labels, tokens; everything else is copied).
  ClassificationExamples select(std::span<const size_t> indices) const;
  // Count of each label, num_classes entries.
  std::vector<int64_t> label_histogram() const;
};

// Two-input classification (retrieval: does document 1 cite document 2?).
struct PairExamples {
  TokenSequences tokens1;
  TokenSequences tokens2;
  std::vector<int64_t> labels;
  std::vector<std::string> ids1, ids2;  // the release's document ids, for inspection
  int64_t num_classes = 0;
  Vocabulary vocabulary;
  int64_t max_len = 0;          // per document
  Split split = Split::train;
  std::string source;
  ReadReport report;

  size_t size() const { return labels.size(); }
  std::vector<int64_t> label_histogram() const;
};

}  // namespace luna::data
