#!/usr/bin/env bash
# Time per epoch of `adebert train` on the CPU at 1 and 2 ranks, alternating the
# two sides ROUNDS times (default 3): tiny over one full epoch of the hf view, minilm
# over 40 steps (--limit 1280) extrapolated to the full epoch's 530 steps. Also the
# share of training time each 2-rank run spends waiting on the gradient reduction.
# Raw JSON lines go to bench/results/train_cpu_<date>.jsonl.
#
#   bench/run_train_scaling.sh [BUILD_DIR] [ROUNDS]
#
# 1 rank uses both cores (OMP_NUM_THREADS=2); 2 ranks one core each.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-3}
data=${ADEBERT_DATA:-$root/../shared/data/ade-corpus-v2}
vocab=${ADEBERT_VOCAB:-$root/../shared/data/vocab/bert-base-cased-vocab.txt}
out="$root/bench/results/train_cpu_$(date -u +%Y-%m-%d).jsonl"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$out.tmp"
run() { # model np round extra...
  local model=$1 np=$2 round=$3; shift 3
  local threads=$((2 / np))
  OMP_NUM_THREADS=$threads mpirun "${root_flags[@]}" --oversubscribe --bind-to none -x OMP_NUM_THREADS -np "$np" \
    "$build/adebert" train --data "$data" --model "$model" --vocab "$vocab" --cased --epochs 1 --lr 1e-3 \
    --quiet --out "$tmp/$model-$np-$round" "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
  python3 - "$tmp/log" "$model" "$np" "$round" "$threads" "$rev" >>"$out.tmp" <<'PY'
import json, re, sys
log, model, np_, rnd, thr, rev = sys.argv[1:]
m = re.search(r"done: (\d+) steps in ([\d.]+) s: training ([\d.]+) s \(([\d.]+) ms/step, ([\d.]+)% of it waiting", open(log).read())
steps, wall, train, ms, wait = int(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5])
print(json.dumps({"model": model, "ranks": int(np_), "round": int(rnd), "threads_per_rank": int(thr), "steps": steps,
                  "train_s": train, "ms_per_step": ms, "epoch_s": ms * 530 / 1000, "wait_pct": wait,
                  "git_rev": rev}))
PY
}
for r in $(seq 1 "$rounds"); do
  for np in 1 2; do run tiny "$np" "$r"; done
  for np in 1 2; do run minilm "$np" "$r" --limit 1280; done
done
mv "$out.tmp" "$out"
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'model':8} {'ranks':>5} {'epoch s (median)':>17} {'min':>7} {'max':>7} {'wait %':>7}")
for model in ("tiny", "minilm"):
    med = {}
    for np_ in (1, 2):
        rs = [r for r in rows if r["model"] == model and r["ranks"] == np_]
        e = [r["epoch_s"] for r in rs]
        med[np_] = statistics.median(e)
        print(f"{model:8} {np_:5d} {med[np_]:17.1f} {min(e):7.1f} {max(e):7.1f} "
              f"{statistics.median(r['wait_pct'] for r in rs):7.1f}")
    print(f"{model:8} speed-up 2 ranks / 1 rank = {med[1] / med[2]:.2f}")
PY
echo "raw: $out"
