// Batcher: per-epoch plans (shuffle, length buckets, batch order) and batch assembly, with an
// optional prefetch thread. Tensors are allocated in the worker through luna::empty: the CPU
// caching allocator takes a mutex on every allocate/deallocate, so that is safe from any thread.
#include <luna/data/batching.h>

#include <algorithm>
#include <numeric>
#include <utility>

#include <luna/core/error.h>
#include <luna/data/random_stream.h>
#include <luna/ops/factories.h>

namespace luna::data {
namespace {

// Philox counter-high words of the batch-order streams: this tag plus the epoch. It keeps them
// apart from the dataset generators' streams (small batch numbers) when both use the same seed.
constexpr uint64_t kOrderStreamTag = 0xBA7C'0000'0000'0000ull;

BatchCursor following(BatchCursor cursor, int64_t batches_per_epoch) {
  if (++cursor.batch == batches_per_epoch) {
    cursor.batch = 0;
    ++cursor.epoch;
  }
  return cursor;
}

// Writes sequence rows into (B, N) tokens and mask; returns the real tokens written.
int64_t pad_rows(const TokenSequences& sequences, const std::vector<size_t>& indices, int64_t pad_to,
                 Tensor& tokens_out, Tensor& mask_out) {
  const int64_t rows = int64_t(indices.size());
  int64_t width = pad_to;
  if (width == 0)
    for (size_t example : indices) width = std::max(width, sequences.length(example));
  Tensor tokens = luna::empty({rows, width}, TensorOptions(kInt64));  // (B, N)
  Tensor mask = luna::empty({rows, width}, TensorOptions(kBool));     // (B, N)
  int64_t* token_data = rows > 0 && width > 0 ? tokens.data_ptr<int64_t>() : nullptr;
  bool* mask_data = rows > 0 && width > 0 ? mask.data_ptr<bool>() : nullptr;
  int64_t real = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const std::span<const int32_t> sequence = sequences[indices[size_t(row)]];
    const int64_t length = int64_t(sequence.size());
    // The constructor checked pad_to; this guards the invariant rather than trusting it.
    LUNA_CHECK(length <= width, "Batcher: example ", indices[size_t(row)], " has length ", length,
               " but the batch is padded to ", width);
    int64_t* token_row = token_data + row * width;
    bool* mask_row = mask_data + row * width;
    for (int64_t n = 0; n < length; ++n) token_row[n] = sequence[size_t(n)];
    std::fill(token_row + length, token_row + width, int64_t(0));
    std::fill(mask_row, mask_row + length, false);
    std::fill(mask_row + length, mask_row + width, true);
    real += length;
  }
  tokens_out = std::move(tokens);
  mask_out = std::move(mask);
  return real;
}

}  // namespace

Batcher::Batcher(const ClassificationExamples& examples, BatchOptions options)
    : Batcher(&examples.tokens, nullptr, &examples.labels, options, examples.source) {}

Batcher::Batcher(const PairExamples& examples, BatchOptions options)
    : Batcher(&examples.tokens1, &examples.tokens2, &examples.labels, options, examples.source) {
  LUNA_CHECK(examples.tokens2.size() == examples.labels.size(), "Batcher: ", examples.labels.size(),
             " labels but ", examples.tokens2.size(), " second documents in '", examples.source, "'");
}

Batcher::Batcher(const TokenSequences* tokens1, const TokenSequences* tokens2, const std::vector<int64_t>* labels,
                 BatchOptions options, const std::string& source)
    : tokens1_(tokens1), tokens2_(tokens2), labels_(labels), options_(options) {
  LUNA_CHECK(options_.batch_size > 0, "Batcher: batch_size must be positive, got ", options_.batch_size);
  LUNA_CHECK(options_.pad_to >= 0, "Batcher: pad_to must be 0 (pad to the longest) or positive, got ",
             options_.pad_to);
  LUNA_CHECK(!labels_->empty(), "Batcher: no examples to batch (0 examples in '", source, "')");
  LUNA_CHECK(tokens1_->size() == labels_->size(), "Batcher: ", labels_->size(), " labels but ", tokens1_->size(),
             " token sequences in '", source, "'");
  if (tokens2_)
    LUNA_CHECK(tokens2_->size() == labels_->size(), "Batcher: ", labels_->size(), " labels but ", tokens2_->size(),
               " second documents in '", source, "'");
  if (options_.pad_to > 0) {
    validate_pad_to(*tokens1_, tokens2_ ? "document 1 of example " : "example ", source);
    if (tokens2_) validate_pad_to(*tokens2_, "document 2 of example ", source);
  }
  const int64_t examples = int64_t(labels_->size());
  batches_per_epoch_ = options_.drop_last ? examples / options_.batch_size
                                          : (examples + options_.batch_size - 1) / options_.batch_size;
  LUNA_CHECK(batches_per_epoch_ > 0, "Batcher: drop_last with batch_size ", options_.batch_size,
             " leaves no batch from only ", examples, " examples in '", source, "'");
  if (options_.prefetch) {
    requested_ = cursor_;  // start on the first batch right away
    worker_ = std::thread([this] { worker_loop(); });
  }
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Batcher::validate_pad_to(const TokenSequences& tokens, const char* which, const std::string& source) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t length = tokens.length(i);
    LUNA_CHECK(length <= options_.pad_to, "Batcher: pad_to ", options_.pad_to, " is shorter than ", which, i,
               " (length ", length, ") in '", source, "'; use pad_to >= ", tokens.max_length(),
               " or read with max_len <= ", options_.pad_to);
  }
}

int64_t Batcher::sort_length(size_t example) const {
  return tokens1_->length(example) + (tokens2_ ? tokens2_->length(example) : 0);
}

void Batcher::plan_epoch(EpochPlan& plan, int64_t epoch) const {
  const size_t examples = labels_->size();
  const size_t batch_size = size_t(options_.batch_size);
  plan.epoch = epoch;
  plan.order.resize(examples);
  std::iota(plan.order.begin(), plan.order.end(), size_t(0));
  RandomStream rng(options_.seed, kOrderStreamTag + uint64_t(epoch));
  if (options_.shuffle) shuffle_in_place(plan.order, rng);
  if (options_.bucket_by_length) {
    // Windows are whole multiples of batch_size, so every chunk lies inside one window.
    const size_t window = batch_size * size_t(kBucketWindowBatches);
    for (size_t start = 0; start < examples; start += window) {
      const auto first = plan.order.begin() + std::ptrdiff_t(start);
      const auto last = plan.order.begin() + std::ptrdiff_t(std::min(examples, start + window));
      std::stable_sort(first, last, [&](size_t a, size_t b) { return sort_length(a) < sort_length(b); });
    }
  }
  plan.chunk_order.resize(size_t(batches_per_epoch_));
  // With drop_last the short chunk (the last one) is simply never listed.
  std::iota(plan.chunk_order.begin(), plan.chunk_order.end(), int64_t(0));
  if (options_.bucket_by_length && options_.shuffle) shuffle_in_place(plan.chunk_order, rng);
}

std::vector<size_t> Batcher::indices_for(EpochPlan& plan, BatchCursor cursor) const {
  LUNA_CHECK(cursor.epoch >= 0 && cursor.batch >= 0 && cursor.batch < batches_per_epoch_,
             "Batcher: cursor (epoch ", cursor.epoch, ", batch ", cursor.batch, ") is outside [0, ",
             batches_per_epoch_, ") batches per epoch with a non-negative epoch");
  if (plan.epoch != cursor.epoch) plan_epoch(plan, cursor.epoch);
  const size_t batch_size = size_t(options_.batch_size);
  const size_t first = size_t(plan.chunk_order[size_t(cursor.batch)]) * batch_size;
  const size_t last = std::min(plan.order.size(), first + batch_size);
  return std::vector<size_t>(plan.order.begin() + std::ptrdiff_t(first), plan.order.begin() + std::ptrdiff_t(last));
}

std::vector<size_t> Batcher::batch_indices(BatchCursor cursor) { return indices_for(caller_plan_, cursor); }

Batch Batcher::build(EpochPlan& plan, BatchCursor cursor) const {
  Batch batch;
  batch.epoch = cursor.epoch;
  batch.batch = cursor.batch;
  batch.indices = indices_for(plan, cursor);
  batch.real_tokens = pad_rows(*tokens1_, batch.indices, options_.pad_to, batch.tokens, batch.padding_mask);
  if (tokens2_)
    batch.real_tokens += pad_rows(*tokens2_, batch.indices, options_.pad_to, batch.tokens2, batch.padding_mask2);
  const int64_t rows = int64_t(batch.indices.size());
  batch.labels = luna::empty({rows}, TensorOptions(kInt64));  // (B)
  int64_t* label_data = batch.labels.data_ptr<int64_t>();
  for (int64_t row = 0; row < rows; ++row) label_data[row] = (*labels_)[batch.indices[size_t(row)]];
  if (options_.prepare) options_.prepare(batch);
  return batch;
}

void Batcher::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || requested_.has_value(); });
    if (stopping_) return;
    const BatchCursor cursor = *requested_;
    requested_.reset();
    working_on_ = cursor;
    lock.unlock();
    Prepared prepared{cursor, Batch{}, nullptr};
    try {
      prepared.batch = build(worker_plan_, cursor);
    } catch (...) {
      prepared.error = std::current_exception();  // handed to next(), which rethrows it
    }
    lock.lock();
    working_on_.reset();
    ready_ = std::move(prepared);
    wake_.notify_all();
  }
}

Batch Batcher::next() {
  const BatchCursor wanted = cursor_;
  if (!options_.prefetch) {
    Batch batch = build(caller_plan_, wanted);
    cursor_ = following(wanted, batches_per_epoch_);
    return batch;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  const bool on_its_way = (ready_ && ready_->cursor == wanted) || working_on_ == wanted || requested_ == wanted;
  if (!on_its_way) {
    requested_ = wanted;
    wake_.notify_all();
  }
  // A result for another cursor was started before a seek(): drop it and keep waiting.
  wake_.wait(lock, [&] {
    if (ready_ && !(ready_->cursor == wanted)) ready_.reset();
    return ready_.has_value();
  });
  Prepared prepared = std::move(*ready_);
  ready_.reset();
  if (prepared.error) std::rethrow_exception(prepared.error);  // the cursor stays on the failed batch
  cursor_ = following(wanted, batches_per_epoch_);
  requested_ = cursor_;  // build the following batch while the caller trains on this one
  wake_.notify_all();
  return std::move(prepared.batch);
}

void Batcher::seek(BatchCursor cursor) {
  LUNA_CHECK(cursor.epoch >= 0 && cursor.batch >= 0 && cursor.batch < batches_per_epoch_, "Batcher::seek: cursor (epoch ",
             cursor.epoch, ", batch ", cursor.batch, ") is outside [0, ", batches_per_epoch_,
             ") batches per epoch with a non-negative epoch");
  cursor_ = cursor;
  if (options_.prefetch) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!(ready_ && ready_->cursor == cursor) && !(working_on_ == cursor)) requested_ = cursor;
    wake_.notify_all();
  }
}

}  // namespace luna::data
