// Batches of LRA examples for training and evaluation: a seeded per-epoch shuffle, right padding
// with key padding masks, optional length bucketing, and a background thread that builds the next
// batch while the caller trains on the current one. The sequence of batches is a pure function of
// (examples, options, cursor), so a run resumed from a saved BatchCursor sees the same batches.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <luna/core/tensor.h>
#include <luna/data/dataset.h>

namespace luna::data {

struct Batch {
  Tensor tokens;         // (B, N) int64, right-padded with 0; N = longest sequence in the batch,
                         // or BatchOptions::pad_to when set
  Tensor padding_mask;   // (B, N) bool, true = padded position (by position, past each length)
  Tensor tokens2;        // retrieval (PairExamples) only: the second documents, (B, N2) int64
  Tensor padding_mask2;  // (B, N2) bool; both undefined for ClassificationExamples
  Tensor labels;         // (B) int64
  std::vector<size_t> indices;  // which examples are in this batch, in row order
  int64_t real_tokens = 0;      // non-pad tokens in the batch (both documents), for tokens/s
  int64_t epoch = 0;            // the cursor this batch was built for
  int64_t batch = 0;

  int64_t size() const { return int64_t(indices.size()); }
};

struct BatchOptions {
  int64_t batch_size = 32;
  bool shuffle = true;           // a fresh permutation per epoch from (seed, epoch)
  uint64_t seed = 0;
  bool drop_last = false;        // drop a final short batch
  // Group similar lengths: sort by length inside windows of 50·batch_size shuffled examples, then
  // shuffle the batch order. The length of a pair is the sum of its two documents' lengths.
  // Without `shuffle` the windows follow the dataset order and the batch order is kept.
  bool bucket_by_length = false;
  // 0 = pad to the longest in the batch; else a fixed N (the Batcher's constructor rejects a
  // sequence longer than this, naming its index and length).
  int64_t pad_to = 0;
  bool prefetch = true;          // a background thread prepares the next batch while the caller trains
  // Optional last step of building a batch (say, a copy to pinned memory or a device), run on the
  // thread that builds it: the prefetch thread when `prefetch` is on. An exception it throws is
  // rethrown by next() like any other error in building the batch.
  std::function<void(Batch&)> prepare;
};

// Sort windows hold this many batches' worth of examples.
inline constexpr int64_t kBucketWindowBatches = 50;

struct BatchCursor {
  int64_t epoch = 0;
  int64_t batch = 0;  // the next batch to be returned
  bool operator==(const BatchCursor&) const = default;
};

// Not safe to call from several threads at once: one caller drives next()/seek(). The examples
// are only read (by the caller's thread or the prefetch thread), never modified.
class Batcher {
 public:
  // Keeps a reference: the examples must outlive the Batcher.
  Batcher(const ClassificationExamples& examples, BatchOptions options);
  Batcher(const PairExamples& examples, BatchOptions options);
  ~Batcher();  // joins the prefetch thread
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  size_t num_examples() const { return labels_->size(); }
  bool is_pair() const { return tokens2_ != nullptr; }
  const BatchOptions& options() const { return options_; }

  // Endless: after the last batch of an epoch comes batch 0 of epoch + 1. An error while building
  // the batch (in the prefetch thread or here) is rethrown and the cursor does not move.
  Batch next();
  BatchCursor cursor() const { return cursor_; }  // position of the batch next() will return
  // Continue from a saved cursor: the same batches follow, bit-identical, as if never interrupted.
  // Rejects a negative epoch or a batch outside [0, batches_per_epoch).
  void seek(BatchCursor cursor);

  // The example indices of a batch in row order, without building it (tests, diagnostics).
  std::vector<size_t> batch_indices(BatchCursor cursor);

 private:
  // One epoch's plan: examples in visiting order, cut into chunks of batch_size; batch b of the
  // epoch is chunk chunk_order[b].
  struct EpochPlan {
    int64_t epoch = -1;
    std::vector<size_t> order;
    std::vector<int64_t> chunk_order;
  };
  struct Prepared {
    BatchCursor cursor;
    Batch batch;
    std::exception_ptr error;
  };

  Batcher(const TokenSequences* tokens1, const TokenSequences* tokens2, const std::vector<int64_t>* labels,
          BatchOptions options, const std::string& source);
  void validate_pad_to(const TokenSequences& tokens, const char* which, const std::string& source) const;
  int64_t sort_length(size_t example) const;
  void plan_epoch(EpochPlan& plan, int64_t epoch) const;
  std::vector<size_t> indices_for(EpochPlan& plan, BatchCursor cursor) const;
  Batch build(EpochPlan& plan, BatchCursor cursor) const;
  void worker_loop();

  const TokenSequences* tokens1_;
  const TokenSequences* tokens2_;  // null for single-input examples
  const std::vector<int64_t>* labels_;
  BatchOptions options_;
  int64_t batches_per_epoch_ = 0;
  BatchCursor cursor_;

  // Plan used by the caller's thread (no prefetch, batch_indices); the worker keeps its own, so
  // neither needs a lock.
  EpochPlan caller_plan_;
  EpochPlan worker_plan_;

  // Prefetch hand-off, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<BatchCursor> requested_;   // waiting for the worker to take it
  std::optional<BatchCursor> working_on_;  // being built right now
  std::optional<Prepared> ready_;          // built, not yet taken by next()
  std::thread worker_;
};

}  // namespace luna::data
