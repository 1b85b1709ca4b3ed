// ListOps generator (data/listops_generator.h, data/listops_eval.h): value semantics on
// hand-written expressions (MED truncation, SM), the official spelling, the generator's limits and
// label skew, files re-read both by a minimal parser here and by the reader (data/listops.h), and
// byte-identical output for a seed.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <luna/core/error.h>
#include <luna/data/listops.h>
#include <luna/data/listops_generator.h>

using namespace luna::data;

namespace {

class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "luna-listops-gen-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Trees as strings for std::set (GCC 12 warns falsely on vector<uint8_t>'s operator<=>).
std::string key(const ListOpsTree& tree) { return std::string(tree.begin(), tree.end()); }

int value_of(const std::string& source) { return listops_tree_value(parse_listops_source(source)); }

template <class F>
void require_error(F&& f, const std::string& piece) {
  try {
    f();
    FAIL("expected an error mentioning \"" << piece << "\"");
  } catch (const luna::Error& e) {
    INFO(e.what());
    REQUIRE(std::string(e.what()).find(piece) != std::string::npos);
  }
}

int tree_depth(const ListOpsTree& tree) {
  int depth = 0, deepest = 0;
  for (const uint8_t s : tree) {
    if (s >= kListOpsMin && s <= kListOpsSumMod) deepest = std::max(deepest, ++depth);
    if (s == kListOpsEnd) --depth;
  }
  return std::max(deepest, 1);
}

}  // namespace

TEST_CASE("listops values follow the original semantics", "[listops_generator]") {
  // The spec's example, spelled officially.
  REQUIRE(value_of("( ( ( ( [MAX 2 ) 9 ) 4 ) ] )") == 9);
  REQUIRE(value_of("( ( ( ( [MIN 2 ) 9 ) 4 ) ] )") == 2);
  // MED = int(numpy.median): odd counts take the middle, even counts truncate the mean of the two.
  REQUIRE(value_of("( ( ( ( [MED 2 ) 9 ) 4 ) ] )") == 4);
  REQUIRE(value_of("( ( ( [MED 1 ) 2 ) ] )") == 1);            // 1.5 -> 1
  REQUIRE(value_of("( ( ( [MED 8 ) 3 ) ] )") == 5);            // 5.5 -> 5
  REQUIRE(value_of("( ( ( ( ( [MED 4 ) 1 ) 3 ) 2 ) ] )") == 2);  // 2.5 -> 2
  REQUIRE(value_of("( ( ( [MED 9 ) 8 ) ] )") == 8);            // 8.5 -> 8, never rounded up
  REQUIRE(value_of("( ( ( [MED 6 ) 6 ) ] )") == 6);
  // SM = sum mod 10.
  REQUIRE(value_of("( ( ( ( [SM 5 ) 7 ) 9 ) ] )") == 1);  // 21
  REQUIRE(value_of("( ( ( [SM 0 ) 0 ) ] )") == 0);
  REQUIRE(value_of("( ( ( [SM 9 ) 1 ) ] )") == 0);        // 10
  // Nested: [MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ] -> max(4, 3, 2, 1, 0, 5) = 5.
  const ListOpsTree nested = {kListOpsMax, 4, 3, kListOpsMin, 2, 3, kListOpsEnd, 1, 0,
                              kListOpsMed, 1, 5, 8, 9, 2, kListOpsEnd, kListOpsEnd};
  REQUIRE(listops_tree_value(nested) == 5);
  // [SM [MED 1 2 ] [MED 7 8 9 4 ] 9 ] -> (1 + 7 + 9) mod 10 = 7 (MED 7 8 9 4 = int(7.5) = 7).
  const ListOpsTree sums = {kListOpsSumMod, kListOpsMed, 1, 2, kListOpsEnd, kListOpsMed, 7, 8, 9, 4, kListOpsEnd, 9,
                            kListOpsEnd};
  REQUIRE(listops_tree_value(sums) == 7);
  REQUIRE(listops_tree_value({7}) == 7);  // a bare digit is a tree too
}

TEST_CASE("listops official spelling round-trips", "[listops_generator]") {
  const ListOpsTree max_tree = {kListOpsMax, 2, 9, 4, kListOpsEnd};
  REQUIRE(listops_tree_to_source(max_tree) == "( ( ( ( [MAX 2 ) 9 ) 4 ) ] )");
  // An argument that is itself an expression is followed by " )" like a digit.
  const ListOpsTree nested = {kListOpsMin, 3, kListOpsMax, 1, 2, kListOpsEnd, kListOpsEnd};
  REQUIRE(listops_tree_to_source(nested) == "( ( ( [MIN 3 ) ( ( ( [MAX 1 ) 2 ) ] ) ) ] )");
  REQUIRE(parse_listops_source(listops_tree_to_source(nested)) == nested);
  // LRA's rewritten form (X for ], no parentheses) parses to the same tree.
  REQUIRE(parse_listops_source("[MIN 3 [MAX 1 2 X X") == nested);
}

TEST_CASE("listops malformed expressions are errors naming the problem", "[listops_generator]") {
  require_error([] { parse_listops_source("( [MAX 2 ) 7x ] )"); }, "unknown token \"7x\"");
  require_error([] { parse_listops_source("( ( [MAX 2 ) 3 )"); }, "never closed");
  require_error([] { parse_listops_source("( [MAX ] )"); }, "has no arguments");
  require_error([] { parse_listops_source("( ( [MAX 2 ) ] ) 4"); }, "follows the end of the root");
  require_error([] { parse_listops_source("] 3"); }, "closes no operator");
  require_error([] { listops_tree_value({}); }, "empty");
  require_error([] { listops_tree_value({kListOpsMax, 2, 40, kListOpsEnd}); }, "symbol 40");
}

TEST_CASE("listops generator keeps the limits and the label skew", "[listops_generator]") {
  ListOpsGeneratorOptions options;
  options.seed = 11;
  options.num_train = 2000;
  options.num_val = 0;
  options.num_test = 0;
  const ListOpsDataset data = generate_listops(options);
  REQUIRE(data.train.size() == 2000);
  REQUIRE(data.trees_drawn > 2000);  // most draws fall outside 500 < length < 2000

  std::array<int64_t, 10> histogram{};
  std::set<std::string> unique;
  for (const ListOpsTree& tree : data.train) unique.insert(key(tree));
  REQUIRE(unique.size() == data.train.size());
  for (const ListOpsTree& tree : data.train) {
    REQUIRE(listops_tree_length(tree) > 500);
    REQUIRE(listops_tree_length(tree) < 2000);
    REQUIRE(tree.front() >= kListOpsMin);  // long trees have an operator at the root
    REQUIRE(tree_depth(tree) <= options.max_depth);
    ++histogram[size_t(listops_tree_value(tree))];
  }
  // The spec: labels are skewed, 0 and 9 about 17% each. Binomial sd at n = 2000 is 0.84
  // points, so +-3 points is a 3.5-sigma band; the other eight share the remaining ~66%.
  const double p0 = double(histogram[0]) / 2000.0, p9 = double(histogram[9]) / 2000.0;
  INFO("label 0: " << p0 << ", label 9: " << p9);
  REQUIRE(p0 == Approx(0.17).margin(0.03));
  REQUIRE(p9 == Approx(0.17).margin(0.03));
  for (int label = 1; label <= 8; ++label) {
    INFO("label " << label << ": " << double(histogram[size_t(label)]) / 2000.0);
    REQUIRE(double(histogram[size_t(label)]) / 2000.0 < 0.12);
    REQUIRE(double(histogram[size_t(label)]) / 2000.0 > 0.04);
  }
}

TEST_CASE("listops depth limit: a node at max_depth is a leaf", "[listops_generator]") {
  RandomStream rng(5);
  for (int i = 0; i < 300; ++i) {
    const ListOpsTree tree = generate_listops_tree(rng, /*max_depth=*/3, /*max_args=*/4);
    REQUIRE(tree_depth(tree) <= 2);  // operators only at depths 1 and 2
    int64_t args = 0, max_args = 0;
    std::vector<int64_t> open;
    for (const uint8_t s : tree) {  // every operator has 2..4 arguments
      if (!open.empty() && s != kListOpsEnd) ++open.back();
      if (s >= kListOpsMin && s <= kListOpsSumMod) open.push_back(0);
      if (s == kListOpsEnd) {
        args = open.back();
        open.pop_back();
        REQUIRE(args >= 2);
        max_args = std::max(max_args, args);
      }
    }
    REQUIRE(max_args <= 4);
  }
}

TEST_CASE("listops files are the release's TSV and read back", "[listops_generator]") {
  ScratchDir dir;
  ListOpsGeneratorOptions options;
  options.seed = 3;
  options.split_seed = 4;
  options.num_train = 120;
  options.num_val = 30;
  options.num_test = 20;
  int64_t last_progress = 0;
  const ListOpsFiles files =
      write_listops_dataset(dir.path(), options, [&](int64_t done, int64_t total) {
        REQUIRE(total == 170);
        REQUIRE(done == last_progress + 1);
        last_progress = done;
      });
  REQUIRE(last_progress == 170);
  REQUIRE(files.train == dir.path() / "basic_train.tsv");
  REQUIRE(files.val == dir.path() / "basic_val.tsv");
  REQUIRE(files.test == dir.path() / "basic_test.tsv");
  REQUIRE(!std::filesystem::exists(dir.path() / "basic_train.tsv.tmp"));

  // Minimal re-read: header, CRLF rows, `source<TAB>label`, the source re-spelled identically.
  std::set<std::string> all_sources;
  const std::array<std::pair<std::filesystem::path, size_t>, 3> expected = {
      {{files.train, 120}, {files.val, 30}, {files.test, 20}}};
  for (const auto& [file, rows] : expected) {
    const std::string text = read_bytes(file);
    REQUIRE(text.rfind("Source\tTarget\r\n", 0) == 0);
    size_t start = std::string("Source\tTarget\r\n").size(), count = 0;
    while (start < text.size()) {
      const size_t end = text.find("\r\n", start);
      REQUIRE(end != std::string::npos);
      const std::string row = text.substr(start, end - start);
      const size_t tab = row.find('\t');
      REQUIRE(tab != std::string::npos);
      REQUIRE(row.find('\t', tab + 1) == std::string::npos);
      const std::string source = row.substr(0, tab), label = row.substr(tab + 1);
      const ListOpsTree tree = parse_listops_source(source);
      REQUIRE(listops_tree_to_source(tree) == source);  // single spaces, the official grouping
      REQUIRE(label == std::to_string(listops_tree_value(tree)));
      REQUIRE(listops_tree_length(tree) > 500);
      REQUIRE(listops_tree_length(tree) < 2000);
      all_sources.insert(source);
      start = end + 2;
      ++count;
    }
    REQUIRE(count == rows);
  }
  REQUIRE(all_sources.size() == 170);  // no tree in two splits

  // The project's reader sees the same labels and symbols (ids: digit + 3, operators 13-16, X 17).
  const ListOpsDataset data = generate_listops(options);
  const std::array<std::pair<Split, const std::vector<ListOpsTree>*>, 3> splits = {
      {{Split::train, &data.train}, {Split::dev, &data.val}, {Split::test, &data.test}}};
  for (const auto& [split, trees] : splits) {
    const ClassificationExamples read = read_listops_split(dir.path().string(), split);
    REQUIRE(read.size() == trees->size());
    REQUIRE(read.report.skipped_bad == 0);
    for (size_t i = 0; i < trees->size(); ++i) {
      REQUIRE(read.labels[i] == listops_tree_value((*trees)[i]));
      const auto tokens = read.tokens[i];
      REQUIRE(tokens.size() == (*trees)[i].size());
      for (size_t j = 0; j < tokens.size(); ++j) REQUIRE(tokens[j] == int32_t((*trees)[i][j]) + 3);
    }
  }
}

TEST_CASE("listops generation is deterministic in the seed", "[listops_generator]") {
  ScratchDir a, b, c;
  ListOpsGeneratorOptions options;
  options.seed = 9;
  options.num_train = 60;
  options.num_val = 10;
  options.num_test = 10;
  const ListOpsFiles fa = write_listops_dataset(a.path(), options);
  const ListOpsFiles fb = write_listops_dataset(b.path(), options);
  REQUIRE(read_bytes(fa.train) == read_bytes(fb.train));
  REQUIRE(read_bytes(fa.val) == read_bytes(fb.val));
  REQUIRE(read_bytes(fa.test) == read_bytes(fb.test));

  options.seed = 10;
  const ListOpsFiles fc = write_listops_dataset(c.path(), options);
  REQUIRE(read_bytes(fa.train) != read_bytes(fc.train));

  // The split seed reorders the same trees.
  options.seed = 9;
  options.split_seed = 1;
  const ListOpsDataset reshuffled = generate_listops(options);
  options.split_seed = 0;
  const ListOpsDataset original = generate_listops(options);
  std::set<std::string> all_a, all_b;
  for (const auto* split : {&original.train, &original.val, &original.test})
    for (const ListOpsTree& tree : *split) all_a.insert(key(tree));
  for (const auto* split : {&reshuffled.train, &reshuffled.val, &reshuffled.test})
    for (const ListOpsTree& tree : *split) all_b.insert(key(tree));
  REQUIRE(all_a.size() == 80);
  REQUIRE(all_a == all_b);
  bool same_order = true;
  for (size_t i = 0; i < original.train.size(); ++i) same_order = same_order && original.train[i] == reshuffled.train[i];
  REQUIRE(!same_order);
}

TEST_CASE("listops generator options are validated", "[listops_generator]") {
  ListOpsGeneratorOptions options;
  options.num_train = -1;
  require_error([&] { options.validate(); }, "split sizes must be >= 0, got -1");
  options = {};
  options.max_args = 1;
  require_error([&] { options.validate(); }, "max_args must be in [2, 1000], got 1");
  options = {};
  options.min_length = 900;
  options.max_length = 900;
  require_error([&] { options.validate(); }, "got 900 and 900");
  options = {};
  options.task = "a/b";
  require_error([&] { options.validate(); }, "\"a/b\"");
  require_error([] {
    ListOpsGeneratorOptions o;
    o.num_train = o.num_val = o.num_test = 0;
    generate_listops(o);
  }, "all split sizes are 0");
  // Limits no tree can meet end with an error instead of looping forever.
  require_error([] {
    ListOpsGeneratorOptions o;
    o.num_train = 5;
    o.num_val = o.num_test = 0;
    o.max_depth = 1;  // only single digits
    o.min_length = 3;
    o.max_length = 10;
    generate_listops(o);
  }, "gave no new tree");
}
