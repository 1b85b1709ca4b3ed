#!/usr/bin/env python3
"""What ListOps accuracy needs: the ceiling of the root operator alone, and one level below it.

For each split of a ListOps release folder (basic_{train,val,test}.tsv) this prints
  - the ceiling of every predictor that sees only the root operator: the best constant label per
    root operator chosen on that split itself (no predictor of that kind scores more there);
  - two rules fitted on train that look one level below the root. Each maps a key to the most
    frequent train label of that key (keys seen fewer than 5 times on train fall back to the root
    operator's label). The key is the root operator with what it makes of some of its digit
    children (MAX: the largest, MIN: the smallest, SM: their count and sum mod 10, MED: all of them):
      one level: all its digit children, and how many operator children it has;
      the edges: only the digit children before its first operator child and after its last one,
        which in the token sequence are the digits right after the root operator and right before
        the final `]`, so a model can find them by position from the start and from the end;
      the leading digits: only those before its first operator child (by position from the start).
Every tree is parsed and evaluated; a label that disagrees with the tree's value, or a line that is
not a tree, stops the script with the file and line.

  python3 scripts/listops_shallow_rules.py lra_data/listops-1000

Standard library only (with listops_root_rule.py beside it, for reading the TSV files).
"""
import collections
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from listops_root_rule import tsv_rows  # noqa: E402  (the shared reader of the TSV rows)

SPLITS = [("train", "basic_train.tsv"), ("dev", "basic_val.tsv"), ("test", "basic_test.tsv")]
OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
MIN_KEY_COUNT = 5


def parse(tokens):
    """The tree of a token list (brackets already removed): a digit, or (operator, children)."""
    position = 0

    def node():
        nonlocal position
        if position >= len(tokens):
            raise ValueError("the tree ends early")
        token = tokens[position]
        position += 1
        if token in OPERATORS:
            children = []
            while position < len(tokens) and tokens[position] != "]":
                children.append(node())
            if position >= len(tokens):
                raise ValueError(f"{token} is never closed")
            position += 1
            if not children:
                raise ValueError(f"{token} has no arguments")
            return (token, children)
        if len(token) == 1 and token.isdigit():
            return int(token)
        raise ValueError(f"unknown token {token!r}")

    tree = node()
    if position != len(tokens):
        raise ValueError(f"{len(tokens) - position} tokens after the tree's end")
    return tree


def value(tree):
    if isinstance(tree, int):
        return tree
    operator, children = tree
    values = [value(child) for child in children]
    if operator == "[MAX":
        return max(values)
    if operator == "[MIN":
        return min(values)
    if operator == "[SM":
        return sum(values) % 10
    ordered = sorted(values)  # [MED: int(numpy.median), an even count truncating the middle pair's mean
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else int((ordered[middle - 1] + ordered[middle]) / 2)


def read_split(path):
    trees = []
    for number, source, label in tsv_rows(path):
        try:
            tree = parse(source.replace("(", " ").replace(")", " ").split())
        except ValueError as problem:
            sys.exit(f"{path}:{number}: {problem}")
        if isinstance(tree, int):
            sys.exit(f"{path}:{number}: the tree is a single digit, expected an operator at the root")
        if value(tree) != label:
            sys.exit(f"{path}:{number}: label {label}, but the tree evaluates to {value(tree)}")
        trees.append((tree, label))
    return trees


def digits_key(operator, digits):
    """What the root operator makes of some of its digit children."""
    digits = sorted(digits)
    if operator == "[MAX":
        return (operator, digits[-1] if digits else None)
    if operator == "[MIN":
        return (operator, digits[0] if digits else None)
    if operator == "[SM":
        return (operator, len(digits), sum(digits) % 10)
    return (operator, tuple(digits))


def one_level_key(tree):
    """All of the root's digit children, and how many operator children it has."""
    operator, children = tree
    digits = [child for child in children if isinstance(child, int)]
    return digits_key(operator, digits) + (len(children) - len(digits),)


def leading_key(tree):
    """The root's digit children before its first operator child: the digits right after it."""
    operator, children = tree
    first = next((i for i, child in enumerate(children) if not isinstance(child, int)), len(children))
    return digits_key(operator, children[:first])


def edge_key(tree):
    """The root's digit children before its first operator child and after its last one: in the
    token sequence, the digits right after the root operator and right before the final `]`."""
    operator, children = tree
    first = next((i for i, child in enumerate(children) if not isinstance(child, int)), len(children))
    last = max((i for i, child in enumerate(children) if not isinstance(child, int)), default=len(children))
    return digits_key(operator, children[:first] + children[last + 1:])


def percent(hits, total):
    error = math.sqrt((hits / total) * (1 - hits / total) / total)
    return f"{100 * hits / total:.2f}% ({hits}/{total}, standard error {100 * error:.2f} points)"


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    data = {split: read_split(os.path.join(sys.argv[1], name)) for split, name in SPLITS}
    root_counts = collections.defaultdict(collections.Counter)
    for tree, label in data["train"]:
        root_counts[tree[0]][label] += 1
    root_rule = {root: counts.most_common(1)[0][0] for root, counts in root_counts.items()}
    rules = {}
    for name, key in (("one level below the root", one_level_key), ("the root's edge digits", edge_key),
                      ("the root's leading digits", leading_key)):
        key_counts = collections.defaultdict(collections.Counter)
        for tree, label in data["train"]:
            key_counts[key(tree)][label] += 1
        known = {k: counts.most_common(1)[0][0] for k, counts in key_counts.items()
                 if sum(counts.values()) >= MIN_KEY_COUNT}
        rules[name] = (key, known)
        print(f"{name}: {len(known)} keys seen >= {MIN_KEY_COUNT} times on train (of {len(key_counts)})")
    for split, _ in SPLITS:
        trees = data[split]
        per_root = collections.defaultdict(collections.Counter)
        for tree, label in trees:
            per_root[tree[0]][label] += 1
        ceiling = sum(counts.most_common(1)[0][1] for counts in per_root.values())
        fitted = sum(root_rule.get(tree[0]) == label for tree, label in trees)
        print(f"{split}: {len(trees)} trees, all labels equal to the trees' values")
        print(f"  root operator, best constant per operator on {split} itself (ceiling): {percent(ceiling, len(trees))}")
        print(f"  root operator, constant fitted on train: {percent(fitted, len(trees))}")
        for name, (key, known) in rules.items():
            hits = sum(known.get(key(tree), root_rule.get(tree[0])) == label for tree, label in trees)
            print(f"  {name}, fitted on train: {percent(hits, len(trees))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
