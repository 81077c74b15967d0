#!/usr/bin/env bash
# adebert (adebert bench) vs PyTorch + HF (bench_model_torch.py): training steps on
# the CPU, alternating the two sides ROUNDS times (default 3) per case, raw JSON
# lines to bench/results/model_cpu_<date>.jsonl, then medians, spread and ratios.
#
#   bench/run_model_bench.sh BUILD_DIR [PYTHON] [THREADS] [ROUNDS]
#
# PyTorch gets its best configuration found here: OMP_WAIT_POLICY=PASSIVE for its
# process alone (3.2 s -> 2.5 s/step on minilm/ade). adebert runs with plain
# OMP_NUM_THREADS (one OpenMP pool shared with dnnl). Never OPENBLAS_CORETYPE.
set -euo pipefail
build=${1:?usage: run_model_bench.sh BUILD_DIR [PYTHON] [THREADS] [ROUNDS]}
py=${2:-python3}
threads=${3:-2}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/results/model_cpu_$(date -u +%Y-%m-%d).jsonl"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
export ADEBERT_GIT_REV=$rev
cases=("base fixed 32 128 3" "minilm fixed 32 128 3" "minilm ade 32 128 5")
: > "$out.tmp"
for c in "${cases[@]}"; do
  read -r model kind bs seq steps <<< "$c"
  if [ "$kind" = ade ]; then largs=(--lengths ade); else largs=(--seq-len "$seq"); fi
  lens=$("$build/adebert" bench --model "$model" --batch-size "$bs" "${largs[@]}" --print-lengths)
  for r in $(seq 1 "$rounds"); do
    OMP_NUM_THREADS=$threads "$build/adebert" bench --model "$model" --batch-size "$bs" "${largs[@]}" \
      --steps "$steps" --threads "$threads" --json | sed "s/^{/{\"case\":\"$model\/$kind\",\"round\":$r,/" >> "$out.tmp"
    OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE "$py" "$root/bench/bench_model_torch.py" --model "$model" \
      --lengths "$lens" --steps "$steps" --threads "$threads" --json \
      | sed "s/^{/{\"case\": \"$model\/$kind\", \"round\": $r, /" >> "$out.tmp"
  done
done
mv "$out.tmp" "$out"
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'case':16} {'side':8} {'tokens/s med':>12} {'min':>9} {'max':>9} {'ms/step':>9} {'peak MiB':>9}")
for case in dict.fromkeys(r["case"] for r in rows):
    med = {}
    for side in ("adebert", "pytorch"):
        rs = [r for r in rows if r["case"] == case and r["side"] == side]
        tps = [r["tokens_per_s"] for r in rs]
        med[side] = statistics.median(tps)
        print(f"{case:16} {side:8} {med[side]:12.1f} {min(tps):9.1f} {max(tps):9.1f} "
              f"{statistics.median(r['ms_per_step'] for r in rs):9.1f} {max(r['peak_rss_mb'] for r in rs):9.0f}")
    print(f"{case:16} ratio adebert/pytorch tokens/s = {med['adebert'] / med['pytorch']:.2f}")
PY
