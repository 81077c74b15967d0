#!/usr/bin/python3
"""Filters synthetic rows: every row passes or is dropped for one reason, counted.

  experiments/augment/filter.py --split SPLIT_DIR IN.jsonl --out OUT.jsonl
      [--threshold 0.8] [--ngram 5] [--num-perm 128] [--min-words N] [--max-words N]
      [--no-lexicon-check] [--corpus DIR] [--report FILE]
      [--check-model RUN_DIR|CKPT.h5 [--adebert PATH] [--disagree 0.1]]

Rows are {"text", "label" (Adverse_Event|Not_AE), "source", "prompt_id"}. Reasons, in
the order they are checked (the first that applies is counted):
  invalid_utf8, empty, malformed   not UTF-8 (a lone surrogate, or a NUL, which
                                   adebert's JSONL reader refuses, included); no text;
                                   not an object with a string text and a known label
  exact_dup_val, exact_dup_test    the normalised text (NFKC, casefold, whitespace
                                   collapsed) equals a validation / test text
  near_dup_val, near_dup_test      MinHash estimate of the character n-gram Jaccard
                                   with a validation / test text >= --threshold
                                   (a threshold above 1 switches this off)
  exact_dup_train                  equals a training text (normalised)
  dup_synthetic                    equals an earlier kept synthetic row (normalised)
  too_short, too_long              words outside the training texts' range
                                   (or --min-words / --max-words)
  no_drug, no_effect               a positive without a drug / an effect of the
                                   training relations' lexicon (whole words, any case)
Kept rows go to OUT (atomically, mode 0600); counts to stdout and, with the line
numbers of the dropped rows, to OUT.filter.json (or --report). --check-model scores
the kept rows with `adebert predict` and reports (does not drop) the rows the model
strongly disagrees with: p(ADE) < D for an Adverse_Event row, > 1 - D for Not_AE.
Only counts and line numbers are printed: never corpus or generated text.
Validation and test are read for these checks only; generators never see them.
"""
import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import augcommon as ac  # noqa: E402
import minhash  # noqa: E402

REASONS = ("invalid_utf8", "empty", "malformed", "exact_dup_val", "exact_dup_test", "near_dup_val",
           "near_dup_test", "exact_dup_train", "dup_synthetic", "too_short", "too_long", "no_drug", "no_effect")
MAX_LINES = 1000  # line numbers kept per reason in the report


def _tokens(norm):
    return tuple(re.findall(r"\w+", norm))


class Lexicon:
    """Whole-word, case-insensitive lookup of the training drugs and effects."""

    def __init__(self, lex):
        self.sets, self.maxlen = {}, 1
        for kind in ("drug", "effect"):
            s = {_tokens(k) for k in lex[kind]}
            s.discard(())
            self.sets[kind] = s
            self.maxlen = max([self.maxlen] + [len(t) for t in s])

    def has(self, kind, norm_text):
        toks, s = _tokens(norm_text), self.sets[kind]
        for i in range(len(toks)):
            for n in range(1, min(self.maxlen, len(toks) - i) + 1):
                if toks[i:i + n] in s:
                    return True
        return False


class Filter:
    """The checks, with the validation/test/train state loaded once. check() returns
    None (kept: the row joins the synthetic set) or the reason it is dropped."""

    def __init__(self, split_dir, corpus=None, threshold=0.8, ngram=5, num_perm=128, min_words=None,
                 max_words=None, lexicon_check=True, data=None):
        data, man = data or ac.load_split(split_dir)
        self.split_dir, self.man = split_dir, man
        self.threshold, self.ngram, self.num_perm = threshold, ngram, num_perm
        self.eval_exact = {}
        for p in ("val", "test"):  # test last: a text in both counts as test
            for r in data[p]:
                self.eval_exact[ac.normalize(r["text"])] = p
        self.near = None
        if threshold <= 1:
            self.near = {p: minhash.Index([ac.normalize(r["text"]) for r in data[p]], ngram, num_perm)
                         for p in ("val", "test")}
        self.train = {ac.normalize(r["text"]) for r in data["train"]}
        words = [len(r["text"].split()) for r in data["train"]]
        self.min_words = min_words if min_words is not None else min(words)
        self.max_words = max_words if max_words is not None else max(words)
        self.synthetic = set()
        self.lex = None
        self.lexicon_sizes = None
        if lexicon_check:
            corpus_dir = ac.find_corpus(man, split_dir, corpus)
            rels, _ = ac.load_relations(corpus_dir)
            tpl, unmatched = ac.train_templates(data["train"], rels)
            ac.check_templates(tpl, unmatched, corpus_dir)
            lex = ac.lexicon(tpl)
            self.lex = Lexicon(lex)
            self.lexicon_sizes = {k: len(v) for k, v in lex.items()}
        self.counts = collections.Counter()
        self.lines = collections.defaultdict(list)
        self.kept = 0
        self.seen = 0

    def add_existing(self, text):
        """A row already kept in an earlier run (resume): later rows must not repeat it."""
        self.synthetic.add(ac.normalize(text))

    def drop(self, reason, where):
        self.counts[reason] += 1
        if where is not None and len(self.lines[reason]) < MAX_LINES:
            self.lines[reason].append(where)
        return reason

    def check(self, text, label, where=None):
        self.seen += 1
        if not isinstance(text, str) or label not in (ac.POS, ac.NEG):
            return self.drop("malformed", where)
        if not ac.valid_text(text):
            return self.drop("invalid_utf8", where)
        norm = ac.normalize(text)
        if not norm:
            return self.drop("empty", where)
        part = self.eval_exact.get(norm)
        if part:
            return self.drop(f"exact_dup_{part}", where)
        if self.near is not None:
            sig = self.near["val"].sig(norm)
            for p in ("test", "val"):
                j, _ = self.near[p].max_jaccard(sig)
                if j >= self.threshold:
                    return self.drop(f"near_dup_{p}", where)
        if norm in self.train:
            return self.drop("exact_dup_train", where)
        if norm in self.synthetic:
            return self.drop("dup_synthetic", where)
        nw = len(text.split())
        if nw < self.min_words:
            return self.drop("too_short", where)
        if nw > self.max_words:
            return self.drop("too_long", where)
        if label == ac.POS and self.lex is not None:
            if not self.lex.has("drug", norm):
                return self.drop("no_drug", where)
            if not self.lex.has("effect", norm):
                return self.drop("no_effect", where)
        self.synthetic.add(norm)
        self.kept += 1
        return None

    def settings(self):
        return {"threshold": self.threshold, "near_dup": self.near is not None, "ngram": self.ngram,
                "num_perm": self.num_perm, "min_words": self.min_words, "max_words": self.max_words,
                "lexicon_check": self.lex is not None, "lexicon_sizes": self.lexicon_sizes,
                "split": os.path.abspath(self.split_dir), "split_sha256": ac.split_hashes(self.man)}

    def report(self):
        return {"checked": self.seen, "kept": self.kept,
                "dropped": {r: self.counts[r] for r in REASONS if self.counts[r]},
                "dropped_at": {r: v for r, v in self.lines.items()}, "settings": self.settings()}

    def summary(self, what="rows"):
        d = ", ".join(f"{r} {self.counts[r]}" for r in REASONS if self.counts[r]) or "none"
        return f"filter: {self.seen} {what} checked, {self.kept} kept; dropped: {d}"


def add_args(ap, standalone=False):
    g = ap.add_argument_group("filter (also used by the generators)")
    if not standalone:
        g.add_argument("--no-filter", action="store_true", help="write every generated row unfiltered")
    g.add_argument("--threshold", type=float, default=0.8,
                   help="near-duplicate MinHash Jaccard threshold [0.8]; > 1 switches it off")
    g.add_argument("--ngram", type=int, default=5, help="character n-gram size [5]")
    g.add_argument("--num-perm", type=int, default=128, help="MinHash hash functions [128]")
    g.add_argument("--min-words", type=int, help="shortest text kept [the shortest training text]")
    g.add_argument("--max-words", type=int, help="longest text kept [the longest training text]")
    g.add_argument("--no-lexicon-check", action="store_true",
                   help="keep positives without a training drug and effect")
    g.add_argument("--corpus", help="folder with DRUG-AE.rel [the split's recorded data folder]")
    g.add_argument("--report", help="JSON report [OUT.filter.json]")
    g.add_argument("--check-model", metavar="RUN_DIR|CKPT",
                   help="score kept rows with `adebert predict`; report strong disagreement")
    g.add_argument("--adebert", default=os.environ.get("ADEBERT", os.path.join(ac.ROOT, "build", "adebert")),
                   help="the adebert program [$ADEBERT, else build/adebert]")
    g.add_argument("--disagree", type=float, default=0.1,
                   help="report Adverse_Event rows with p(ADE) < D and Not_AE rows with p > 1 - D [0.1]")


def check_args(a):
    if a.ngram < 1 or a.num_perm < 8 or not 0 < a.disagree < 0.5 or a.threshold <= 0:
        raise ac.AugError("need --ngram >= 1, --num-perm >= 8, 0 < --disagree < 0.5, --threshold > 0")


def make(a, split_dir, data=None):
    return Filter(split_dir, corpus=a.corpus, threshold=a.threshold, ngram=a.ngram, num_perm=a.num_perm,
                  min_words=a.min_words, max_words=a.max_words, lexicon_check=not a.no_lexicon_check, data=data)


def checkpoint_of(path):
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "best.h5")):
            return os.path.join(path, "best.h5")
        ck = sorted(glob.glob(os.path.join(path, "ckpt-step*.h5")))
        if ck:
            return ck[-1]
        raise ac.AugError(f"{path}: no best.h5 or ckpt-step*.h5 in the run directory")
    if os.path.isfile(path):
        return path
    raise ac.AugError(f"{path}: no such checkpoint or run directory")


def label_check(rows, model, adebert, disagree):
    """Scores the rows' texts with `adebert predict`; returns the report section. The
    texts go through a 0600 temporary file (one line each: newlines become spaces)."""
    ckpt = checkpoint_of(model)
    with tempfile.TemporaryDirectory(prefix="adebert-augment.") as td:
        inp, outp = os.path.join(td, "in.txt"), os.path.join(td, "out.jsonl")
        fd = os.open(inp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(" ".join(r["text"].split()) + "\n")
        try:
            p = subprocess.run([adebert, "predict", "--checkpoint", ckpt, "--input", inp, "--output", outp],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
        except OSError as e:
            raise ac.AugError(f"--check-model: cannot run {adebert}: {e.strerror}")
        if p.returncode != 0:
            # adebert's own errors never quote corpus text
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ac.AugError(f"--check-model: adebert predict failed (exit {p.returncode}): "
                              f"{err[-1] if err else 'no message'}")
        with open(outp, encoding="utf-8") as f:
            preds = [json.loads(l) for l in f if l.strip()]
    if len(preds) != len(rows):
        raise ac.AugError(f"--check-model: {len(preds)} predictions for {len(rows)} rows")
    flagged = []
    for i, (r, pr) in enumerate(zip(rows, preds), 1):
        p = float(pr["p_adverse_event"])
        if (r["label"] == ac.POS and p < disagree) or (r["label"] == ac.NEG and p > 1 - disagree):
            flagged.append({"line": i, "label": r["label"], "p_adverse_event": round(p, 4)})
    return {"checkpoint": os.path.abspath(ckpt), "disagree": disagree, "scored": len(rows),
            "strong_disagreement": len(flagged), "rows": flagged}


def finish(flt, a, out, rows, extra=None):
    """The report next to OUT (and the label check), counts on stdout."""
    rep = {"output": os.path.abspath(out), "rows_written": len(rows)}
    if flt is not None:
        rep.update(flt.report())
        print(flt.summary(), flush=True)
    if extra:
        rep.update(extra)
    if a.check_model:
        rep["label_check"] = label_check(rows, a.check_model, a.adebert, a.disagree)
        lc = rep["label_check"]
        print(f"label check: {lc['scored']} rows scored, {lc['strong_disagreement']} the model strongly "
              f"disagrees with (reported in the JSON report, not dropped)", flush=True)
    path = a.report or ac.report_path(out)
    ac.write_json(path, rep)
    return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="JSONL of rows to filter")
    ap.add_argument("--split", required=True, help="an `adebert data split` folder")
    ap.add_argument("--out", required=True, help="the kept rows (JSONL)")
    add_args(ap, standalone=True)
    a = ap.parse_args()
    try:
        check_args(a)
        if os.path.abspath(a.input) == os.path.abspath(a.out):
            raise ac.AugError("--out must differ from the input")
        try:
            with open(a.input, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ac.AugError(f"{a.input}: {e.strerror}")
        flt = make(a, a.split)
        kept = []
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                s = line.decode("utf-8")
            except UnicodeDecodeError:
                flt.seen += 1
                flt.drop("invalid_utf8", n)
                continue
            try:
                r = json.loads(s)
            except ValueError:
                r = None
            if not isinstance(r, dict) or not isinstance(r.get("text"), str):
                flt.check(None, None, n)
                continue
            if flt.check(r["text"], r.get("label"), n) is None:
                kept.append({"text": r["text"], "label": r["label"], "source": r.get("source", ""),
                             "prompt_id": r.get("prompt_id", "")})
        ac.write_jsonl(a.out, kept)
        finish(flt, a, a.out, kept, {"input": os.path.abspath(a.input)})
    except ac.AugError as e:
        ac.die(str(e))


if __name__ == "__main__":
    main()
