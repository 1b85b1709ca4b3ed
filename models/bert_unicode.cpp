// UTF-8 coding and the table lookups behind BERT's normaliser and pre-tokenizer.
#include <luna/models/bert_unicode.h>

#include <algorithm>
#include <cstdint>

#include <luna/core/error.h>

namespace luna::models::bert_unicode {
namespace {

struct CodepointRange {
  char32_t first, last;  // inclusive
};

struct CodepointMapping {
  char32_t code_point;
  uint8_t length;  // 0..3 code points in `replacement`
  char32_t replacement[3];
};

#include "bert_unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodepointRange (&ranges)[N], char32_t c) {
  const auto it = std::upper_bound(std::begin(ranges), std::end(ranges), c,
                                   [](char32_t value, const CodepointRange& r) { return value < r.first; });
  return it != std::begin(ranges) && c <= std::prev(it)->last;
}

template <size_t N>
const CodepointMapping* find_mapping(const CodepointMapping (&mappings)[N], char32_t c) {
  const auto it = std::lower_bound(std::begin(mappings), std::end(mappings), c,
                                   [](const CodepointMapping& m, char32_t value) { return m.code_point < value; });
  return it != std::end(mappings) && it->code_point == c ? &*it : nullptr;
}

constexpr char32_t kHangulFirst = 0xAC00, kHangulLast = 0xD7A3;

// "0x" and two hex digits / "U+" and at least four, for error messages.
std::string hex_byte(unsigned char b) {
  const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}
std::string code_point_name(char32_t c) {
  const char* digits = "0123456789ABCDEF";
  std::string hex;
  for (; c != 0 || hex.size() < 4; c >>= 4) hex.insert(hex.begin(), digits[c & 15]);
  return "U+" + hex;
}

}  // namespace

std::u32string decode_utf8(std::string_view text, const std::string& what) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      out.push_back(lead);
      ++i;
      continue;
    }
    size_t length = 0;
    char32_t c = 0, minimum = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2, c = lead & 0x1F, minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3, c = lead & 0x0F, minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4, c = lead & 0x07, minimum = 0x10000;
    } else {
      LUNA_FAIL(what, ": invalid UTF-8 lead byte ", hex_byte(lead), " at byte ", i);
    }
    LUNA_CHECK(i + length <= text.size(), what, ": truncated UTF-8 sequence at byte ", i, " (needs ", length,
               " bytes, ", text.size() - i, " left)");
    for (size_t k = 1; k < length; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      LUNA_CHECK((byte & 0xC0) == 0x80, what, ": invalid UTF-8 continuation byte ", hex_byte(byte), " at byte ", i + k);
      c = (c << 6) | (byte & 0x3F);
    }
    LUNA_CHECK(c >= minimum, what, ": overlong UTF-8 encoding of ", code_point_name(c), " at byte ", i);
    LUNA_CHECK(c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF), what, ": UTF-8 sequence at byte ", i, " encodes ",
               code_point_name(c), ", which is not a Unicode scalar value");
    out.push_back(c);
    i += length;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

bool is_removed(char32_t c) { return in_ranges(kRemovedRanges, c); }
bool is_space(char32_t c) { return in_ranges(kSpaceRanges, c); }
bool is_chinese(char32_t c) { return in_ranges(kChineseRanges, c); }
bool is_split_space(char32_t c) { return in_ranges(kSplitSpaceRanges, c); }
bool is_punctuation(char32_t c) { return in_ranges(kPunctuationRanges, c); }

void append_stripped(std::u32string& out, char32_t c) {
  if (c >= kHangulFirst && c <= kHangulLast) {
    // Precomposed Hangul decomposes by formula into leading consonant, vowel and optional trailing
    // consonant jamo (none of them marks, so all stay).
    const char32_t s = c - kHangulFirst;
    out.push_back(0x1100 + s / 588);
    out.push_back(0x1161 + (s % 588) / 28);
    if (s % 28 != 0) out.push_back(0x11A7 + s % 28);
    return;
  }
  if (in_ranges(kStripRemovedRanges, c)) return;
  if (const CodepointMapping* m = find_mapping(kStripMappings, c)) {
    out.append(m->replacement, m->length);
    return;
  }
  out.push_back(c);
}

void append_lowered(std::u32string& out, char32_t c) {
  if (c >= 'A' && c <= 'Z') {
    out.push_back(c + ('a' - 'A'));
  } else if (c < 0x80) {
    out.push_back(c);
  } else if (const CodepointMapping* m = find_mapping(kLowerMappings, c)) {
    out.append(m->replacement, m->length);
  } else {
    out.push_back(c);
  }
}

}  // namespace luna::models::bert_unicode
