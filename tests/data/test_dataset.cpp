// The shared reader types: packed token sequences, selection, split names, report summary.
#include "data/data_test_util.h"

#include <luna/data/dataset.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::to_vector;

TEST_CASE("TokenSequences pack sequences back to back", "[data]") {
  TokenSequences sequences;
  REQUIRE(sequences.empty());
  const std::vector<int32_t> a{1, 2, 3}, b{}, c{9};
  sequences.push_back(a);
  sequences.push_back(b);
  sequences.push_back(c);
  REQUIRE(sequences.size() == 3);
  REQUIRE(to_vector(sequences[0]) == a);
  REQUIRE(sequences[1].empty());
  REQUIRE(to_vector(sequences[2]) == c);
  REQUIRE(sequences.offsets() == std::vector<int64_t>{0, 3, 3, 4});
  REQUIRE(sequences.ids() == std::vector<int32_t>{1, 2, 3, 9});
  REQUIRE(sequences.max_length() == 3);
  REQUIRE(sequences.total_tokens() == 4);
  require_error([&] { sequences[3]; }, {"index 3 out of range for 3 sequences"});

  const std::vector<size_t> order{2, 0};
  const TokenSequences picked = sequences.select(order);
  REQUIRE(picked.size() == 2);
  REQUIRE(to_vector(picked[0]) == c);
  REQUIRE(to_vector(picked[1]) == a);
}

TEST_CASE("ClassificationExamples select, histogram; split names", "[data]") {
  ClassificationExamples examples;
  examples.num_classes = 3;
  for (int i = 0; i < 4; ++i) {
    const std::vector<int32_t> tokens(size_t(i + 1), i + 1);
    examples.tokens.push_back(tokens);
    examples.labels.push_back(i % 3);
  }
  examples.source = "somewhere";
  REQUIRE(examples.label_histogram() == std::vector<int64_t>{2, 1, 1});
  const std::vector<size_t> keep{3, 1};
  const ClassificationExamples picked = examples.select(keep);
  REQUIRE(picked.labels == std::vector<int64_t>{0, 1});
  REQUIRE(to_vector(picked.tokens[0]) == std::vector<int32_t>{4, 4, 4, 4});
  REQUIRE(picked.source == "somewhere");
  examples.labels[0] = 5;
  require_error([&] { examples.label_histogram(); }, {"label 5 outside [0, 3)"});

  REQUIRE(parse_split("val") == Split::dev);
  REQUIRE(parse_split("eval") == Split::dev);
  REQUIRE(std::string(split_name(parse_split("test"))) == "test");
  require_error([] { parse_split("training"); }, {"unknown split \"training\""});

  ReadReport report;
  report.records = 10;
  report.skipped_bad = 2;
  report.skipped_empty = 1;
  REQUIRE(report.summary() == "10 records, 2 skipped (bad), 1 skipped (empty), 0 truncated to max_len");
}
