// ListOps expression trees (spec/LRA.md): their value under the original generator's semantics,
// their official spelling `( ( ( ( [MAX 2 ) 9 ) 4 ) ] )`, and the parse of that spelling back.
//
//   ListOpsTree t = {kListOpsMax, 2, 9, 4, kListOpsEnd};
//   listops_tree_value(t) == 9;  listops_tree_to_source(t) == "( ( ( ( [MAX 2 ) 9 ) 4 ) ] )"
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace luna::data {

// One byte per symbol: digits are 0-9, then the four operators and the closing `]`.
enum ListOpsSymbol : uint8_t {
  kListOpsMin = 10,     // [MIN
  kListOpsMax = 11,     // [MAX
  kListOpsMed = 12,     // [MED
  kListOpsSumMod = 13,  // [SM
  kListOpsEnd = 14,     // ]
};
inline constexpr int kListOpsNumOperators = 4;  // in the original's OPERATORS order: MIN, MAX, MED, SM

// A tree in prefix order: an operator, each argument (a digit or a subtree), then kListOpsEnd.
using ListOpsTree = std::vector<uint8_t>;

// "[MIN", "[MAX", "[MED", "[SM", "]" or the digit.
std::string_view listops_symbol_name(uint8_t symbol);

// The value 0-9: MIN, MAX; MED = int(numpy.median(args)), so an even count truncates the mean of
// the middle two; SM = sum mod 10. A malformed tree (an operator without arguments or `]`, a stray
// `]`, symbols after the root) is an error naming the position.
int listops_tree_value(const ListOpsTree& tree);

// Operators, `]` and digits: the length the generator's limits (500 < length < 2000) apply to.
inline int64_t listops_tree_length(const ListOpsTree& tree) { return int64_t(tree.size()); }

// The official spelling: a node with arguments a1..an is n+1 `(`, the operator, each argument
// followed by ` )`, then `] )`; tokens separated by single spaces. Validates like the value.
std::string listops_tree_to_source(const ListOpsTree& tree);

// The tree of an official source string, tokenised as LRA does (`]` is X, parentheses dropped,
// split on whitespace). Unknown tokens and malformed trees are errors naming the token.
ListOpsTree parse_listops_source(std::string_view source);

}  // namespace luna::data
