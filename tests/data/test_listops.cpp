// ListOps reader and tokeniser: the spec's rewriting, the vocabulary, header/CRLF handling,
// truncation and CLS, every bad-record error with file and line, skip mode and its count.
#include "data/data_test_util.h"

#include <luna/data/listops.h>
#include <luna/data/tokenizers.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;
using luna::testing::to_vector;

TEST_CASE("ListOps tokeniser follows the spec's rewriting and vocabulary", "[data][listops]") {
  std::vector<int32_t> ids;
  tokenize_listops("( ( ( ( [MAX 2 ) 9 ) 4 ) ] )", ids);
  // [MAX 2 9 4 X
  REQUIRE(ids == std::vector<int32_t>{14, 5, 12, 7, 17});
  std::vector<std::string> symbols;
  for (int32_t id : ids) symbols.emplace_back(listops_symbol(id));
  REQUIRE(symbols == std::vector<std::string>{"[MAX", "2", "9", "4", "X"});

  ids.clear();
  tokenize_listops("( ( [MIN 0 ) ( ( [SM 1 ) ( [MED 8 ) ] ) ] )", ids);
  REQUIRE(ids == std::vector<int32_t>{13, 3, 16, 4, 15, 11, 17, 17});

  // All 15 symbols map to distinct ids in 3..17; the specials sit below.
  const Vocabulary vocabulary = listops_vocabulary();
  REQUIRE(vocabulary.vocab_size == 18);
  REQUIRE(vocabulary.pad_id == 0);
  REQUIRE(vocabulary.cls_id == 2);
  REQUIRE(listops_symbol(0) == "<pad>");
  for (int32_t id = 3; id < 18; ++id) REQUIRE(listops_symbol_id(listops_symbol(id)) == id);
  REQUIRE(listops_symbol_id("[FOO") == -1);
  REQUIRE(listops_symbol_id("10") == -1);
  require_error([] { listops_symbol(18); }, {"id 18", "outside the vocabulary"});

  ids.clear();
  require_error([&] { tokenize_listops("( [MAX 2 ) 7x ] )", ids); }, {"unknown ListOps token \"7x\"", "symbol 2"});
}

TEST_CASE("ListOps TSV: header, rows, CRLF, labels and token ids", "[data][listops]") {
  TempDir dir;
  const std::string path = dir.write("basic_train.tsv",
                                     "Source\tTarget\n"
                                     "( ( ( ( [MAX 2 ) 9 ) 4 ) ] )\t9\r\n"
                                     "( ( [SM 3 ) 8 ] )\t1\n"
                                     "7\t7\n");
  const ClassificationExamples examples = read_listops(path, Split::train);
  REQUIRE(examples.size() == 3);
  REQUIRE(examples.labels == std::vector<int64_t>{9, 1, 7});
  REQUIRE(to_vector(examples.tokens[0]) == std::vector<int32_t>{14, 5, 12, 7, 17});
  REQUIRE(to_vector(examples.tokens[1]) == std::vector<int32_t>{16, 6, 11, 17});
  REQUIRE(to_vector(examples.tokens[2]) == std::vector<int32_t>{10});
  REQUIRE(examples.num_classes == 10);
  REQUIRE(examples.vocabulary.vocab_size == 18);
  REQUIRE(examples.max_len == kListOpsMaxLen);
  REQUIRE(examples.split == Split::train);
  REQUIRE(examples.source == path);
  REQUIRE(examples.report.records == 3);
  REQUIRE(examples.report.skipped_bad == 0);
  REQUIRE(examples.report.truncated == 0);
  REQUIRE(examples.label_histogram() == std::vector<int64_t>{0, 1, 0, 0, 0, 0, 0, 1, 0, 1});

  // The header is optional (generated files may omit it) and the split picks the release's file name.
  dir.write("basic_val.tsv", "( ( [MIN 4 ) 2 ] )\t2\n");
  const ClassificationExamples dev = read_listops_split(dir.str(), Split::dev);
  REQUIRE(dev.size() == 1);
  REQUIRE(dev.labels[0] == 2);
  REQUIRE(dev.split == Split::dev);
  REQUIRE(listops_file_name(Split::test) == "basic_test.tsv");
}

TEST_CASE("ListOps: CLS, truncation to max_len and max_examples", "[data][listops]") {
  const std::string tsv = "( ( ( ( [MAX 2 ) 9 ) 4 ) ] )\t9\n( ( [SM 3 ) 8 ] )\t1\n";
  ReadOptions options;
  options.add_cls = true;
  options.max_len = 4;
  const ClassificationExamples examples = parse_listops(tsv, "mem.tsv", Split::test, options);
  REQUIRE(examples.max_len == 4);
  REQUIRE(to_vector(examples.tokens[0]) == std::vector<int32_t>{2, 14, 5, 12});  // CLS + first 3, cut
  REQUIRE(to_vector(examples.tokens[1]) == std::vector<int32_t>{2, 16, 6, 11});  // exactly 4 after CLS: cut too
  REQUIRE(examples.report.truncated == 2);

  options = {};
  options.max_examples = 1;
  const ClassificationExamples first = parse_listops(tsv, "mem.tsv", Split::test, options);
  REQUIRE(first.size() == 1);
  REQUIRE(first.labels[0] == 9);

  options = {};
  options.max_len = -1;
  require_error([&] { parse_listops(tsv, "mem.tsv", Split::test, options); }, {"max_len must be >= 0", "-1"});
}

TEST_CASE("ListOps: every bad record names the file, the line and the value", "[data][listops]") {
  TempDir dir;
  auto read_rows = [&](const std::string& rows) {
    const std::string path = dir.write("basic_test.tsv", "Source\tTarget\n( ( [MAX 1 ) 2 ] )\t2\n" + rows);
    return read_listops(path, Split::test);
  };
  const std::string file = (dir.path() / "basic_test.tsv").string();
  require_error([&] { read_rows("( ( [MAX 1 ) 2 ] )\t2\textra\n"); },
                {"listops: ", file, " line 3:", "expected 2 tab-separated columns", "got 3"});
  require_error([&] { read_rows("( ( [MAX 1 ) 2 ] ) 2\n"); }, {file + " line 3:", "got 1", "no tab"});
  require_error([&] { read_rows("( ( [MAX 1 ) 2 ] )\tabc\n"); }, {file + " line 3:", "label \"abc\" is not an integer"});
  require_error([&] { read_rows("( ( [MAX 1 ) 2 ] )\t\n"); }, {file + " line 3:", "label \"\" is not an integer"});
  require_error([&] { read_rows("( ( [MAX 1 ) 2 ] )\t12\n"); }, {file + " line 3:", "label 12 is outside 0-9"});
  require_error([&] { read_rows("( ( [MAX 1 ) 2 ] )\t-1\n"); }, {file + " line 3:", "label -1 is outside 0-9"});
  require_error([&] { read_rows("( ( [FOO 1 ) 2 ] )\t3\n"); },
                {file + " line 3:", "unknown ListOps token \"[FOO\""});
  require_error([&] { read_rows("( )\t3\n"); }, {file + " line 3:", "has no symbols"});
  require_error([&] { read_rows("\n( ( [MAX 1 ) 2 ] )\t2\n"); }, {file + " line 3:", "got 1"});
  const std::string missing = (dir.path() / "nope" / "basic_train.tsv").string();
  require_error([&] { read_listops(missing); }, {"listops: cannot read '" + missing + "'", "No such file"});
  require_error([&] { read_listops_split((dir.path() / "nope").string(), Split::train); }, {missing});
}

TEST_CASE("ListOps: skip_bad_records skips and counts, keeping the good rows", "[data][listops]") {
  const std::string tsv =
      "Source\tTarget\n"
      "( ( [MAX 1 ) 2 ] )\t2\n"
      "( ( [MAX 1 ) 2 ] )\tx\n"      // line 3: non-numeric label
      "( ( [BAD 1 ) 2 ] )\t2\n"      // line 4: unknown token
      "( ( [MIN 5 ) 6 ] )\t5\n"
      "only one column\n";           // line 6
  ReadOptions options;
  options.skip_bad_records = true;
  const ClassificationExamples examples = parse_listops(tsv, "data.tsv", Split::train, options);
  REQUIRE(examples.labels == std::vector<int64_t>{2, 5});
  REQUIRE(to_vector(examples.tokens[1]) == std::vector<int32_t>{13, 8, 9, 17});
  REQUIRE(examples.report.records == 5);
  REQUIRE(examples.report.skipped_bad == 3);
  REQUIRE(examples.report.first_errors.size() == 3);
  REQUIRE(examples.report.first_errors[0].find("data.tsv line 3") != std::string::npos);
  REQUIRE(examples.report.first_errors[1].find("data.tsv line 4") != std::string::npos);
  REQUIRE(examples.report.first_errors[2].find("data.tsv line 6") != std::string::npos);
  REQUIRE(examples.report.summary().find("3 skipped (bad)") != std::string::npos);
  // Without skipping, the first bad line stops the read.
  require_error([&] { parse_listops(tsv, "data.tsv"); }, {"data.tsv line 3"});
}
