// The Batcher: exact padding and masks, every example once per epoch, seeded shuffles, length
// bucketing, bit-exact resume through seek() with and without the prefetch thread, pairs, pad_to,
// bad options, and errors raised while building a batch.
#include "data/data_test_util.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <luna/data/batching.h>
#include <luna/data/random_stream.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;

namespace {

// Token n of example i: never 0 (the pad id) and different across examples and positions.
int32_t token_value(size_t example, int64_t position) { return int32_t((example * 131 + position * 7) % 997 + 1); }

ClassificationExamples make_examples(const std::vector<int64_t>& lengths, int64_t num_classes = 5) {
  ClassificationExamples examples;
  examples.num_classes = num_classes;
  examples.source = "synthetic";
  for (size_t i = 0; i < lengths.size(); ++i) {
    std::vector<int32_t> tokens;
    for (int64_t n = 0; n < lengths[i]; ++n) tokens.push_back(token_value(i, n));
    examples.tokens.push_back(tokens);
    examples.labels.push_back(int64_t(i) % num_classes);
  }
  return examples;
}

// `count` lengths uniform in [low, high], from a fixed seed.
std::vector<int64_t> random_lengths(size_t count, int64_t low, int64_t high, uint64_t seed = 7) {
  RandomStream rng(seed);
  std::vector<int64_t> lengths(count);
  for (int64_t& length : lengths) length = rng.randint(low, high + 1);
  return lengths;
}

template <class T>
std::vector<T> values(const Tensor& t) {
  const T* data = t.data_ptr<T>();
  return std::vector<T>(data, data + t.numel());
}

BatchOptions options_with(int64_t batch_size, bool shuffle, bool prefetch) {
  BatchOptions options;
  options.batch_size = batch_size;
  options.shuffle = shuffle;
  options.prefetch = prefetch;
  return options;
}

// Every byte of two batches agrees.
void require_same_batch(const Batch& a, const Batch& b) {
  REQUIRE(a.indices == b.indices);
  REQUIRE(a.real_tokens == b.real_tokens);
  REQUIRE(a.epoch == b.epoch);
  REQUIRE(a.batch == b.batch);
  const auto same_tensor = [](const Tensor& x, const Tensor& y) {
    REQUIRE(x.defined() == y.defined());
    if (!x.defined()) return;
    REQUIRE(x.sizes() == y.sizes());
    REQUIRE(x.dtype() == y.dtype());
    REQUIRE(std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0);
  };
  same_tensor(a.tokens, b.tokens);
  same_tensor(a.padding_mask, b.padding_mask);
  same_tensor(a.tokens2, b.tokens2);
  same_tensor(a.padding_mask2, b.padding_mask2);
  same_tensor(a.labels, b.labels);
}

// Checks a batch's rows against the examples it names: tokens, right padding, mask, labels.
void require_rows_match(const Batch& batch, const ClassificationExamples& examples) {
  const int64_t rows = batch.tokens.size(0), width = batch.tokens.size(1);
  REQUIRE(rows == int64_t(batch.indices.size()));
  REQUIRE(batch.padding_mask.sizes() == batch.tokens.sizes());
  REQUIRE(batch.tokens.dtype() == kInt64);
  REQUIRE(batch.padding_mask.dtype() == kBool);
  REQUIRE(batch.labels.dtype() == kInt64);
  REQUIRE(batch.labels.size(0) == rows);
  const std::vector<int64_t> tokens = values<int64_t>(batch.tokens);
  const std::vector<bool> mask = values<bool>(batch.padding_mask);
  const std::vector<int64_t> labels = values<int64_t>(batch.labels);
  int64_t real = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const size_t example = batch.indices[size_t(row)];
    const int64_t length = examples.tokens.length(example);
    REQUIRE(length <= width);
    REQUIRE(labels[size_t(row)] == examples.labels[example]);
    for (int64_t n = 0; n < width; ++n) {
      const size_t at = size_t(row * width + n);
      if (n < length) {
        REQUIRE(tokens[at] == token_value(example, n));
        REQUIRE(mask[at] == false);
      } else {
        REQUIRE(tokens[at] == 0);
        REQUIRE(mask[at] == true);
      }
    }
    real += length;
  }
  REQUIRE(batch.real_tokens == real);
}

// Padded positions in a batch (both documents).
int64_t padding_of(const Batch& batch) {
  int64_t slots = batch.tokens.numel() + (batch.tokens2.defined() ? batch.tokens2.numel() : 0);
  return slots - batch.real_tokens;
}

}  // namespace

TEST_CASE("Batcher pads right with exact masks, labels and indices", "[data][batching]") {
  const ClassificationExamples examples = make_examples({3, 1, 5, 2, 4});
  for (const bool prefetch : {false, true}) {
    INFO("prefetch " << prefetch);
    Batcher batcher(examples, options_with(2, /*shuffle=*/false, prefetch));
    REQUIRE(batcher.batches_per_epoch() == 3);
    REQUIRE(batcher.cursor() == BatchCursor{0, 0});

    const Batch first = batcher.next();
    REQUIRE(first.indices == std::vector<size_t>{0, 1});
    REQUIRE(first.tokens.sizes() == Dims{2, 3});  // the longest in the batch, not in the set
    REQUIRE(values<int64_t>(first.tokens) ==
            std::vector<int64_t>{token_value(0, 0), token_value(0, 1), token_value(0, 2), token_value(1, 0), 0, 0});
    REQUIRE(values<bool>(first.padding_mask) == std::vector<bool>{false, false, false, false, true, true});
    REQUIRE(values<int64_t>(first.labels) == std::vector<int64_t>{0, 1});
    REQUIRE(first.real_tokens == 4);
    REQUIRE_FALSE(first.tokens2.defined());
    REQUIRE_FALSE(first.padding_mask2.defined());
    REQUIRE(batcher.cursor() == BatchCursor{0, 1});

    const Batch second = batcher.next();
    REQUIRE(second.indices == std::vector<size_t>{2, 3});
    REQUIRE(second.tokens.sizes() == Dims{2, 5});
    require_rows_match(second, examples);

    const Batch last = batcher.next();  // the short final batch is kept without drop_last
    REQUIRE(last.indices == std::vector<size_t>{4});
    REQUIRE(last.tokens.sizes() == Dims{1, 4});
    REQUIRE(last.real_tokens == 4);
    require_rows_match(last, examples);
    REQUIRE(batcher.cursor() == BatchCursor{1, 0});

    const Batch again = batcher.next();  // endless: epoch 1 starts over (no shuffle: same order)
    REQUIRE(again.epoch == 1);
    REQUIRE(again.batch == 0);
    REQUIRE(again.indices == first.indices);
  }
}

TEST_CASE("Batcher visits every example exactly once per epoch", "[data][batching]") {
  const ClassificationExamples examples = make_examples(random_lengths(103, 1, 40));
  const int64_t batch_size = 10;
  for (const bool shuffle : {false, true})
    for (const bool drop_last : {false, true})
      for (const bool bucket : {false, true}) {
        INFO("shuffle " << shuffle << " drop_last " << drop_last << " bucket_by_length " << bucket);
        BatchOptions options = options_with(batch_size, shuffle, /*prefetch=*/true);
        options.drop_last = drop_last;
        options.bucket_by_length = bucket;
        options.seed = 11;
        Batcher batcher(examples, options);
        REQUIRE(batcher.batches_per_epoch() == (drop_last ? 10 : 11));
        for (int64_t epoch = 0; epoch < 3; ++epoch) {
          std::vector<int> seen(examples.size(), 0);
          int64_t short_batches = 0;
          for (int64_t b = 0; b < batcher.batches_per_epoch(); ++b) {
            const Batch batch = batcher.next();
            REQUIRE(batch.epoch == epoch);
            REQUIRE(batch.batch == b);
            if (batch.size() != batch_size) ++short_batches;
            for (size_t example : batch.indices) ++seen[example];
            require_rows_match(batch, examples);
          }
          REQUIRE(short_batches == (drop_last ? 0 : 1));
          const int64_t visited = std::count(seen.begin(), seen.end(), 1);
          REQUIRE(std::count_if(seen.begin(), seen.end(), [](int n) { return n > 1; }) == 0);
          REQUIRE(visited == (drop_last ? 100 : 103));
        }
      }
}

TEST_CASE("Batcher shuffles per epoch and seed, reproducibly", "[data][batching]") {
  const ClassificationExamples examples = make_examples(random_lengths(64, 1, 8));
  const auto epoch_order = [&](uint64_t seed, int64_t epoch, bool shuffle) {
    BatchOptions options = options_with(8, shuffle, /*prefetch=*/false);
    options.seed = seed;
    Batcher batcher(examples, options);
    batcher.seek({epoch, 0});
    std::vector<size_t> order;
    for (int64_t b = 0; b < batcher.batches_per_epoch(); ++b) {
      const Batch batch = batcher.next();
      order.insert(order.end(), batch.indices.begin(), batch.indices.end());
    }
    return order;
  };
  std::vector<size_t> identity(64);
  for (size_t i = 0; i < identity.size(); ++i) identity[i] = i;

  const std::vector<size_t> seed3_epoch0 = epoch_order(3, 0, true);
  REQUIRE(seed3_epoch0 != identity);
  REQUIRE(epoch_order(3, 0, true) == seed3_epoch0);  // reproducible
  REQUIRE(epoch_order(3, 1, true) != seed3_epoch0);  // a new permutation each epoch
  REQUIRE(epoch_order(4, 0, true) != seed3_epoch0);  // and each seed
  REQUIRE(epoch_order(3, 0, false) == identity);     // no shuffle: dataset order every epoch
  REQUIRE(epoch_order(3, 5, false) == identity);
}

TEST_CASE("Length bucketing cuts padding and still shuffles the batch order", "[data][batching]") {
  const ClassificationExamples examples = make_examples(random_lengths(2000, 1, 300));
  const auto epoch_padding = [&](bool bucket, std::vector<int64_t>* widths) {
    BatchOptions options = options_with(8, /*shuffle=*/true, /*prefetch=*/true);
    options.bucket_by_length = bucket;
    options.seed = 5;
    Batcher batcher(examples, options);
    int64_t padding = 0;
    for (int64_t b = 0; b < batcher.batches_per_epoch(); ++b) {
      const Batch batch = batcher.next();
      padding += padding_of(batch);
      if (widths) widths->push_back(batch.tokens.size(1));
    }
    return padding;
  };
  std::vector<int64_t> bucketed_widths;
  const int64_t plain = epoch_padding(false, nullptr);
  const int64_t bucketed = epoch_padding(true, &bucketed_widths);
  INFO("padding without bucketing " << plain << ", with " << bucketed);
  // Uniform lengths in [1, 300] in batches of 8 waste about 40% of the slots; sorting windows of
  // 400 leaves about 300/400 of a length step per row.
  REQUIRE(bucketed * 10 < plain);
  // The batch order is shuffled: the widths rise and fall throughout the epoch, not only at the
  // 4 boundaries between the 5 sorted windows.
  int64_t falls = 0;
  for (size_t b = 1; b < bucketed_widths.size(); ++b) falls += bucketed_widths[b] < bucketed_widths[b - 1];
  INFO("width decreases between consecutive batches: " << falls << " of " << bucketed_widths.size());
  REQUIRE(falls * 4 > int64_t(bucketed_widths.size()));
}

TEST_CASE("seek() continues bit-exactly as if never interrupted", "[data][batching]") {
  const ClassificationExamples examples = make_examples(random_lengths(57, 1, 30));
  for (const bool prefetch : {false, true})
    for (const bool bucket : {false, true}) {
      INFO("prefetch " << prefetch << " bucket_by_length " << bucket);
      BatchOptions options = options_with(4, /*shuffle=*/true, prefetch);
      options.bucket_by_length = bucket;
      options.seed = 99;
      // With prefetch, waiting until the worker has built a batch that a seek() then makes stale
      // exercises the path where next() must drop it (whatever the thread timing, the batches
      // must come out the same; the wait only makes the stale case likely).
      std::atomic<int64_t> built{0};
      options.prepare = [&built](Batch&) { ++built; };
      const auto let_worker_finish = [&](int64_t builds) {
        if (!prefetch) return;
        while (built.load() < builds) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      };
      const int64_t total = 40;  // crosses two epoch boundaries (15 batches per epoch)

      std::vector<Batch> uninterrupted;
      {
        Batcher batcher(examples, options);
        REQUIRE(batcher.batches_per_epoch() == 15);
        for (int64_t i = 0; i < total; ++i) uninterrupted.push_back(batcher.next());
      }
      // A run that stops after 13 batches and a fresh Batcher that resumes from its cursor.
      BatchCursor saved;
      {
        Batcher first_run(examples, options);
        for (int64_t i = 0; i < 13; ++i) require_same_batch(first_run.next(), uninterrupted[size_t(i)]);
        saved = first_run.cursor();
      }  // destroyed with a prefetched batch still pending
      REQUIRE(saved == BatchCursor{0, 13});
      built = 0;
      Batcher resumed(examples, options);
      let_worker_finish(1);  // batch (0, 0), which the seek below makes stale
      resumed.seek(saved);
      for (int64_t i = 13; i < total; ++i) require_same_batch(resumed.next(), uninterrupted[size_t(i)]);
      REQUIRE(resumed.cursor() == BatchCursor{2, 10});

      // Seeking back and forth on one Batcher (a prefetch may be in flight for the old position).
      let_worker_finish(1 + 1 + (total - 13));  // (0,0), (0,13), then one prefetch per next()
      resumed.seek({0, 2});
      require_same_batch(resumed.next(), uninterrupted[2]);
      let_worker_finish(1 + 1 + (total - 13) + 2);
      resumed.seek({1, 14});
      require_same_batch(resumed.next(), uninterrupted[29]);
      require_same_batch(resumed.next(), uninterrupted[30]);
      resumed.seek({0, 0});
      resumed.seek({2, 0});  // two seeks before the next batch
      require_same_batch(resumed.next(), uninterrupted[30]);
      REQUIRE(resumed.batch_indices({2, 1}) == uninterrupted[31].indices);
    }

  // The prefetch thread changes when a batch is built, never what it holds.
  BatchOptions with_thread = options_with(4, /*shuffle=*/true, /*prefetch=*/true);
  with_thread.bucket_by_length = true;
  BatchOptions without_thread = with_thread;
  without_thread.prefetch = false;
  Batcher threaded(examples, with_thread), inline_batcher(examples, without_thread);
  for (int i = 0; i < 20; ++i) require_same_batch(threaded.next(), inline_batcher.next());
}

TEST_CASE("Pair examples fill tokens2 and padding_mask2", "[data][batching]") {
  PairExamples pairs;
  pairs.num_classes = 2;
  pairs.source = "pairs.tsv";
  const std::vector<int64_t> lengths1{2, 4, 1}, lengths2{5, 1, 3};
  for (size_t i = 0; i < 3; ++i) {
    std::vector<int32_t> a, b;
    for (int64_t n = 0; n < lengths1[i]; ++n) a.push_back(token_value(i, n));
    for (int64_t n = 0; n < lengths2[i]; ++n) b.push_back(token_value(i + 100, n));
    pairs.tokens1.push_back(a);
    pairs.tokens2.push_back(b);
    pairs.labels.push_back(int64_t(i % 2));
  }
  for (const bool prefetch : {false, true}) {
    Batcher batcher(pairs, options_with(2, /*shuffle=*/false, prefetch));
    REQUIRE(batcher.is_pair());
    const Batch batch = batcher.next();
    REQUIRE(batch.indices == std::vector<size_t>{0, 1});
    REQUIRE(batch.tokens.sizes() == Dims{2, 4});
    REQUIRE(batch.tokens2.sizes() == Dims{2, 5});  // each document padded to its own longest
    REQUIRE(values<int64_t>(batch.tokens) == std::vector<int64_t>{token_value(0, 0), token_value(0, 1), 0, 0,
                                                                  token_value(1, 0), token_value(1, 1),
                                                                  token_value(1, 2), token_value(1, 3)});
    REQUIRE(values<int64_t>(batch.tokens2) ==
            std::vector<int64_t>{token_value(100, 0), token_value(100, 1), token_value(100, 2), token_value(100, 3),
                                 token_value(100, 4), token_value(101, 0), 0, 0, 0, 0});
    REQUIRE(values<bool>(batch.padding_mask) ==
            std::vector<bool>{false, false, true, true, false, false, false, false});
    REQUIRE(values<bool>(batch.padding_mask2) ==
            std::vector<bool>{false, false, false, false, false, false, true, true, true, true});
    REQUIRE(values<int64_t>(batch.labels) == std::vector<int64_t>{0, 1});
    REQUIRE(batch.real_tokens == 2 + 4 + 5 + 1);
  }
  BatchOptions fixed = options_with(2, false, true);
  fixed.pad_to = 6;
  Batcher padded(pairs, fixed);
  const Batch batch = padded.next();
  REQUIRE(batch.tokens.sizes() == Dims{2, 6});
  REQUIRE(batch.tokens2.sizes() == Dims{2, 6});
  REQUIRE(padding_of(batch) == 24 - 12);

  fixed.pad_to = 4;  // document 2 of example 0 has 5 tokens
  require_error([&] { Batcher batcher(pairs, fixed); },
                {"pad_to 4", "document 2 of example 0", "(length 5)", "pairs.tsv"});
}

TEST_CASE("pad_to fixes the width and rejects longer sequences", "[data][batching]") {
  const ClassificationExamples examples = make_examples({3, 1, 7, 2});
  BatchOptions options = options_with(3, /*shuffle=*/false, /*prefetch=*/true);
  options.pad_to = 8;
  Batcher batcher(examples, options);
  const Batch first = batcher.next();
  REQUIRE(first.tokens.sizes() == Dims{3, 8});
  require_rows_match(first, examples);
  const Batch second = batcher.next();
  REQUIRE(second.tokens.sizes() == Dims{1, 8});
  require_rows_match(second, examples);

  options.pad_to = 5;
  require_error([&] { Batcher rejected(examples, options); },
                {"pad_to 5 is shorter than example 2", "(length 7)", "synthetic", "pad_to >= 7"});
  options.pad_to = -1;
  require_error([&] { Batcher rejected(examples, options); }, {"pad_to must be", "got -1"});
}

TEST_CASE("Batcher rejects bad options and cursors with the offending values", "[data][batching]") {
  const ClassificationExamples examples = make_examples({2, 3, 4});
  require_error([&] { Batcher b(examples, options_with(0, true, true)); }, {"batch_size must be positive, got 0"});
  require_error([&] { Batcher b(examples, options_with(-3, true, false)); }, {"batch_size must be positive, got -3"});

  ClassificationExamples empty;
  empty.source = "nothing.tsv";
  require_error([&] { Batcher b(empty, BatchOptions{}); }, {"no examples", "nothing.tsv"});

  ClassificationExamples mismatched = make_examples({2, 3});
  mismatched.labels.push_back(1);
  require_error([&] { Batcher b(mismatched, BatchOptions{}); }, {"3 labels but 2 token sequences"});

  BatchOptions dropping = options_with(4, true, true);
  dropping.drop_last = true;
  require_error([&] { Batcher b(examples, dropping); }, {"drop_last with batch_size 4", "only 3 examples"});

  Batcher batcher(examples, options_with(2, true, true));
  require_error([&] { batcher.seek({0, 2}); }, {"cursor (epoch 0, batch 2)", "[0, 2)"});
  require_error([&] { batcher.seek({-1, 0}); }, {"cursor (epoch -1, batch 0)"});
  REQUIRE(batcher.cursor() == BatchCursor{0, 0});  // a rejected seek moves nothing
}

TEST_CASE("An error while building a batch surfaces from next() and leaves the cursor", "[data][batching]") {
  const ClassificationExamples examples = make_examples(random_lengths(20, 1, 10));
  for (const bool prefetch : {false, true}) {
    INFO("prefetch " << prefetch);
    BatchOptions options = options_with(4, /*shuffle=*/true, prefetch);
    std::atomic<int64_t> prepared{0};  // bumped on the building thread
    options.prepare = [&prepared](Batch& batch) {
      ++prepared;
      LUNA_CHECK(!(batch.epoch == 0 && batch.batch == 2), "prepare failed on batch ", batch.batch);
    };
    Batcher batcher(examples, options);
    batcher.next();
    batcher.next();
    require_error([&] { batcher.next(); }, {"prepare failed on batch 2"});
    REQUIRE(batcher.cursor() == BatchCursor{0, 2});
    require_error([&] { batcher.next(); }, {"prepare failed on batch 2"});  // deterministic: fails again
    batcher.seek({0, 3});
    const Batch after = batcher.next();  // the Batcher is still usable past the bad batch
    REQUIRE(after.batch == 3);
    REQUIRE(prepared >= 5);
  }  // destructors join a worker that may be building batch 4
}
