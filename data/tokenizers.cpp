// ListOps symbol table and the byte/pixel tokenisers.
#include <luna/data/tokenizers.h>

#include <array>

#include <luna/core/error.h>
#include <luna/data/read_util.h>

namespace luna::data {

namespace {
// Index = id.
constexpr std::array<std::string_view, kListOpsVocabSize> kListOpsSymbols = {
    "<pad>", "<unk>", "<cls>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MIN", "[MAX", "[MED", "[SM", "X"};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
}  // namespace

Vocabulary listops_vocabulary() { return {kListOpsVocabSize, kPadId, kListOpsClsId}; }
Vocabulary byte_vocabulary() { return {kByteVocabSize, kPadId, kByteClsId}; }
Vocabulary pixel_vocabulary() { return {kPixelVocabSize, kPadId, kPixelClsId}; }

int32_t listops_symbol_id(std::string_view symbol) {
  if (symbol.size() == 1 && symbol[0] >= '0' && symbol[0] <= '9') return 3 + (symbol[0] - '0');
  for (int32_t id = 13; id < int32_t(kListOpsVocabSize); ++id) {
    if (kListOpsSymbols[size_t(id)] == symbol) return id;
  }
  return -1;
}

std::string_view listops_symbol(int32_t id) {
  LUNA_CHECK(id >= 0 && id < int32_t(kListOpsVocabSize), "listops_symbol: id ", id, " outside the vocabulary [0, ",
             kListOpsVocabSize, ")");
  return kListOpsSymbols[size_t(id)];
}

void tokenize_listops(std::string_view source, std::vector<int32_t>& out) {
  // Rewrite per the spec: "]" -> "X", drop "(" and ")"; then split on whitespace.
  std::string symbol;
  int64_t position = 0;
  auto flush = [&] {
    if (symbol.empty()) return;
    const int32_t id = listops_symbol_id(symbol);
    LUNA_CHECK(id >= 0, "unknown ListOps token ", detail::quoted(symbol), " (symbol ", position,
               "; known: 0-9 [MIN [MAX [MED [SM ] ( ))");
    out.push_back(id);
    ++position;
    symbol.clear();
  };
  for (char c : source) {
    if (c == '(' || c == ')') continue;
    if (is_space(c)) {
      flush();
      continue;
    }
    symbol += c == ']' ? 'X' : c;
  }
  flush();
}

void tokenize_bytes(std::string_view text, std::vector<int32_t>& out) {
  out.reserve(out.size() + text.size());
  for (char c : text) out.push_back(byte_token(static_cast<unsigned char>(c)));
}

}  // namespace luna::data
