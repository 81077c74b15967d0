#!/usr/bin/env bash
# Issue 12's heap-corruption hunt: the SIGUSR1 stop scenario of
# tests/cli/mpi_train_failures.sh (2 ranks, tiny model, SIGUSR1 to mpirun after the
# 3rd step record), repeated many times, optionally under glibc's heap checking and
# under a parallel-build load, alternating between several binaries.
#   bench/faults/stop_repro.sh [-n RUNS] [--mcheck] [--load SRC_DIR] [--out DIR] NAME=BIN...
# --mcheck preloads libc_malloc_debug (MALLOC_CHECK_=3) and perturbs freed/new memory
# (MALLOC_PERTURB_), so a write into a freed or neighbouring chunk aborts at once.
# --load rebuilds a scratch build of SRC_DIR in a loop (-j2) for the whole run.
# One JSON line per run on stdout: binary, run, exit status, seconds, abort text.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
runs=50 mcheck=0 load="" out=/tmp/adebert-stop-repro bins=()
while [ $# -gt 0 ]; do
  case $1 in
    -n) runs=$2; shift 2 ;;
    --mcheck) mcheck=1; shift ;;
    --load) load=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *=*) bins+=("$1"); shift ;;
    *) echo "stop_repro.sh: unknown argument (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#bins[@]} -gt 0 ] || { echo "stop_repro.sh: give at least one NAME=BIN" >&2; exit 2; }
data=${ADEBERT_DATA_DIR:-$src/../shared/data}
root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
mkdir -p "$out"
loadpid=""
if [ -n "$load" ]; then
  ( cmake -S "$load" -B "$out/loadbuild" -G Ninja -DADEBERT_CUDA=OFF >/dev/null 2>&1
    while :; do cmake --build "$out/loadbuild" --clean-first -j2 >/dev/null 2>&1; done ) &
  loadpid=$!
  trap 'kill -- -$loadpid 2>/dev/null; pkill -P $loadpid 2>/dev/null; kill $loadpid 2>/dev/null' EXIT
fi
menv=()
if [ $mcheck = 1 ]; then
  dbg=$(ls /lib/x86_64-linux-gnu/libc_malloc_debug.so.0 2>/dev/null || true)
  [ -n "$dbg" ] || { echo "stop_repro.sh: libc_malloc_debug.so.0 not found" >&2; exit 2; }
  menv=(LD_PRELOAD="$dbg" MALLOC_CHECK_=3 MALLOC_PERTURB_=165)
fi
export OMP_NUM_THREADS=1
for i in $(seq 1 "$runs"); do
  for nb in "${bins[@]}"; do
    name=${nb%%=*} bin=${nb#*=} d="$out/$name-$i"
    rm -rf "$d" "$d.out" "$d.err"
    t0=$(date +%s.%N)
    env "${menv[@]}" timeout 200 mpirun "${root_flags[@]}" --oversubscribe --bind-to none --timeout 190 -np 2 \
      "$bin" train --data "$data/ade-corpus-v2" --model tiny --vocab "$data/vocab/bert-base-cased-vocab.txt" --cased \
      --limit 2000 --batch-size 8 --lr 1e-3 --quiet --epochs 50 --out "$d" >"$d.out" 2>"$d.err" &
    pid=$!
    for _ in $(seq 1 600); do
      [ -f "$d/train_log.jsonl" ] && [ "$(wc -l <"$d/train_log.jsonl")" -ge 3 ] && break
      sleep 0.1
    done
    kill -USR1 "$(pgrep -P "$pid" mpirun)" 2>/dev/null
    wait "$pid"; rc=$?
    python3 - "$name" "$i" "$rc" "$t0" "$d.err" <<'PY'
import json, sys, time
name, i, rc, t0, err = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
lines = open(err, errors="replace").read().splitlines()
bad = [l for l in lines if any(k in l for k in ("corrupted", "malloc", "free()", "Signal:", "double free", "Aborted"))]
print(json.dumps({"bin": name, "run": i, "rc": rc, "s": round(time.time() - t0, 2), "abort": bad[:3]}), flush=True)
PY
    [ $rc -eq 75 ] && rm -rf "$d" "$d.out" "$d.err"   # keep only the failures
  done
done
