#!/usr/bin/python3
"""experiments/augment/filter.py (ctest augment_filter).

Planted rows among good synthetic ones: an exact test duplicate, a case/space variant
of another test sentence, a near-duplicate (a test sentence with one word changed), a
validation and a training duplicate, a repeat of a kept row, a too-long row,
positives without a training drug / effect, invalid UTF-8, empty and malformed rows.
Each must be dropped with the right reason (counts and line numbers) and the good
rows kept. Negative control: with the near-duplicate filter off (--threshold 1.01)
the near-duplicate gets through. The MinHash estimate is compared with the exact
Jaccard of the character 5-gram sets on 200 pairs. --check-model reports, never
drops. Nothing printed quotes a row.
"""
import json
import math
import os
import random
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augment_testlib import (ac, BIN, PY, check, done, make_split, quotes_any, rows, run,  # noqa: E402
                             tmpdir)
import filter as flt  # noqa: E402
import minhash  # noqa: E402

tmp = tmpdir("augment-filter")
split = make_split(tmp)
data, man = ac.load_split(split)
norm = ac.normalize
eval_norm = {norm(r["text"]) for p in ("val", "test") for r in data[p]}
train_norm = {norm(r["text"]) for r in data["train"]}
rels, _ = ac.load_relations(ac.find_corpus(man, split))
tpl, _ = ac.train_templates(data["train"], rels)
lex = ac.lexicon(tpl)
L = flt.Lexicon(lex)

# ---- the rows
simple = lambda s: s.isalpha() and s.islower()  # noqa: E731
drugs = sorted(s for s in lex["drug"].values() if simple(s) and len(s) > 5)[:40]
effects = sorted(s for s in lex["effect"].values() if simple(s) and len(s) > 5 and not ac.is_plural(s)
                 and not L.has("drug", s))[:40]
good = [f"A {30 + i}-year-old woman developed {effects[i]} after {i + 2} weeks of {drugs[i]} therapy."
        for i in range(30)]
check(all(L.has("drug", norm(g)) and L.has("effect", norm(g)) and norm(g) not in train_norm | eval_norm
          for g in good), "precondition: the 30 good positives hold a training drug and effect and are new")

rng = random.Random(7)
test_texts = [r["text"] for r in data["test"]]
ascii_test = [t for t in test_texts if t.isascii() and 12 <= len(t.split()) <= 40]
exact_plant = ascii_test[0]
variant_src = ascii_test[1]
variant = "  ".join(variant_src.swapcase().split()).replace(" ", " \t\u00a0", 3)  # case, spaces, NBSP
near_src = near = None
for t in ascii_test[2:]:
    w = t.split()
    if len(w) < 25:
        continue
    j = next(i for i in range(len(w) // 2, len(w)) if w[i].isalpha() and len(w[i]) >= 4)
    cand = " ".join(w[:j] + ["zebra"] + w[j + 1:])
    if minhash.exact_jaccard(norm(t), norm(cand)) >= 0.85 and minhash.estimate(norm(t), norm(cand)) >= 0.85:
        near_src, near = t, cand
        break
check(near is not None and norm(near) not in eval_norm,
      f"precondition: a test sentence with one word changed, exact 5-gram Jaccard "
      f"{minhash.exact_jaccard(norm(near_src), norm(near)):.3f}, not itself a test text")
val_plant = data["val"][3]["text"]
train_plant = next(r["text"] for r in data["train"] if r["label"] == 0 and norm(r["text"]) not in eval_norm)
no_drug = next(s for e in effects for s in [f"A 50-year-old man developed {e} after a long illness."]
               if not L.has("drug", norm(s)))
no_effect = next(s for d in drugs for s in [f"The patient received {d} for six weeks at home."]
                 if not L.has("effect", norm(s)))
too_long = good[5].replace("therapy.", "therapy. ") + "Symptoms persisted for many weeks afterwards. " * 30
neg_ok = "The weather report for the region was unremarkable for the whole of the season."
short = "Zorbic tremor."


def J(text, label="Adverse_Event"):
    return json.dumps({"text": text, "label": label, "source": "test", "prompt_id": "p"}).encode()


lines = [J(g) for g in good[:10]]
order = list(good[:10])
plan = {  # reason: the planted lines
    "exact_dup_test": [J(exact_plant, "Not_AE"), J(variant, "Not_AE")],
    "near_dup_test": [J(near, "Not_AE")],
    "exact_dup_val": [J(val_plant, "Not_AE")],
    "exact_dup_train": [J(train_plant, "Not_AE")],
    "dup_synthetic": [J("  " + good[0].upper() + " ")],
    "too_long": [J(too_long)],
    "no_drug": [J(no_drug)],
    "no_effect": [J(no_effect)],
    "invalid_utf8": [b'{"text": "bad \xff\xfe bytes", "label": "Not_AE"}', b'{"text": "\\ud800 lone", "label": "Not_AE"}',
                     J("a NUL \u0000 which adebert refuses", "Not_AE")],
    "empty": [J("   \t ")],
    "malformed": [b"this is not json", J("a label nobody knows", "Maybe")],
}
where = {}
for reason, ls in plan.items():
    for ln in ls:
        lines.append(ln)
        where.setdefault(reason, []).append(len(lines))
    order.append(good[len(order)])  # good rows between the planted ones
    lines.append(J(order[-1]))
lines += [J(neg_ok, "Not_AE"), J(short, "Not_AE"), b""]
inp = os.path.join(tmp, "in.jsonl")
with open(inp, "wb") as f:
    f.write(b"\n".join(lines))
n_good = 10 + len(plan)
planted_texts = [exact_plant, variant_src, near_src, near, val_plant, train_plant, no_drug, no_effect] + good

# ---- 1. default filter
out = os.path.join(tmp, "out.jsonl")
rc, so, se = run("filter", inp, "--split", split, "--out", out)
check(rc == 0, f"filter runs (exit {rc}) {se.strip()[:200]}")
rep = json.load(open(os.path.join(tmp, "out.filter.json")))
want = {r: len(v) for r, v in plan.items()}
check(rep["dropped"] == want, f"drop counts per reason {rep['dropped']} == {want}")
check(rep["dropped_at"] == where, "the report names each planted line under its reason")
kept = rows(out)
check(len(kept) == n_good + 2 and rep["kept"] == n_good + 2,
      f"{n_good} good positives + 2 Not_AE rows kept ({len(kept)})")
check([r["text"] for r in kept] == order + [neg_ok, short], "exactly the good rows are kept, in order")
check(all(set(r) == {"text", "label", "source", "prompt_id"} for r in kept), "kept rows have the four fields")
check(stat.S_IMODE(os.stat(out).st_mode) == 0o600, "output is 0600")
for r in ("exact_dup_test", "near_dup_test"):
    check(f"{r} {want[r]}" in so, f"the summary on stdout counts {r} {want[r]}")
check(not quotes_any(so + se, planted_texts), "stdout/stderr quote no row")
check(not quotes_any(open(os.path.join(tmp, "out.filter.json")).read(), planted_texts), "the report quotes no row")

# ---- 2. negative control: near-duplicate filter off, a minimum length on
out2 = os.path.join(tmp, "out2.jsonl")
rc, so, se = run("filter", inp, "--split", split, "--out", out2, "--threshold", "1.01", "--min-words", "3")
rep2 = json.load(open(os.path.join(tmp, "out2.filter.json")))
check(rc == 0 and "near_dup_test" not in rep2["dropped"] and near in {r["text"] for r in rows(out2)},
      "negative control: with --threshold 1.01 the near-duplicate is kept")
check(rep2["dropped"].get("exact_dup_test") == 2 and rep2["dropped"].get("too_short") == 1,
      "... while the exact and case/space duplicates are still dropped, and --min-words 3 drops the 2-word row")

# ---- 3. MinHash estimate vs exact Jaccard
rng = random.Random(11)
errs, signed = [], []
worst_z = 0.0
for _ in range(200):
    a = norm(rng.choice(test_texts))
    w = a.split()
    for _ in range(rng.randint(0, max(1, len(w) // 2))):
        w[rng.randrange(len(w))] = rng.choice(["zebra", "q", "lorem", "ipsum", "kappa"])
    b = " ".join(w)
    x, e = minhash.exact_jaccard(a, b), minhash.estimate(a, b)
    errs.append(abs(e - x))
    signed.append(e - x)
    sd = math.sqrt(max(x * (1 - x), 1e-4) / 128)
    worst_z = max(worst_z, abs(e - x) / sd)
mean_err, bias = sum(errs) / len(errs), sum(signed) / len(signed)
check(worst_z < 4.5, f"every estimate within 4.5 sd of exact Jaccard (worst {worst_z:.2f} sd, max |err| {max(errs):.3f})")
check(mean_err < 0.035 and abs(bias) < 0.01, f"mean |err| {mean_err:.4f} < 0.035, bias {bias:+.4f} within 0.01")
check(minhash.estimate("same text here", "same text here") == 1.0 and
      minhash.estimate("abcdefghij", "klmnopqrst") < 0.05, "identical texts 1.0, disjoint texts ~0")

# ---- 4. --check-model: reported, not dropped (a fake adebert: p = 0.02 for every line)
fake = os.path.join(tmp, "fake-adebert")
with open(fake, "w") as f:
    f.write(f"""#!{PY}
import json, sys
a = sys.argv
inp, outp = a[a.index("--input") + 1], a[a.index("--output") + 1]
assert a[1] == "predict" and a[a.index("--checkpoint") + 1].endswith("best.h5")
with open(inp) as f, open(outp, "w") as o:
    for line in f:
        o.write(json.dumps({{"label": "Not_AE", "p_adverse_event": 0.02}}) + "\\n")
""")
os.chmod(fake, 0o755)
run_dir = os.path.join(tmp, "run")
os.makedirs(run_dir)
open(os.path.join(run_dir, "best.h5"), "w").close()
out3 = os.path.join(tmp, "out3.jsonl")
rc, so, se = run("filter", inp, "--split", split, "--out", out3, "--check-model", run_dir, "--adebert", fake)
lc = json.load(open(os.path.join(tmp, "out3.filter.json"))).get("label_check", {})
check(rc == 0 and lc.get("scored") == n_good + 2 and lc.get("strong_disagreement") == n_good and
      len(rows(out3)) == n_good + 2,
      f"label check: the {n_good} positives at p=0.02 are reported, Not_AE rows not, nothing dropped")
check([r["line"] for r in lc.get("rows", [])] == list(range(1, n_good + 1)), "... by output line number")
rc, so, se = run("filter", inp, "--split", split, "--out", out3, "--check-model", os.path.join(tmp, "nope"))
check(rc == 1 and len(se.strip().splitlines()) == 1, "a missing checkpoint: exit 1, one line")

# the real adebert predict on a 1-step tiny checkpoint (HDF5 builds): the interface
ver = subprocess.run([BIN, "version"], capture_output=True, text=True).stdout
if "(checkpoints)" in ver:  # "HDF5     1.10.8 (checkpoints)"; a build without says "not built"
    vocab = os.path.join(os.environ.get("ADEBERT_TEST_DATA", ""), "vocab", "bert-base-cased-vocab.txt")
    tr = subprocess.run([BIN, "train", "--data", split, "--model", "tiny", "--vocab", vocab, "--cased", "--epochs",
                         "1", "--max-steps", "1", "--limit", "64", "--max-seq-len", "32", "--batch-size", "8",
                         "--quiet", "--out", os.path.join(tmp, "tiny")], capture_output=True, text=True)
    rc, so, se = run("filter", inp, "--split", split, "--out", out3, "--check-model", os.path.join(tmp, "tiny"),
                     "--adebert", BIN, "--disagree", "0.49")
    lc = json.load(open(os.path.join(tmp, "out3.filter.json"))).get("label_check", {})
    check(tr.returncode == 0 and rc == 0 and lc.get("scored") == n_good + 2 and
          all(0 <= r["p_adverse_event"] <= 1 for r in lc["rows"]) and len(rows(out3)) == n_good + 2,
          f"the real `adebert predict` scores the {n_good + 2} kept rows ({lc.get('strong_disagreement')} flagged)")
else:
    print("note: no HDF5 in this build: the real adebert predict is not exercised")

# ---- 5. errors: one line
rc, so, se = run("filter", os.path.join(tmp, "missing.jsonl"), "--split", split, "--out", out3)
check(rc == 1 and len(se.strip().splitlines()) == 1, "a missing input: exit 1, one line")
rc, so, se = run("filter", inp, "--split", tmp, "--out", out3)
check(rc == 1 and len(se.strip().splitlines()) == 1 and "split folder" in se, "not a split folder: exit 1, one line")
done(tmp)
