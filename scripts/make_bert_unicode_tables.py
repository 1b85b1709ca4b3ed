#!/usr/bin/env python3
"""Writes models/bert_unicode_tables.inc: the per-code-point rules of Hugging Face's BertTokenizer.

transformers' BertTokenizer runs on the Rust `tokenizers` library (BertNormalizer +
BertPreTokenizer). Its character classes do not follow any single Unicode version: control and
punctuation come from an old `unicode_categories` table (unassigned code points are not "control",
recent punctuation is not punctuation), lowercasing from Rust's std (per character, no final-sigma
rule), the CJK ranges contain a typo (0x2B920 instead of 0x2B820). To match its ids exactly, this
script asks the library itself about every code point (surrogates excluded) and stores the answers
as range and mapping tables; it prints how they differ from Python's unicodedata.

Usage: build/venv-torch/bin/python scripts/make_bert_unicode_tables.py [--out models/bert_unicode_tables.inc]
"""
import argparse
import os
import unicodedata

import tokenizers
from tokenizers import normalizers, pre_tokenizers

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def code_points():
    return [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def to_ranges(cps):
    ranges = []
    for cp in sorted(cps):
        if ranges and ranges[-1][1] + 1 == cp:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def hangul_nfd(cp):
    # The Unicode algorithm for precomposed Hangul syllables (L V or L V T jamo).
    s = cp - HANGUL_FIRST
    lead, vowel, trail = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, 0x11A7 + s % 28
    return [lead, vowel] + ([trail] if trail != 0x11A7 else [])


def emit_ranges(out, name, ranges, comment):
    out.append(f"// {comment} ({len(ranges)} ranges, inclusive)")
    out.append(f"constexpr CodepointRange {name}[] = {{")
    line = []
    for lo, hi in ranges:
        line.append(f"{{0x{lo:X}, 0x{hi:X}}},")
        if len(line) == 8:
            out.append("    " + " ".join(line))
            line = []
    if line:
        out.append("    " + " ".join(line))
    out.append("};")
    out.append("")


def emit_mappings(out, name, mapping, comment):
    # Each entry: code point, length of the replacement (0..3), up to 3 code points.
    width = max(len(v) for v in mapping.values())
    assert width <= 3, f"{name}: a replacement of {width} code points does not fit the table"
    out.append(f"// {comment} ({len(mapping)} entries: code point, length, replacement)")
    out.append(f"constexpr CodepointMapping {name}[] = {{")
    line = []
    for cp in sorted(mapping):
        seq = mapping[cp] + [0] * (3 - len(mapping[cp]))
        line.append(f"{{0x{cp:X}, {len(mapping[cp])}, {{0x{seq[0]:X}, 0x{seq[1]:X}, 0x{seq[2]:X}}}}},")
        if len(line) == 4:
            out.append("    " + " ".join(line))
            line = []
    if line:
        out.append("    " + " ".join(line))
    out.append("};")
    out.append("")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--out", default=os.path.join(root, "models", "bert_unicode_tables.inc"))
    args = parser.parse_args()

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()

    removed, to_space, cjk, punct, split_space = [], [], [], [], []
    strip_map, lower_map = {}, {}
    for cp in code_points():
        ch = chr(cp)
        cleaned = clean.normalize_str(ch)
        if cleaned == "":
            removed.append(cp)
        elif cleaned == " ":
            to_space.append(cp)
        else:
            assert cleaned == ch, f"clean_text maps U+{cp:04X} to {cleaned!r}"
        if chinese.normalize_str(ch) == f" {ch} ":
            cjk.append(cp)
        pieces = [p for p, _ in pre.pre_tokenize_str(f"a{ch}a")]
        if pieces == ["a", ch, "a"]:
            punct.append(cp)
        elif pieces == ["a", "a"]:
            split_space.append(cp)
        else:
            assert pieces == [f"a{ch}a"], f"pre-tokenizer splits U+{cp:04X} as {pieces!r}"
        stripped = [ord(c) for c in strip.normalize_str(ch)]
        if HANGUL_FIRST <= cp <= HANGUL_LAST:
            assert stripped == hangul_nfd(cp), f"Hangul U+{cp:04X}: {stripped} != algorithm"
        elif stripped != [cp]:
            strip_map[cp] = stripped
        lowered = [ord(c) for c in lower.normalize_str(ch)]
        if lowered != [cp]:
            lower_map[cp] = lowered

    strip_removed = [cp for cp, seq in strip_map.items() if not seq]
    strip_replaced = {cp: seq for cp, seq in strip_map.items() if seq}

    # How the library's classes differ from Python's Unicode database (documentation only).
    print(f"tokenizers {tokenizers.__version__}; Python unicodedata {unicodedata.unidata_version}")
    py_control = {cp for cp in code_points() if unicodedata.category(chr(cp)).startswith("C") and chr(cp) not in "\t\n\r"}
    print(f"  removed: {len(removed)} code points; Python's C* (incl. unassigned): {len(py_control)}")
    py_punct = {cp for cp in code_points() if unicodedata.category(chr(cp)).startswith("P")}
    print(f"  punctuation: {len(punct)}; Python's P*: {len(py_punct)}; differ: {len(py_punct ^ set(punct))}")
    print(f"  split as whitespace by the pre-tokenizer: {len(split_space)}; mapped to ' ' by clean_text: {len(to_space)}")
    print(f"  strip accents: {len(strip_removed)} removed, {len(strip_replaced)} replaced (+ Hangul by algorithm)")
    print(f"  lowercase: {len(lower_map)} mapped; CJK ranges: {to_ranges(cjk)}")

    out = [
        f"// Generated by scripts/make_bert_unicode_tables.py from tokenizers {tokenizers.__version__} (the library",
        "// behind transformers' BertTokenizer), by asking it about every code point. Do not edit by hand.",
        "// Included by models/bert_unicode.cpp.",
        "",
    ]
    emit_ranges(out, "kRemovedRanges", to_ranges(removed), "clean_text drops these (NUL, U+FFFD, control)")
    emit_ranges(out, "kSpaceRanges", to_ranges(to_space), "clean_text turns these into ' '")
    emit_ranges(out, "kChineseRanges", to_ranges(cjk), "handle_chinese_chars puts spaces around these")
    emit_ranges(out, "kPunctuationRanges", to_ranges(punct), "the pre-tokenizer isolates these")
    emit_ranges(out, "kSplitSpaceRanges", to_ranges(split_space), "the pre-tokenizer splits on and drops these")
    emit_ranges(out, "kStripRemovedRanges", to_ranges(strip_removed), "strip_accents drops these (nonspacing marks)")
    emit_mappings(out, "kStripMappings", strip_replaced, "strip_accents: NFD without nonspacing marks (Hangul apart)")
    emit_mappings(out, "kLowerMappings", lower_map, "lowercase, per code point")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    print(f"wrote {args.out} ({len(out)} lines)")


if __name__ == "__main__":
    main()
