#!/usr/bin/env bash
# adebert serve vs (a) a Hugging Face pipeline behind FastAPI/uvicorn and (b) ONNX
# Runtime behind the same app (bench/serve/peer_server.py), all on the CPU, same API,
# same texts (ADE corpus sentences, one per request), driven by wrk
# (bench/serve/ade.lua). Sides alternate ROUNDS times per connection count; raw JSON
# lines go to bench/results/serve_<date>.jsonl, then medians and spread per side.
#
#   bench/serve/run.sh BUILD_DIR CKPT.h5 [--smoke]
#
# env: OUT (the JSON lines file), MODEL_NAME (recorded per line), SIDES ("adebert adebert-bf16 hf onnx"; adebert-bf16 is serve --precision bf16),
# DURATION (s, default 30), ROUNDS (3), CONNS ("1 16 64"), THREADS (2: OpenMP /
# torch / ORT intra-op threads), WORKERS (4: adebert's HTTP threads), MAX_BATCH (32),
# MAX_WAIT_MS (5), MAX_SEQ_LEN (128, truncation on every side), PEER_PY (~/.cache/adebert-venv/bin/python, with fastapi, uvicorn,
# onnxruntime installed: ADEBERT_SERVE_PEERS=1 launch/install-deps.sh), ADEBERT_DATA (the corpus).
# --smoke: adebert alone, one round, 10 s, 16 connections, results under /tmp; the
# comparison needs the full run.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR CKPT.h5 [--smoke]}
ckpt=${2:?usage: run.sh BUILD_DIR CKPT.h5 [--smoke]}
smoke=${3:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
corpus=${ADEBERT_DATA:-$root/../shared/data/ade-corpus-v2}
duration=${DURATION:-30}; rounds=${ROUNDS:-3}; conns=${CONNS:-"1 16 64"}; threads=${THREADS:-2}
workers=${WORKERS:-4}; max_batch=${MAX_BATCH:-32}; max_wait=${MAX_WAIT_MS:-5}
peer_py=${PEER_PY:-${HOME:-/tmp}/.cache/adebert-venv/bin/python}
sides=(${SIDES:-adebert adebert-bf16 hf onnx})
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
model_name=${MODEL_NAME:-$(basename "$(dirname "$ckpt")")}
out=${OUT:-"$root/bench/results/serve_$(date -u +%Y-%m-%d).jsonl"}
if [ "$smoke" = --smoke ]; then
  sides=(adebert); rounds=1; duration=10; conns=16; out=$(mktemp /tmp/serve_smoke_XXXX.jsonl)
fi
command -v wrk >/dev/null || { echo "run.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
work=$(mktemp -d)
trap 'kill "${spid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# ADE-length texts: the corpus's sentences, deduplicated (median ~32 WordPiece tokens)
python3 - "$corpus" "$work/texts.txt" <<'PY'
import sys
seen = {}
for l in open(sys.argv[1] + "/DRUG-AE.rel", encoding="utf-8"):
    if l.strip(): seen.setdefault(l.split("|")[1].strip(), None)
for l in open(sys.argv[1] + "/ADE-NEG.txt", encoding="utf-8"):
    if l.strip(): seen.setdefault(l.split(" ", 2)[2].strip(), None)
open(sys.argv[2], "w", encoding="utf-8").write("".join(t + "\n" for t in list(seen)[:4000]))
PY
msl=${MAX_SEQ_LEN:-128}
if [[ " ${sides[*]} " == *" hf "* || " ${sides[*]} " == *" onnx "* ]]; then
  "$build/adebert" export --checkpoint "$ckpt" --out "$work/hf" >/dev/null
fi

start_side() { # side port
  case $1 in
    adebert|adebert-bf16)
      local prec=fp32; [ "$1" = adebert-bf16 ] && prec=bf16
      OMP_NUM_THREADS=$threads "$build/adebert" serve --checkpoint "$ckpt" --port "$2" --workers "$workers" --precision $prec \
        --max-batch "$max_batch" --max-wait-ms "$max_wait" --max-connections 1024 --no-access-log --max-seq-len "$msl" \
        2>"$work/server.err" & ;;
    hf|onnx)
      OMP_NUM_THREADS=$threads "$peer_py" "$root/bench/serve/peer_server.py" --backend "$1" --model "$work/hf" \
        --port "$2" --threads "$threads" --max-seq-len "$msl" 2>"$work/server.err" & ;;
  esac
  spid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$2/ping" >/dev/null 2>&1 && return 0
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.2
  done
  echo "run.sh: $1 did not start: $(tail -3 "$work/server.err")" >&2
  return 1
}

echo "run.sh: sides ${sides[*]}, rounds $rounds, ${duration}s each, connections $conns, threads $threads, rev $rev" >&2
: >"$out.tmp"
port=18080
for r in $(seq 1 "$rounds"); do
  for c in $conns; do
    for side in "${sides[@]}"; do
      port=$((port + 1))
      wt=$((c < 2 ? c : 2)) # wrk threads: at most one per connection
      start_side "$side" "$port"
      ADEBERT_BENCH_TEXTS="$work/texts.txt" wrk -t"$wt" -c"$c" -d3s -s "$root/bench/serve/ade.lua" \
        "http://127.0.0.1:$port" >/dev/null 2>&1 || true  # warm-up
      line=$(ADEBERT_BENCH_TEXTS="$work/texts.txt" wrk -t"$wt" -c"$c" -d"${duration}s" --latency \
        -s "$root/bench/serve/ade.lua" "http://127.0.0.1:$port" | sed -n 's/^JSON //p')
      echo "{\"side\": \"$side\", \"model\": \"$model_name\", \"round\": $r, \"connections\": $c, \"threads\": $threads, \"cpu\": \"$cpu\", \"rev\": \"$rev\", ${line#\{}" \
        | tee -a "$out.tmp"
      kill -TERM "$spid"; wait "$spid" || true; spid=""
    done
  done
done
mv "$out.tmp" "$out"
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'side':8} {'conns':>5} {'texts/s med':>11} {'min':>8} {'max':>8} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>6}")
for key in dict.fromkeys((r["side"], r["connections"]) for r in rows):
    rs = [r for r in rows if (r["side"], r["connections"]) == key]
    t = [r["texts_per_s"] for r in rs]
    print(f"{key[0]:8} {key[1]:5d} {statistics.median(t):11.1f} {min(t):8.1f} {max(t):8.1f} "
          f"{statistics.median(r['p50_ms'] for r in rs):8.2f} {statistics.median(r['p99_ms'] for r in rs):8.2f} "
          f"{sum(r['non2xx'] for r in rs):6d}")
print(f"raw: {sys.argv[1]}")
PY
