// ListOps generator: tree sampling, dedup and split, TSV writing.
#include <luna/data/listops_generator.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>
#include <unordered_set>

#include <luna/core/error.h>

namespace luna::data {

namespace {

constexpr double kValueProbability = 0.25;  // the original's VALUE_P: a node is a leaf when r > 0.25

// Appends one tree(depth) in prefix order. Returns false as soon as the tree reaches `limit`
// symbols; the caller then drops it (the rest of its draws are skipped).
bool append_subtree(RandomStream& rng, int depth, int max_depth, int max_args, size_t limit, ListOpsTree& out) {
  if (out.size() >= limit) return false;
  const double r = depth < max_depth ? rng.uniform() : 1.0;
  if (r > kValueProbability) {
    out.push_back(uint8_t(rng.randint(0, 10)));
    return true;
  }
  const int64_t num_args = rng.randint(2, int64_t(max_args) + 1);
  const size_t operator_position = out.size();
  out.push_back(kListOpsMin);  // placeholder: the original draws the operator after the arguments
  for (int64_t a = 0; a < num_args; ++a)
    if (!append_subtree(rng, depth + 1, max_depth, max_args, limit, out)) return false;
  out[operator_position] = uint8_t(kListOpsMin + rng.randint(0, kListOpsNumOperators));
  out.push_back(kListOpsEnd);
  return true;
}

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

void ListOpsGeneratorOptions::validate() const {
  LUNA_CHECK(num_train >= 0 && num_val >= 0 && num_test >= 0, "listops generator: split sizes must be >= 0, got ",
             num_train, "/", num_val, "/", num_test);
  LUNA_CHECK(num_train + num_val + num_test > 0, "listops generator: all split sizes are 0");
  LUNA_CHECK(max_depth >= 1 && max_depth <= 64, "listops generator: max_depth must be in [1, 64], got ", max_depth);
  LUNA_CHECK(max_args >= 2 && max_args <= 1000, "listops generator: max_args must be in [2, 1000], got ", max_args);
  LUNA_CHECK(min_length >= 0 && max_length > min_length + 1, "listops generator: need 0 <= min_length and ",
             "min_length + 1 < max_length (lengths strictly between them are kept), got ", min_length, " and ",
             max_length);
  LUNA_CHECK(max_length <= 100'000'000, "listops generator: max_length ", max_length, " is unreasonably large");
  LUNA_CHECK(!task.empty() && task.find('/') == std::string::npos,
             "listops generator: task must be a plain file-name prefix, got \"", task, "\"");
}

ListOpsTree generate_listops_tree(RandomStream& rng, int max_depth, int max_args) {
  LUNA_CHECK(max_depth >= 1 && max_args >= 2, "generate_listops_tree: need max_depth >= 1 and max_args >= 2, got ",
             max_depth, " and ", max_args);
  ListOpsTree tree;
  append_subtree(rng, 1, max_depth, max_args, std::numeric_limits<size_t>::max(), tree);
  return tree;
}

ListOpsDataset generate_listops(const ListOpsGeneratorOptions& options, const GeneratorProgress& progress) {
  options.validate();
  const int64_t total = options.num_train + options.num_val + options.num_test;
  RandomStream rng(options.seed, /*stream=*/0);

  // Trees own their bytes; the set holds views of them (a vector's buffer survives moves).
  std::vector<ListOpsTree> kept;
  kept.reserve(size_t(total));
  std::unordered_set<std::string_view> seen;
  seen.reserve(size_t(total));
  ListOpsDataset out;
  int64_t draws_since_new = 0;
  ListOpsTree tree;
  while (int64_t(kept.size()) < total) {
    tree.clear();
    ++out.trees_drawn;
    ++draws_since_new;
    // Defaults keep ~8% of draws; ten million draws without a new tree mean the limits cannot be met.
    LUNA_CHECK(draws_since_new < 10'000'000, "listops generator: 10M draws in a row gave no new tree with ",
               options.min_length, " < length < ", options.max_length, " (", kept.size(), " of ", total,
               " found); widen the length limits or ask for fewer trees");
    if (!append_subtree(rng, 1, options.max_depth, options.max_args, size_t(options.max_length), tree)) continue;
    const auto length = int64_t(tree.size());
    if (length <= options.min_length || length >= options.max_length) continue;
    const std::string_view key(reinterpret_cast<const char*>(tree.data()), tree.size());
    if (seen.count(key)) continue;
    kept.push_back(tree);
    seen.insert(std::string_view(reinterpret_cast<const char*>(kept.back().data()), kept.back().size()));
    draws_since_new = 0;
    if (progress) progress(int64_t(kept.size()), total);
  }
  seen.clear();

  // The original split its Python set in iteration order, i.e. an arbitrary order; a seeded
  // shuffle makes that order explicit and reproducible.
  RandomStream split_rng(options.split_seed, /*stream=*/1);
  shuffle_in_place(kept, split_rng);
  auto take = [&](size_t first, int64_t count) {
    return std::vector<ListOpsTree>(std::make_move_iterator(kept.begin() + std::ptrdiff_t(first)),
                                    std::make_move_iterator(kept.begin() + std::ptrdiff_t(first + size_t(count))));
  };
  out.train = take(0, options.num_train);
  out.val = take(size_t(options.num_train), options.num_val);
  out.test = take(size_t(options.num_train + options.num_val), options.num_test);
  return out;
}

void write_listops_tsv(const std::filesystem::path& file, const std::vector<ListOpsTree>& trees,
                       bool crlf_line_endings) {
  const std::string newline = crlf_line_endings ? "\r\n" : "\n";
  std::filesystem::path temporary = file;
  temporary += ".tmp";
  {
    std::unique_ptr<FILE, FileCloser> f(std::fopen(temporary.c_str(), "wb"));
    LUNA_CHECK(f, "listops generator: cannot write ", temporary, ": ", std::strerror(errno));
    std::setvbuf(f.get(), nullptr, _IOFBF, 1 << 20);
    std::string row = "Source\tTarget" + newline;
    std::fwrite(row.data(), 1, row.size(), f.get());
    for (const ListOpsTree& tree : trees) {
      row = listops_tree_to_source(tree);
      row += '\t';
      row += char('0' + listops_tree_value(tree));
      row += newline;
      std::fwrite(row.data(), 1, row.size(), f.get());
    }
    LUNA_CHECK(!std::ferror(f.get()) && std::fflush(f.get()) == 0, "listops generator: writing ", temporary,
               " failed: ", std::strerror(errno));
    FILE* raw = f.release();
    LUNA_CHECK(std::fclose(raw) == 0, "listops generator: closing ", temporary, " failed: ", std::strerror(errno));
  }
  std::error_code error;
  std::filesystem::rename(temporary, file, error);
  LUNA_CHECK(!error, "listops generator: cannot rename ", temporary, " to ", file, ": ", error.message());
}

ListOpsFiles listops_files(const std::filesystem::path& dir, const std::string& task) {
  return {dir / (task + "_train.tsv"), dir / (task + "_val.tsv"), dir / (task + "_test.tsv")};
}

ListOpsFiles write_listops_dataset(const std::filesystem::path& dir, const ListOpsGeneratorOptions& options,
                                   const GeneratorProgress& progress) {
  options.validate();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  LUNA_CHECK(!error, "listops generator: cannot create the folder ", dir, ": ", error.message());
  const ListOpsDataset data = generate_listops(options, progress);
  const ListOpsFiles files = listops_files(dir, options.task);
  write_listops_tsv(files.train, data.train, options.crlf_line_endings);
  write_listops_tsv(files.val, data.val, options.crlf_line_endings);
  write_listops_tsv(files.test, data.test, options.crlf_line_endings);
  return files;
}

}  // namespace luna::data
