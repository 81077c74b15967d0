#!/usr/bin/env bash
# Ranks vs GPUs (issue 14.8) and the binding lines (14.4) under mpirun, on a CPU host:
# the GPU count comes from the test hook ADEBERT_FAKE_GPU_COUNT (launch/cluster.h).
#  - 2 ranks on one node, 1 GPU: refused before NCCL, rank 0 names both counts, once.
#  - 2 ranks, 2 GPUs: the check passes (the run then stops at the CUDA backend on a
#    host without one, with the backend's own message).
#  - a 2-rank CPU run prints one binding line per rank (rank, host, CPU list, device).
source "$(dirname "$0")/lib.bash"
require_corpus
require_mpi
T=(train --data "$CORPUS" --vocab "$CASED_VOCAB" --cased --model tiny --limit 100 --max-steps 1 --epochs 1 --quiet)
run2() { OMP_NUM_THREADS=1 timeout 120 mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np 2 "$@"; }

run2 -x ADEBERT_FAKE_GPU_COUNT=1 "$BIN" "${T[@]}" --device cuda --out "$TMP/a" >"$TMP/a.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 75 ] && pass "2 ranks, 1 GPU: refused (exit $rc)" || fail "2 ranks, 1 GPU: exit $rc"
n=$(grep -c "2 ranks on one node but 1 GPU(s) visible to each (ADEBERT_FAKE_GPU_COUNT test hook): ranks 0 and 1" "$TMP/a.log")
[ "$n" = 1 ] && pass "the refusal names both counts and the ranks, once" || fail "refusal ($n lines): $(cat "$TMP/a.log")"
! grep -qi "nccl" "$TMP/a.log" && pass "refused before NCCL" || fail "NCCL reached: $(grep -i nccl "$TMP/a.log")"

run2 -x ADEBERT_FAKE_GPU_COUNT=2 "$BIN" "${T[@]}" --device cuda --out "$TMP/b" >"$TMP/b.log" 2>&1
if ! grep -q "would share a GPU" "$TMP/b.log"; then pass "2 ranks, 2 GPUs: the check passes"
else fail "2 ranks, 2 GPUs refused: $(cat "$TMP/b.log")"; fi

run2 "$BIN" "${T[@]}" --out "$TMP/c" >"$TMP/c.log" 2>&1 || fail "2-rank CPU run: $(tail -3 "$TMP/c.log")"
for r in 0 1; do
  grep -qE "^adebert train: binding: rank $r \(local $r of 2\) on [^:]+: [0-9]+ CPU\(s\) [0-9][0-9,-]*, OMP_NUM_THREADS=1, cpu, no GPU" "$TMP/c.log" \
    && pass "binding line of rank $r" || fail "binding line of rank $r: $(grep binding "$TMP/c.log")"
done
finish
