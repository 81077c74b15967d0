#!/usr/bin/env bash
# Exact resume (one process): a run of 3 epochs equals the same run stopped after
# epoch 1, or mid-epoch, then resumed with --resume -- bit for bit in the final
# parameters and in every field of metrics.jsonl but timing and memory (rss), dropout on -- and the
# resumed run executes exactly the remaining steps. Negative control: the same resume
# with one weight nudged after loading must differ (so the comparison can fail).
# Also: a truncated newest checkpoint is skipped with a warning, --resume with no
# checkpoint starts from scratch, resuming with other options is refused, --keep-last,
# best.h5/best.json, file modes. Without HDF5: checkpoint flags are refused.
source "$(dirname "$0")/lib.bash"
require_corpus
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 3 --limit 256 --batch-size 16
      --lr 1e-3 --quiet --threads 1)

if version_says "HDF5 *not built"; then
  expect_exit 2 "no HDF5: --save-every epoch refused" -- "$BIN" "${args[@]}" --out "$TMP/x" --save-every epoch
  expect_exit 2 "no HDF5: --resume refused" -- "$BIN" "${args[@]}" --out "$TMP/x" --resume
  finish
fi

# metrics.jsonl without its timing and memory fields, one canonical line per evaluation
strip() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l); d.pop('seconds'); d.pop('tokens_per_s'); d.pop('rss_bytes'); d.pop('peak_rss_bytes'); print(json.dumps(d, sort_keys=True))" "$1"; }
steps_done() { sed -n 's/^done: \([0-9]*\) steps.*/\1/p' "$1"; }

"$BIN" "${args[@]}" --out "$TMP/full" --dump-params "$TMP/full.bin" >"$TMP/full.log" 2>&1 \
  && pass "uninterrupted run" || fail "uninterrupted run: $(tail -2 "$TMP/full.log")"
total=$(steps_done "$TMP/full.log")
[ "$(strip "$TMP/full/metrics.jsonl" | wc -l)" = 6 ] && pass "6 evaluations logged (val + test x 3 epochs)" \
  || fail "uninterrupted run: metrics.jsonl does not hold 6 evaluations"
[ "$total" = 48 ] && pass "48 steps (3 epochs x 16)" || fail "uninterrupted run did $total steps"

check_resume() { # name stop_step [extra resume flags...]
  local name=$1 stop=$2; shift 2
  local d="$TMP/$name"
  "$BIN" "${args[@]}" --out "$d" --debug-stop-at "$stop" >"$d.1.log" 2>&1
  local rc=$?
  [ $rc -eq 75 ] && pass "$name: stopped at step $stop with exit 75" || fail "$name: stop exit $rc"
  [ -f "$d/ckpt-step$(printf %08d "$stop").h5" ] && pass "$name: checkpoint of step $stop saved" \
    || fail "$name: no checkpoint for step $stop: $(ls "$d")"
  "$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" "$@" >"$d.2.log" 2>&1 \
    || fail "$name: resume failed: $(tail -2 "$d.2.log")"
  grep -q "resumed_from_step $stop" "$d.2.log" && grep -q "\"resumed_from_step\":$stop" "$d/train_log.jsonl" \
    && pass "$name: logs resumed_from_step $stop" || fail "$name: resumed_from_step not logged"
  local did; did=$(steps_done "$d.2.log")
  [ "$did" = $((total - stop)) ] && pass "$name: resumed run executed exactly $did steps" \
    || fail "$name: resumed run executed $did steps, want $((total - stop))"
}

check_resume epoch_end 16
cmp -s "$TMP/full.bin" "$TMP/epoch_end.bin" && pass "epoch_end: parameters bit-identical" \
  || fail "epoch_end: parameters differ"
diff <(strip "$TMP/full/metrics.jsonl") <(strip "$TMP/epoch_end/metrics.jsonl") >/dev/null \
  && pass "epoch_end: metrics identical" || fail "epoch_end: metrics differ"

check_resume mid_epoch 21
cmp -s "$TMP/full.bin" "$TMP/mid_epoch.bin" && pass "mid_epoch: parameters bit-identical" \
  || fail "mid_epoch: parameters differ"
diff <(strip "$TMP/full/metrics.jsonl") <(strip "$TMP/mid_epoch/metrics.jsonl") >/dev/null \
  && pass "mid_epoch: metrics identical" || fail "mid_epoch: metrics differ"

# negative control: the same comparison must see a 1e-3 relative change of one weight
check_resume perturbed 21 --debug-perturb-resume
cmp -s "$TMP/full.bin" "$TMP/perturbed.bin" && fail "negative control: a perturbed resume still matched" \
  || pass "negative control: a perturbed resume differs"

# a truncated newest checkpoint is skipped with a warning; the older one still gives the exact result
d="$TMP/trunc"
"$BIN" "${args[@]}" --out "$d" --debug-stop-at 21 >/dev/null 2>&1
newest="$d/ckpt-step00000021.h5"
head -c 100000 "$newest" >"$d/t" && mv "$d/t" "$newest"
"$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.log" 2>&1 || fail "resume past a truncated checkpoint failed"
grep -q "warning: skipping checkpoint $newest" "$d.log" && grep -q "resumed_from_step 16" "$d.log" \
  && pass "truncated newest checkpoint skipped, resumed from step 16" || fail "truncated checkpoint: $(head -3 "$d.log")"
cmp -s "$TMP/full.bin" "$d.bin" && pass "resume from the older checkpoint is exact too" || fail "older-checkpoint resume differs"

# --resume with nothing to resume starts from scratch (the first Slurm submission)
"$BIN" "${args[@]}" --out "$TMP/fresh" --resume --dump-params "$TMP/fresh.bin" >"$TMP/fresh.log" 2>&1
grep -q "no usable checkpoint" "$TMP/fresh.log" && cmp -s "$TMP/full.bin" "$TMP/fresh.bin" \
  && pass "--resume without checkpoints starts from scratch" || fail "--resume without checkpoints: $(tail -2 "$TMP/fresh.log")"

# options that change what is computed: the checkpoints do not fit, and the run says why
"$BIN" "${args[@]}" --out "$TMP/opts" --debug-stop-at 16 >/dev/null 2>&1
expect_exit 1 "resume with another --lr refused" -- "$BIN" "${args[@]}" --out "$TMP/opts" --resume --lr 2e-3
grep -q "was written with lr = 0.001, this command has 0.002" "$TMP/err" \
  && pass "... saying which option differs" || fail "resume with another --lr: $(head -3 "$TMP/err")"

# a run directory holding a run is refused without --resume
expect_exit 1 "existing run without --resume refused" -- "$BIN" "${args[@]}" --out "$TMP/full"

# --keep-last 2: two step checkpoints left; best.h5 and best.json; modes 0600 / 0700
n=$(ls "$TMP/full" | grep -c '^ckpt-step.*\.h5$')
[ "$n" = 2 ] && pass "--keep-last 2 keeps 2 checkpoints" || fail "$n checkpoints kept: $(ls "$TMP/full")"
[ -f "$TMP/full/best.h5" ] && json_get "$TMP/full/best.json" "j['selected_on']" | grep -qx val \
  && pass "best.h5 selected on val" || fail "best.h5/best.json missing"
[ "$(stat -c %a "$TMP/full/ckpt-step00000048.h5")" = 600 ] && [ "$(stat -c %a "$TMP/full")" = 700 ] \
  && pass "checkpoints 0600 in a 0700 run directory" || fail "file modes"
ls "$TMP/full" | grep -q '\.tmp$' && fail "temporary files left behind" || pass "no temporary files left"

# --select-on test: best.json and every metrics line say so
"$BIN" "${args[@]}" --epochs 1 --out "$TMP/seltest" --select-on test >/dev/null 2>&1
json_get "$TMP/seltest/best.json" "j['selected_on']" | grep -qx test \
  && [ "$(grep -c '"model_selection":"test"' "$TMP/seltest/metrics.jsonl")" = 2 ] \
  && ! grep -q model_selection "$TMP/full/metrics.jsonl" \
  && pass "--select-on test is recorded in best.json and on each metrics line" || fail "--select-on test not recorded"

# --save-every none: no checkpoint at all
"$BIN" "${args[@]}" --epochs 1 --out "$TMP/none" --save-every none >/dev/null 2>&1
ls "$TMP/none" | grep -q '\.h5$' && fail "--save-every none wrote a checkpoint" || pass "--save-every none writes none"
finish
