#!/usr/bin/env bash
# The real Slurm test (ctest -L slurm): a single-node Slurm 22.05 cluster is brought
# up (tests/slurm/cluster.sh), the real launch/slurm/adebert.sbatch is submitted sized
# down to 1 node x 2 CPU tasks, and the cluster is taken down again, also on failure.
#
#   ADEBERT_BIN=build/adebert ADEBERT_SOURCE_DIR=. tests/slurm/slurm_test.sh
#
# Job A runs `adebert version` on 2 ranks, finding the binary as build/adebert under
# the submit directory (ADEBERT_BIN unset): both ranks report, local ranks 0 and 1,
# job COMPLETED with exit 0 and no error in its log.
# Job B runs a stand-in adebert (ADEBERT_BIN) that exits 75 the first time each rank
# runs and 0 after: the batch script must `scontrol requeue` the job, which then runs
# a second time (Restarts=1, each rank ran twice, the rerun got `--resume`) and
# completes.
# Job C runs a stand-in that exits 75 on SIGTERM and is scancelled while running: the
# batch script must wait out its own SIGTERM, see the 75, and not requeue (CANCELLED,
# Restarts=0).
# Job D trains the tiny model on 2 ranks (--limit 200, 5 steps) through the script:
# metrics.jsonl gets one val and one test row, each over 50 rows.
# Job E trains the tiny model on 2 ranks for 375 steps; once it is under way the test
# sends `scancel --signal=USR1` (the ranks save a checkpoint and exit 75), the batch
# script requeues the job, the rerun gets --resume and finishes: its final parameters
# must be bit-identical to an uninterrupted 2-rank run made with mpirun.
# Job F (array, launch/slurm/adebert-array.sbatch --array=0-1, a stand-in adebert):
# two tasks, run directories RUN/task-0 and RUN/task-1, seeds 7 and 8, logs
# adebert-array-A_0.out / _1.out in the submit directory.
# Job G trains with SLURM_RESTART_COUNT=1 exported (what a requeued job sees) and an
# empty --out: the script adds --resume, adebert refuses (no checkpoint after a
# requeue) with exit 1, and the job FAILS instead of starting over or requeueing.
# Job H: a stand-in that exits 75 while the test storms the batch shell with SIGUSR1
# and SIGTERM: the 75 must survive the storm, the job is requeued once and completes.
# Job I trains on 2 ranks with --device cuda and ADEBERT_FAKE_GPU_COUNT=1 (test hook):
# refused before NCCL with one line naming 2 ranks and 1 GPU; the job fails (exit 1).
# Jobs A-E and G-I take the whole node each (--exclusive) and run one after another.
# Needs root and the Debian packages slurm-wlm and munge (launch/install-deps.sh);
# without them the test FAILS. Needs an MPI build. KEEP=1 keeps the work directory.
# Tunable: SLURM_TEST_JOB_TIMEOUT (seconds to wait for the jobs, default 400).
# shellcheck disable=SC2015  # pass() always succeeds: A && pass || fail is fine
set -uo pipefail

BIN="${ADEBERT_BIN:?ADEBERT_BIN not set (run through ctest)}"
SRC="${ADEBERT_SOURCE_DIR:?ADEBERT_SOURCE_DIR not set (run through ctest)}"
SBATCH_SCRIPT="$SRC/launch/slurm/adebert.sbatch"
CLUSTER="$SRC/tests/slurm/cluster.sh"
JOB_TIMEOUT=${SLURM_TEST_JOB_TIMEOUT:-400}
BIN=$(readlink -f "$BIN")

fails=0
checks=0
pass() { checks=$((checks + 1)); echo "ok   $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $*"; }
fatal() { echo "FAIL $*"; exit 1; }
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" -eq 0 ] || fatal "the Slurm test must run as root (its cluster has SlurmUser=root)"
for b in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
  command -v "$b" >/dev/null || fatal "$b not found: install slurm-wlm and munge (launch/install-deps.sh)"
done
[ -x "$BIN" ] || fatal "no adebert at $BIN"
DATA_ROOT="${ADEBERT_TEST_DATA:?ADEBERT_TEST_DATA not set (run through ctest)}"
CORPUS="$DATA_ROOT/ade-corpus-v2"
VOCAB="$DATA_ROOT/vocab/bert-base-cased-vocab.txt"
[ -f "$CORPUS/DRUG-AE.rel" ] && [ -f "$VOCAB" ] || fatal "corpus or vocab missing under $DATA_ROOT"
"$BIN" train --help >/dev/null 2>&1 || fatal "$BIN has no train subcommand"
ver=$("$BIN" version 2>&1) || fatal "$BIN version failed: $ver"
grep -q "MPI (" <<<"$ver" || fatal "$BIN is not an MPI build"

# Short path: Unix sockets (munge, slurmd, PMIx) live under it.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/adebert-slurm.XXXXXX") || fatal "mktemp"
CL="$WORK/cluster"
cleanup() {
  local rc=$?
  "$CLUSTER" down "$CL" || echo "warning: cluster.sh down failed"
  if [ "$rc" -ne 0 ] || [ "$fails" -ne 0 ]; then
    for f in "$CL"/log/slurmctld.log "$CL"/log/slurmd.log; do
      [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  echo "slurm test: $(elapsed) s in all"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

"$CLUSTER" up "$CL" || fatal "cluster.sh up failed"
echo "cluster up after $(elapsed) s"
# shellcheck disable=SC1091
source "$CL/env.sh"
unset SLURM_JOB_ID SLURM_JOBID SLURM_NTASKS SLURM_NNODES SLURM_NODELIST

# Submit-time overrides of the 8-GPU script: 1 node, 2 tasks, no GPUs (the node has no
# GRES; --gpus-per-node=0 is accepted by 22.05 and clears the script's 8), 5 min limit.
SIZE=(-N1 -n2 --ntasks-per-node=2 --gpus-per-node=0 -t 5)

# Job A: the real binary, found as build/adebert under the submit directory.
mkdir -p "$WORK/submit/build" "$WORK/out"
ln -s "$BIN" "$WORK/submit/build/adebert"
job_a=$(cd "$WORK/submit" && env -u ADEBERT_BIN sbatch --parsable "${SIZE[@]}" \
          -J adebert-version -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" version) \
  || fatal "sbatch (job A) failed"
job_a=${job_a%%;*}

# Job B: a stand-in that exits 75 once per rank (marker files), then 0.
mkdir -p "$WORK/fake"
cat >"$WORK/fake/adebert" <<'EOF'
#!/bin/sh
d=$(dirname "$0")
echo "rank=${SLURM_PROCID:-?} restart=${SLURM_RESTART_COUNT:-0} args=$*" >>"$d/runs.log"
[ -e "$d/ran.${SLURM_PROCID:-x}" ] && exit 0
: >"$d/ran.${SLURM_PROCID:-x}"
exit 75
EOF
chmod +x "$WORK/fake/adebert"
job_b=$(cd "$WORK/submit" && ADEBERT_BIN="$WORK/fake/adebert" sbatch --parsable "${SIZE[@]}" \
          -J adebert-requeue -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" train --data D --out R) \
  || fatal "sbatch (job B) failed"
job_b=${job_b%%;*}

# Job C: a stand-in that "checkpoints" on SIGTERM (exit 75); the test scancels it once
# both ranks run. The batch shell must outlive its own SIGTERM to see the 75, and must
# not requeue a job the user cancelled.
mkdir -p "$WORK/term"
cat >"$WORK/term/adebert" <<'EOF'
#!/bin/sh
d=$(dirname "$0")
r=${SLURM_PROCID:-x}
trap 'echo "rank=$r got TERM" >>"$d/runs.log"; exit 75' TERM
echo "rank=$r restart=${SLURM_RESTART_COUNT:-0} start" >>"$d/runs.log"
: >"$d/started.$r"
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
exit 1
EOF
chmod +x "$WORK/term/adebert"
job_c=$(cd "$WORK/submit" && ADEBERT_BIN="$WORK/term/adebert" sbatch --parsable "${SIZE[@]}" \
          -J adebert-cancel -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" train --data D --out R) \
  || fatal "sbatch (job C) failed"
job_c=${job_c%%;*}
echo "submitted jobs $job_a (version), $job_b (requeue), $job_c (scancel) after $(elapsed) s"

# Job D: a real (tiny) training run on 2 ranks through the script.
job_d=$(cd "$WORK/submit" && env -u ADEBERT_BIN sbatch --parsable "${SIZE[@]}" \
          -J adebert-train -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" train --data "$CORPUS" \
          --out "$WORK/run" --model tiny --vocab "$VOCAB" --cased --limit 200 --epochs 1 \
          --max-steps 5 --batch-size 8 --quiet) \
  || fatal "sbatch (job D) failed"
job_d=${job_d%%;*}
echo "submitted job $job_d (train) after $(elapsed) s"

# Job E: USR1 mid-run -> checkpoint, exit 75 -> requeue -> --resume -> same result.
E_ARGS=(train --data "$CORPUS" --model tiny --vocab "$VOCAB" --cased --limit 1000 --epochs 3 --batch-size 8
        --lr 1e-3 --quiet --dump-params)
job_e=$(cd "$WORK/submit" && env -u ADEBERT_BIN sbatch --parsable "${SIZE[@]}" \
          -J adebert-preempt -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" "${E_ARGS[@]}" "$WORK/runE.bin" \
          --out "$WORK/runE") \
  || fatal "sbatch (job E) failed"
job_e=${job_e%%;*}
echo "submitted job $job_e (train, USR1 + requeue) after $(elapsed) s"

# Job F: array form, one stand-in run per task, recording its arguments and logs.
mkdir -p "$WORK/arr"
cat >"$WORK/arr/adebert" <<'EOF2'
#!/bin/sh
echo "task=${SLURM_ARRAY_TASK_ID:-?} args=$*" >>"$(dirname "$0")/runs.log"
EOF2
chmod +x "$WORK/arr/adebert"
job_f=$(cd "$WORK/submit" && ADEBERT_BIN="$WORK/arr/adebert" sbatch --parsable --array=0-1 -n1 -c1 \
          --gpus-per-task=0 -t 5 "$SRC/launch/slurm/adebert-array.sbatch" train --data D --out "$WORK/arrrun" --seed 7) \
  || fatal "sbatch (job F) failed"
job_f=${job_f%%;*}

# Job G: a "requeued" train run whose --out has no checkpoint.
job_g=$(cd "$WORK/submit" && env -u ADEBERT_BIN SLURM_RESTART_COUNT=1 sbatch --parsable "${SIZE[@]}" \
          -J adebert-nockpt -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" train --data "$CORPUS" --out "$WORK/runG" \
          --model tiny --vocab "$VOCAB" --cased --limit 200 --epochs 1 --max-steps 5 --batch-size 8 --quiet) \
  || fatal "sbatch (job G) failed"
job_g=${job_g%%;*}

# Job H: exit 75 under a signal storm at the batch shell.
mkdir -p "$WORK/storm"
cat >"$WORK/storm/adebert" <<'EOF2'
#!/bin/sh
d=$(dirname "$0")
trap '' USR1 TERM
echo "rank=${SLURM_PROCID:-?} restart=${SLURM_RESTART_COUNT:-0}" >>"$d/runs.log"
[ -e "$d/ran.${SLURM_PROCID:-x}" ] && exit 0
: >"$d/ran.${SLURM_PROCID:-x}"
: >"$d/started.${SLURM_PROCID:-x}"
sleep 3
exit 75
EOF2
chmod +x "$WORK/storm/adebert"
job_h=$(cd "$WORK/submit" && ADEBERT_BIN="$WORK/storm/adebert" sbatch --parsable "${SIZE[@]}" \
          -J adebert-storm -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" train --data D --out R) \
  || fatal "sbatch (job H) failed"
job_h=${job_h%%;*}

# Job I: 2 ranks, --device cuda, 1 (fake) GPU.
job_i=$(cd "$WORK/submit" && env -u ADEBERT_BIN ADEBERT_FAKE_GPU_COUNT=1 sbatch --parsable "${SIZE[@]}" \
          -J adebert-gpucount -o "$WORK/out/%j.out" "$SBATCH_SCRIPT" train --data "$CORPUS" --out "$WORK/runI" \
          --model tiny --vocab "$VOCAB" --cased --limit 200 --epochs 1 --max-steps 5 --batch-size 8 --quiet \
          --device cuda) \
  || fatal "sbatch (job I) failed"
job_i=${job_i%%;*}
echo "submitted jobs $job_f (array), $job_g (no checkpoint), $job_h (storm), $job_i (GPU count) after $(elapsed) s"

# batch_pid JOB: the pid of JOB's batch shell (slurmd runs it as .../slurm_script).
batch_pid() {
  local e pid
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}; pid=${pid%/environ}
    tr '\0' '\n' 2>/dev/null <"$e" | grep -qx "SLURM_JOB_ID=$1" || continue
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q slurm_script && { echo "$pid"; return 0; }
  done
  return 1
}

# Poll until all jobs reach a final state. --states=all keeps finished jobs listed
# (MinJobAge=300); a requeued job passes through REQUEUED/PENDING, not a final state.
final_state() {
  case "$1" in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) return 0 ;;
  esac
  return 1
}
declare -A done_at=()
cancelled=0
usr1=0
storm=0
jobs=("$job_a" "$job_b" "$job_c" "$job_d" "$job_e" "${job_f}_0" "${job_f}_1" "$job_g" "$job_h" "$job_i")
deadline=$(( $(date +%s) + JOB_TIMEOUT ))
while :; do
  if [ $cancelled -eq 0 ] && [ -e "$WORK/term/started.0" ] && [ -e "$WORK/term/started.1" ]; then
    echo "scancel $job_c after $(elapsed) s"
    timeout 10 scancel "$job_c" || fail "scancel $job_c failed"
    cancelled=1
  fi
  if [ $usr1 -eq 0 ] && [ -f "$WORK/runE/train_log.jsonl" ] && [ "$(wc -l <"$WORK/runE/train_log.jsonl")" -ge 40 ]; then
    echo "scancel --signal=USR1 $job_e after $(elapsed) s"
    timeout 10 scancel --signal=USR1 "$job_e" || fail "scancel --signal=USR1 $job_e failed"
    usr1=1
  fi
  if [ $storm -eq 0 ] && [ -e "$WORK/storm/started.0" ] && [ -e "$WORK/storm/started.1" ]; then
    if hp=$(batch_pid "$job_h"); then
      echo "signal storm at job $job_h's batch shell ($hp) after $(elapsed) s"
      ( n=0; while kill -USR1 "$hp" 2>/dev/null && kill -TERM "$hp" 2>/dev/null; do n=$((n + 1)); done
        echo "$n" >"$WORK/storm/sent" ) &
      storm=1
    fi
  fi
  for j in "${jobs[@]}"; do
    [ -n "${done_at[$j]:-}" ] && continue
    read -r st why < <(timeout 10 squeue -h -j "$j" --states=all -o '%T %r' 2>/dev/null)
    if final_state "${st:-}"; then done_at[$j]=$(elapsed); echo "job $j: $st after ${done_at[$j]} s"; fi
    case "${why:-}" in  # pending reasons that never clear by themselves
      PartitionConfig|BadConstraints|PartitionNodeLimit|PartitionTimeLimit|ReqNodeNotAvail*|NodeDown|InvalidQOS|JobHeld*)
        fail "job $j cannot start: $why"; timeout 10 sinfo -N -l; deadline=0 ;;
    esac
  done
  [ ${#done_at[@]} -eq ${#jobs[@]} ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    [ "$deadline" -eq 0 ] || fail "jobs did not finish within ${JOB_TIMEOUT}s"
    timeout 10 squeue --states=all -o '%A %j %T %r %M'
    break
  fi
  sleep 0.5
done

job_field() {  # job_field JOB KEY -> value of KEY= in scontrol show job
  timeout 10 scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
}

# ---- job A: two ranks, distinct local ranks, clean exit
out_a="$WORK/out/$job_a.out"
echo "---- job $job_a output"; cat "$out_a" 2>/dev/null
st=$(job_field "$job_a" JobState); ec=$(job_field "$job_a" ExitCode)
[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && pass "job A completed, exit 0" \
  || fail "job A: state $st, exit code $ec"
grep -qs "rank 0 of 2: local rank 0 of 2" "$out_a" && grep -qs "rank 1 of 2: local rank 1 of 2" "$out_a" \
  && pass "job A: ranks 0 and 1 of 2 with local ranks 0 and 1" \
  || fail "job A: ranks/local ranks not reported"
[ "$(grep -c 'rank [01] of 2: local rank' "$out_a" 2>/dev/null)" = 2 ] && pass "job A: exactly two ranks reported" \
  || fail "job A: expected two rank lines"
grep -qs "$WORK/submit/build/adebert version" "$out_a" && pass "job A: binary found under SLURM_SUBMIT_DIR/build" \
  || fail "job A: binary not found as build/adebert under the submit directory"
if [ ! -s "$out_a" ]; then
  fail "job A: no log at $out_a"
elif grep -qiE 'error|abort|warn|PMIX|not found|denied' "$out_a"; then
  fail "job A: its log has errors: $(grep -iE 'error|abort|warn|PMIX|not found|denied' "$out_a" | head -5)"
else
  pass "job A: no error in its log"
fi

# ---- job B: exit 75 -> scontrol requeue -> second run with --resume -> completed
out_b="$WORK/out/$job_b.out"
echo "---- job $job_b output"; cat "$out_b" 2>/dev/null
echo "---- stand-in adebert runs"; cat "$WORK/fake/runs.log" 2>/dev/null
st=$(job_field "$job_b" JobState); ec=$(job_field "$job_b" ExitCode); rs=$(job_field "$job_b" Restarts)
[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && pass "job B completed, exit 0" \
  || fail "job B: state $st, exit code $ec"
[ "$rs" = 1 ] && pass "job B was requeued once (Restarts=1)" || fail "job B: Restarts=$rs, want 1"
runs="$WORK/fake/runs.log"
first=$(grep -c '^rank=[01] restart=0 args=train --data D --out R$' "$runs" 2>/dev/null)
second=$(grep -c '^rank=[01] restart=1 args=train --data D --out R --resume$' "$runs" 2>/dev/null)
total=$( { wc -l <"$runs"; } 2>/dev/null || echo 0)
[ "$first" = 2 ] && [ "$second" = 2 ] && [ "$total" = 4 ] \
  && pass "job B: both ranks ran twice, the rerun with --resume added" \
  || fail "job B: runs: first=$first second=$second total=$total"
grep -qs "requeueing job $job_b" "$out_b" && pass "job B: the batch script requeued on exit 75" \
  || fail "job B: no requeue message in its log"
[ "$(grep -c "^adebert.sbatch: job $job_b (restart" "$out_b" 2>/dev/null)" = 2 ] \
  && pass "job B: both runs appended to one log (--open-mode=append)" \
  || fail "job B: expected two runs in its log"

# ---- job C: scancel -> ranks get SIGTERM, exit 75 -> the job stays cancelled
out_c="$WORK/out/$job_c.out"
echo "---- job $job_c output"; cat "$out_c" 2>/dev/null
echo "---- stand-in adebert runs"; cat "$WORK/term/runs.log" 2>/dev/null
st=$(job_field "$job_c" JobState); rs=$(job_field "$job_c" Restarts)
[ "$st" = CANCELLED ] && [ "$rs" = 0 ] && pass "job C: cancelled, not requeued" \
  || fail "job C: state $st, Restarts=$rs; want CANCELLED, 0"
[ "$(grep -c '^rank=[01] got TERM$' "$WORK/term/runs.log" 2>/dev/null)" = 2 ] \
  && [ "$(grep -c 'start$' "$WORK/term/runs.log" 2>/dev/null)" = 2 ] \
  && pass "job C: both ranks got SIGTERM once and ran once" || fail "job C: ranks' runs/signals wrong"
grep -qs "adebert exited 75 (checkpoint saved); job $job_c was cancelled" "$out_c" \
  && pass "job C: the batch script waited for the ranks' exit 75 and did not requeue" \
  || fail "job C: batch script did not report the ranks' 75 / the cancellation"

# ---- job D: train on 2 ranks writes metrics.jsonl (one val and one test line)
out_d="$WORK/out/$job_d.out"
echo "---- job $job_d output"; cat "$out_d" 2>/dev/null
st=$(job_field "$job_d" JobState); ec=$(job_field "$job_d" ExitCode)
[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && pass "job D (train) completed, exit 0" \
  || fail "job D: state $st, exit code $ec"
grep -qs "2 ranks, 2 on this node" "$out_d" && pass "job D: trained on 2 ranks" \
  || fail "job D: log does not show 2 ranks"
if [ -s "$WORK/run/metrics.jsonl" ]; then
  why=$(python3 - "$WORK/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = []
if [r.get("split") for r in rows] != ["val", "test"]:
    bad.append("splits %s" % [r.get("split") for r in rows])
for r in rows:
    n = sum(r.get(k, -1) for k in ("tp", "fp", "tn", "fn"))
    if r.get("schema_version") != 1 or n != 50 or not 0 <= r.get("f1", -1) <= 1:
        bad.append("%s: schema %s, tp+fp+tn+fn %s, f1 %s" % (r.get("split"), r.get("schema_version"), n, r.get("f1")))
print("; ".join(bad))
PY
  )
  [ -z "$why" ] && pass "job D: metrics.jsonl has val and test rows of 50 (--limit 200)" \
    || fail "job D: metrics.jsonl: $why"
else
  fail "job D: no $WORK/run/metrics.jsonl"
fi

# ---- job E: USR1 -> checkpoint + 75 -> requeue -> --resume -> the uninterrupted result
# its reference: the same run uninterrupted, 2 ranks under mpirun outside Slurm (made
# now, not while the jobs run: it would hold up the polling that job C depends on)
root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
OMP_NUM_THREADS=1 timeout 300 mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np 2 "$BIN" "${E_ARGS[@]}" \
  "$WORK/refE.bin" --out "$WORK/refE" >"$WORK/refE.log" 2>&1 || fail "job E reference run: $(tail -2 "$WORK/refE.log")"
out_e="$WORK/out/$job_e.out"
echo "---- job $job_e output"; cat "$out_e" 2>/dev/null
st=$(job_field "$job_e" JobState); ec=$(job_field "$job_e" ExitCode); rs=$(job_field "$job_e" Restarts)
[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$rs" = 1 ] && pass "job E: signalled, requeued once, completed" \
  || fail "job E: state $st, exit code $ec, Restarts=$rs (want COMPLETED, 0:0, 1)"
grep -qs "stopped by a signal at step" "$out_e" && grep -qs "resumed_from_step" "$out_e" \
  && pass "job E: the ranks saved at the signal and the rerun resumed" || fail "job E: no stop/resume in its log"
cmp -s "$WORK/refE.bin" "$WORK/runE.bin" && pass "job E: final parameters bit-identical to the uninterrupted run" \
  || fail "job E: final parameters differ from the uninterrupted run (or are missing)"

# ---- job F: array tasks, own run directories and seeds, %x-%A_%a logs
echo "---- array stand-in runs"; cat "$WORK/arr/runs.log" 2>/dev/null
for t in 0 1; do
  st=$(job_field "${job_f}_$t" JobState); ec=$(job_field "${job_f}_$t" ExitCode)
  [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && pass "job F task $t completed" || fail "job F task $t: state $st, exit $ec"
  grep -qx "task=$t args=train --data D --out $WORK/arrrun/task-$t --seed $((7 + t))" "$WORK/arr/runs.log" 2>/dev/null \
    && pass "job F task $t: --out RUN/task-$t, --seed $((7 + t))" || fail "job F task $t: wrong arguments"
  grep -qs "array task $t" "$WORK/submit/adebert-array-${job_f}_$t.out" \
    && pass "job F task $t: log adebert-array-${job_f}_$t.out (%x-%A_%a)" || fail "job F task $t: no log $WORK/submit/adebert-array-${job_f}_$t.out"
done

# ---- job G: requeued, no checkpoint: refused, not restarted from scratch
out_g="$WORK/out/$job_g.out"
echo "---- job $job_g output"; cat "$out_g" 2>/dev/null
st=$(job_field "$job_g" JobState); ec=$(job_field "$job_g" ExitCode); rs=$(job_field "$job_g" Restarts)
[ "$st" = FAILED ] && [ "$ec" = 1:0 ] && [ "$rs" = 0 ] && pass "job G: failed with exit 1 (not 75), not requeued" \
  || fail "job G: state $st, exit $ec, Restarts=$rs (want FAILED, 1:0, 0)"
grep -qs "requeued job (SLURM_RESTART_COUNT=1) but no checkpoint in $WORK/runG" "$out_g" \
  && [ ! -e "$WORK/runG/metrics.jsonl" ] && pass "job G: one clear line, nothing trained" || fail "job G: no refusal line / trained anyway"

# ---- job H: exit 75 under a signal storm -> requeued once -> completed
out_h="$WORK/out/$job_h.out"
echo "---- job $job_h output"; cat "$out_h" 2>/dev/null
st=$(job_field "$job_h" JobState); ec=$(job_field "$job_h" ExitCode); rs=$(job_field "$job_h" Restarts)
[ $storm -eq 1 ] && pass "job H: the storm ran" || fail "job H: no storm (batch shell not found)"
[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$rs" = 1 ] && pass "job H: exit 75 kept under the storm, requeued once, completed" \
  || fail "job H: state $st, exit $ec, Restarts=$rs (want COMPLETED, 0:0, 1)"
sent=$(cat "$WORK/storm/sent" 2>/dev/null || echo 0)
[ "$sent" -ge 100 ] && pass "job H: the batch shell outlived $sent USR1+TERM pairs" \
  || fail "job H: only $sent signal pairs sent (the storm did not reach the batch shell)"

# ---- job I: 2 ranks, 1 GPU -> refused naming both counts
out_i="$WORK/out/$job_i.out"
echo "---- job $job_i output"; cat "$out_i" 2>/dev/null
st=$(job_field "$job_i" JobState); ec=$(job_field "$job_i" ExitCode)
[ "$st" = FAILED ] && [ "$ec" != 75:0 ] && pass "job I: failed ($ec)" || fail "job I: state $st, exit $ec"
[ "$(grep -c "2 ranks on one node but 1 GPU(s) visible to each" "$out_i" 2>/dev/null)" = 1 ] \
  && pass "job I: one line naming 2 ranks and 1 GPU" || fail "job I: no ranks-vs-GPUs line"

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ] && [ "$checks" -gt 0 ]
