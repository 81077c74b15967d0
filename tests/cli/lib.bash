# Shared helpers for the command-line tests (sourced, not a test itself).
set -uo pipefail
BIN="${ADEBERT_BIN:?ADEBERT_BIN not set (run through ctest)}"
DATA_ROOT="${ADEBERT_TEST_DATA:?ADEBERT_TEST_DATA not set}"
CORPUS="$DATA_ROOT/ade-corpus-v2"
CASED_VOCAB="$DATA_ROOT/vocab/bert-base-cased-vocab.txt"
UNCASED_VOCAB="$DATA_ROOT/vocab/bert-base-uncased-vocab.txt"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
checks=0
pass() { checks=$((checks + 1)); echo "ok   $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $*"; }
# expect_exit CODE DESC -- cmd...: runs cmd, checks its exit code and that stderr is
# exactly one line when the code is non-zero.
expect_exit() {
  local want=$1 desc=$2; shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then fail "$desc: exit $rc, want $want; stderr: $(head -c 300 "$TMP/err")"; return; fi
  if [ "$want" -ne 0 ]; then
    local n; n=$(wc -l <"$TMP/err")
    if [ "$n" -ne 1 ]; then fail "$desc: want one stderr line, got $n: $(head -c 300 "$TMP/err")"; return; fi
    if grep -qiE "sanitizer|segmentation|core dumped|abort" "$TMP/err"; then fail "$desc: crashed"; return; fi
  fi
  pass "$desc"
}
require_corpus() {
  [ -f "$CORPUS/DRUG-AE.rel" ] && [ -f "$CORPUS/ADE-NEG.txt" ] || { echo "FAIL corpus missing at $CORPUS"; exit 1; }
  [ -f "$CASED_VOCAB" ] && [ -f "$UNCASED_VOCAB" ] || { echo "FAIL vocabularies missing under $DATA_ROOT/vocab"; exit 1; }
}
# require_mpi: the test needs an MPI build and mpirun; sets root_flags for mpirun.
require_mpi() {
  "$BIN" version >"$TMP/version.txt" 2>&1
  grep -q "MPI (" "$TMP/version.txt" || { echo "FAIL this test needs an MPI build (ADEBERT_MPI=ON)"; exit 1; }
  command -v mpirun >/dev/null || { echo "FAIL mpirun not found (apt-get install openmpi-bin)"; exit 1; }
  root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
}
# version_says REGEX: `adebert version` mentions it. (Output captured first: under
# pipefail, `adebert version | grep -q` fails whenever grep exits before the writer.)
version_says() { local v; v=$("$BIN" version 2>&1); grep -qE "$1" <<<"$v"; }
# mpirun_usr1 NP OUT LINES LIMIT ARGS...: `mpirun -np NP ARGS --out OUT` in the
# background (stdout OUT.out, stderr OUT.err, killed after LIMIT seconds); once
# OUT/train_log.jsonl has LINES lines (or after 60 s), SIGUSR1 goes to mpirun, which
# forwards it to the ranks. Returns mpirun's exit status. Needs require_mpi.
mpirun_usr1() {
  local np=$1 out=$2 lines=$3 limit=$4; shift 4
  timeout "$limit" mpirun "${root_flags[@]}" --oversubscribe --bind-to none --timeout $((limit - 10)) -np "$np" \
    "$@" --out "$out" >"$out.out" 2>"$out.err" &
  local pid=$!
  wait_log_lines "$out" "$lines"
  kill -USR1 "$(pgrep -P "$pid" mpirun)"
  wait "$pid"
}
# wait_log_lines RUN_DIR N [PID]: until RUN_DIR/train_log.jsonl has N lines (steps done),
# PID (when given) has exited, or 60 s have passed.
wait_log_lines() {
  for _ in $(seq 1 600); do
    [ -f "$1/train_log.jsonl" ] && [ "$(wc -l <"$1/train_log.jsonl")" -ge "$2" ] && return
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return
    sleep 0.1
  done
}
# train_losses RUN_DIR: the per-step losses of train_log.jsonl, one per line (repr).
train_losses() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if 'loss' in d: print(repr(d['loss']))" "$1/train_log.jsonl"; }
# losses_close A B TOL [N]: two train_losses files (their first N lines) have the same
# length and agree within TOL relative at every step; prints the worst difference.
losses_close() { python3 -c "
import sys
n = int(sys.argv[4]) if len(sys.argv) > 4 else None
a = [float(x) for x in open(sys.argv[1])][:n]; b = [float(x) for x in open(sys.argv[2])][:n]
w = max(abs(x - y) / abs(x) for x, y in zip(a, b)); print('%.3g' % w)
sys.exit(0 if len(a) == len(b) and w <= float(sys.argv[3]) else 1)" "$@"; }
# params_maxrel A B: max |a - b| / max |a| of two float32 dumps (--dump-params).
params_maxrel() { python3 -c "
import array, sys
a = array.array('f'); b = array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
assert len(a) == len(b) and len(a) > 0
print('%.3g' % (max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)))" "$1" "$2"; }
# json_get FILE EXPR: evaluates a Python expression on the JSON object `j`.
json_get() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
finish() {
  echo "$((checks - fails)) passed, $fails failed"
  [ "$fails" -eq 0 ] && [ "$checks" -gt 0 ]
  exit $?
}
