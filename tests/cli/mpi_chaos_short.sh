#!/usr/bin/env bash
# Chaos soak, short (issue 12): bench/faults/chaos.sh on 2 MPI ranks, 9 faults (each
# of SIGUSR1, SIGTERM, SIGKILL sent to rank 0, to a random rank and to mpirun, at
# random steps of a 48-step schedule with a checkpoint every 4 steps), each followed
# by --resume until the schedule completes: every chain must end bit-identical to the
# uninterrupted run (parameters and metrics), with no hang and no rank left behind.
# Negative control: a chain resumed with --debug-perturb-resume must be reported as a
# mismatch (so the comparison can fail). The long soak: bench/faults/chaos.sh --cycles 100.
source "$(dirname "$0")/lib.bash"
require_corpus
require_mpi
if version_says "HDF5 *not built"; then echo "FAIL this test needs an HDF5 build"; exit 1; fi
chaos="${ADEBERT_SOURCE_DIR:-$(dirname "$0")/../..}/bench/faults/chaos.sh"
run_chaos() { bash "$chaos" --bin "$BIN" --data "$CORPUS" --vocab "$CASED_VOCAB" --launch-limit 60 "$@"; }

run_chaos --cycles 9 --round-robin --seed 12 --out "$TMP/c" >"$TMP/c.log" 2>&1
rc=$?
tail -n 1 "$TMP/c.log"
s="$TMP/c/summary.json"
[ -f "$s" ] || { fail "no summary: $(tail -3 "$TMP/c.log")"; finish; }
[ $rc -eq 0 ] && pass "chaos.sh exits 0" || fail "chaos.sh exit $rc"
[ "$(json_get "$s" "j['cycles']")" -ge 9 ] && pass "9 faults sent" || fail "faults sent: $(json_get "$s" "j['cycles']")"
[ "$(json_get "$s" "len(j['rc_by_fault'])")" = 9 ] && pass "each of the 9 (signal, target) kinds hit a live job" \
  || fail "kinds covered: $(json_get "$s" "sorted(j['rc_by_fault'])")"
[ "$(json_get "$s" "j['chains_completed']")" -ge 2 ] && [ "$(json_get "$s" "j['chains_completed'] == j['chains']")" = True ] \
  && pass "every chain completed ($(json_get "$s" "j['chains_completed']"))" || fail "chains: $(json_get "$s" "(j['chains'], j['chains_completed'])")"
[ "$(json_get "$s" "j['mismatches']")" = 0 ] && pass "final parameters bit-identical to the uninterrupted run in every chain" \
  || fail "$(json_get "$s" "j['mismatches']") chains' parameters differ"
[ "$(json_get "$s" "j['metrics_mismatches']")" = 0 ] && pass "metrics.jsonl identical (timing aside) in every chain" \
  || fail "$(json_get "$s" "j['metrics_mismatches']") chains' metrics differ"
[ "$(json_get "$s" "j['hangs']")" = 0 ] && pass "no hang, no rank left running 60 s after mpirun" || fail "hangs: $(json_get "$s" "j['hangs']")"
[ "$(json_get "$s" "j['failed_without_fault']")" = 0 ] && pass "no launch failed on its own" \
  || fail "launches failed without a fault: $(json_get "$s" "j['failed_without_fault']")"

# negative control: the same soak, one chain, a perturbed resume
run_chaos --cycles 1 --seed 3 --perturb --ref-bin "$TMP/c/ref.bin" --out "$TMP/n" >"$TMP/n.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ "$(json_get "$TMP/n/summary.json" "j['mismatches']" 2>/dev/null)" = 1 ] \
  && pass "negative control: a perturbed resume is reported as a mismatch" \
  || fail "negative control: exit $rc, $(tail -2 "$TMP/n.log")"
finish
