// IMDB (aclImdb tree) reader: labels from the folder, neg/pos alternation in numeric file order,
// byte tokens and truncation, dev = test, unreadable entries as bad records, missing folders.
#include "data/data_test_util.h"

#include <filesystem>

#include <luna/data/imdb.h>
#include <luna/data/tokenizers.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;
using luna::testing::to_vector;

namespace {
std::vector<int32_t> bytes_of(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(int32_t(c) + 1);
  return ids;
}

// A small tree: train with 3 neg and 2 pos reviews, test with one of each.
void write_tree(const TempDir& dir) {
  dir.write("aclImdb/train/neg/10_2.txt", "neg ten");
  dir.write("aclImdb/train/neg/2_1.txt", "neg two");
  dir.write("aclImdb/train/neg/0_3.txt", "neg zero \xe2\x98\x85");
  dir.write("aclImdb/train/pos/1_9.txt", "pos one");
  dir.write("aclImdb/train/pos/0_10.txt", "pos zero");
  dir.write("aclImdb/train/pos/urls.lst", "not a review");  // only *.txt are reviews
  dir.write("aclImdb/train/unsup/5_0.txt", "unlabelled");   // not read
  dir.write("aclImdb/test/neg/0_4.txt", "test neg");
  dir.write("aclImdb/test/pos/0_7.txt", "test pos");
}
}  // namespace

TEST_CASE("IMDB: labels, numeric order alternating neg/pos, byte tokens", "[data][imdb]") {
  TempDir dir;
  write_tree(dir);
  const std::string root = (dir.path() / "aclImdb").string();
  const ClassificationExamples train = read_imdb(root, Split::train);
  REQUIRE(train.size() == 5);
  REQUIRE(train.labels == std::vector<int64_t>{0, 1, 0, 1, 0});
  REQUIRE(to_vector(train.tokens[0]) == bytes_of("neg zero \xe2\x98\x85"));
  REQUIRE(to_vector(train.tokens[1]) == bytes_of("pos zero"));
  REQUIRE(to_vector(train.tokens[2]) == bytes_of("neg two"));  // 2_1 before 10_2
  REQUIRE(to_vector(train.tokens[3]) == bytes_of("pos one"));
  REQUIRE(to_vector(train.tokens[4]) == bytes_of("neg ten"));
  REQUIRE(train.num_classes == 2);
  REQUIRE(train.vocabulary.vocab_size == 258);
  REQUIRE(train.max_len == kTextMaxLen);
  REQUIRE(train.report.records == 5);
  REQUIRE(train.label_histogram() == std::vector<int64_t>{3, 2});

  // LRA has no IMDB dev split: dev and test both read aclImdb/test.
  const ClassificationExamples dev = read_imdb(root, Split::dev);
  const ClassificationExamples test = read_imdb(root, Split::test);
  REQUIRE(dev.labels == std::vector<int64_t>{0, 1});
  REQUIRE(test.labels == dev.labels);
  REQUIRE(test.tokens.ids() == dev.tokens.ids());
  REQUIRE(to_vector(test.tokens[1]) == bytes_of("test pos"));
  REQUIRE(dev.split == Split::dev);

  // A cap keeps the classes balanced because of the alternation.
  ReadOptions options;
  options.max_examples = 4;
  REQUIRE(read_imdb(root, Split::train, options).labels == std::vector<int64_t>{0, 1, 0, 1});
}

TEST_CASE("IMDB: truncation to max_len (4096 by default) and CLS", "[data][imdb]") {
  TempDir dir;
  dir.write("aclImdb/train/neg/0_1.txt", std::string(5000, 'a'));
  dir.write("aclImdb/train/pos/0_9.txt", "ok");
  const std::string root = (dir.path() / "aclImdb").string();
  const ClassificationExamples by_default = read_imdb(root, Split::train);
  REQUIRE(by_default.tokens.length(0) == 4096);
  REQUIRE(by_default.tokens.length(1) == 2);
  REQUIRE(by_default.report.truncated == 1);

  ReadOptions options;
  options.add_cls = true;
  options.max_len = 1000;
  const ClassificationExamples cls = read_imdb(root, Split::train, options);
  REQUIRE(cls.tokens.length(0) == 1000);
  REQUIRE(cls.tokens[0][0] == kByteClsId);
  REQUIRE(to_vector(cls.tokens[1]) == std::vector<int32_t>{kByteClsId, 'o' + 1, 'k' + 1});
  REQUIRE(cls.max_len == 1000);
}

TEST_CASE("IMDB: missing folders and unreadable reviews", "[data][imdb]") {
  TempDir dir;
  write_tree(dir);
  const std::string root = (dir.path() / "aclImdb").string();
  require_error([&] { read_imdb((dir.path() / "elsewhere").string(), Split::train); },
                {"imdb: ", (dir.path() / "elsewhere" / "train" / "neg").string(), "is not a folder"});
  std::filesystem::remove_all(dir.path() / "aclImdb" / "test" / "pos");
  require_error([&] { read_imdb(root, Split::test); }, {(dir.path() / "aclImdb" / "test" / "pos").string(), "is not a folder"});

  // A folder named like a review and a dangling link are bad records naming the entry.
  std::filesystem::create_directories(dir.path() / "aclImdb" / "train" / "pos" / "5_8.txt");
  std::filesystem::create_symlink(dir.path() / "gone.txt", dir.path() / "aclImdb" / "train" / "neg" / "7_2.txt");
  const std::string train_dir = (dir.path() / "aclImdb" / "train").string();
  require_error([&] { read_imdb(root, Split::train); }, {"imdb: " + train_dir + " neg/7_2.txt:", "No such file"});

  ReadOptions options;
  options.skip_bad_records = true;
  const ClassificationExamples skipped = read_imdb(root, Split::train, options);
  REQUIRE(skipped.size() == 5);
  REQUIRE(skipped.report.records == 7);
  REQUIRE(skipped.report.skipped_bad == 2);
  REQUIRE(skipped.report.first_errors.size() == 2);
  bool named_folder = false;
  for (const std::string& message : skipped.report.first_errors) {
    named_folder |= message.find("pos/5_8.txt") != std::string::npos && message.find("Is a directory") != std::string::npos;
  }
  REQUIRE(named_folder);
}
