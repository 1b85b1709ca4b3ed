#!/usr/bin/env python3
"""How far the ListOps "root operator" rule goes, and whether runs predict more than it.

The rule predicts a constant per root operator, fitted on train: the most frequent label of the
trees whose outermost operator is MAX, MIN, MED or SM. A model stuck on it has learned nothing of
the tree below the root. For each split this prints the rule's accuracy (with its standard
error), and for each run folder given (written by `train_lra ... --eval-only`) how many of its
predictions equal the rule's and each other's.

  python3 scripts/listops_root_rule.py lra_data/listops-1000 [RUN_DIR ...]

Standard library only (it reads the release's TSV files and the runs' predictions_*.tsv).
"""
import collections
import math
import os
import sys

SPLITS = [("train", "basic_train.tsv"), ("dev", "basic_val.tsv"), ("test", "basic_test.tsv")]


def tsv_rows(path):
    """(line number, tree, label) of every row of a ListOps TSV file, after checking its header."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["Source", "Target"]:
            sys.exit(f"{path}: header {header!r}, expected Source<TAB>Target")
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[1].isdigit():
                sys.exit(f"{path}:{number}: expected a tree<TAB>label 0-9, got {line[:60]!r}")
            yield number, fields[0], int(fields[1])


def read_split(path):
    """(root operator, label) of every tree; the first operator token is the root's."""
    rows = []
    for number, source, label in tsv_rows(path):
        root = next((t for t in source.split() if t.startswith("[")), None)
        if root is None:
            sys.exit(f"{path}:{number}: no operator in the tree")
        rows.append((root, label))
    return rows


def read_predictions(path):
    with open(path, encoding="utf-8") as f:
        if f.readline().rstrip("\n") != "index\tlabel\tprediction":
            sys.exit(f"{path}: not a train_lra predictions file (header index<TAB>label<TAB>prediction)")
        return [int(line.split("\t")[2]) for line in f if line.strip()]


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    folder, runs = sys.argv[1], sys.argv[2:]
    data = {split: read_split(os.path.join(folder, name)) for split, name in SPLITS}
    by_root = collections.defaultdict(collections.Counter)
    for root, label in data["train"]:
        by_root[root][label] += 1
    rule = {root: counts.most_common(1)[0][0] for root, counts in by_root.items()}
    print("rule fitted on train (root operator -> label):", dict(sorted(rule.items())))
    for split, _ in SPLITS:
        rows = data[split]
        hits = sum(rule[root] == label for root, label in rows)
        accuracy = hits / len(rows)
        error = math.sqrt(accuracy * (1 - accuracy) / len(rows))
        print(f"{split}: {len(rows)} trees, rule accuracy {100 * accuracy:.2f}% "
              f"({hits}/{len(rows)}, standard error {100 * error:.2f} points)")
    for split in ("dev", "test"):
        rows = data[split]
        predictions = {}
        for run in runs:
            path = os.path.join(run, f"predictions_{split}.tsv")
            predicted = read_predictions(path)
            if len(predicted) != len(rows):
                sys.exit(f"{path}: {len(predicted)} predictions for {len(rows)} {split} trees")
            predictions[run] = predicted
            correct = sum(p == label for p, (_, label) in zip(predicted, rows))
            # Per root operator: which labels the run predicts, to compare with the rule's constant.
            per_root = collections.defaultdict(collections.Counter)
            for p, (root, _) in zip(predicted, rows):
                per_root[root][p] += 1
            print(f"{split} {run}: accuracy {100 * correct / len(rows):.2f}%; predictions per root operator "
                  f"{ {root: dict(c) for root, c in sorted(per_root.items())} }")
        names = list(predictions)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                same = sum(x == y for x, y in zip(predictions[a], predictions[b]))
                print(f"{split}: {a} and {b} agree on {same}/{len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
