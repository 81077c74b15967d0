#!/usr/bin/env bash
# A rank killed inside a gradient all-reduce (issue 12, CPU MPI path). To be sure the
# survivor is inside the collective when its peer dies, the victim is first stopped
# (SIGSTOP: the other rank reaches the next all-reduce and waits there, polling), then
# SIGKILLed. The job must end within a bounded time (measured; asserted < 20 s) with
# Open MPI's message naming the dead rank, no rank may be left running afterwards, and
# --resume must continue bit-identically to the uninterrupted 2-rank run. Both ways:
# the writer (rank 0) killed while rank 1 waits, and rank 1 killed while rank 0 waits.
# Also SIGKILL to mpirun itself: the orphaned ranks must go away on their own (time
# measured; asserted < 30 s) and --resume is then accepted and exact.
source "$(dirname "$0")/lib.bash"
require_corpus
require_mpi
if version_says "HDF5 *not built"; then echo "FAIL this test needs an HDF5 build"; exit 1; fi
export OMP_NUM_THREADS=1
# 6 epochs (144 steps, about 2.5 s unloaded): the job must still be running when the
# script, possibly slowed by a loaded CI machine, gets to stop a rank after step 13.
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 192 --epochs 6 --batch-size 8
      --max-seq-len 64 --lr 1e-3 --quiet --threads 1 --save-every 4)
mpi=(mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np 2)
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
rank_pid() { # MPIRUN_PID RANK
  local p
  for p in $(pgrep -P "$1"); do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
log_lines() { [ -f "$1/train_log.jsonl" ] && wc -l <"$1/train_log.jsonl" || echo 0; }
# wait_steps DIR N: until DIR/train_log.jsonl has N lines (steps done; the log only grows,
# unlike a step checkpoint, which --keep-last removes again a few steps later) or 120 s.
wait_steps() { for _ in $(seq 1 2400); do [ "$(log_lines "$1")" -ge "$2" ] && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

"${mpi[@]}" "$BIN" "${args[@]}" --out "$TMP/ref" --dump-params "$TMP/ref.bin" >"$TMP/ref.log" 2>&1 \
  && pass "uninterrupted 2-rank run" || fail "uninterrupted run: $(tail -2 "$TMP/ref.log")"

kill_in_allreduce() { # NAME VICTIM_RANK
  local name=$1 victim=$2 d="$TMP/$1"
  timeout 120 "${mpi[@]}" "$BIN" "${args[@]}" --out "$d" >"$d.out" 2>"$d.err" &
  local tpid=$! mp=""
  for _ in $(seq 1 600); do mp=$(pgrep -P $tpid mpirun); [ -n "$mp" ] && break; sleep 0.05; done
  wait_steps "$d" 13
  local v="" s="" i
  for i in $(seq 1 40); do
    v=$(rank_pid "$mp" "$victim"); s=$(rank_pid "$mp" $((1 - victim)))
    [ -n "$v" ] && [ -n "$s" ] && break; sleep 0.05
  done
  if [ -z "$v" ] || [ -z "$s" ]; then
    fail "$name: ranks not found (mpirun ${mp:-not found}$(alive "${mp:-0}" && echo " alive" || echo " gone"), $(log_lines "$d") steps logged, children: $(pgrep -P "${mp:-0}" | tr '\n' ' ')) $(grep -v binding "$d.err" | head -3)"
    [ -n "$mp" ] && kill -KILL "$mp"; wait $tpid; return
  fi
  kill -STOP "$v"
  sleep 0.5
  local c0; c0=$(cpu_ticks "$s"); sleep 1; local c1; c1=$(cpu_ticks "$s")
  echo "     $name: while rank $victim is stopped, rank $((1 - victim)) used $((c1 - c0)) CPU ticks in 1 s (waiting in the collective)"
  local t0=$EPOCHREALTIME
  kill -KILL "$v"
  wait $tpid
  local rc=$? t1=$EPOCHREALTIME
  local dt; dt=$(secs "$t0" "$t1")
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 20 else 1)" "$dt" \
    && pass "$name: the job ended ${dt}s after rank $victim died (exit $rc)" || fail "$name: exit $rc after ${dt}s"
  grep -q "process rank $victim .*exited on signal 9" "$d.err" \
    && pass "$name: Open MPI names the dead rank: $(grep -o "process rank $victim .*exited on signal 9" "$d.err" | head -1)" \
    || fail "$name: no message naming rank $victim: $(grep -v binding "$d.err" | head -5)"
  sleep 2
  alive "$s" && fail "$name: rank $((1 - victim)) still running 2 s after the job ended" \
    || pass "$name: no rank left running"
  "${mpi[@]}" "$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.2.log" 2>&1
  local from; from=$(sed -n 's/^  resumed_from_step \([0-9]*\):.*/\1/p' "$d.2.log")
  [ -n "$from" ] && cmp -s "$TMP/ref.bin" "$d.bin" && pass "$name: --resume from step $from ends bit-identical" \
    || fail "$name: resume: $(tail -2 "$d.2.log")"
}
kill_in_allreduce writer 0
kill_in_allreduce peer 1

# SIGKILL to mpirun: the ranks are orphaned
d="$TMP/orphan"
"${mpi[@]}" "$BIN" "${args[@]}" --out "$d" >"$d.out" 2>"$d.err" &
mp=$!
wait_steps "$d" 13
ranks=$(pgrep -P $mp | tr '\n' ' ')
[ -n "${ranks// /}" ] || fail "orphan: no rank found under mpirun ($(log_lines "$d") steps logged)"
kill -KILL $mp
wait $mp 2>/dev/null
t0=$EPOCHREALTIME
for _ in $(seq 1 600); do
  left=0; for p in $ranks; do alive "$p" && left=1; done
  [ $left = 0 ] && break
  sleep 0.05
done
dt=$(secs "$t0" "$EPOCHREALTIME")
if [ $left = 0 ]; then pass "mpirun SIGKILLed: its orphaned ranks ended on their own after ${dt}s"
else fail "mpirun SIGKILLed: ranks still running after ${dt}s"; kill -KILL $ranks 2>/dev/null; fi
"${mpi[@]}" "$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.2.log" 2>&1
cmp -s "$TMP/ref.bin" "$d.bin" && pass "... and --resume ends bit-identical" || fail "orphan resume: $(tail -2 "$d.2.log")"
finish
