#!/usr/bin/env bash
# adebert version reports the build; under mpirun each rank knows its rank and local rank.
source "$(dirname "$0")/lib.bash"
"$BIN" version >"$TMP/v.txt" 2>&1 && pass "version runs" || fail "version runs: $(cat "$TMP/v.txt")"
grep -q "rank 0 of 1" "$TMP/v.txt" && pass "one rank without mpirun" || fail "one rank without mpirun"
if grep -q "MPI (" "$TMP/v.txt"; then
  root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
  timeout 120 mpirun "${root_flags[@]}" --oversubscribe --timeout 100 -np 2 "$BIN" version >"$TMP/m.txt" 2>&1
  rc=$?
  [ $rc -eq 0 ] && grep -q "rank 1 of 2: local rank 1 of 2" "$TMP/m.txt" && grep -q "rank 0 of 2: local rank 0 of 2" "$TMP/m.txt" \
    && pass "mpirun -np 2: ranks and local ranks" || fail "mpirun -np 2 (rc $rc): $(cat "$TMP/m.txt")"
  # launch/mpirun.sh: the example launcher (root flags, --bind-to none, threads per rank)
  ADEBERT_BIN="$BIN" timeout 120 bash "$ADEBERT_SOURCE_DIR/launch/mpirun.sh" --oversubscribe -np 2 version >"$TMP/l.txt" 2>&1
  grep -q "rank 1 of 2: local rank 1 of 2" "$TMP/l.txt" && grep -q "rank 0 of 2: local rank 0 of 2" "$TMP/l.txt" \
    && pass "launch/mpirun.sh -np 2 version" || fail "launch/mpirun.sh -np 2 version: $(cat "$TMP/l.txt")"
else
  grep -q "single rank (built without MPI)" "$TMP/v.txt" && pass "one-rank build says so" || fail "one-rank build says so"
fi
finish
