#!/usr/bin/env bash
# One full MiniLM-L6 fine-tuning epoch on the ADE training split (honest protocol:
# grouped split seed 42, validation 0.1; lr 5e-5, batch 32, max length 128, warmup 0.1,
# weight decay 0.01), timed by adebert's own "done:" line: training seconds (steps
# only), evaluation seconds (validation + test), wall. PRECISIONS alternate ROUNDS
# times. Issue 15's target: the training part of an epoch in <= 3 minutes on 2 cores.
# Run it on a quiet machine. Raw JSON lines: bench/results/epoch_cpu_<date>.jsonl.
#
#   bench/run_cpu_epoch.sh [BUILD_DIR] [MODEL_DIR] [ROUNDS]
#   env PRECISIONS ("bf16"), THREADS (2), ADEBERT_DATA, SIDES (space-separated NAME=VALUE
#   settings, each one side of the comparison, alternated within each round and
#   recorded as "env"; e.g. SIDES="ADEBERT_BF16_NO_SPLIT=0 ADEBERT_BF16_NO_SPLIT=1")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
model=${2:-$root/models/minilm-l6}
rounds=${3:-1}
precisions=${PRECISIONS:-bf16}
threads=${THREADS:-2}
data=${ADEBERT_DATA:-$root/../shared/data/ade-corpus-v2}
[ -f "$model/config.json" ] || { echo "run_cpu_epoch.sh: $model is not a model folder (io/fetch-model.sh minilm-l6 DIR)" >&2; exit 1; }
out="$root/bench/results/epoch_cpu_$(date -u +%Y-%m-%d).jsonl"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sides=${SIDES:-ADEBERT_BENCH_SIDE=default}
for r in $(seq 1 "$rounds"); do
  for side in $sides; do
  for p in $precisions; do
    env "$side" OMP_NUM_THREADS=$threads "$build/adebert" train --data "$data" --view hf --split grouped --split-seed 42 \
      --val-fraction 0.1 --model "$model" --seed 1 --out "$tmp/$p-$r" --batch-size 32 --epochs 1 --lr 5e-5 \
      --max-seq-len 128 --warmup-ratio 0.1 --weight-decay 0.01 --precision "$p" --threads "$threads" \
      >"$tmp/log" 2>&1 || { tail -3 "$tmp/log" >&2; exit 1; }
    python3 - "$tmp/log" "$tmp/$p-$r/metrics.jsonl" "$p" "$r" "$threads" "$rev" "$cpu" "$side" <<'PY' | tee -a "$out"
import json, re, sys
log, metrics, prec, rnd, thr, rev, cpu, side = sys.argv[1:]
m = re.search(r"done: (\d+) steps in ([\d.]+) s: training ([\d.]+) s \(([\d.]+) ms/step.*evaluation ([\d.]+) s", open(log).read())
test = [json.loads(l) for l in open(metrics) if '"test"' in l][-1]
print(json.dumps({"model": "minilm-l6", "precision": prec, "round": int(rnd), "threads": int(thr), "steps": int(m[1]),
                  "wall_s": float(m[2]), "train_s": float(m[3]), "ms_per_step": float(m[4]), "eval_s": float(m[5]),
                  "test_f1": test["f1"], "cpu": cpu, "git_rev": rev, "env": side}))
PY
    rm -rf "${tmp:?}/$p-$r"
  done
  done
done
echo "raw: $out" >&2
