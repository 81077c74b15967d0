#!/usr/bin/env bash
# `adebert train --device cuda` end to end (ctest -L gpu). Skipped (exit 77) without a
# usable GPU. With one:
#  - fp32 on the GPU follows the CPU run step by step (losses within 1e-4 relative
#    over the first 20 steps; dropout masks are the same generator on both);
#  - bf16 and fp16 (dynamic loss scaling) stay within 2% of fp32 per step;
#  - the same GPU run twice gives bit-identical losses (determinism);
#  - fp16 with an inf injected at step 5 skips that step and halves the scale;
#  - per-epoch metrics are written and peak device memory is reported.
source "$(dirname "$0")/lib.bash"
require_corpus
if ! version_says "CUDA +built in; [1-9][0-9]* x "; then
  echo "SKIPPED: no usable CUDA device in this build/host ($("$BIN" version 2>&1 | grep CUDA | tr -s ' '))"
  exit 77
fi
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 1 --limit 640 --batch-size 16
      --lr 1e-3 --quiet --save-every none)

"$BIN" "${args[@]}" --device cpu --threads 2 --out "$TMP/cpu" >/dev/null 2>&1 || fail "cpu run"
train_losses "$TMP/cpu" >"$TMP/cpu.l"
for p in fp32 bf16 fp16; do
  "$BIN" "${args[@]}" --device cuda --precision $p --out "$TMP/$p" >"$TMP/$p.log" 2>&1 \
    && pass "cuda $p: trained 1 epoch" || fail "cuda $p: $(tail -2 "$TMP/$p.log")"
  train_losses "$TMP/$p" >"$TMP/$p.l"
done
w=$(losses_close "$TMP/cpu.l" "$TMP/fp32.l" 1e-4 20) && pass "fp32 GPU follows the CPU over 20 steps (worst $w)" \
  || fail "fp32 GPU vs CPU: worst relative loss difference $w"
for p in bf16 fp16; do
  w=$(losses_close "$TMP/fp32.l" "$TMP/$p.l" 0.02 40) && pass "$p within 2% of fp32 per step (worst $w)" \
    || fail "$p vs fp32: worst relative loss difference $w"
done
"$BIN" "${args[@]}" --device cuda --precision bf16 --out "$TMP/bf16b" >/dev/null 2>&1
train_losses "$TMP/bf16b" >"$TMP/bf16b.l"
cmp -s "$TMP/bf16.l" "$TMP/bf16b.l" && pass "bf16 run twice: bit-identical losses" || fail "bf16 rerun differs"
grep -q "peak device memory" "$TMP/bf16.log" && [ "$(wc -l <"$TMP/bf16/metrics.jsonl")" = 2 ] \
  && pass "metrics written, peak device memory reported" || fail "metrics/peak memory missing"
"$BIN" "${args[@]}" --device cuda --precision fp16 --debug-inject-inf 0:5 --out "$TMP/inf" >/dev/null 2>&1 \
  || fail "fp16 with an injected inf"
python3 -c "
import json, sys
rows = {d['step']: d for d in map(json.loads, open(sys.argv[1])) if 'step' in d}
sys.exit(0 if rows[6].get('skipped') and rows[7]['loss_scale'] == rows[6]['loss_scale'] / 2 else 1)" \
  "$TMP/inf/train_log.jsonl" && pass "fp16: the injected inf skips step 6 and halves the scale" || fail "fp16 skip/halve"
finish
