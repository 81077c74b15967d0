#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz for a fixed time each (issue 12) and prints
# one JSON line per target: executions, corpus size, coverage, crashes. Builds them
# first in build-fuzz/ (clang, -DADEBERT_FUZZ=ON) when asked:
#   bench/faults/fuzz.sh [--build] [--seconds 60] [--out DIR] [--seeds-only T,...]
#                        [--seeds T=DIR] [TARGET...]
# New inputs go to DIR/corpus-TARGET (the committed seeds stay as they are); crash
# files to DIR. --seeds-only: those targets only run their seeds once (a regression
# check, no mutation). --seeds: target T's seeds from DIR instead of the committed ones.
# Run it niced: nice -n 10 bench/faults/fuzz.sh.
# tests/fuzz/ci.sh runs it briefly as the test suite's fuzz stage.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=60 out=/tmp/adebert-fuzz build=0 targets=() seeds_only="," seed_dirs=()
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=1; shift ;;
    --seconds) secs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seeds-only) seeds_only=",$2,"; shift 2 ;;
    --seeds) seed_dirs+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(corpus config vocab splitdir checkpoint serve_request safetensors torchbin)
bd="${ADEBERT_FUZZ_BUILD:-$src/build-fuzz}"
if [ $build = 1 ] || [ ! -d "$bd" ]; then
  log=$(mktemp)
  if ! { CC=clang cmake -S "$src" -B "$bd" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADEBERT_CUDA=OFF \
           -DADEBERT_FUZZ=ON && cmake --build "$bd" -j2 $(printf -- '--target fuzz_%s ' "${targets[@]}"); } >"$log" 2>&1; then
    tail -n 30 "$log" >&2; rm -f "$log"
    echo "fuzz.sh: the build in $bd failed" >&2; exit 1
  fi
  rm -f "$log"
fi
mkdir -p "$out"
for t in "${targets[@]}"; do
  exe="$bd/tests/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "{\"target\":\"$t\",\"error\":\"not built\"}"; continue; }
  seeds="$src/tests/fuzz/${t}_seeds"
  case $t in safetensors) seeds="$src/tests/reference";; torchbin) seeds="$src/tests/reference/torchbin";; esac
  for sd in "${seed_dirs[@]}"; do [ "${sd%%=*}" = "$t" ] && seeds="${sd#*=}"; done
  dict=(); [ -f "$src/tests/fuzz/$t.dict" ] && dict=(-dict="$src/tests/fuzz/$t.dict")
  mkdir -p "$out/corpus-$t"
  lsan=""; [ "$t" = checkpoint ] && lsan="suppressions=$src/tests/fuzz/hdf5_lsan.supp:print_suppressions=0"
  # HDF5 allocates sizes read from corrupt metadata: a NULL it handles, not an ASan report
  asan=""; [ "$t" = checkpoint ] && asan="allocator_may_return_null=1"
  # a fuzzing run: mutations for $secs s, new inputs into corpus-$t; a seeds-only one:
  # each committed seed once (-runs=0 over the seed folder alone)
  mode=(-max_total_time="$secs" "$out/corpus-$t" "$seeds")
  [[ $seeds_only == *",$t,"* ]] && mode=(-runs=0 "$seeds")
  # -timeout: one input running this long is a hang (reported as a timeout artifact)
  ( cd "$out" && LSAN_OPTIONS="$lsan" ASAN_OPTIONS="$asan" "$exe" "${dict[@]}" -max_len=65536 -rss_limit_mb=2048 \
      -timeout=25 -print_final_stats=1 -artifact_prefix="$out/$t-" "${mode[@]}" >"$out/$t.log" 2>&1 )
  rc=$?
  python3 - "$t" "$rc" "$out/$t.log" "$out" "${mode[0]}" <<'PY'
import json, os, re, sys
t, rc, log, out, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
s = open(log, errors="replace").read()
g = lambda pat: (re.findall(pat, s) or [None])[-1]
crashes = [f for f in os.listdir(out) if f.startswith(tuple(f"{t}-{k}-" for k in ("crash", "leak", "timeout", "oom")))]
print(json.dumps({"target": t, "seeds_only": mode == "-runs=0", "exit": rc, "executions": int(g(r"stat::number_of_executed_units:\s*(\d+)") or 0),
    "exec_per_s": int(g(r"stat::average_exec_per_sec:\s*(\d+)") or 0), "coverage": int(g(r"cov: (\d+)") or 0),
    "corpus": g(r"corp: (\S+)"), "deadly": "ERROR: " in s or "runtime error:" in s, "error": g(r"((?:ERROR: |runtime error: )[^\n]*)"), "artifacts": crashes}))
PY
done
