#!/usr/bin/env bash
# Builds adebert four ways and runs the whole test suite:
#   1. the full build (CUDA when nvcc is found, MPI, HDF5): every ctest test;
#   2. ASan + UBSan over the CPU paths (CUDA off): every ctest test again except the
#      two Slurm tests (label slurm: they test the batch scripts and drive the same
#      train/eval paths the other tests cover; ~5 min of CPU under ASan, which CI's
#      30-minute budget cannot spare);
#   3. the minimal build a bare GPU host makes (no MPI, no HDF5, no CUDA): every
#      test that needs no MPI;
#   4. the libFuzzer targets (clang, build-fuzz/): each fuzzed ~12 s from its seeds,
#      the checkpoint reader on its seeds only (tests/fuzz/ci.sh says why), plus a
#      negative control; each target counts as one test. Without clang: skipped (in
#      CI, env CI set: failed).
# Tests that need the corpus read ../shared/data (ADEBERT_DATA_DIR=... to point
# elsewhere) and fail when it is missing. GPU tests, where present, are skipped
# (and counted as skipped) on machines without a GPU.
# ADEBERT_TEST_STAGES="asan fuzz" runs only those of the four (default: all:
# "full asan minimal fuzz").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
data_args=()
[ -n "${ADEBERT_DATA_DIR:-}" ] && data_args=(-DADEBERT_DATA_DIR="$ADEBERT_DATA_DIR")
passed=0; failed=0; skipped=0
stages=" ${ADEBERT_TEST_STAGES:-full asan minimal fuzz} "
stage() { [[ "$stages" == *" $1 "* ]]; }

run_ctest() { # dir label [ctest args...]
  local log; log=$(mktemp)
  local rc=0
  ctest --test-dir "$1" --output-on-failure -j "$jobs" "${@:3}" 2>&1 | tee "$log" || rc=$?
  local line; line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1 || true)
  if [ -z "$line" ]; then echo "run.sh: $2: ctest printed no summary" >&2; failed=$((failed + 1)); rm -f "$log"; return; fi
  local total f s
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*tests passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  s=$(grep -cE "\*\*\*Skipped|Not Run" "$log" || true)
  passed=$((passed + total - f - s)); failed=$((failed + f)); skipped=$((skipped + s))
  [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || failed=$((failed + 1))
  rm -f "$log"
}

if stage full; then
echo "== 1/4 full build =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${data_args[@]}"
cmake --build build -j "$jobs"
run_ctest build full
fi

if stage asan; then
echo "== 2/4 ASan + UBSan build (CPU paths) =="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADEBERT_SANITIZE=ON -DADEBERT_CUDA=OFF \
  "${data_args[@]}"
cmake --build build-asan -j "$jobs"
# Open MPI's allocations that live until exit are suppressed (tests/lsan.supp); they
# are only attributable with full stacks (its plugins have no frame pointers) and
# with its plugins kept loaded at exit.
OMPI_MCA_mca_base_component_disable_dlclose=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 \
LSAN_OPTIONS=suppressions="$root/tests/lsan.supp":print_suppressions=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan asan -LE slurm
fi

if stage minimal; then
echo "== 3/4 minimal build (ADEBERT_MPI=OFF ADEBERT_HDF5=OFF, CUDA off: a bare host) =="
cmake -S . -B build-min -G Ninja -DCMAKE_BUILD_TYPE=Release -DADEBERT_MPI=OFF -DADEBERT_HDF5=OFF \
  -DADEBERT_CUDA=OFF "${data_args[@]}"
cmake --build build-min -j "$jobs"
run_ctest build-min minimal
# (output captured first: `grep -q` closing a pipe early fails the pipeline under pipefail)
min_version=$(build-min/adebert version 2>&1 || true)
if grep -q "single rank (built without MPI)" <<<"$min_version"; then
  passed=$((passed + 1)); echo "minimal build: adebert version reports one rank, no HDF5"
else
  failed=$((failed + 1)); echo "minimal build: adebert version did not report the one-rank build" >&2
fi
fi

if stage fuzz; then
echo "== 4/4 fuzz targets (clang, libFuzzer + ASan + UBSan; tests/fuzz/ci.sh) =="
log=$(mktemp)
rc=0
tests/fuzz/ci.sh 2>&1 | tee "$log" || rc=$?
if [ "$rc" -eq 77 ]; then
  skipped=$((skipped + 1))
else
  line=$(grep -E "^[0-9]+ passed, [0-9]+ failed$" "$log" | tail -1 || true)
  if [ -z "$line" ]; then
    echo "run.sh: fuzz: tests/fuzz/ci.sh printed no summary" >&2; failed=$((failed + 1))
  else
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || failed=$((failed + 1))
  fi
fi
rm -f "$log"
fi

echo
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
