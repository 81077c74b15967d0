#!/usr/bin/env python3
"""Independent cross-check of the corpus counts and the leakage facts that
tests/test_corpus.c and tests/test_split.c assert, written from the corpus
description alone (standard library only).

    python3 tests/reference/check_corpus.py [DATA_DIR] [--adebert BIN]

DATA_DIR holds DRUG-AE.rel and ADE-NEG.txt (default: $ADEBERT_TEST_DATA/ade-corpus-v2).
With --adebert, `BIN data stats --json` is run for every view x split and its row
counts and leakage are checked against what this script derives. Prints numbers
only, never corpus text. Exits non-zero on any mismatch.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys


def load(dir_):
    """Hugging Face's Ade_corpus_v2_classification rows: (text, label, pmid)."""
    rows = []
    with open(os.path.join(dir_, "DRUG-AE.rel"), encoding="utf-8", newline="") as f:
        for line in f:
            fields = line.rstrip("\n").rstrip("\r").split("|")
            assert len(fields) == 8, "DRUG-AE.rel: wrong field count"
            rows.append((fields[1].strip(), 1, int(fields[0])))
    with open(os.path.join(dir_, "ADE-NEG.txt"), encoding="utf-8", newline="") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            pmid, neg, text = line.split(" ", 2)
            assert neg == "NEG", "ADE-NEG.txt: missing NEG"
            rows.append((text, 0, int(pmid)))
    return rows


def dedup(rows):
    seen, out = set(), []
    for r in rows:
        if r[0] not in seen:
            seen.add(r[0])
            out.append(r)
    return out


def leak(rows, train, test):
    train_texts = {rows[i][0] for i in train}
    leaked = [i for i in test if rows[i][0] in train_texts]
    return len(leaked), sum(rows[i][1] for i in leaked), sum(rows[i][1] for i in test)


def components(rows):
    parent = list(range(len(rows)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first = {}
    for i, (text, _, pmid) in enumerate(rows):
        for key in (("t", text), ("p", pmid)):
            if key in first:
                a, b = find(i), find(first[key])
                parent[max(a, b)] = min(a, b)
            else:
                first[key] = i
    comps = {}
    for i in range(len(rows)):
        comps.setdefault(find(i), []).append(i)
    return list(comps.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?",
                    default=os.path.join(os.environ.get("ADEBERT_TEST_DATA", "../shared/data"), "ade-corpus-v2"))
    ap.add_argument("--adebert", help="adebert binary to compare `data stats --json` against")
    args = ap.parse_args()
    bad = 0

    def check(name, got, want):
        nonlocal bad
        ok = got == want
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name}: {got}" + ("" if ok else f" (want {want})"))

    hf = load(args.data)
    dd = dedup(hf)
    check("hf rows", len(hf), 23516)
    check("hf positives", sum(r[1] for r in hf), 6821)
    check("dedup rows", len(dd), 20896)
    check("dedup positives", sum(r[1] for r in dd), 4271)

    # A random 80/20 split (Python's shuffle, so not adebert's rows): leakage is a
    # property of the corpus, so every seed lands in the same band.
    n = len(hf)
    n_test = math.ceil(0.2 * n)
    check("random test size", n_test, 4704)
    for seed in range(5):
        idx = list(range(n))
        random.Random(seed).shuffle(idx)
        lr, lp, tp = leak(hf, idx[n_test:], idx[:n_test])
        ok = 600 <= lr <= 800 and 0.40 <= lp / tp <= 0.65
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} random seed {seed}: leaked {lr} test rows, {lp}/{tp} positives ({100 * lp / tp:.1f}%)")

    comps = components(hf)
    sizes = sorted((len(c) for c in comps), reverse=True)
    print(f"    hf PMID/text components: {len(comps)}, largest {sizes[:5]}")
    # Whole components never leak: take components in a shuffled order.
    order = list(range(len(comps)))
    random.Random(1).shuffle(order)
    test = []
    for g in order:
        if len(test) >= n_test:
            break
        test.extend(comps[g])
    in_test = set(test)
    train = [i for i in range(n) if i not in in_test]
    check("grouped leak (python)", leak(hf, train, test)[0], 0)
    check("grouped PMIDs shared", len({hf[i][2] for i in train} & {hf[i][2] for i in test}), 0)

    if args.adebert:
        for view, rows in (("hf", hf), ("dedup", dd)):
            for split in ("random", "stratified", "grouped"):
                out = subprocess.run([args.adebert, "data", "stats", "--data", args.data, "--view", view,
                                      "--split", split, "--seed", "42", "--json"],
                                     check=True, capture_output=True, text=True).stdout
                s = json.loads(out)
                tag = f"adebert {view}/{split}"
                check(tag + " rows", s["rows"], len(rows))
                check(tag + " positives", s["positives"], sum(r[1] for r in rows))
                check(tag + " parts cover", s["train_rows"] + s["val_rows"] + s["test_rows"], len(rows))
                if view == "dedup" or split == "grouped":
                    check(tag + " leaked test rows", s["leaked_test_rows"], 0)
                    check(tag + " leaked val rows", s["leaked_val_rows"], 0)
                elif split == "random":
                    ok = 600 <= s["leaked_test_rows"] <= 800
                    bad += not ok
                    print(f"{'ok ' if ok else 'BAD'} {tag} leaked test rows: {s['leaked_test_rows']}")
    print("all checks passed" if bad == 0 else f"{bad} check(s) failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
