#!/usr/bin/env bash
# A small model trained from scratch on the ADE corpus learns: the training loss
# falls and the test F1 clears a floor well above the all-positive baseline (0.45
# on the hf view). Also checks the run directory and the metrics.jsonl schema.
source "$(dirname "$0")/lib.bash"
require_corpus
export OMP_NUM_THREADS=2
out="$TMP/run"
"$BIN" train --data "$CORPUS" --model tiny --vocab "$UNCASED_VOCAB" --lowercase --limit 4000 --epochs 4 \
  --batch-size 32 --lr 1e-3 --warmup-ratio 0.05 --max-seq-len 96 --out "$out" >"$TMP/log" 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] && pass "train ran" || { fail "train ran (exit $rc): $(tail -5 "$TMP/err")"; finish; }
cat "$TMP/log"
[ "$(stat -c %a "$out")" = 700 ] && pass "run dir is 0700" || fail "run dir mode $(stat -c %a "$out")"
[ "$(stat -c %a "$out/metrics.jsonl")" = 600 ] && pass "metrics.jsonl is 0600" || fail "metrics.jsonl mode"
[ -s "$out/config.json" ] && [ -s "$out/command.txt" ] && grep -q -- "--limit 4000" "$out/command.txt" \
  && pass "config.json and command.txt recorded" || fail "config.json and command.txt recorded"
res=$(python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
recs = [json.loads(l) for l in open(d + "/metrics.jsonl")]
keys = ["schema_version", "split", "epoch", "step", "lr", "train_loss", "eval_loss", "precision", "recall", "f1",
        "accuracy", "roc_auc", "pr_auc", "tp", "fp", "tn", "fn", "grad_norm", "loss_scale", "seconds", "tokens_per_s"]
problems = []
if len(recs) != 8: problems.append(f"{len(recs)} records, want 8 (val+test x 4 epochs)")
for r in recs:
    if list(r)[:len(keys)] != keys: problems.append(f"keys {list(r)}")
    n = r["tp"] + r["fp"] + r["tn"] + r["fn"]
    if n != 1000: problems.append(f"{r['split']} epoch {r['epoch']}: confusion sums to {n}, want 1000")
test = [r for r in recs if r["split"] == "test"]
if not test[-1]["train_loss"] < test[0]["train_loss"]: problems.append(f"train loss did not fall: {[r['train_loss'] for r in test]}")
if not test[-1]["f1"] >= 0.60: problems.append(f"test F1 {test[-1]['f1']:.3f} < 0.60")
cfg = json.load(open(d + "/config.json"))
if cfg["limit"] != 4000 or cfg["lowercase"] is not True: problems.append("config.json does not hold the options")
print("; ".join(problems) if problems else f"OK F1 {test[-1]['f1']:.3f} loss {test[0]['train_loss']:.3f}->{test[-1]['train_loss']:.3f}")
PY
)
case "$res" in OK*) pass "learns: $res";; *) fail "learns: $res";; esac

# experiments/plot-metrics draws the run.
"$ADEBERT_SOURCE_DIR/experiments/plot-metrics" -o "$TMP/m.png" "$out" >/dev/null 2>"$TMP/plot.err" \
  && [ "$(head -c 4 "$TMP/m.png" | od -An -c | tr -d ' ')" = "211PNG" ] && [ "$(stat -c %s "$TMP/m.png")" -gt 20000 ] \
  && pass "plot-metrics writes a PNG" || fail "plot-metrics writes a PNG: $(cat "$TMP/plot.err")"

# The run dir is not overwritten, and bad flags are one-line usage errors.
expect_exit 1 "refuses a run dir that holds a run" -- "$BIN" train --data "$CORPUS" --model tiny \
  --vocab "$UNCASED_VOCAB" --lowercase --out "$out"
expect_exit 2 "train: missing --out" -- "$BIN" train --model tiny
expect_exit 2 "train: bad batch size" -- "$BIN" train --out "$TMP/x" --batch-size 0
expect_exit 2 "train: bad --device" -- "$BIN" train --out "$TMP/x" --device tpu
expect_exit 2 "train: bad --precision" -- "$BIN" train --out "$TMP/x" --device cuda --precision fp8
expect_exit 2 "train: --precision fp16 on the CPU" -- "$BIN" train --out "$TMP/x" --precision fp16
expect_exit 2 "train: bad --loss-scale" -- "$BIN" train --out "$TMP/x" --loss-scale -4
if ! version_says "CUDA +built in; [1-9][0-9]* x "; then
  expect_exit 1 "train: --device cuda without a GPU: one line" -- "$BIN" train --out "$TMP/c" --data "$CORPUS" --vocab "$CASED_VOCAB" --cased --device cuda
fi
expect_exit 2 "train: bad --save-every" -- "$BIN" train --out "$TMP/x" --save-every sometimes
expect_exit 2 "train: bad --select-on" -- "$BIN" train --out "$TMP/x" --select-on train
expect_exit 1 "train: preset needs casing" -- "$BIN" train --out "$TMP/y" --data "$CORPUS" --vocab "$UNCASED_VOCAB"
printf '{"batch_size": 0}' >"$TMP/bad.json"
expect_exit 2 "train: bad --config value" -- "$BIN" train --out "$TMP/z" --config "$TMP/bad.json"
printf '{"batch_sise": 8}' >"$TMP/typo.json"
expect_exit 2 "train: unknown --config key" -- "$BIN" train --out "$TMP/z" --config "$TMP/typo.json"
finish
