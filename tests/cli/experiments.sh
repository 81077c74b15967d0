#!/usr/bin/env bash
# experiments/run and experiments/report on a small table: bad specs refused before any
# run, runs executed and then skipped when done, an interrupted run resumed, a changed
# configuration refused, the linear baseline on the same rows, missing runs named.
source "$(dirname "$0")/lib.bash"
require_corpus
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
if ! "$PY" -c "import sklearn, matplotlib" 2>/dev/null; then
  echo "FAIL /usr/bin/python3 lacks scikit-learn/matplotlib (launch/install-deps.sh installs them)"; exit 1
fi
export ADEBERT="$BIN"

# 400 rows of the corpus (200 ADE, 200 not), as a JSONL corpus file
"$PY" - "$CORPUS" "$TMP/small.jsonl" <<'PY'
import json, sys
d, out = sys.argv[1], sys.argv[2]
pos = [l.split("|")[1] for l in open(f"{d}/DRUG-AE.rel", encoding="utf-8")][::30][:200]
neg = [l.split(" ", 2)[2].strip() for l in open(f"{d}/ADE-NEG.txt", encoding="utf-8")][::80][:200]
with open(out, "w") as f:
    for t, y in [(t, 1) for t in pos] + [(t, 0) for t in neg]:
        f.write(json.dumps({"text": t, "label": y}) + "\n")
PY
spec() { # FILE LR [extra rows JSON]
  cat >"$1" <<EOF
{"name": "t", "data": "$TMP/small.jsonl", "runs_dir": "$TMP/runs", "seeds": [1, 2],
 "train": {"epochs": 2, "lr": $2, "batch_size": 16, "max_seq_len": 48, "save_every": "epoch"},
 "rows": [{"name": "tiny", "model": "tiny", "vocab": "$CASED_VOCAB", "casing": "cased"},
          {"name": "linear", "kind": "linear"}${3:-}]}
EOF
}
spec "$TMP/spec.json" 0.001

# bad specs: one line, exit 2, nothing run
bad() { # desc json-edit(python on j)
  "$PY" -c "import json,sys; j=json.load(open('$TMP/spec.json')); $2; json.dump(j, open('$TMP/bad.json','w'))"
  expect_exit 2 "$1" -- "$ROOT/experiments/run" "$TMP/bad.json"
}
bad "unknown top-level key" "j['sedes']=[1]"
bad "unknown protocol" "j['protocols']=['honest','leaky']"
bad "missing model folder" "j['rows'].append({'name':'x','model':'$TMP/no-such-model'})"
bad "unknown train key" "j['train']['learning_rate']=1"
bad "unknown row kind" "j['rows'][1]['kind']='svm'"
[ ! -e "$TMP/runs" ] && pass "nothing ran for a bad spec" || fail "a bad spec left $TMP/runs"
"$BIN" version >"$TMP/version.txt" 2>&1
if ! grep -q "HDF5 .*(checkpoints)" "$TMP/version.txt"; then
  echo "note: a build without HDF5 has no checkpoints (no resume): the table runs are not exercised here"
  finish
fi

"$ROOT/experiments/run" "$TMP/spec.json" >"$TMP/run1.out" 2>&1 && pass "the table runs" ||
  fail "experiments/run: $(tail -5 "$TMP/run1.out")"
n_done=$(find "$TMP/runs/t" -name DONE | wc -l)
[ "$n_done" -eq 6 ] && pass "6 runs done (tiny: 2 protocols x 2 seeds; linear: 2 protocols)" ||
  fail "$n_done runs done, want 6"
[ -f "$TMP/runs/t/tiny/honest/seed1/done.json" ] && pass "adebert train wrote done.json at the end" ||
  fail "no done.json"
# a run stopped by a signal is not done: no done.json (a Slurm array task resumes it)
"$BIN" train --data "$TMP/small.jsonl" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 2 --batch-size 16 \
  --debug-stop-at 3 --quiet --out "$TMP/stopped" >/dev/null 2>&1
rc=$?
[ $rc -eq 75 ] && [ ! -e "$TMP/stopped/done.json" ] && pass "a stopped run (exit 75) has no done.json" ||
  fail "stopped run: exit $rc, done.json $(ls "$TMP/stopped")"
for p in honest study; do
  [ -f "$TMP/runs/t/splits/$p/manifest.json" ] && pass "split folder for $p" || fail "no split folder for $p"
done
# the linear baseline read the very rows adebert's split made (hashes)
if [ "$(json_get "$TMP/runs/t/linear/honest/seed1/linear.json" "j['split_sha256']['test']")" = \
     "$(json_get "$TMP/runs/t/splits/honest/manifest.json" "j['files']['test']['sha256']")" ]; then
  pass "linear used the split folder's rows"
else
  fail "linear's rows differ from the split folder"
fi
"$PY" -c "
import json; c=json.load(open('$TMP/runs/t/tiny/study/seed1/config.json'))
assert c['split']=='stratified' and c['split_seed']==1 and c['val_fraction']==0, c" 2>/dev/null &&
  pass "study protocol: stratified, split seed 1, no validation" || fail "study protocol options wrong"

"$ROOT/experiments/run" "$TMP/spec.json" >"$TMP/run2.out" 2>&1
grep -q "6 runs, 6 done, 0 to run" "$TMP/run2.out" && pass "a second run skips finished runs" ||
  fail "rerun: $(head -3 "$TMP/run2.out")"

# an interrupted run (no DONE) continues with --resume
rm "$TMP/runs/t/tiny/honest/seed2/DONE" "$TMP/runs/t/tiny/honest/seed2/done.json"
"$ROOT/experiments/run" "$TMP/spec.json" >"$TMP/run3.out" 2>&1
grep -q -- "--resume" "$TMP/runs/t/tiny/honest/seed2.log" && [ -f "$TMP/runs/t/tiny/honest/seed2/DONE" ] &&
  pass "an unfinished run is resumed (--resume) and finished" || fail "resume: $(tail -3 "$TMP/runs/t/tiny/honest/seed2.log")"

# the report: n per row, study - honest, the plot
"$ROOT/experiments/report" "$TMP/spec.json" --out "$TMP/res" >"$TMP/rep.out" 2>&1 && pass "report" ||
  fail "report: $(tail -3 "$TMP/rep.out")"
grep -q "| tiny | honest | 2/2 |" "$TMP/res/table.md" && pass "table: tiny honest n=2/2" || fail "table: $(cat "$TMP/res/table.md")"
grep -q "| linear | study | 1/1 |" "$TMP/res/table.md" && pass "table: linear study" || fail "no linear study line"
grep -q "study .* − honest .* = \*\*" "$TMP/res/table.md" && pass "study - honest printed" || fail "no protocol difference"
[ -s "$TMP/res/f1.png" ] && pass "plot written" || fail "no f1.png"
[ -f "$TMP/res/raw/tiny/honest/seed1/metrics.jsonl" ] && pass "raw metrics copied" || fail "no raw metrics"
# the mean in the table is the mean of the runs (recomputed here)
"$PY" - "$TMP/runs/t/tiny/study" "$TMP/res/table.csv" <<'PY' && pass "study mean = mean of the last-epoch test F1s" || fail "table mean differs"
import csv, json, sys, statistics
f1 = [[json.loads(l) for l in open(f"{sys.argv[1]}/seed{s}/metrics.jsonl") if '"test"' in l][-1]["f1"] for s in (1, 2)]
row = [r for r in csv.DictReader(open(sys.argv[2])) if r["row"] == "tiny" and r["protocol"] == "study"][0]
sys.exit(0 if abs(float(row["f1_sel_mean"]) - statistics.fmean(f1)) < 1e-12 else 1)
PY

# a missing run is named, not averaged away
mv "$TMP/runs/t/tiny/study/seed2" "$TMP/moved"
"$ROOT/experiments/report" "$TMP/spec.json" --out "$TMP/res2" --no-plot >"$TMP/rep2.out" 2>&1
rc=$?
[ $rc -eq 3 ] && grep -q "| tiny | study | 1/2 | .* | seed2 |" "$TMP/res2/table.md" &&
  pass "missing run: exit 3 and named in the table" || fail "missing run: exit $rc; $(grep study "$TMP/res2/table.md")"
mv "$TMP/moved" "$TMP/runs/t/tiny/study/seed2"

# a changed configuration is refused before anything runs
spec "$TMP/spec2.json" 0.002
rm "$TMP/runs/t/tiny/study/seed1/DONE" "$TMP/runs/t/tiny/study/seed1/done.json"
expect_exit 2 "a run directory holding another configuration is refused" -- "$ROOT/experiments/run" "$TMP/spec2.json"
grep -q "different configuration" "$TMP/err" && pass "the error says why" || fail "error: $(cat "$TMP/err")"
finish
