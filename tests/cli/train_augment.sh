#!/usr/bin/env bash
# adebert train --augment FILE.jsonl [--augment-ratio R]: the rows join the train
# split only (val/test counts unchanged, train grows by exactly the rows used, and
# the epoch's batches hold them), with the split computed in-process and with a
# split folder; a row that is a validation/test sentence -- verbatim or differing
# only in case and white space -- is refused before anything is written; every kind
# of bad input is one stderr line naming file and line and never the text; resume
# with another file, another ratio or none is refused, with the same file it is exact;
# --augment-ratio takes round(R x positive train rows) rows, the same rows for the
# same --split-seed and others for another. 2 ranks: tests/cli/mpi_train_augment.sh.
source "$(dirname "$0")/lib.bash"
require_corpus
export OMP_NUM_THREADS=1
"$BIN" version >"$TMP/version.txt" 2>&1

# F: the split `train` makes in-process by default (random, split seed 42); SS: a
# small split folder (~300 rows) so that whole epochs take a second.
F="$TMP/f"
"$BIN" data split --data "$CORPUS" --out "$F" --split random --seed 42 >/dev/null 2>&1 || fail "data split (random)"
python3 - "$F" "$TMP/small.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for p in ("train", "val", "test") for l in open(f"{sys.argv[1]}/{p}.jsonl")]
with open(sys.argv[2], "w") as f:
    for r in rows[::75]:
        f.write(json.dumps({"text": r["text"], "label": r["label"]}) + "\n")
PY
SS="$TMP/ss"
"$BIN" data split --data "$TMP/small.jsonl" --out "$SS" --split random --seed 42 >/dev/null 2>&1 ||
  fail "data split (small)"
n_ss=$(cat "$SS"/{train,val,test}.jsonl | wc -l)

common=(--model tiny --vocab "$CASED_VOCAB" --cased --epochs 1 --batch-size 16 --lr 1e-3 --max-seq-len 64
        --save-every none --quiet --threads 1)
# banner_counts LOG: "train P val test" from the banner's first line
banner_counts() { sed -n '1s/.*train \([0-9]*\) (\([0-9]*\) positive), val \([0-9]*\), test \([0-9]*\).*/\1 \2 \3 \4/p' "$1"; }
# eval_rows RUN: "val-rows test-rows" of the first evaluation (tp+fp+tn+fn)
eval_rows() { python3 -c "
import json, sys
r = {}
for l in open(sys.argv[1] + '/metrics.jsonl'):
    d = json.loads(l); r.setdefault(d['split'], d['tp'] + d['fp'] + d['tn'] + d['fn'])
print(r.get('val'), r.get('test'))" "$1"; }

# ---------------------------------------------------------------- 1. train only
# 5 rows (3 positive): a blank line between them, the optional keys, every label
# spelling, one an exact copy of a train row of SS (counted, not refused)
python3 - "$SS" "$TMP/aug5.jsonl" <<'PY'
import json, sys
train_row = json.loads(open(f"{sys.argv[1]}/train.jsonl").readline())
rows = [{"text": "Synthetic: severe rash after fakedrugol.", "label": "Adverse_Event", "source": "t", "prompt_id": 1},
        {"text": "Synthetic: fakedrugol was well tolerated.", "label": "Not_AE", "prompt_id": "p2"},
        None,
        {"text": "Synthetic: hepatitis on fakemycin.", "label": 1},
        {"text": train_row["text"], "label": train_row["label"]},
        {"text": "Synthetic: QT prolongation with fakeazole.", "label": 1 - train_row["label"]}]
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write("\n" if r is None else json.dumps(r) + "\n")
PY
for data in "$CORPUS" "$SS"; do
  tag=$([ "$data" = "$SS" ] && echo folder || echo corpus)
  lim=(); [ "$tag" = corpus ] && lim=(--limit 200 --max-steps 4)
  "$BIN" train --data "$data" "${common[@]}" "${lim[@]}" --out "$TMP/$tag-base" --log-samples "$TMP/$tag-base.s" \
    >"$TMP/$tag-base.log" 2>&1 || fail "$tag: run without --augment: $(tail -2 "$TMP/$tag-base.log")"
  "$BIN" train --data "$data" "${common[@]}" "${lim[@]}" --out "$TMP/$tag-aug" --augment "$TMP/aug5.jsonl" \
    --log-samples "$TMP/$tag-aug.s" >"$TMP/$tag-aug.log" 2>&1 ||
    fail "$tag: run with --augment: $(tail -2 "$TMP/$tag-aug.log")"
  read -r bt bp bv bte <<<"$(banner_counts "$TMP/$tag-base.log")"
  read -r at ap av ate <<<"$(banner_counts "$TMP/$tag-aug.log")"
  [ -n "$bt" ] && [ "$at" = $((bt + 5)) ] && [ "$ap" = $((bp + 3)) ] &&
    pass "$tag: train grows by exactly the 5 rows (3 positive): $bt -> $at" ||
    fail "$tag: train $bt ($bp positive) -> $at ($ap positive)"
  [ "$av" = "$bv" ] && [ "$ate" = "$bte" ] && [ "$(eval_rows "$TMP/$tag-aug")" = "$(eval_rows "$TMP/$tag-base")" ] &&
    [ "$(eval_rows "$TMP/$tag-aug")" = "$bv $bte" ] &&
    pass "$tag: val and test rows unchanged ($bv, $bte), in the banner and in metrics.jsonl" ||
    fail "$tag: val/test changed: banner $bv/$bte -> $av/$ate, metrics $(eval_rows "$TMP/$tag-base") -> $(eval_rows "$TMP/$tag-aug")"
done
# the whole epoch on the folder: each train row once, the 5 new rows (ids after the
# folder's rows) among them
python3 - "$TMP/folder-aug.s.rank0" "$TMP/folder-base.s.rank0" "$n_ss" <<'PY' &&
import sys
ids = lambda p: [int(x) for l in open(p) for x in l.split()[1:]]
a, b, n = ids(sys.argv[1]), ids(sys.argv[2]), int(sys.argv[3])
assert len(a) == len(set(a)) == len(b) + 5, (len(a), len(b))
assert set(a) == set(b) | set(range(n, n + 5)), sorted(set(a) - set(b))
PY
  pass "folder: the epoch trains on every train row and the 5 augment rows, once each" ||
  fail "folder: the epoch's sample ids are not train + the 5 augment rows"
sha=$(sha256sum "$TMP/aug5.jsonl" | cut -d' ' -f1)
grep -qF "  augment: $TMP/aug5.jsonl (sha256 ${sha:0:8}…): 5 of 5 rows used (3 positive, 2 negative) -> train only; 1 duplicate training rows" \
  "$TMP/folder-aug.log" && pass "banner: file, sha256, rows used per label, 1 exact train duplicate" ||
  fail "banner: $(grep augment: "$TMP/folder-aug.log")"
python3 - "$TMP/folder-aug/config.json" "$TMP/aug5.jsonl" "$sha" <<'PY' &&
import json, sys
c = json.load(open(sys.argv[1]))
assert c["augment"] == sys.argv[2] and c["augment_sha256"] == sys.argv[3] and c["augment_ratio"] is None, c
r = c["augment_rows"]
assert (r["in_file"], r["used"], r["used_positive"], r["used_negative"], r["duplicate_train_rows"]) == (5, 5, 3, 2, 1), r
PY
  pass "config.json records the file, its sha256, the ratio and the rows used per label" ||
  fail "config.json: $(cat "$TMP/folder-aug/config.json")"
[ "$(tr '\n' ' ' <"$TMP/folder-aug/augment_lines.txt")" = "1 2 4 5 6 " ] &&
  pass "augment_lines.txt lists the file lines used (blank line skipped)" ||
  fail "augment_lines.txt: $(cat "$TMP/folder-aug/augment_lines.txt")"
! grep -q augment "$TMP/folder-base/config.json" && [ ! -e "$TMP/folder-base/augment_lines.txt" ] &&
  pass "a run without --augment records nothing about it" || fail "a run without --augment mentions augment"
grep -q "fakedrugol" "$TMP/folder-aug.log" && fail "the log quotes an augment row" || pass "the log quotes no augment row"

# ---------------------------------------------------------------- 2. val/test sentences refused
# leak_file SRC_JSONL LINE OUT [upper]: aug5 plus, as its line 3, line LINE of SRC's
# text, verbatim or upper-cased with its spaces doubled and padded (normalisation)
leak_file() { python3 - "$@" <<'PY'
import json, sys
src, k, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = json.loads(open(src).readlines()[k - 1])["text"]
if len(sys.argv) > 4:
    t = " \t" + t.upper().replace(" ", "  \u00a0") + "\n "
rows = [json.loads(l) for l in open(out + ".base")]
rows.insert(2, {"text": t, "label": "Adverse_Event"})
open(out, "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
}
grep -v '^$' "$TMP/aug5.jsonl" >"$TMP/leak.jsonl.base"
check_leak() { # desc data src-file line [upper]
  local desc=$1 data=$2; shift 2
  leak_file "$1" "$2" "$TMP/leak.jsonl" "${@:3}"
  rm -rf "$TMP/leakrun"
  expect_exit 1 "$desc: refused" -- "$BIN" train --data "$data" "${common[@]}" --limit 200 --max-steps 2 \
    --out "$TMP/leakrun" --augment "$TMP/leak.jsonl"
  grep -qF "adebert train: --augment $TMP/leak.jsonl: line 3 duplicates a validation/test sentence (normalised); filter the file first (experiments/augment)" \
    "$TMP/err" && pass "$desc: the error names the file and line 3" || fail "$desc: error: $(cat "$TMP/err")"
  [ ! -e "$TMP/leakrun/metrics.jsonl" ] && [ ! -e "$TMP/leakrun/config.json" ] && pass "$desc: nothing written" ||
    fail "$desc: the refused run wrote $(ls "$TMP/leakrun")"
}
check_leak "in-process split, a test sentence" "$CORPUS" "$F/test.jsonl" 7
check_leak "in-process split, a test sentence in other case and white space" "$CORPUS" "$F/test.jsonl" 11 upper
check_leak "in-process split, a validation sentence" "$CORPUS" "$F/val.jsonl" 5 upper
check_leak "split folder, a test sentence" "$SS" "$SS/test.jsonl" 2
check_leak "split folder, a validation sentence in other case and white space" "$SS" "$SS/val.jsonl" 1 upper
# control: the same file with a train sentence instead is accepted (a train duplicate is no leak)
leak_file "$SS/train.jsonl" 3 "$TMP/leak.jsonl" upper
"$BIN" train --data "$SS" "${common[@]}" --max-steps 2 --out "$TMP/trainleak" --augment "$TMP/leak.jsonl" \
  >"$TMP/trainleak.log" 2>&1 && pass "control: a train sentence in the file is accepted" ||
  fail "control: a train sentence refused: $(tail -1 "$TMP/trainleak.log")"

# ---------------------------------------------------------------- 3. bad input
M=SECRETMARKER
bad() { # desc expected-reason printf-format (the file's bytes; the bad row is line 2)
  local desc=$1 why=$2
  printf "$3" >"$TMP/bad.jsonl"
  rm -rf "$TMP/badrun"
  expect_exit 1 "bad input, $desc: one line, exit 1" -- "$BIN" train --data "$SS" "${common[@]}" --max-steps 2 \
    --out "$TMP/badrun" --augment "$TMP/bad.jsonl"
  if grep -q "$M" "$TMP/err" "$TMP/out"; then fail "bad input, $desc: the output quotes the row's text"
  elif ! grep -qF -- "--augment $TMP/bad.jsonl: line 2: $why" "$TMP/err"; then fail "bad input, $desc: $(cat "$TMP/err")"
  elif [ -e "$TMP/badrun/metrics.jsonl" ]; then fail "bad input, $desc: a run was written"
  else pass "bad input, $desc: names file and line 2 ($why), not the text"; fi
}
good='{"text": "A fine row.", "label": 1}\n'
bad "not JSON" "not valid JSON" "$good"'{"text": "'$M'" "label": 1}\n'
bad "not an object" "not a JSON object" "$good"'["'$M'", 1]\n'
bad "no text" 'no "text"' "$good"'{"txt": "'$M'", "label": 1}\n'
bad "text not a string" '"text" is not a string' "$good"'{"text": ["'$M'"], "label": 1}\n'
bad "empty text" '"text" is empty' "$good"'{"text": "", "label": 1, "source": "'$M'"}\n'
bad "blank text" '"text" is only white space' "$good"'{"text": "  \\t ", "label": 1, "source": "'$M'"}\n'
bad "unknown label" 'unknown "label"' "$good"'{"text": "'$M'", "label": "Related"}\n'
bad "label 2" 'unknown "label"' "$good"'{"text": "'$M'", "label": 2}\n'
bad "no label" 'no "label"' "$good"'{"text": "'$M'"}\n'
bad "invalid UTF-8" "invalid UTF-8" "$good"'{"text": "'$M' \xff\xfe", "label": 1}\n'
bad "lone surrogate" "not valid JSON" "$good"'{"text": "'$M' \\udc00", "label": 1}\n'
bad "truncated last line" "not valid JSON (the last line, without a newline: truncated?)" "$good"'{"text": "'$M' and th'
bad "prompt_id not str|int" '"prompt_id"' "$good"'{"text": "'$M'", "label": 1, "prompt_id": 2.5}\n'
: >"$TMP/empty.jsonl"
expect_exit 1 "an empty file: one line, exit 1" -- "$BIN" train --data "$SS" "${common[@]}" --out "$TMP/badrun" \
  --augment "$TMP/empty.jsonl"
grep -qF -- "--augment $TMP/empty.jsonl: no rows (an empty file)" "$TMP/err" && pass "an empty file: says no rows" ||
  fail "empty file: $(cat "$TMP/err")"
printf '{"text": "Last line without a newline is fine.", "label": "Not_AE"}' >"$TMP/nonl.jsonl"
"$BIN" train --data "$SS" "${common[@]}" --max-steps 2 --out "$TMP/nonl" --augment "$TMP/nonl.jsonl" \
  >"$TMP/nonl.log" 2>&1 && grep -q "1 of 1 rows used" "$TMP/nonl.log" &&
  pass "a last line without a newline that parses is used" || fail "no final newline: $(tail -1 "$TMP/nonl.log")"
expect_exit 1 "a missing file: one line" -- "$BIN" train --data "$SS" "${common[@]}" --out "$TMP/badrun" \
  --augment "$TMP/absent.jsonl"
expect_exit 2 "--augment-ratio without --augment: usage error" -- "$BIN" train --data "$SS" "${common[@]}" \
  --out "$TMP/badrun" --augment-ratio 0.5
for r in 0 -1 abc; do
  expect_exit 2 "--augment-ratio $r: usage error" -- "$BIN" train --data "$SS" "${common[@]}" --out "$TMP/badrun" \
    --augment "$TMP/aug5.jsonl" --augment-ratio "$r"
done
[ ! -e "$TMP/badrun" ] && pass "no run directory left by any refused run" || fail "a refused run left $TMP/badrun"
"$BIN" train --help >"$TMP/help.txt" 2>&1
grep -q -- "--augment FILE.jsonl" "$TMP/help.txt" && grep -q -- "--augment-ratio R" "$TMP/help.txt" &&
  pass "train --help documents --augment and --augment-ratio" || fail "train --help lacks the augment options"

# ---------------------------------------------------------------- 5. ratio
# 40 made-up rows, labels alternating
python3 - "$TMP/aug40.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(40):
        f.write(json.dumps({"text": f"Synthetic sentence {i}: fakedrug{i} and event {i}.",
                            "label": "Adverse_Event" if i % 2 == 0 else "Not_AE", "prompt_id": i}) + "\n")
PY
P=$(json_get "$SS/manifest.json" "j['files']['train']['positives']")
R=0.3
want=$(python3 -c "import math; print(math.floor($R * $P + 0.5))")
ratio_run() { # tag [flags]
  local tag=$1; shift
  "$BIN" train --data "$SS" "${common[@]}" --out "$TMP/$tag" --augment "$TMP/aug40.jsonl" --augment-ratio "$R" \
    --dump-params "$TMP/$tag.bin" "$@" >"$TMP/$tag.log" 2>&1 || fail "$tag: $(tail -1 "$TMP/$tag.log")"
}
ratio_run r42a
ratio_run r42b
ratio_run r7 --split-seed 7
ratio_run r42s9 --seed 9
used=$(json_get "$TMP/r42a/config.json" "j['augment_rows']['used']")
[ "$used" = "$want" ] && [ "$(wc -l <"$TMP/r42a/augment_lines.txt")" = "$want" ] &&
  grep -q "augment: .*: $want of 40 rows used" "$TMP/r42a.log" &&
  [ "$(json_get "$TMP/r42a/config.json" "j['augment_ratio']")" = "$R" ] &&
  pass "ratio $R x $P train positives: round() = $want rows used (config, banner, augment_lines.txt)" ||
  fail "ratio: used $used, want $want"
read -r t42 _ <<<"$(banner_counts "$TMP/r42a.log")"
[ "$t42" = $(($(json_get "$SS/manifest.json" "j['files']['train']['rows']") + want)) ] &&
  pass "ratio: train = the folder's train rows + $want" || fail "ratio: train count $t42"
cmp -s "$TMP/r42a/augment_lines.txt" "$TMP/r42b/augment_lines.txt" && cmp -s "$TMP/r42a.bin" "$TMP/r42b.bin" &&
  pass "the same --split-seed picks the same rows (same lines, same parameters)" || fail "same seed, other rows"
! cmp -s "$TMP/r42a/augment_lines.txt" "$TMP/r7/augment_lines.txt" && ! cmp -s "$TMP/r42a.bin" "$TMP/r7.bin" &&
  pass "another --split-seed picks other rows (other lines, other parameters)" ||
  fail "--split-seed 7 picked the same rows"
cmp -s "$TMP/r42a/augment_lines.txt" "$TMP/r42s9/augment_lines.txt" &&
  pass "the model --seed does not change which rows are picked" || fail "--seed changed the rows picked"
expect_exit 1 "a ratio asking for more rows than the file has: refused" -- "$BIN" train --data "$SS" "${common[@]}" \
  --out "$TMP/big" --augment "$TMP/aug40.jsonl" --augment-ratio 5
big=$(python3 -c "import math; print(math.floor(5 * $P + 0.5))")
grep -qF "asks for $big rows (round(5 x $P positive train rows)), the file has 40" "$TMP/err" &&
  pass "... saying how many rows it asks for and how many the file has" || fail "ratio too big: $(cat "$TMP/err")"

# ---------------------------------------------------------------- 4. resume
if ! grep -q "HDF5 .*(checkpoints)" "$TMP/version.txt"; then
  echo "note: a build without HDF5 has no checkpoints: resume is not exercised here"
  finish
fi
rargs=(train --data "$SS" "${common[@]/none/epoch}" --epochs 2 --augment-ratio "$R")
"$BIN" "${rargs[@]}" --augment "$TMP/aug40.jsonl" --out "$TMP/rfull" --dump-params "$TMP/rfull.bin" \
  >"$TMP/rfull.log" 2>&1 || fail "uninterrupted augmented run: $(tail -1 "$TMP/rfull.log")"
"$BIN" "${rargs[@]}" --augment "$TMP/aug40.jsonl" --out "$TMP/rstop" --debug-stop-at 5 >/dev/null 2>&1
[ $? = 75 ] && pass "augmented run stopped at step 5" || fail "augmented run did not stop with 75"
cp "$TMP/aug40.jsonl" "$TMP/changed.jsonl"
sed -i '1s/fakedrug0/fakedrugZ/' "$TMP/changed.jsonl"
expect_exit 1 "resume with a changed --augment file: refused" -- "$BIN" "${rargs[@]}" --augment "$TMP/changed.jsonl" \
  --out "$TMP/rstop" --resume
grep -q "was written with augment_sha256 = " "$TMP/err" && pass "... naming augment_sha256" || fail "... error: $(cat "$TMP/err")"
expect_exit 1 "resume with another --augment-ratio: refused" -- "$BIN" "${rargs[@]}" --augment "$TMP/aug40.jsonl" \
  --augment-ratio 0.2 --out "$TMP/rstop" --resume
grep -q "was written with augment_ratio = 0.3, this command has 0.2" "$TMP/err" && pass "... naming augment_ratio" ||
  fail "... error: $(cat "$TMP/err")"
expect_exit 1 "resume without --augment: refused" -- "$BIN" train --data "$SS" "${common[@]/none/epoch}" --epochs 2 \
  --out "$TMP/rstop" --resume
"$BIN" train --data "$SS" "${common[@]/none/epoch}" --epochs 2 --out "$TMP/plain" --debug-stop-at 5 >/dev/null 2>&1
expect_exit 1 "resume of a run without --augment, with it: refused" -- "$BIN" "${rargs[@]}" \
  --augment "$TMP/aug40.jsonl" --out "$TMP/plain" --resume
cp "$TMP/aug40.jsonl" "$TMP/moved.jsonl"
"$BIN" "${rargs[@]}" --augment "$TMP/moved.jsonl" --out "$TMP/rstop" --resume --dump-params "$TMP/rstop.bin" \
  >"$TMP/rres.log" 2>&1 && grep -q "resumed_from_step 5" "$TMP/rres.log" &&
  pass "resume with the same file (another path) works" || fail "resume with the same file: $(tail -2 "$TMP/rres.log")"
cmp -s "$TMP/rfull.bin" "$TMP/rstop.bin" && pass "... and is exact (parameters bit-identical)" ||
  fail "resumed augmented run differs from the uninterrupted one"
# eval rebuilds the test rows from the corpus alone: the augmented run's test record again
"$BIN" eval --checkpoint "$TMP/rfull/best.h5" --json >"$TMP/eval.json" 2>"$TMP/eval.err" || fail "eval: $(cat "$TMP/eval.err")"
python3 - "$TMP/eval.json" "$TMP/rfull/metrics.jsonl" "$TMP/rfull/best.json" <<'PY' &&
import json, sys
e = json.load(open(sys.argv[1]))
step = json.load(open(sys.argv[3]))["step"]
t = [json.loads(l) for l in open(sys.argv[2]) if '"test"' in l and json.loads(l)["step"] == step][-1]
sys.exit(0 if all(e[k] == t[k] for k in ("tp", "fp", "tn", "fn", "f1", "roc_auc", "eval_loss")) else 1)
PY
  pass "eval of the augmented run's best.h5 reproduces its test record" || fail "eval differs from the run's test record"
finish
