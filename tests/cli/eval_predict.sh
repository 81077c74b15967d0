#!/usr/bin/env bash
# adebert eval and predict on a checkpoint of a tiny training run:
#  - eval on the recorded test split reproduces the run's own test record for that
#    step (same rows, same model: confusion, F1, AUCs and eval loss, exactly);
#  - predict on the text of those rows agrees with eval's per-row scores;
#  - --threshold moves labels and the confusion matrix consistently;
#  - bad input (missing/truncated checkpoint, invalid UTF-8, bad flags): one line on
#    stderr, non-zero exit, no output file, and no corpus text on stderr.
source "$(dirname "$0")/lib.bash"
require_corpus

"$BIN" version >"$TMP/version.txt" 2>&1
if ! grep -q "HDF5 .*(checkpoints)" "$TMP/version.txt"; then
  # A build without HDF5 has no checkpoints: eval and predict say so in one line.
  : >"$TMP/fake.h5"
  expect_exit 1 "eval without HDF5" -- "$BIN" eval --checkpoint "$TMP/fake.h5"
  grep -q "without HDF5\|ADEBERT_HDF5=OFF" "$TMP/err" && pass "eval names HDF5" || fail "eval names HDF5: $(cat "$TMP/err")"
  expect_exit 1 "predict without HDF5" -- "$BIN" predict --checkpoint "$TMP/fake.h5" </dev/null
  grep -q "without HDF5\|ADEBERT_HDF5=OFF" "$TMP/err" && pass "predict names HDF5" || fail "predict names HDF5: $(cat "$TMP/err")"
  finish
fi

run="$TMP/run"
# eval's default batch size is the run's (32 here, not eval's fallback 64): the same
# batches as training's evaluation, so even the float sums (eval loss) come out bit for bit.
"$BIN" train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 400 --epochs 1 \
  --batch-size 32 --lr 1e-3 --max-seq-len 64 --save-every epoch --quiet --out "$run" >"$TMP/train.log" 2>"$TMP/train.err"
rc=$?
ckpt=$(ls "$run"/ckpt-step*.h5 2>/dev/null | tail -1)
[ $rc -eq 0 ] && [ -n "$ckpt" ] && pass "train wrote a checkpoint" \
  || { fail "train wrote a checkpoint (exit $rc): $(tail -3 "$TMP/train.err")"; finish; }

# ---------------------------------------------------------------- eval
"$BIN" eval --checkpoint "$ckpt" --json --scores "$TMP/scores.tsv" >"$TMP/eval.json" 2>"$TMP/eval.err" \
  && pass "eval --json ran" || { fail "eval --json ran: $(cat "$TMP/eval.err")"; finish; }
res=$(python3 - "$run/metrics.jsonl" "$TMP/eval.json" "$TMP/scores.tsv" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
e = json.loads(open(sys.argv[2]).read())
problems = []
want = [r for r in recs if r["split"] == "test" and r["step"] == e["step"]]
if not want:
    print(f"no test record at step {e['step']} in metrics.jsonl"); sys.exit()
w = want[-1]
for k in ["tp", "fp", "tn", "fn", "precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc", "eval_loss", "epoch"]:
    if e[k] != w[k]: problems.append(f"{k}: eval {e[k]!r} vs train {w[k]!r}")
keys = ["schema_version", "split", "epoch", "step", "lr", "train_loss", "eval_loss", "precision", "recall", "f1",
        "accuracy", "roc_auc", "pr_auc", "tp", "fp", "tn", "fn", "grad_norm", "loss_scale", "seconds", "tokens_per_s"]
if list(e)[:len(keys)] != keys: problems.append(f"record keys {list(e)}")
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[3])]
if rows[0] != ["row", "label", "p_adverse_event"]: problems.append(f"scores header {rows[0]}")
n = e["tp"] + e["fp"] + e["tn"] + e["fn"]
if len(rows) - 1 != n: problems.append(f"{len(rows) - 1} score rows, confusion sums to {n}")
pos = sum(1 for r in rows[1:] if float(r[2]) >= 0.5)
if pos != e["tp"] + e["fp"]: problems.append(f"{pos} scores >= 0.5 but tp+fp = {e['tp'] + e['fp']}")
print("; ".join(problems) if problems else f"OK F1 {e['f1']} tp {e['tp']} fp {e['fp']} tn {e['tn']} fn {e['fn']} loss {e['eval_loss']}")
PY
)
case "$res" in OK*) pass "eval reproduces the run's test record: $res";; *) fail "eval reproduces the run's test record: $res";; esac

"$BIN" eval --checkpoint "$ckpt" >"$TMP/eval.txt" 2>&1
grep -q "actual ADE" "$TMP/eval.txt" && grep -q "F1" "$TMP/eval.txt" && grep -q "ROC-AUC" "$TMP/eval.txt" \
  && pass "eval prints the metrics and the confusion matrix" || fail "eval table: $(cat "$TMP/eval.txt")"
grep -q "training logged at step .*: same confusion matrix" "$TMP/eval.txt" \
  && pass "eval compares with the record the checkpoint carries" || fail "eval vs carried record: $(cat "$TMP/eval.txt")"

# --out appends one record per run.
"$BIN" eval --checkpoint "$ckpt" --out "$TMP/m.jsonl" --json >/dev/null 2>&1
"$BIN" eval --checkpoint "$ckpt" --split-name val --out "$TMP/m.jsonl" >/dev/null 2>&1
[ "$(wc -l <"$TMP/m.jsonl")" -eq 2 ] && [ "$(python3 -c 'import json,sys; print(",".join(json.loads(l)["split"] for l in open(sys.argv[1])))' "$TMP/m.jsonl")" = "test,val" ] \
  && pass "eval --out appends records" || fail "eval --out appends records: $(cat "$TMP/m.jsonl")"

# Batch-parallel workers: 1, 2 and 3 workers (batches of 8: 10 of them) give the same
# bytes: scores and the eval record's loss. The human output names the worker count (so
# the comparison is between different worker counts, not one path three times), and a
# changed batch size, which packs other rows together, is the control that a different
# computation shows in the bits (eval loss).
for t in 1 2 3; do
  "$BIN" eval --checkpoint "$ckpt" --batch-size 8 --threads $t --scores "$TMP/w$t.tsv" --json >"$TMP/w$t.json" 2>"$TMP/w$t.err" || fail "eval --threads $t: $(cat "$TMP/w$t.err")"
  "$BIN" eval --checkpoint "$ckpt" --batch-size 8 --threads $t >"$TMP/w$t.txt" 2>&1
done
wl() { python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["eval_loss"]))' "$1"; }
grep -q "on 1 worker$" "$TMP/w1.txt" && grep -q "on 2 workers$" "$TMP/w2.txt" && grep -q "on 3 workers$" "$TMP/w3.txt" \
  && pass "eval names its workers (1, 2, 3)" || fail "eval workers: $(grep -h worker "$TMP"/w[123].txt)"
cmp -s "$TMP/w1.tsv" "$TMP/w2.tsv" && cmp -s "$TMP/w1.tsv" "$TMP/w3.tsv" && [ "$(wl "$TMP/w1.json")" = "$(wl "$TMP/w2.json")" ] \
  && [ "$(wl "$TMP/w1.json")" = "$(wl "$TMP/w3.json")" ] \
  && pass "1, 2 and 3 workers: identical scores and eval loss ($(wl "$TMP/w1.json"))" || fail "workers differ: $(wl "$TMP/w1.json") $(wl "$TMP/w2.json") $(wl "$TMP/w3.json")"
"$BIN" eval --checkpoint "$ckpt" --batch-size 5 --threads 2 --json >"$TMP/w5.json" 2>/dev/null
[ "$(wl "$TMP/w5.json")" != "$(wl "$TMP/w2.json")" ] && pass "control: batches of 5 change the eval loss's bits ($(wl "$TMP/w5.json"))" \
  || fail "control: batches of 5 gave the same eval loss"

# ---------------------------------------------------------------- predict vs eval
# The test rows' text, from the corpus files as the hf view reads them (row id = file
# order: DRUG-AE.rel, then ADE-NEG.txt); also a TSV of those rows for eval --data FILE.
python3 - "$CORPUS" "$TMP/scores.tsv" "$TMP/test_text.txt" "$TMP/test_rows.tsv" <<'PY'
import sys
corpus, scores, out_txt, out_tsv = sys.argv[1:]
rows = []
for l in open(corpus + "/DRUG-AE.rel", encoding="utf-8", newline="\n").read().split("\n"):
    l = l.rstrip("\r")
    if l: rows.append((l.split("|")[1].strip(), 1))
for l in open(corpus + "/ADE-NEG.txt", encoding="utf-8", newline="\n").read().split("\n"):
    l = l.rstrip("\r")
    if l: rows.append((l.split(" ", 2)[2], 0))
assert len(rows) == 23516, len(rows)
sel = [l.split("\t") for l in open(scores).read().splitlines()[1:]]
with open(out_txt, "w", encoding="utf-8") as t, open(out_tsv, "w", encoding="utf-8") as v:
    v.write("text\tlabel\n")
    for r, lab, _ in sel:
        text, label = rows[int(r)]
        assert label == int(lab), (r, label, lab)
        assert "\t" not in text and "\n" not in text
        t.write(text + "\n")
        v.write(f"{text}\t{label}\n")
PY
[ $? -eq 0 ] && pass "test rows' text extracted" || fail "test rows' text extracted"
"$BIN" predict --checkpoint "$ckpt" <"$TMP/test_text.txt" >"$TMP/pred.jsonl" 2>"$TMP/pred.err" \
  && pass "predict ran" || fail "predict ran: $(cat "$TMP/pred.err")"
# batch-parallel predict: 1 and 3 workers (batches of 7, rounds of 3 batches, a short
# last round) write the same bytes
for t in 1 3; do
  "$BIN" predict --checkpoint "$ckpt" --batch-size 7 --threads $t <"$TMP/test_text.txt" >"$TMP/pw$t.jsonl" 2>"$TMP/pw$t.err" \
    || fail "predict --threads $t: $(cat "$TMP/pw$t.err")"
done
[ -s "$TMP/pw1.jsonl" ] && cmp -s "$TMP/pw1.jsonl" "$TMP/pw3.jsonl" \
  && pass "predict: 1 and 3 workers write the same bytes ($(wc -l <"$TMP/pw1.jsonl") lines)" || fail "predict: 1 and 3 workers differ"
res=$(python3 - "$TMP/scores.tsv" "$TMP/pred.jsonl" <<'PY'
import json, sys
sc = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
pr = [json.loads(l) for l in open(sys.argv[2])]
problems = []
if len(pr) != len(sc): problems.append(f"{len(pr)} predictions for {len(sc)} rows")
worst = 0.0
for (row, lab, p), q in zip(sc, pr):
    if set(q) != {"label", "p_adverse_event"}: problems.append(f"keys {list(q)}"); break
    p = float(p); qp = q["p_adverse_event"]
    rel = abs(p - qp) / max(abs(p), 1e-30)
    worst = max(worst, rel)
    if rel > 1e-5: problems.append(f"row {row}: eval {p} predict {qp}"); break
    if q["label"] != ("Adverse_Event" if qp >= 0.5 else "Not_AE"): problems.append(f"row {row}: label {q['label']} for p {qp}"); break
print("; ".join(problems) if problems else f"OK {len(pr)} rows, max relative difference {worst:.2e}")
PY
)
case "$res" in OK*) pass "predict agrees with eval: $res";; *) fail "predict agrees with eval: $res";; esac

# eval --data FILE evaluates all its rows: here the test rows again, so the same metrics.
"$BIN" eval --checkpoint "$ckpt" --data "$TMP/test_rows.tsv" --batch-size 32 --json >"$TMP/eval_tsv.json" 2>"$TMP/err"
res=$(python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
d = [k for k in ["tp", "fp", "tn", "fn", "f1", "roc_auc", "pr_auc", "eval_loss"] if a[k] != b[k]]
print("differ: " + ", ".join(f"{k} {a[k]} vs {b[k]}" for k in d) if d else "OK" if b["eval_split"] == "all" else "eval_split " + b["eval_split"])
' "$TMP/eval.json" "$TMP/eval_tsv.json" 2>&1)
[ "$res" = OK ] && pass "eval --data FILE scores all its rows" || fail "eval --data FILE: $res $(cat "$TMP/err")"

# ---------------------------------------------------------------- --threshold
# At the median score both labels occur; predict's labels and eval's confusion agree.
thr=$(python3 -c '
import sys
p = sorted(float(l.split("\t")[2]) for l in open(sys.argv[1]).read().splitlines()[1:])
print(repr(p[len(p) // 2]))' "$TMP/scores.tsv")
"$BIN" predict --checkpoint "$ckpt" --threshold "$thr" --input "$TMP/test_text.txt" --output "$TMP/pred_t.jsonl" 2>"$TMP/err" \
  && [ ! -s "$TMP/err" ] || fail "predict --threshold ran: $(cat "$TMP/err")"
"$BIN" eval --checkpoint "$ckpt" --threshold "$thr" --json >"$TMP/eval_t.json" 2>"$TMP/err" || fail "eval --threshold ran: $(cat "$TMP/err")"
res=$(python3 - "$TMP/scores.tsv" "$TMP/pred_t.jsonl" "$TMP/eval_t.json" "$thr" "$TMP/pred.jsonl" <<'PY'
import json, sys
sc = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
pr = [json.loads(l) for l in open(sys.argv[2])]
e = json.load(open(sys.argv[3])); thr = float(sys.argv[4])
base = [json.loads(l) for l in open(sys.argv[5])]
cm = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
for (row, lab, p), q in zip(sc, pr):
    pos = q["label"] == "Adverse_Event"
    # p is printed with 9 digits: a row that close to the threshold may round across it
    if pos != (q["p_adverse_event"] >= thr) and abs(q["p_adverse_event"] - thr) > 1e-8 * thr: print(f"row {row}: label {q['label']} at p {q['p_adverse_event']}"); sys.exit()
    cm[("t" if pos == (lab == "1") else "f") + ("p" if pos else "n")] += 1
labels = {q["label"] for q in pr}
problems = [f"{k}: predict {cm[k]} eval {e[k]}" for k in cm if cm[k] != e[k]]
if len(labels) != 2: problems.append(f"labels at the median threshold: {labels}")
if e.get("threshold") != thr: problems.append(f"eval record threshold {e.get('threshold')}")
if [q["p_adverse_event"] for q in pr] != [q["p_adverse_event"] for q in base]: problems.append("scores depend on the threshold")
print("; ".join(problems) if problems else f"OK threshold {thr}: {cm}")
PY
)
case "$res" in OK*) pass "--threshold: $res";; *) fail "--threshold: $res";; esac

# ---------------------------------------------------------------- predict I/O
printf 'Naproxen caused pseudoporphyria.\n\nno newline at the end' >"$TMP/three.txt"
"$BIN" predict --checkpoint "$ckpt" --batch-size 2 <"$TMP/three.txt" >"$TMP/three.jsonl" 2>"$TMP/err"
[ "$(wc -l <"$TMP/three.jsonl")" -eq 3 ] && python3 -c '
import json, sys; [json.loads(l) for l in open(sys.argv[1])]' "$TMP/three.jsonl" \
  && pass "predict: one JSON line per input line (empty and unterminated lines too)" \
  || fail "predict lines: $(cat "$TMP/three.jsonl" "$TMP/err")"
"$BIN" predict --checkpoint "$ckpt" --batch-size 2 --input "$TMP/three.txt" --output "$TMP/three_o.jsonl" 2>"$TMP/err" \
  && cmp -s "$TMP/three.jsonl" "$TMP/three_o.jsonl" && pass "predict --input/--output equals stdin/stdout" \
  || fail "predict --input/--output: $(cat "$TMP/err")"

# ---------------------------------------------------------------- bad input
printf 'a fine line\nanother\nsecret patient words \xff here\nlast\n' >"$TMP/bad_utf8.txt"
mkdir -p "$TMP/outdir"
expect_exit 1 "predict: invalid UTF-8 on stdin" -- "$BIN" predict --checkpoint "$ckpt" --output "$TMP/outdir/p.jsonl" <"$TMP/bad_utf8.txt"
grep -q "line 3" "$TMP/err" && pass "invalid UTF-8 error names line 3" || fail "invalid UTF-8 error: $(cat "$TMP/err")"
grep -q "secret\|patient" "$TMP/err" && fail "stderr holds the input text" || pass "stderr holds no input text"
[ -z "$(ls -A "$TMP/outdir")" ] && pass "no output file left after an error" || fail "left behind: $(ls -A "$TMP/outdir")"

expect_exit 1 "eval: missing checkpoint" -- "$BIN" eval --checkpoint "$TMP/nope.h5"
expect_exit 1 "predict: missing checkpoint" -- "$BIN" predict --checkpoint "$TMP/nope.h5" </dev/null
head -c 200000 "$ckpt" >"$TMP/trunc.h5"
expect_exit 1 "eval: truncated checkpoint" -- "$BIN" eval --checkpoint "$TMP/trunc.h5" --out "$TMP/outdir/m.jsonl" --scores "$TMP/outdir/s.tsv"
expect_exit 1 "predict: truncated checkpoint" -- "$BIN" predict --checkpoint "$TMP/trunc.h5" --input "$TMP/three.txt" --output "$TMP/outdir/p.jsonl"
head -c 4096 "$ckpt" >"$TMP/trunc_small.h5"
expect_exit 1 "predict: checkpoint cut to 4 KiB" -- "$BIN" predict --checkpoint "$TMP/trunc_small.h5" </dev/null
# One flipped byte in the middle of best.h5 (parameters only, no optimizer state, so
# the middle is tensor data eval reads): the checksums catch it.
[ -f "$run/best.h5" ] && pass "train wrote best.h5" || fail "train wrote best.h5"
python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 0x40
open(sys.argv[2], "wb").write(b)' "$run/best.h5" "$TMP/flipped.h5"
expect_exit 1 "eval: a flipped byte in the checkpoint" -- "$BIN" eval --checkpoint "$TMP/flipped.h5" --scores "$TMP/outdir/s.tsv"
expect_exit 1 "predict: a flipped byte in the checkpoint" -- "$BIN" predict --checkpoint "$TMP/flipped.h5" --input "$TMP/three.txt" --output "$TMP/outdir/p.jsonl"
printf 'not hdf5 at all\n' >"$TMP/text.h5"
expect_exit 1 "eval: not an HDF5 file" -- "$BIN" eval --checkpoint "$TMP/text.h5"
[ -z "$(ls -A "$TMP/outdir")" ] && pass "no output files after bad checkpoints" || fail "left behind: $(ls -A "$TMP/outdir")"
expect_exit 1 "predict: missing --input" -- "$BIN" predict --checkpoint "$ckpt" --input "$TMP/none.txt" --output "$TMP/outdir/p.jsonl"
expect_exit 1 "eval: missing corpus" -- "$BIN" eval --checkpoint "$ckpt" --data "$TMP/no-such-corpus"
expect_exit 1 "eval: --max-seq-len beyond the model" -- "$BIN" eval --checkpoint "$ckpt" --max-seq-len 4096

expect_exit 2 "eval: no --checkpoint" -- "$BIN" eval
expect_exit 2 "eval: unknown flag" -- "$BIN" eval --checkpoint "$ckpt" --bogus
expect_exit 2 "eval: bad --split-name" -- "$BIN" eval --checkpoint "$ckpt" --split-name dev
expect_exit 2 "eval: bad --batch-size" -- "$BIN" eval --checkpoint "$ckpt" --batch-size 0
expect_exit 2 "eval: stray argument" -- "$BIN" eval --checkpoint "$ckpt" extra
expect_exit 2 "predict: no --checkpoint" -- "$BIN" predict
expect_exit 2 "predict: bad --threshold" -- "$BIN" predict --checkpoint "$ckpt" --threshold 1.5
expect_exit 2 "predict: unknown flag" -- "$BIN" predict --checkpoint "$ckpt" --bogus
expect_exit 2 "eval: bad --precision" -- "$BIN" eval --checkpoint "$ckpt" --precision fp16
expect_exit 2 "predict: bad --precision" -- "$BIN" predict --checkpoint "$ckpt" --precision tf32

# ---------------------------------------------------------------- --precision (inference)
# fp32 is the default (what training's evaluations compute); bf16 rounds the GEMM inputs:
# the scores move (by ~1e-3), stay close, and repeat bit for bit. Without bf16 on this
# CPU, bf16 is one error line and auto falls back to fp32.
"$BIN" predict --checkpoint "$ckpt" --input "$TMP/test_text.txt" --precision fp32 >"$TMP/p32.jsonl" 2>"$TMP/err"
cmp -s "$TMP/p32.jsonl" "$TMP/pred.jsonl" && pass "predict --precision fp32 is the default" \
  || fail "predict --precision fp32 differs from the default"
if grep -q "fp32 and bf16" "$TMP/version.txt"; then
  "$BIN" predict --checkpoint "$ckpt" --input "$TMP/test_text.txt" --precision bf16 >"$TMP/p16a.jsonl" 2>"$TMP/err"
  "$BIN" predict --checkpoint "$ckpt" --input "$TMP/test_text.txt" --precision auto >"$TMP/p16b.jsonl" 2>>"$TMP/err"
  cmp -s "$TMP/p16a.jsonl" "$TMP/p16b.jsonl" && pass "predict bf16 repeats bit for bit (auto = bf16 here)" \
    || fail "predict bf16 vs auto: $(head -c 300 "$TMP/err")"
  res=$(python3 - "$TMP/p32.jsonl" "$TMP/p16a.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["p_adverse_event"] for l in open(sys.argv[1])]
b = [json.loads(l)["p_adverse_event"] for l in open(sys.argv[2])]
d = [abs(x - y) for x, y in zip(a, b)]
ok = len(a) == len(b) and max(d) < 0.02 and sum(1 for x in d if x > 0) > len(d) // 2
print(("OK" if ok else "BAD") + f" {len(a)} rows, max |bf16 - fp32| {max(d):.2e}, {sum(1 for x in d if x > 0)} differ")
PY
)
  case "$res" in OK*) pass "predict bf16 is bf16 and close to fp32: $res";; *) fail "predict bf16 vs fp32: $res";; esac
  "$BIN" eval --checkpoint "$ckpt" --precision bf16 >"$TMP/e16.txt" 2>"$TMP/err" && grep -q "bf16 GEMMs" "$TMP/e16.txt" \
    && pass "eval --precision bf16 says so" || fail "eval --precision bf16: $(head -c 300 "$TMP/err")"
else
  expect_exit 1 "predict --precision bf16 on a CPU without it" -- "$BIN" predict --checkpoint "$ckpt" --input "$TMP/test_text.txt" --precision bf16
  "$BIN" eval --checkpoint "$ckpt" --precision auto >"$TMP/e16.txt" 2>"$TMP/err" && grep -q "fp32 GEMMs" "$TMP/e16.txt" \
    && pass "eval --precision auto falls back to fp32" || fail "eval --precision auto: $(head -c 300 "$TMP/err")"
fi
expect_exit 0 "eval --help" -- "$BIN" eval --help
expect_exit 0 "predict --help" -- "$BIN" predict --help
[ -z "$(ls -A "$TMP/outdir")" ] && pass "no output files after usage errors" || fail "left behind: $(ls -A "$TMP/outdir")"
finish
