// The LRA tokenisers (spec/LRA.md): ListOps symbols, UTF-8 bytes for text and retrieval, pixels
// for the image tasks. Id 0 is padding in every vocabulary and is never produced for real input.
//
//   ListOps  (vocab 18): 0 pad, 1 unk (reserved: the reader rejects unknown symbols), 2 CLS,
//                        3..12 digits 0-9, 13 [MIN, 14 [MAX, 15 [MED, 16 [SM, 17 X (the "]").
//   bytes    (vocab 258): byte b -> b + 1 (1..256), CLS 257.
//   pixels   (vocab 258): value v -> v + 1 (1..256), CLS 257. The spec's "pixels are tokens 0-255"
//                        shifted by one so that black pixels are not taken for padding (the
//                        classifier masks token == pad); the embedding table is the same size.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include <luna/data/dataset.h>

namespace luna::data {

inline constexpr int32_t kPadId = 0;

// ---- ListOps
inline constexpr int32_t kListOpsUnkId = 1;
inline constexpr int32_t kListOpsClsId = 2;
inline constexpr int64_t kListOpsVocabSize = 18;
Vocabulary listops_vocabulary();
// The id of one symbol after the spec's rewriting ("[MAX", "7", "X"), or -1 if it is not one.
int32_t listops_symbol_id(std::string_view symbol);
// The symbol of an id ("<pad>", "<unk>", "<cls>" for the specials); an error for ids outside the vocab.
std::string_view listops_symbol(int32_t id);
// Appends the ids of a ListOps source: "]" becomes "X", "(" and ")" are deleted, the rest split on
// whitespace. An unknown symbol is an error naming it (and its position among the symbols).
void tokenize_listops(std::string_view source, std::vector<int32_t>& out);

// ---- bytes (text, retrieval)
inline constexpr int32_t kByteClsId = 257;
inline constexpr int64_t kByteVocabSize = 258;
Vocabulary byte_vocabulary();
inline int32_t byte_token(unsigned char byte) { return int32_t(byte) + 1; }
// Appends byte + 1 for each byte of `text` (UTF-8 is not validated: LRA works on raw bytes).
void tokenize_bytes(std::string_view text, std::vector<int32_t>& out);

// ---- pixels (CIFAR-10, Pathfinder, Fashion-MNIST)
inline constexpr int32_t kPixelClsId = 257;
inline constexpr int64_t kPixelVocabSize = 258;
Vocabulary pixel_vocabulary();
inline int32_t pixel_token(uint8_t value) { return int32_t(value) + 1; }
// 0.299 R + 0.587 G + 0.114 B rounded half up, in exact integer arithmetic.
inline uint8_t grayscale(uint8_t r, uint8_t g, uint8_t b) {
  return uint8_t((299u * r + 587u * g + 114u * b + 500u) / 1000u);
}

// The first id of a sequence when ReadOptions::add_cls is set.
inline void begin_sequence(std::vector<int32_t>& tokens, bool add_cls, int32_t cls_id) {
  tokens.clear();
  if (add_cls) tokens.push_back(cls_id);
}

}  // namespace luna::data
