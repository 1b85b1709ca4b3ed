// Retrieval (AAN) reader (spec/LRA.md): the release's tsv_data/new_aan_pairs.{train,eval,test}.tsv,
// no header and no quote handling, five tab-separated columns `label id1 id2 text1 text2` with the
// label written "0"/"1" or "0.0"/"1.0". Each text is cut to its first 10,000 bytes, byte-encoded
// (tokenizers.h: byte + 1, 0 = pad) and truncated to max_len (4000 per document by default).
// Errors name the file and 1-based line: wrong column count, a non-numeric label, a label other
// than 0 or 1.
//
//   PairExamples train = read_aan_split("lra_release/tsv_data", Split::train);
//   train.tokens1[i], train.tokens2[i], train.labels[i] (0 or 1), train.ids1[i], train.ids2[i].
#pragma once
#include <string>
#include <string_view>

#include <luna/data/dataset.h>

namespace luna::data {

inline constexpr int64_t kRetrievalMaxLen = 4000;       // tokens per document
inline constexpr size_t kRetrievalMaxTextBytes = 10000;  // bytes of each text kept before tokenising
inline constexpr int64_t kRetrievalNumClasses = 2;

// new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv, new_aan_pairs.test.tsv.
std::string aan_file_name(Split split);

PairExamples read_aan(const std::string& tsv_path, Split split = Split::train, const ReadOptions& options = {});
// <dir>/<aan_file_name(split)>.
PairExamples read_aan_split(const std::string& dir, Split split, const ReadOptions& options = {});
// The same parser on a file image in memory; `source` stands in for the path in errors.
PairExamples parse_aan(std::string_view tsv, const std::string& source, Split split = Split::train,
                       const ReadOptions& options = {});

}  // namespace luna::data
