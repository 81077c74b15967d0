#!/usr/bin/env bash
# The heap corruption of issue 12, in isolation: oneDNN's JIT GEMM kernels point RSP at a
# heap workspace while they run (oneDNN issue #4845, fixed upstream in 3.11), so a signal
# handled on that thread -- even by a handler that does nothing -- has its frame pushed
# into the heap. bench/faults/onednn_signal.c calls dnnl_sgemm in a loop (one thread)
# while a 50 us timer fires SIGALRM: with a handler, then with the signal blocked (the
# control, what adebert does). Prints one JSON line per run and appends them to
# bench/results/faults/onednn-signal-<date>.jsonl.
#   bench/faults/onednn_signal.sh [RUNS] [GEMMS]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-3} gemms=${2:-3000}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/onednn_signal" "$root/bench/faults/onednn_signal.c" -ldnnl \
  || { echo "onednn_signal.sh: cannot build (libdnnl-dev?)" >&2; exit 1; }
out="$root/bench/results/faults/onednn-signal-$(date -u +%Y-%m-%d).jsonl"
ver=$(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null || echo unknown)
cpu=$(lscpu | sed -n 's/^Model name: *//p')
for isa in default AVX2; do
  for mode in handler block; do
    for r in $(seq 1 "$runs"); do
      isa_env=(); [ "$isa" = AVX2 ] && isa_env=(ONEDNN_MAX_CPU_ISA=AVX2)
      env OMP_NUM_THREADS=1 "${isa_env[@]}" timeout 300 "$tmp/onednn_signal" "$mode" "$gemms" >"$tmp/o" 2>"$tmp/e"
      rc=$?
      python3 -c 'import json, sys
print(json.dumps({"isa": sys.argv[1], "mode": sys.argv[2], "run": int(sys.argv[3]), "exit": int(sys.argv[4]),
  "stdout": open(sys.argv[5]).read().strip()[:120], "glibc": open(sys.argv[6], errors="replace").read().strip()[:80],
  "gemms": int(sys.argv[7]), "libdnnl2": sys.argv[8], "cpu": sys.argv[9]}))' \
        "$isa" "$mode" "$r" "$rc" "$tmp/o" "$tmp/e" "$gemms" "$ver" "$cpu" | tee -a "$out"
    done
  done
done
