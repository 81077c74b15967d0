#!/usr/bin/env bash
# bf16 GEMM efficiency (issue 15): compiles bench/bench_gemm_bf16.c against a build's
# nn library and runs it ROUNDS times (default 3); each run times bf16 and fp32 at
# square shapes (the best bf16 one is the measured peak) and at MiniLM-L6's inference
# shapes. JSON lines, with the CPU model and
# the git revision, appended to OUT (default bench/results/gemm_bf16_cpu_<date>.jsonl),
# then medians per (shape, precision).
#   bench/run_gemm_bf16.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: run_gemm_bf16.sh BUILD_DIR (a Release build with ADEBERT_BLAS=dnnl)}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/bench/results/gemm_bf16_cpu_$(date -u +%Y-%m-%d).jsonl}
rounds=${ROUNDS:-3}
[ -f "$build/nn/libadebert_nn.a" ] || { echo "run_gemm_bf16.sh: $build/nn/libadebert_nn.a not found (build first)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -I"$root" "$root/bench/bench_gemm_bf16.c" \
  "$build/nn/libadebert_nn.a" "$build/libadebert_config.a" -ldnnl -lmvec -lm -o "$tmp/bench_gemm_bf16"
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
threads=${OMP_NUM_THREADS:-$(nproc)}
first=$(( $( [ -f "$out" ] && wc -l <"$out" || echo 0) + 1 ))
for r in $(seq 1 "$rounds"); do
  OMP_NUM_THREADS=$threads "$tmp/bench_gemm_bf16" | while read -r line; do
    echo "${line%\}}, \"round\": $r, \"threads\": $threads, \"cpu\": \"$cpu\", \"rev\": \"$rev\"}" | tee -a "$out"
  done
done
python3 - "$out" "$first" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]).readlines()[int(sys.argv[2]) - 1:]]
med = {k: statistics.median(r["gflops"] for r in rows if (r["shape"], r["precision"]) == k)
       for k in dict.fromkeys((r["shape"], r["precision"]) for r in rows)}
peak = max(g for (s, p), g in med.items() if s.startswith("square") and p == "bf16")  # the measured bf16 peak
print(f"measured bf16 peak (best square, median of rounds): {peak:.1f} GFLOP/s")
for k, g in med.items():
    print(f"{k[0]:22} {k[1]}  {g:7.1f} GFLOP/s  {100 * g / peak:5.1f}% of the bf16 peak")
PY
