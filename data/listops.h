// ListOps reader (spec/LRA.md): the release's listops-1000/basic_{train,val,test}.tsv, a TSV with an
// optional header row "Source<TAB>Target", then one "<expression><TAB><label 0-9>" per line.
// Tokens: the ListOps vocabulary of tokenizers.h (18 ids, 0 = pad), truncated to max_len (2048 by
// default, the skyformer protocol). Errors name the file and 1-based line: wrong column count,
// a label that is not an integer or not in 0-9, an unknown symbol, an expression with no symbols.
//
//   ClassificationExamples train = read_listops_split("lra_release/listops-1000", Split::train);
//   train.tokens[i] (span of int32 ids), train.labels[i] (0-9), train.report.skipped_bad.
#pragma once
#include <string>
#include <string_view>

#include <luna/data/dataset.h>

namespace luna::data {

inline constexpr int64_t kListOpsMaxLen = 2048;
inline constexpr int64_t kListOpsNumClasses = 10;

// The release's file name of a split: basic_train.tsv, basic_val.tsv, basic_test.tsv.
std::string listops_file_name(Split split);

// One TSV file; `split` is only recorded in the result.
ClassificationExamples read_listops(const std::string& tsv_path, Split split = Split::train,
                                    const ReadOptions& options = {});
// <dir>/<listops_file_name(split)>.
ClassificationExamples read_listops_split(const std::string& dir, Split split, const ReadOptions& options = {});
// The same parser on a file image in memory; `source` stands in for the path in errors.
ClassificationExamples parse_listops(std::string_view tsv, const std::string& source, Split split = Split::train,
                                     const ReadOptions& options = {});

}  // namespace luna::data
