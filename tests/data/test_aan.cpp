// Retrieval (AAN) reader: five columns, float labels, byte tokens with the 10,000-byte cut and the
// 4000-token truncation, errors with file and line, skip mode.
#include "data/data_test_util.h"

#include <luna/data/aan.h>
#include <luna/data/tokenizers.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;
using luna::testing::to_vector;

TEST_CASE("AAN TSV: labels, ids and byte tokens of both texts", "[data][aan]") {
  TempDir dir;
  const std::string path = dir.write("new_aan_pairs.train.tsv",
                                     "1.0\tP01-1001\tJ99-2002\tab\tc\n"
                                     "0\tA\tB\t\xc3\xa9\t\"q\"\n"
                                     "0.0\tC\tD\tx y\tz\r\n"
                                     "1\tE\tF\t\t-\n");
  const PairExamples examples = read_aan(path, Split::train);
  REQUIRE(examples.size() == 4);
  REQUIRE(examples.labels == std::vector<int64_t>{1, 0, 0, 1});
  REQUIRE(examples.ids1 == std::vector<std::string>{"P01-1001", "A", "C", "E"});
  REQUIRE(examples.ids2 == std::vector<std::string>{"J99-2002", "B", "D", "F"});
  REQUIRE(to_vector(examples.tokens1[0]) == std::vector<int32_t>{'a' + 1, 'b' + 1});
  REQUIRE(to_vector(examples.tokens2[0]) == std::vector<int32_t>{'c' + 1});
  REQUIRE(to_vector(examples.tokens1[1]) == std::vector<int32_t>{0xc3 + 1, 0xa9 + 1});  // UTF-8 bytes of é
  REQUIRE(to_vector(examples.tokens2[1]) == std::vector<int32_t>{'"' + 1, 'q' + 1, '"' + 1});  // no quote handling
  REQUIRE(to_vector(examples.tokens1[2]) == std::vector<int32_t>{'x' + 1, ' ' + 1, 'y' + 1});
  REQUIRE(to_vector(examples.tokens2[2]) == std::vector<int32_t>{'z' + 1});  // the \r belongs to the line end
  REQUIRE(examples.tokens1[3].empty());
  REQUIRE(examples.num_classes == 2);
  REQUIRE(examples.vocabulary.vocab_size == 258);
  REQUIRE(examples.max_len == 4000);
  REQUIRE(examples.label_histogram() == std::vector<int64_t>{2, 2});

  dir.write("new_aan_pairs.eval.tsv", "1\ta\tb\tt\tu\n");
  const PairExamples dev = read_aan_split(dir.str(), Split::dev);
  REQUIRE(dev.size() == 1);
  REQUIRE(dev.split == Split::dev);
  REQUIRE(aan_file_name(Split::test) == "new_aan_pairs.test.tsv");
}

TEST_CASE("AAN: texts cut to 10,000 bytes, then to max_len tokens, CLS first", "[data][aan]") {
  const std::string long_text(12000, 'k');
  const std::string tsv = "1\ta\tb\t" + long_text + "\tshort\n";
  const PairExamples by_default = parse_aan(tsv, "mem");
  REQUIRE(by_default.tokens1.length(0) == 4000);
  REQUIRE(by_default.tokens2.length(0) == 5);
  REQUIRE(by_default.report.truncated == 1);

  ReadOptions options;
  options.max_len = 20000;
  const PairExamples long_max = parse_aan(tsv, "mem", Split::train, options);
  REQUIRE(long_max.tokens1.length(0) == 10000);  // the byte cut comes before the token limit
  REQUIRE(long_max.report.truncated == 0);

  options.max_len = 3;
  options.add_cls = true;
  const PairExamples cls = parse_aan(tsv, "mem", Split::train, options);
  REQUIRE(to_vector(cls.tokens1[0]) == std::vector<int32_t>{kByteClsId, 'k' + 1, 'k' + 1});
  REQUIRE(to_vector(cls.tokens2[0]) == std::vector<int32_t>{kByteClsId, 's' + 1, 'h' + 1});
  REQUIRE(cls.report.truncated == 2);
}

TEST_CASE("AAN: every bad record names the file, the line and the value", "[data][aan]") {
  TempDir dir;
  const std::string file = (dir.path() / "pairs.tsv").string();
  auto read_rows = [&](const std::string& rows) {
    dir.write("pairs.tsv", "1\ta\tb\tt\tu\n" + rows);
    return read_aan(file);
  };
  require_error([&] { read_rows("1\ta\tb\tt\n"); }, {"aan: ", file + " line 2:", "expected 5 tab-separated columns", "got 4"});
  require_error([&] { read_rows("1\ta\tb\tt\tu\tv\n"); }, {file + " line 2:", "got 6"});
  require_error([&] { read_rows("yes\ta\tb\tt\tu\n"); }, {file + " line 2:", "label \"yes\" is not a number"});
  require_error([&] { read_rows("2\ta\tb\tt\tu\n"); }, {file + " line 2:", "label \"2\" is not 0 or 1"});
  require_error([&] { read_rows("0.5\ta\tb\tt\tu\n"); }, {file + " line 2:", "label \"0.5\" is not 0 or 1"});
  require_error([&] { read_rows("1.0x\ta\tb\tt\tu\n"); }, {file + " line 2:", "label \"1.0x\" is not a number"});
  const std::string missing = (dir.path() / "absent.tsv").string();
  require_error([&] { read_aan(missing); }, {"aan: cannot read '" + missing + "'", "No such file"});
}

TEST_CASE("AAN: skip_bad_records skips and counts", "[data][aan]") {
  const std::string tsv =
      "1\ta\tb\tt\tu\n"
      "nan\ta\tb\tt\tu\n"
      "1\ta\tb\n"
      "0\tc\td\tv\tw\n";
  ReadOptions options;
  options.skip_bad_records = true;
  const PairExamples examples = parse_aan(tsv, "mem.tsv", Split::test, options);
  REQUIRE(examples.labels == std::vector<int64_t>{1, 0});
  REQUIRE(examples.ids1 == std::vector<std::string>{"a", "c"});
  REQUIRE(examples.tokens1.size() == 2);
  REQUIRE(examples.tokens2.size() == 2);
  REQUIRE(examples.report.records == 4);
  REQUIRE(examples.report.skipped_bad == 2);
  REQUIRE(examples.report.first_errors.at(0).find("mem.tsv line 2: label \"nan\" is not 0 or 1") != std::string::npos);
  REQUIRE(examples.report.first_errors.at(1).find("mem.tsv line 3: expected 5") != std::string::npos);
}
