#!/usr/bin/env bash
# bench/gpu/check.sh without a GPU: argument handling, the dry run on the build under
# test (GPU phases skipped and said so, CPU toys run, at most 8 files in LOG_DIR, the
# device tool's limit), and phases skipped when the time budget is spent. It does
# not run bench/gpu/prepare.sh (a CUDA build: minutes), hence --no-prepare.
source "$(dirname "$0")/lib.bash"
require_corpus
check="$ADEBERT_SOURCE_DIR/bench/gpu/check.sh"
build=$(dirname "$BIN")

expect_exit 2 "check.sh: LOG_DIR missing" -- bash "$check" --dry-run
expect_exit 2 "check.sh: unknown option" -- bash "$check" --bogus "$TMP/x"
expect_exit 2 "check.sh: bad budget" -- bash "$check" --budget soon "$TMP/x"
expect_exit 2 "check.sh: two log dirs" -- bash "$check" "$TMP/x" "$TMP/y"
expect_exit 0 "check.sh --help" -- bash "$check" --help
grep -q -- "--dry-run" "$TMP/out" && pass "--help documents --dry-run" || fail "--help documents --dry-run"

bash "$check" --dry-run --no-prepare --build "$TMP/nowhere" --data "$DATA_ROOT" "$TMP/nobuild" >"$TMP/nb.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "FAILED: no adebert" "$TMP/nobuild/summary.txt" && pass "a missing build is one FAILED row, exit 1" \
  || fail "a missing build: exit $rc, $(head -c 300 "$TMP/nb.out")"

logs="$TMP/logs"
bash "$check" --dry-run --no-prepare --build "$build" --data "$DATA_ROOT" --budget 100 "$logs" >"$TMP/dry.out" 2>&1
rc=$?
[ $rc -eq 0 ] && pass "dry run exits 0" || fail "dry run exit $rc: $(tail -5 "$TMP/dry.out")"
s="$logs/summary.txt"
grep -q "== summary ==" "$TMP/dry.out" && pass "prints the summary last" || fail "prints the summary last"
for want in "^mode .*dry run" "^1 ctest -L gpu .*SKIPPED" "^2 bench --device cuda .*SKIPPED" \
            "^adebert cpu fp32 fixed \(tiny\) .*tok/s" "^peer eager ade \(run2\) .*25352 tok/s" \
            "^3 NCCL self-test .*SKIPPED" "^4 fine-tune \(CPU toy\) +ok" "^  epoch 2 .*test F1" "^wall time"; do
  grep -Eq "$want" "$s" && pass "summary row /$want/" || fail "summary row /$want/ missing: $(cat "$s")"
done
n=$(find "$logs" -type f | wc -l)
[ "$n" -le 8 ] && pass "LOG_DIR holds $n files (<= 8)" || fail "LOG_DIR holds $n files, over 8"
[ -s "$logs/env.txt" ] && [ -s "$logs/log.txt" ] && [ -s "$logs/metrics.jsonl" ] && pass "env, log and metrics written" \
  || fail "env, log and metrics written"
python3 - "$logs/results.jsonl" <<'PY' && pass "results.jsonl holds the bench record" || fail "results.jsonl holds the bench record"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert any(r["phase"] == "bench" and r["device"] == "cpu" and r["tokens_per_s"] > 0 for r in recs), recs
PY

# A spent budget skips the phases and says so, without failing the run.
bash "$check" --dry-run --no-prepare --build "$build" --data "$DATA_ROOT" --budget 10 "$TMP/short" >"$TMP/short.out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -Eq "^4 fine-tune \(CPU toy\) +SKIPPED: out of budget" "$TMP/short/summary.txt" \
  && pass "budget 10 s: the fine-tune is skipped as out of budget" \
  || fail "budget 10 s: exit $rc; $(cat "$TMP/short/summary.txt")"
finish
