#!/usr/bin/env python3
"""Peer side of the tokenizer benchmark: Hugging Face `tokenizers` (Rust, FAST),
one thread, the same rows and configuration as bench/bench_tokenizer.c.

Run with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false (the driver sets them
and pins the process to one core). Texts are loaded once; each timed repetition
tokenises every row of the `hf` view with encode_batch, encode_batch_fast (when
this tokenizers has it: no offsets), and encode() row by row. Prints JSON.
    tokenizer_peer.py --data DIR --vocab FILE [--lowercase|--cased] [--reps R]
"""
import argparse
import json
import os
import statistics
import sys
import time

import tokenizers
from tokenizers import BertWordPieceTokenizer


def hf_rows(data):
    d = os.path.join(data, "ade-corpus-v2")
    rows = []
    with open(os.path.join(d, "DRUG-AE.rel"), "rb") as f:
        for raw in f.read().decode("utf-8").split("\n")[:-1]:
            rows.append(raw.split("|")[1].strip())
    with open(os.path.join(d, "ADE-NEG.txt"), "rb") as f:
        for raw in f.read().decode("utf-8").split("\n")[:-1]:
            rows.append(raw.split(" ", 2)[2])
    return rows


def side(times, rows, tokens):
    m = statistics.median(times)
    return {"seconds": [round(t, 6) for t in times], "median_s": round(m, 6), "rows_per_s": round(rows / m, 1),
            "tokens_per_s": round(tokens / m, 1), "ns_per_row": round(1e9 * m / rows, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("ADEBERT_TEST_DATA"))
    ap.add_argument("--vocab", required=True)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--lowercase", dest="lower", action="store_true", default=None)
    g.add_argument("--cased", dest="lower", action="store_false")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if a.lower is None:
        sys.exit("tokenizer_peer.py: give --lowercase or --cased")
    if os.environ.get("RAYON_NUM_THREADS") != "1" or os.environ.get("TOKENIZERS_PARALLELISM") != "false":
        sys.exit("tokenizer_peer.py: set RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false")
    texts = hf_rows(a.data)
    tok = BertWordPieceTokenizer(a.vocab, lowercase=a.lower, clean_text=True, handle_chinese_chars=True,
                                 strip_accents=None)
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts))  # warm-up, untimed
    has_fast = hasattr(tok._tokenizer, "encode_batch_fast")
    tb, tf, te = [], [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        enc = tok.encode_batch(texts)
        tb.append(time.perf_counter() - t0)
        assert sum(len(e.ids) for e in enc) == tokens
        del enc
        if has_fast:
            t0 = time.perf_counter()
            enc = tok._tokenizer.encode_batch_fast(texts)
            tf.append(time.perf_counter() - t0)
            del enc
        t0 = time.perf_counter()
        n = 0
        for s in texts:
            n += len(tok.encode(s).ids)
        te.append(time.perf_counter() - t0)
        assert n == tokens
    out = {"side": "hf_tokenizers", "tokenizers_version": tokenizers.__version__,
           "python": sys.version.split()[0], "vocab": os.path.basename(a.vocab), "lowercase": int(a.lower),
           "max_len": 0, "reps": a.reps, "threads": 1, "rows": len(texts),
           "bytes": sum(len(s.encode()) for s in texts), "tokens": tokens,
           "encode_batch": side(tb, len(texts), tokens), "encode_per_row": side(te, len(texts), tokens)}
    if has_fast:
        out["encode_batch_fast"] = side(tf, len(texts), tokens)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
