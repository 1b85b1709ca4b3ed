// ListOps trees: values, official spelling, parsing. All walks are iterative, so a hostile input
// nested a million levels deep is an ordinary error or result, never a stack overflow.
#include <luna/data/listops_eval.h>

#include <algorithm>
#include <utility>

#include <luna/core/error.h>

namespace luna::data {

namespace {

bool is_digit(uint8_t symbol) { return symbol <= 9; }
bool is_operator(uint8_t symbol) { return symbol >= kListOpsMin && symbol <= kListOpsSumMod; }

int apply_operator(uint8_t op, std::vector<int>::iterator first, std::vector<int>::iterator last) {
  switch (op) {
    case kListOpsMin: return *std::min_element(first, last);
    case kListOpsMax: return *std::max_element(first, last);
    case kListOpsMed: {
      // int(numpy.median): the middle value, or the mean of the middle two truncated toward zero
      // (all values are >= 0, so integer division is that truncation).
      std::sort(first, last);
      const auto n = last - first;
      return n % 2 == 1 ? first[n / 2] : (first[n / 2 - 1] + first[n / 2]) / 2;
    }
    case kListOpsSumMod: {
      int sum = 0;
      for (auto it = first; it != last; ++it) sum += *it;
      return sum % 10;
    }
    default: LUNA_FAIL("listops: symbol ", int(op), " is not an operator");
  }
}

// Checks the prefix structure and returns, for each operator position, its argument count (0 at
// other positions).
std::vector<int64_t> argument_counts(const ListOpsTree& tree) {
  LUNA_CHECK(!tree.empty(), "listops: the tree is empty");
  std::vector<int64_t> counts(tree.size(), 0);
  std::vector<size_t> open;  // positions of the operators still waiting for their `]`
  for (size_t i = 0; i < tree.size(); ++i) {
    const uint8_t s = tree[i];
    LUNA_CHECK(is_digit(s) || is_operator(s) || s == kListOpsEnd, "listops: symbol ", int(s), " at position ", i,
               " is not a digit, operator or ]");
    LUNA_CHECK(i == 0 || !open.empty(), "listops: symbol ", listops_symbol_name(s), " at position ", i,
               " follows the end of the root expression");
    if (s == kListOpsEnd) {
      LUNA_CHECK(!open.empty(), "listops: ] at position ", i, " closes no operator");
      LUNA_CHECK(counts[open.back()] > 0, "listops: operator ", listops_symbol_name(tree[open.back()]),
                 " at position ", open.back(), " has no arguments");
      open.pop_back();
      continue;
    }
    if (!open.empty()) ++counts[open.back()];
    if (is_operator(s)) open.push_back(i);
  }
  LUNA_CHECK(open.empty(), "listops: operator ", listops_symbol_name(tree[open.empty() ? 0 : open.back()]),
             " at position ", open.empty() ? 0 : open.back(), " is never closed by ]");
  return counts;
}

}  // namespace

std::string_view listops_symbol_name(uint8_t symbol) {
  static constexpr std::string_view kDigits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  if (is_digit(symbol)) return kDigits[symbol];
  switch (symbol) {
    case kListOpsMin: return "[MIN";
    case kListOpsMax: return "[MAX";
    case kListOpsMed: return "[MED";
    case kListOpsSumMod: return "[SM";
    case kListOpsEnd: return "]";
    default: return "<invalid>";
  }
}

int listops_tree_value(const ListOpsTree& tree) {
  argument_counts(tree);  // validation only
  std::vector<int> values;                      // argument values of all open operators, stacked
  std::vector<std::pair<uint8_t, size_t>> ops;  // (operator, index of its first value)
  for (const uint8_t s : tree) {
    if (is_digit(s)) {
      values.push_back(s);
    } else if (is_operator(s)) {
      ops.emplace_back(s, values.size());
    } else {  // kListOpsEnd
      const auto [op, first] = ops.back();
      ops.pop_back();
      const int value = apply_operator(op, values.begin() + std::ptrdiff_t(first), values.end());
      values.resize(first);
      values.push_back(value);
    }
  }
  return values.back();
}

std::string listops_tree_to_source(const ListOpsTree& tree) {
  const std::vector<int64_t> counts = argument_counts(tree);
  std::string out;
  out.reserve(tree.size() * 4);
  int64_t depth = 0;  // operators open around the current symbol
  for (size_t i = 0; i < tree.size(); ++i) {
    const uint8_t s = tree[i];
    if (s == kListOpsEnd) {
      out += " ] )";
      if (--depth > 0) out += " )";  // the subtree was an argument of its parent
      continue;
    }
    if (i > 0) out += ' ';
    if (is_digit(s)) {
      out += char('0' + s);
      if (depth > 0) out += " )";
    } else {
      for (int64_t k = 0; k <= counts[i]; ++k) out += "( ";
      out += listops_symbol_name(s);
      ++depth;
    }
  }
  return out;
}

ListOpsTree parse_listops_source(std::string_view source) {
  ListOpsTree tree;
  size_t i = 0;
  while (i < source.size()) {
    // Parentheses and whitespace only separate tokens (LRA deletes the parentheses).
    const char c = source[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == ')') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < source.size() && source[end] != ' ' && source[end] != '\t' && source[end] != '\n' &&
           source[end] != '\r' && source[end] != '(' && source[end] != ')')
      ++end;
    const std::string_view token = source.substr(i, end - i);
    if (token.size() == 1 && token[0] >= '0' && token[0] <= '9') {
      tree.push_back(uint8_t(token[0] - '0'));
    } else if (token == "]" || token == "X") {
      tree.push_back(kListOpsEnd);
    } else if (token == "[MIN") {
      tree.push_back(kListOpsMin);
    } else if (token == "[MAX") {
      tree.push_back(kListOpsMax);
    } else if (token == "[MED") {
      tree.push_back(kListOpsMed);
    } else if (token == "[SM") {
      tree.push_back(kListOpsSumMod);
    } else {
      LUNA_FAIL("listops: unknown token \"", token, "\" at character ", i,
                " (expected a digit, [MIN, [MAX, [MED, [SM or ])");
    }
    i = end;
  }
  argument_counts(tree);
  return tree;
}

}  // namespace luna::data
