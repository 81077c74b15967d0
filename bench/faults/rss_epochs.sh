#!/usr/bin/env bash
# Memory across epochs of a real fine-tune (issue 12): MiniLM-L6 for EPOCHS (3) epochs
# on the ADE training split with the main job's settings (grouped split seed 42, lr 5e-5,
# batch 32, max length 128; no checkpoints), then rank 0's RSS after each epoch from the
# rss_bytes / peak_rss_bytes of metrics.jsonl (the last record of each epoch). Prints
# one line per epoch and the growth from the first to the last; appends one JSON line
# to bench/results/faults/rss_epochs-<date>.jsonl. About 8 minutes on 2 EPYC cores.
#
#   bench/faults/rss_epochs.sh [BUILD_DIR] [MODEL_DIR]
#   env EPOCHS (3), THREADS (2), PRECISION (auto), ADEBERT_DATA
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
model=${2:-$root/models/minilm-l6}
epochs=${EPOCHS:-3}
threads=${THREADS:-2}
precision=${PRECISION:-auto}
data=${ADEBERT_DATA:-$root/../shared/data/ade-corpus-v2}
[ -f "$model/config.json" ] || { echo "rss_epochs.sh: $model is not a model folder (io/fetch-model.sh minilm-l6 DIR)" >&2; exit 1; }
[ -x "$build/adebert" ] || { echo "rss_epochs.sh: no $build/adebert (build first)" >&2; exit 1; }
out="$root/bench/results/faults/rss_epochs-$(date -u +%Y-%m-%d).jsonl"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OMP_NUM_THREADS=$threads "$build/adebert" train --data "$data" --view hf --split grouped --split-seed 42 \
  --val-fraction 0.1 --model "$model" --seed 1 --out "$tmp/run" --batch-size 32 --epochs "$epochs" --lr 5e-5 \
  --max-seq-len 128 --warmup-ratio 0.1 --weight-decay 0.01 --precision "$precision" --threads "$threads" \
  --save-every none >"$tmp/log" 2>&1 || { tail -3 "$tmp/log" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
python3 - "$tmp/run/metrics.jsonl" "$tmp/log" "$precision" "$threads" "$rev" <<'PY' | tee "$tmp/result"
import json, re, sys
metrics, log, prec, threads, rev = sys.argv[1:]
last = {}
for line in open(metrics):
    if line.strip():
        r = json.loads(line)
        last[r["epoch"]] = r
mb = lambda v: round(v / 2**20, 2) if isinstance(v, (int, float)) else None
rows = [{"epoch": e, "rss_mb": mb(last[e].get("rss_bytes")), "peak_rss_mb": mb(last[e].get("peak_rss_bytes")),
         "f1_" + last[e]["split"]: last[e]["f1"]} for e in sorted(last)]
for r in rows:
    print(f"# epoch {r['epoch']}: RSS {r['rss_mb']} MB, peak {r['peak_rss_mb']} MB", file=sys.stderr)
first, final = rows[0]["rss_mb"], rows[-1]["rss_mb"]
growth = round(final - first, 2) if first is not None and final is not None else None
print(f"# growth from epoch 1 to {rows[-1]['epoch']}: {growth} MB", file=sys.stderr)
backend = re.search(r"CPU backend[^\n]*", open(log).read())
print(json.dumps({"model": "minilm-l6", "precision": prec, "backend": backend[0] if backend else None,
                  "threads": int(threads), "epochs": rows, "growth_mb": growth, "git_rev": rev}))
PY
cat "$tmp/result" >>"$out"
echo "# appended to $out" >&2
