#!/usr/bin/python3
"""experiments/augment/span_swap.py (ctest augment_span_swap).

On a grouped split: every output is a positive that differs from its template, holds
a training drug and effect, comes from a training template (never a validation/test
one) and is no validation/test/train text; the swapped entity came from the training
lexicon with the same plural-ness, sentence-initial capitals and acronyms survive;
--mode drug/effect keep the other entity; the same seed gives the same file, another
seed another. Negative control: on a leaky folder whose train.jsonl also holds the
test rows, the template check does see test templates. Nothing printed quotes text.
"""
import hashlib
import json
import os
import re
import shutil
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augment_testlib import ac, check, done, make_split, quotes_any, rows, run, tmpdir  # noqa: E402
import filter as flt  # noqa: E402

tmp = tmpdir("augment-span-swap")
split = make_split(tmp)
data, man = ac.load_split(split)
norm = ac.normalize
ids = {p: {r["id"] for r in data[p]} for p in ac.PARTS}
train_pos = {r["id"]: r["text"] for r in data["train"] if r["label"] == 1}
eval_norm = {norm(r["text"]) for p in ("val", "test") for r in data[p]}
train_norm = {norm(r["text"]) for r in data["train"]}
rels, _ = ac.load_relations(ac.find_corpus(man, split))
tpl = {t.id: t for t in ac.train_templates(data["train"], rels)[0]}
lex = ac.lexicon(list(tpl.values()))
items = {k: sorted(lex[k].items()) for k in ("drug", "effect")}
L = flt.Lexicon(lex)
PID = re.compile(r"^swap:(drug|effect|both):t(\d+):r(\d+):d(-?\d+):e(-?\d+)$")


def parse(r):
    m = PID.match(r["prompt_id"])
    return (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))) if m else None


def word_in(s, text):
    return re.search(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text, re.IGNORECASE) is not None


out = os.path.join(tmp, "both.jsonl")
rc, so, se = run("span_swap", "--split", split, "--out", out, "--count", 300, "--seed", 5)
check(rc == 0, f"span_swap --count 300 runs (exit {rc}) {se.strip()[:200]}")
R = rows(out)
P = [parse(r) for r in R]
check(len(R) == 300 and all(p for p in P), "300 rows, each prompt_id names mode, template, relation, lexicon entries")
check(all(r["label"] == "Adverse_Event" and r["source"] == "span_swap" and set(r) == {"text", "label", "source",
          "prompt_id"} for r in R), "all rows are Adverse_Event positives with the four fields")
tids = {p[1] for p in P if p}
check(tids <= set(train_pos), f"every template is a training positive ({len(tids)} distinct templates)")
check(not tids & (ids["val"] | ids["test"]), "no template is a validation or test row")
check(all(norm(r["text"]) != norm(train_pos[p[1]]) for r, p in zip(R, P)), "every row differs from its template")
check(all(L.has("drug", norm(r["text"])) and L.has("effect", norm(r["text"])) for r in R),
      "every row holds a training drug and a training effect")
check(not any(norm(r["text"]) in eval_norm | train_norm for r in R), "no row is a validation, test or training text")
check(len({norm(r["text"]) for r in R}) == 300, "no two rows alike")
check(any(len(tpl[p[1]].rels) > 1 for p in P), "templates with several relations are used too")

bad_case = bad_plural = bad_acronym = swapped = 0
for r, (mode, tid, ri, d, e) in zip(R, P):
    drug, ds, effect, es = tpl[tid].rels[ri]
    for kind, idx, old in (("drug", d, drug), ("effect", e, effect)):
        if idx < 0:
            continue
        swapped += 1
        surface = items[kind][idx][1]
        bad_plural += ac.is_plural(surface) != ac.is_plural(old)
        bad_acronym += surface.isupper() and surface not in r["text"]
        bad_plural += not word_in(surface, r["text"])  # the lexicon entry is what went in
    t0 = tpl[tid].text[0]
    bad_case += t0.isupper() and r["text"][0].islower()  # ('0.1% tretinoin cream' may start one)
check(swapped == 600 and bad_plural == 0, f"--mode both swaps 2 entities per row, each a lexicon entry with the "
      f"plural-ness of what it replaced ({swapped} swaps, {bad_plural} bad)")
check(bad_case == 0, "a template's capital first letter stays capital")
check(bad_acronym == 0, "all-caps replacements (acronyms) go in unchanged")
check(stat.S_IMODE(os.stat(out).st_mode) == 0o600, "output is 0600")
rep = json.load(open(os.path.join(tmp, "both.filter.json")))
check(rep["kept"] == 300 and rep["generator"] == "span_swap" and rep["settings"]["threshold"] == 0.8,
      "the filter report sits next to the output")
texts = list(train_pos.values())
check(not quotes_any(so + se + json.dumps(rep), texts + [r["text"] for r in R]), "stdout, stderr and report quote no text")

# determinism
out2 = os.path.join(tmp, "both2.jsonl")
run("span_swap", "--split", split, "--out", out2, "--count", 300, "--seed", 5)
same = open(out, "rb").read() == open(out2, "rb").read()
check(same, "the same seed gives the same file, byte for byte")
run("span_swap", "--split", split, "--out", out2, "--count", 300, "--seed", 6)
check(open(out, "rb").read() != open(out2, "rb").read(), "another seed gives another file")

# modes: the other entity of the relation stays
for mode, keep in (("drug", "effect"), ("effect", "drug")):
    o = os.path.join(tmp, f"{mode}.jsonl")
    rc, so, se = run("span_swap", "--split", split, "--out", o, "--count", 100, "--seed", 3, "--mode", mode)
    Rm = rows(o)
    Pm = [parse(r) for r in Rm]
    ok = rc == 0 and len(Rm) == 100
    for r, (m, tid, ri, d, e) in zip(Rm, Pm):
        drug, ds, effect, es = tpl[tid].rels[ri]
        kept = effect if keep == "effect" else drug
        ok &= m == mode and (d >= 0) == (mode == "drug") and (e >= 0) == (mode == "effect")
        ok &= word_in(kept, r["text"]) and norm(r["text"]) != norm(tpl[tid].text)
    check(ok, f"--mode {mode}: 100 rows, the relation's {keep} kept, its {mode} replaced")

# negative control: a leaky folder (train.jsonl += the test rows) -> the template check sees test templates
leak = os.path.join(tmp, "leaky")
shutil.copytree(split, leak)
with open(os.path.join(leak, "train.jsonl"), "ab") as f:
    f.write(open(os.path.join(split, "test.jsonl"), "rb").read())
m = json.load(open(os.path.join(leak, "manifest.json")))
m["files"]["train"]["sha256"] = hashlib.sha256(open(os.path.join(leak, "train.jsonl"), "rb").read()).hexdigest()
json.dump(m, open(os.path.join(leak, "manifest.json"), "w"))
ol = os.path.join(tmp, "leak.jsonl")
rc, so, se = run("span_swap", "--split", leak, "--out", ol, "--count", 300, "--seed", 5, "--no-filter")
leaked = {parse(r)[1] for r in rows(ol)} & ids["test"] if rc == 0 else set()
check(len(leaked) > 10, f"negative control: on a folder whose train holds the test rows, {len(leaked)} templates "
      "are test rows and the check above would fail")

# errors: one line, exit 1
for desc, args in (("--count 0", ["--count", 0]), ("a folder that is no split", ["--split", tmp]),
                   ("a corpus without DRUG-AE.rel", ["--corpus", tmp])):
    a = ["--split", split, "--out", os.path.join(tmp, "x.jsonl")] + args
    rc, so, se = run("span_swap", *a)
    check(rc == 1 and len(se.strip().splitlines()) == 1 and not os.path.exists(os.path.join(tmp, "x.jsonl")),
          f"{desc}: exit 1, one line, no output")
done(tmp)
