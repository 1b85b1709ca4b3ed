// ListOps generator, faithful to the original LRA script (spec/LRA.md "Generator"): random trees
// drawn by tree(depth=1), kept when 500 < length < 2000, deduplicated, split 96k/2k/2k, written as
// the release's TSV files <task>_train.tsv, <task>_val.tsv, <task>_test.tsv, which the ListOps
// reader (data/listops.h) reads.
//
//   ListOpsGeneratorOptions options;  options.seed = 1;  options.num_train = 5000;
//   ListOpsFiles files = write_listops_dataset("data/listops-1000", options);
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <luna/data/listops_eval.h>
#include <luna/data/random_stream.h>

namespace luna::data {

struct ListOpsGeneratorOptions {
  uint64_t seed = 0;        // draws the trees
  uint64_t split_seed = 0;  // shuffles the unique trees before they are cut into splits
  int64_t num_train = 96000;
  int64_t num_val = 2000;
  int64_t num_test = 2000;
  int max_depth = 10;         // a node at this depth is always a leaf
  int max_args = 10;          // operators take 2..max_args arguments
  int64_t min_length = 500;   // kept: min_length < length < max_length (both exclusive, as the original)
  int64_t max_length = 2000;
  std::string task = "basic";  // file name prefix
  // The original wrote its rows with Python's csv.writer, whose line terminator is "\r\n".
  bool crlf_line_endings = true;

  void validate() const;  // every bad value is an error naming it
};

// One draw of the original generate_tree(depth=1): at depth < max_depth draw r ~ U[0,1), else
// r = 1; r > 0.25 makes a leaf with a uniform digit, otherwise n ~ U{2..max_args} arguments, each
// a tree(depth+1), then a uniform operator (drawn after the arguments, in the original's order).
ListOpsTree generate_listops_tree(RandomStream& rng, int max_depth = 10, int max_args = 10);

struct ListOpsDataset {
  std::vector<ListOpsTree> train, val, test;
  int64_t trees_drawn = 0;  // draws of tree(1), kept or not
};

// Draws trees until num_train + num_val + num_test unique ones have min_length < length <
// max_length, shuffles them with split_seed and cuts them in that order. A draw that grows past
// max_length is abandoned early: it would be rejected anyway, so the kept trees have exactly the
// original's distribution. Progress counts unique kept trees.
ListOpsDataset generate_listops(const ListOpsGeneratorOptions& options, const GeneratorProgress& progress = {});

// The header `Source<TAB>Target`, then `<official spelling><TAB><value>` per tree. Written to a
// temporary file that is renamed into place, so a crash never leaves a half file under the name.
void write_listops_tsv(const std::filesystem::path& file, const std::vector<ListOpsTree>& trees,
                       bool crlf_line_endings = true);

struct ListOpsFiles {
  std::filesystem::path train, val, test;
};
// The file names the release uses: <dir>/<task>_train.tsv, _val.tsv, _test.tsv.
ListOpsFiles listops_files(const std::filesystem::path& dir, const std::string& task = "basic");

// generate_listops, then the three TSV files under `dir` (created if missing).
ListOpsFiles write_listops_dataset(const std::filesystem::path& dir, const ListOpsGeneratorOptions& options,
                                   const GeneratorProgress& progress = {});

}  // namespace luna::data
