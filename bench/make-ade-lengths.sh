#!/usr/bin/env bash
# Writes bench/ade-lengths.json: the WordPiece length histogram ([CLS]/[SEP] included,
# no truncation) of the hf view with the bert-base-cased vocab (BioBERT's). Benchmarks
# sample batch compositions from it. Counts only, no corpus text.
#   bench/make-ade-lengths.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${1:-$root/build}/adebert"
vocab="${ADEBERT_VOCAB:-$root/../shared/data/vocab/bert-base-cased-vocab.txt}"
"$bin" data stats --view hf --vocab "$vocab" --cased --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
t = j["token_length"]
out = {"source": "adebert data stats --view hf --vocab bert-base-cased-vocab.txt --cased",
       "rows": j["rows"], "p50": t["p50"], "p90": t["p90"], "p99": t["p99"], "max": t["max"],
       "mean": round(t["mean"], 3), "histogram": t["histogram"]}
json.dump(out, open(sys.argv[1], "w"), indent=None)
print("wrote", sys.argv[1], "p50", t["p50"], "p99", t["p99"])
' "$root/bench/ade-lengths.json"
