#!/usr/bin/env bash
# Loss scaling (what fp16 on the GPU uses), checked on the CPU where fp32 cannot
# overflow, so every effect is the mechanism's:
#  - a fixed power-of-two scale is bit-identical to no scaling (the scale is divided
#    out exactly);
#  - dynamic scaling with an inf injected into the gradients at one step: that step is
#    skipped (logged, no update), the scale halves, training goes on; the result
#    differs from the clean run (the skip happened) -- the negative control for the
#    first check;
#  - the same injection without scaling ends the run with one clear line;
#  - a run stopped after the skip and resumed equals the uninterrupted one (the scale
#    state travels in the checkpoint);
#  - with 2 ranks, an inf on rank 1 only makes both ranks skip the same step (the check
#    reads the reduced gradients) and the replicas stay identical.
source "$(dirname "$0")/lib.bash"
require_corpus
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 2 --limit 256 --batch-size 16
      --lr 1e-3 --quiet --threads 1 --save-every none)
line_of() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get('step') == int(sys.argv[2]): print(d.get('skipped', False), d['loss_scale'])" "$1" "$2"; }

"$BIN" "${args[@]}" --out "$TMP/plain" --dump-params "$TMP/plain.bin" >"$TMP/plain.log" 2>&1 || fail "plain run"
"$BIN" "${args[@]}" --out "$TMP/fixed" --dump-params "$TMP/fixed.bin" --loss-scale 1024 >"$TMP/fixed.log" 2>&1 \
  || fail "fixed scale run"
cmp -s "$TMP/plain.bin" "$TMP/fixed.bin" && pass "--loss-scale 1024 is bit-identical to no scaling" \
  || fail "--loss-scale 1024 changed the result"

"$BIN" "${args[@]}" --out "$TMP/dyn" --dump-params "$TMP/dyn.bin" --loss-scale dynamic --debug-inject-inf 0:5 \
  >"$TMP/dyn.log" 2>&1 && pass "dynamic scaling survives an injected inf" || fail "dynamic run: $(tail -2 "$TMP/dyn.log")"
[ "$(line_of "$TMP/dyn/train_log.jsonl" 6)" = "True 65536" ] && [ "$(line_of "$TMP/dyn/train_log.jsonl" 7)" = "False 32768" ] \
  && pass "step 6 skipped at scale 65536; the next step runs at 32768" \
  || fail "skip/halve not logged: $(sed -n 5,7p "$TMP/dyn/train_log.jsonl")"
[ "$(line_of "$TMP/dyn/train_log.jsonl" 5)" = "False 65536" ] && pass "steps before it are not skipped" || fail "step 5"
python3 -c "import json,sys; sys.exit(0 if json.loads(open(sys.argv[1]).readline())['loss_scale'] == 32768 else 1)" \
  "$TMP/dyn/metrics.jsonl" && pass "metrics.jsonl reports the loss scale" || fail "metrics loss_scale"
cmp -s "$TMP/plain.bin" "$TMP/dyn.bin" && fail "negative control: the skipped step left no trace" \
  || pass "negative control: a skipped step changes the result"

expect_exit 1 "inf without loss scaling: one line, exit 1" -- "$BIN" "${args[@]}" --out "$TMP/none" --debug-inject-inf 0:5
grep -q "gradient norm is not finite" "$TMP/err" && pass "... saying the gradient norm is not finite" || fail "message: $(cat "$TMP/err")"

if ! version_says "HDF5 *not built"; then
  ck=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 2 --limit 256 --batch-size 16
      --lr 1e-3 --quiet --threads 1 --loss-scale dynamic --debug-inject-inf 0:5)
  "$BIN" "${ck[@]}" --out "$TMP/r" --debug-stop-at 9 >/dev/null 2>&1
  "$BIN" "${ck[@]}" --out "$TMP/r" --resume --dump-params "$TMP/r.bin" >"$TMP/r.log" 2>&1 || fail "resume: $(tail -2 "$TMP/r.log")"
  cmp -s "$TMP/dyn.bin" "$TMP/r.bin" && [ "$(line_of "$TMP/r/train_log.jsonl" 10)" = "False 32768" ] \
    && pass "stopped after the skip and resumed: same result, scale 32768 restored" || fail "resume under dynamic scaling differs"
fi

if version_says "MPI \(" && command -v mpirun >/dev/null; then
  root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
  timeout 200 mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np 2 "$BIN" "${args[@]}" --out "$TMP/m" \
    --loss-scale dynamic --debug-inject-inf 1:5 --log-samples "$TMP/m.samples" >"$TMP/m.log" 2>&1 \
    && pass "2 ranks, inf on rank 1: the run completes (replica checksums agree)" || fail "2 ranks: $(tail -3 "$TMP/m.log")"
  [ "$(line_of "$TMP/m/train_log.jsonl" 6)" = "True 65536" ] && pass "2 ranks: step 6 skipped by both" \
    || fail "2 ranks: step 6 not skipped: $(sed -n 6p "$TMP/m/train_log.jsonl")"
fi
finish
