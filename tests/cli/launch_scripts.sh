#!/usr/bin/env bash
# The launch scripts without a cluster (issue 14): launch/slurm/*.sbatch in dry-run
# mode (ADEBERT_DRY_RUN=1, SLURM_* set by hand: multi-node and GPU settings testable
# without nodes), their array contract, their wait loop under a signal storm (a fake
# srun that exits 75, a fake scontrol), and launch/mpirun.sh --dry-run. Then `train`'s
# device default and requeue refusal (one rank; the ranks-vs-GPUs check is in
# mpi_cluster_checks.sh and the real Slurm test).
source "$(dirname "$0")/lib.bash"
SRC="${ADEBERT_SOURCE_DIR:?}"
SB="$SRC/launch/slurm/adebert.sbatch"
SBA="$SRC/launch/slurm/adebert-array.sbatch"
clean_env=(env -u SLURM_JOB_ID -u SLURM_ARRAY_TASK_ID -u SLURM_RESTART_COUNT -u SLURM_GPUS_PER_NODE
           -u SLURM_JOB_GPUS -u SLURM_STEP_GPUS -u CUDA_VISIBLE_DEVICES -u NCCL_DEBUG -u OMP_NUM_THREADS)

# ---- the two batch scripts share one body (each runs from a copy in slurmd's spool)
cmp -s <(sed -n '/^set -euo pipefail$/,$p' "$SB") <(sed -n '/^set -euo pipefail$/,$p' "$SBA") \
  && pass "adebert-array.sbatch body == adebert.sbatch body" || fail "the two sbatch bodies differ"
if command -v shellcheck >/dev/null; then
  shellcheck "$SB" "$SBA" "$SRC/launch/mpirun.sh" >"$TMP/sc" 2>&1 && pass "shellcheck clean" \
    || fail "shellcheck: $(head -20 "$TMP/sc")"
fi

# ---- dry run: 4 p3dn-like nodes (96 CPUs, 8 V100 each)
node=(SLURM_JOB_ID=7 SLURM_JOB_NUM_NODES=4 SLURM_NTASKS_PER_NODE=8 SLURM_CPUS_ON_NODE=96
      SLURM_GPUS_PER_NODE=v100:8 ADEBERT_DRY_RUN=1 ADEBERT_BIN="$BIN" FI_PROVIDER=efa)
"${clean_env[@]}" "${node[@]}" bash "$SB" train --data D --out "$TMP/my run" --model base >"$TMP/d1" 2>&1
rc=$?
srun_line=$(grep '^dry-run srun:' "$TMP/d1")
[ $rc -eq 0 ] && grep -qF -- "--cpus-per-task=12 --distribution=block:block --cpu-bind=cores" <<<"$srun_line" \
  && grep -qF -- "--out $TMP/my\\ run --model base" <<<"$srun_line" && pass "dry run: 12 CPUs/rank, block:block, cores, args quoted" \
  || fail "dry run srun line (rc $rc): $(cat "$TMP/d1")"
grep -q '^dry-run binding: 4 node(s) x 8 rank(s), 12 CPU(s) per rank.* 8 GPU(s) per node' "$TMP/d1" \
  && pass "dry run: binding line" || fail "dry run binding: $(cat "$TMP/d1")"
grep '^dry-run env:' "$TMP/d1" | grep -q 'FI_PROVIDER=efa NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET OMP_NUM_THREADS=12' \
  && pass "dry run: first run of a GPU job shows NCCL's network (NCCL_DEBUG=INFO, INIT,NET)" \
  || fail "dry run env: $(grep env "$TMP/d1")"
"${clean_env[@]}" "${node[@]}" SLURM_RESTART_COUNT=1 bash "$SB" train --out "$TMP/r" >"$TMP/d2" 2>&1
grep -q '^dry-run srun:.* train --out [^ ]*/r --resume $' "$TMP/d2" && ! grep -q NCCL_DEBUG "$TMP/d2" \
  && pass "dry run, restart 1: --resume added, no NCCL debug" || fail "dry run restart: $(cat "$TMP/d2")"
grep -q "warning: --out .* node-local filesystem" "$TMP/d2" && pass "warns about a node-local --out" \
  || echo "note: $TMP is not on a node-local filesystem type we know ($(stat -f -c %T "$TMP"))"
"${clean_env[@]}" ADEBERT_DRY_RUN=1 ADEBERT_BIN="$BIN" ADEBERT_CPU_BIND=none ADEBERT_SRUN_ARGS="--gpu-bind=closest -l" \
  bash "$SB" version >"$TMP/d3" 2>&1
grep -q '^dry-run srun: srun --mpi=pmix --cpus-per-task=1 --distribution=block:block --gpu-bind=closest -l ' "$TMP/d3" \
  && ! grep -q NCCL_DEBUG "$TMP/d3" && pass "dry run: ADEBERT_CPU_BIND=none, ADEBERT_SRUN_ARGS; CPU job: no NCCL debug" \
  || fail "dry run overrides: $(cat "$TMP/d3")"

# ---- array contract
arr() { "${clean_env[@]}" ADEBERT_DRY_RUN=1 ADEBERT_BIN="$BIN" SLURM_ARRAY_TASK_ID="$1" bash "$SBA" "${@:2}" 2>"$TMP/arr.err" | sed -n 's/^dry-run srun: .*adebert //p'; }
a0=$(arr 0 train --data D --out /runs/x)
a1=$(arr 1 train --data D --out=/runs/x/ --seed 5 --log-samples "s{task}")
[ "$a0" = "train --data D --out /runs/x/task-0 --seed 42 " ] && [ "$a1" = "train --data D --out=/runs/x/task-1 --seed 6 --log-samples s1 " ] \
  && pass "array: RUN/task-N, seed 42+N or S+N, {task} replaced" || fail "array args: '$a0' / '$a1'"
a2=$(arr 2 train --out "/r/{task}/o" --seed=9)
[ "$a2" = "train --out /r/2/o --seed=11 " ] && pass "array: --out with {task} kept, --seed=S" || fail "array: '$a2'"
arr 0 train --data D >/dev/null; grep -q "train needs --out" "$TMP/arr.err" && pass "array: train without --out refused" \
  || fail "array: no --out: $(cat "$TMP/arr.err")"
printf '%s\n' 'train --out "/a b/{task}" --seed 1 --lr 1e-3' 'train --out o2 --seed $HOME' >"$TMP/args.txt"
f0=$(arr 0 --args-file "$TMP/args.txt"); f1=$(arr 1 --args-file "$TMP/args.txt")
[ "$f0" = 'train --out /a\ b/0 --seed 1 --lr 1e-3 ' ] && [ "$f1" = 'train --out o2 --seed \$HOME ' ] \
  && pass "array --args-file: line N+1 for task N, quotes honoured, nothing expanded" || fail "args file: '$f0' / '$f1'"
"${clean_env[@]}" ADEBERT_DRY_RUN=1 ADEBERT_BIN="$BIN" SLURM_ARRAY_TASK_ID=2 bash "$SBA" --args-file "$TMP/args.txt" >/dev/null 2>"$TMP/e"
rc=$?
[ $rc -eq 2 ] && grep -q "line 3 of .* is empty or missing" "$TMP/e" && pass "array --args-file: missing line: exit 2" \
  || fail "array missing line: rc $rc $(cat "$TMP/e")"

# ---- wait loop under a signal storm: srun's exit 75 must survive and requeue
mkdir -p "$TMP/fakebin"
cat >"$TMP/fakebin/srun" <<'SH'
#!/bin/bash
sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status >"$FAKE_LOG.sigign"  # before its own trap
trap '' USR1 TERM
: >"$FAKE_LOG.started"
sleep "${FAKE_SRUN_SLEEP:-1}"
exit 75
SH
cat >"$TMP/fakebin/scontrol" <<'SH'
#!/bin/sh
case "$1" in
  -o) echo "JobId=$SLURM_JOB_ID JobState=RUNNING Reason=None PreemptTime=None" ;;
  requeue) echo "requeue $2" >>"$FAKE_LOG" ;;
esac
SH
chmod +x "$TMP/fakebin/srun" "$TMP/fakebin/scontrol"
ok=0
for i in 1 2 3 4 5; do
  : >"$TMP/fake.log"
  rm -f "$TMP/fake.log.started"
  "${clean_env[@]}" PATH="$TMP/fakebin:$PATH" FAKE_LOG="$TMP/fake.log" FAKE_SRUN_SLEEP=0.$((3 + i)) SLURM_JOB_ID=9$i \
    ADEBERT_BIN="$BIN" bash "$SB" train --out "$TMP/w" >"$TMP/storm.out" 2>&1 &
  pid=$!
  # once srun runs (the dispositions are set by then), an unpaced flood of USR1 and TERM
  # until the script ends: thousands a second (a trap-based script crashes bash under it).
  for ((j = 0; j < 100; j++)); do [ -e "$TMP/fake.log.started" ] && break; sleep 0.05; done
  n=0
  while kill -USR1 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null; do n=$((n + 1)); done
  [ $n -ge 100 ] || echo "storm run $i: only $n signal pairs sent"
  wait "$pid"; rc=$?
  if [ $rc -eq 0 ] && [ $n -ge 100 ] && grep -qx "requeue 9$i" "$TMP/fake.log" && grep -q "requeueing job 9$i" "$TMP/storm.out"; then
    ok=$((ok + 1))
  else
    echo "storm run $i: rc $rc; $(tail -3 "$TMP/storm.out")"
  fi
done
[ $ok -eq 5 ] && pass "signal storm: srun's exit 75 kept and the job requeued, 5 of 5 runs" || fail "signal storm: $ok of 5"
# the batch shell ignores USR1 and TERM; srun must not inherit that (it would then not
# forward a scancel to the ranks): bits 10 and 15 of its SigIgn mask are clear.
mask=$(cat "$TMP/fake.log.sigign" 2>/dev/null)
[ -n "$mask" ] && (( (16#$mask & (1 << 9 | 1 << 14)) == 0 )) \
  && pass "srun starts with USR1 and TERM not ignored (SigIgn $mask)" || fail "srun inherits ignored signals: SigIgn '$mask'"

# ---- mpirun.sh --dry-run
MR="$SRC/launch/mpirun.sh"
printf 'n1 slots=8\nn2\n# comment\nn3 slots=8\nn2\n' >"$TMP/hosts"
out=$(env -u OMP_NUM_THREADS CUDA_VISIBLE_DEVICES=0,1 NCCL_SOCKET_IFNAME=eth0 FI_PROVIDER=efa ADEBERT_BIN="$BIN" \
        bash "$MR" --hostfile "$TMP/hosts" --oversubscribe --mpi-arg "--mca btl ^openib" --dry-run train --out "a b" 2>"$TMP/mr.err")
grep -q -- "^mpirun -np 6 --hostfile $TMP/hosts " <<<"$out" && pass "mpirun.sh: ranks = CUDA_VISIBLE_DEVICES (2) x 3 hosts" \
  || fail "mpirun.sh hostfile: $out $(cat "$TMP/mr.err")"
grep -qF -- "-x FI_PROVIDER -x NCCL_SOCKET_IFNAME" <<<"$out" && grep -qF -- "-x LD_LIBRARY_PATH" <<<"$out$(printenv LD_LIBRARY_PATH >/dev/null || echo ' -x LD_LIBRARY_PATH')" \
  && pass "mpirun.sh: NCCL_*, FI_* exported with -x" || fail "mpirun.sh -x: $out"
grep -qF -- '--mca\ btl\ \^openib' <<<"$out" && grep -qF -- 'train --out a\ b' <<<"$out" \
  && pass "mpirun.sh: --mpi-arg and adebert args kept as single words" || fail "mpirun.sh quoting: $out"
cores=$(env -u OMP_NUM_THREADS nproc)
ADEBERT_BIN="$BIN" bash "$MR" -np $((cores + 1)) --dry-run version >/dev/null 2>"$TMP/mr2.err"
rc=$?
[ $rc -eq 2 ] && grep -q "pass --oversubscribe" "$TMP/mr2.err" && pass "mpirun.sh: more ranks than cores refused without --oversubscribe" \
  || fail "mpirun.sh oversubscribe: rc $rc $(cat "$TMP/mr2.err")"
out=$(env -u OMP_NUM_THREADS CUDA_VISIBLE_DEVICES= ADEBERT_BIN="$BIN" bash "$MR" --dry-run version 2>/dev/null)
grep -q -- "^mpirun -np 1 --map-by ppr:1:node:PE=$cores --bind-to core " <<<"$out" \
  && pass "mpirun.sh: CUDA_VISIBLE_DEVICES empty: 1 rank bound to all $cores cores" || fail "mpirun.sh no GPUs: $out"

# ---- train: device default and requeue refusal (one rank)
require_corpus
T=(train --data "$CORPUS" --vocab "$CASED_VOCAB" --cased --model tiny --limit 100 --max-steps 1 --epochs 1 --quiet)
if version_says "CUDA     built without CUDA"; then
  expect_exit 2 "train: GPU job, CPU build, no --device: refused in one line" -- \
    "${clean_env[@]}" SLURM_GPUS_PER_NODE=8 "$BIN" "${T[@]}" --out "$TMP/g"
  grep -q "SLURM_GPUS_PER_NODE=8.*built without CUDA.*--device cpu" "$TMP/err" && pass "the refusal names the variable and --device cpu" \
    || fail "refusal text: $(cat "$TMP/err")"
fi
"${clean_env[@]}" SLURM_GPUS_PER_NODE=8 OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --device cpu --out "$TMP/c" >"$TMP/c.log" 2>&1 \
  && pass "train: GPU job with explicit --device cpu runs" || fail "explicit --device cpu: $(tail -3 "$TMP/c.log")"
if grep -q "HDF5     not built" <<<"$("$BIN" version 2>&1)"; then
  echo "note: no HDF5 in this build: no --resume, the requeue checks are skipped"
  finish
fi
expect_exit 1 "train --resume, SLURM_RESTART_COUNT=1, no checkpoint: refused (exit 1, not 75)" -- \
  "${clean_env[@]}" SLURM_RESTART_COUNT=1 OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --resume --out "$TMP/empty"
grep -q "SLURM_RESTART_COUNT=1.*no checkpoint in $TMP/empty.*shared" "$TMP/err" && [ ! -e "$TMP/empty/metrics.jsonl" ] \
  && pass "the refusal names the restart count, the directory, shared storage; no metrics written" \
  || fail "requeue refusal text: $(cat "$TMP/err")"
expect_exit 0 "train --resume, SLURM_RESTART_COUNT=0, no checkpoint: starts from scratch" -- \
  "${clean_env[@]}" SLURM_RESTART_COUNT=0 OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --resume --out "$TMP/fresh"
finish
