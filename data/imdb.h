// Text (IMDB) reader (spec/LRA.md): the Stanford aclImdb/ tree, {train,test}/{pos,neg}/*.txt, one
// review per file; neg = 0, pos = 1. LRA has no dev split and uses the test reviews for both dev
// and test, so Split::dev reads aclImdb/test. Tokens are UTF-8 bytes (tokenizers.h: byte + 1,
// 0 = pad) truncated to max_len: 4096 by default, as the PyTorch ports and the skyformer protocol
// (the paper says 4000, the released JAX config 1000; pass ReadOptions::max_len to choose).
// Examples alternate neg, pos, neg, ... in file-name order (numeric ids sorted as numbers), so a
// max_examples cap keeps the classes balanced. A .txt entry that cannot be read is a bad record
// naming the file; a missing pos/ or neg/ folder is an error.
//
//   ClassificationExamples train = read_imdb("aclImdb", Split::train);
#pragma once
#include <string>

#include <luna/data/dataset.h>

namespace luna::data {

inline constexpr int64_t kTextMaxLen = 4096;
inline constexpr int64_t kTextNumClasses = 2;

// `root` is the aclImdb folder (holding train/ and test/).
ClassificationExamples read_imdb(const std::string& root, Split split, const ReadOptions& options = {});

}  // namespace luna::data
