#!/usr/bin/env bash
# experiments/hpo on a real Slurm cluster (ctest -L slurm, test slurm_hpo): a
# single-node Slurm 22.05 cluster is brought up (tests/slurm/cluster.sh), a search of
# 6 small trials (tiny model, --limit 300, up to 4 epochs) is submitted with
# `experiments/hpo SPEC submit --workers 2`: an array job of 2 workers
# (experiments/hpo-worker.sbatch), which share one Optuna journal file. Then:
#   - both array tasks COMPLETED, exit 0;
#   - >= 6 trials complete or pruned in the journal, none failed;
#   - trials were run by both array tasks (the slurm_array_task_id each trial records);
#   - pruning is certain, not hoped for: the spec enqueues trials 0 and 1 with a good
#     configuration (lr 1e-3) and trial 2 with a hopeless one (lr 1e-6: validation F1
#     0 at epoch 2, where the good one has ~0.5). Trial 2 is asked only once a worker
#     has finished trial 0 or 1 (2 workers), and the successive-halving pruner
#     (min_resource 2, reduction_factor 8 > n_trials) prunes any trial whose epoch-2
#     F1 is below the best epoch-2 F1 so far: trial 2 must be PRUNED;
#   - every pruned trial's adebert exited 75 on the SIGTERM (checkpoint saved: a
#     ckpt-step*.h5 in its run directory, "stopped by a signal" in its log);
#   - `experiments/hpo SPEC best` writes the best-row spec: one row, >= 5 seeds,
#     honest and study protocols, that experiments/run expands into 10 runs and runs,
#     and experiments/report tabulates on test (n=5/5 per protocol);
#   - a spec with an unknown hpo key: one error line, exit 2, no job submitted.
# The cluster is taken down at the end, also on failure. Needs root, slurm-wlm,
# munge, /usr/bin/python3 with python3-optuna. KEEP=1 keeps the work directory.
# Tunable: SLURM_TEST_JOB_TIMEOUT (seconds to wait for the workers, default 360).
# shellcheck disable=SC2015  # pass() always succeeds: A && pass || fail is fine
set -uo pipefail

BIN="${ADEBERT_BIN:?ADEBERT_BIN not set (run through ctest)}"
SRC="${ADEBERT_SOURCE_DIR:?ADEBERT_SOURCE_DIR not set (run through ctest)}"
CLUSTER="$SRC/tests/slurm/cluster.sh"
HPO="$SRC/experiments/hpo"
PY=/usr/bin/python3
JOB_TIMEOUT=${SLURM_TEST_JOB_TIMEOUT:-360}
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
$PY -c 'import optuna' 2>/dev/null || fatal "$PY has no optuna: apt-get install python3-optuna"
DATA_ROOT="${ADEBERT_TEST_DATA:?ADEBERT_TEST_DATA not set (run through ctest)}"
CORPUS=$(readlink -f "$DATA_ROOT/ade-corpus-v2")
VOCAB=$(readlink -f "$DATA_ROOT/vocab/bert-base-cased-vocab.txt")
[ -f "$CORPUS/DRUG-AE.rel" ] && [ -f "$VOCAB" ] || fatal "corpus or vocab missing under $DATA_ROOT"

# Short path: Unix sockets (munge, slurmd) live under it.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/adebert-hpo.XXXXXX") || fatal "mktemp"
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
  echo "slurm hpo test: $(elapsed) s in all"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

# The search: 6 trials, 2 workers, trials 0-1 good and 2 hopeless (see above).
mkspec() {  # mkspec FILE EXTRA_HPO_JSON
  cat >"$1" <<EOF2
{
  "name": "hpo-test",
  "data": "$CORPUS",
  "runs_dir": "$WORK/runs",
  "seeds": [1],
  "protocols": ["honest"],
  "train": {"epochs": 3, "limit": 300, "save_every": "epoch", "class_weights": "balanced", "max_seq_len": 64},
  "rows": [{"name": "tiny", "model": "tiny", "vocab": "$VOCAB", "casing": "cased"}],
  "hpo": {
    $2
    "n_trials": 6, "parallel": 2, "seed": 1, "startup_trials": 2,
    "space": {"lr": {"low": 1e-6, "high": 3e-3, "log": true}, "batch_size": {"choices": [8, 16]},
              "epochs": {"low": 3, "high": 4}, "warmup_ratio": {"low": 0.0, "high": 0.1},
              "max_seq_len": {"choices": [48, 64]}, "weight_decay": {"low": 0.0, "high": 0.1}},
    "pruner": {"kind": "successive_halving", "min_resource": 2, "reduction_factor": 8},
    "enqueue": [
      {"lr": 1e-3, "batch_size": 8, "epochs": 3, "warmup_ratio": 0.0, "max_seq_len": 64, "weight_decay": 0.01},
      {"lr": 1e-3, "batch_size": 8, "epochs": 3, "warmup_ratio": 0.0, "max_seq_len": 64, "weight_decay": 0.01},
      {"lr": 1e-6, "batch_size": 8, "epochs": 4, "warmup_ratio": 0.0, "max_seq_len": 64, "weight_decay": 0.01}]
  }
}
EOF2
}
SPEC="$WORK/hpo-test.json"
mkspec "$SPEC" ""
mkspec "$WORK/bad.json" '"n_trails": 6,'

"$CLUSTER" up "$CL" || fatal "cluster.sh up failed"
echo "cluster up after $(elapsed) s"
# shellcheck disable=SC1091
source "$CL/env.sh"
unset SLURM_JOB_ID SLURM_JOBID SLURM_NTASKS SLURM_NNODES SLURM_NODELIST SLURM_ARRAY_TASK_ID

# ---- bad spec: one line, exit 2, nothing submitted
err=$("$HPO" "$WORK/bad.json" submit --workers 2 --adebert "$BIN" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" = 1 ] && grep -q "unknown key 'n_trails'" <<<"$err" \
  && [ -z "$(timeout 10 squeue -h -o %A)" ] && [ ! -e "$WORK/runs" ] \
  && pass "bad spec: exit 2, one line ($err), no job, no run directory" \
  || fail "bad spec: exit $rc, output: $err"

# ---- the search: an array job of 2 workers (no GPUs on this node, 1 CPU each)
job=$(cd "$WORK" && "$HPO" "$SPEC" submit --workers 2 --adebert "$BIN" --sbatch "-c1 --gpus-per-task=0 -t 10") \
  || fatal "experiments/hpo submit failed"
echo "submitted array job $job after $(elapsed) s"
final_state() {
  case "$1" in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) return 0 ;;
  esac
  return 1
}
declare -A st=()
deadline=$(( $(date +%s) + JOB_TIMEOUT ))
while :; do
  n=0
  for t in 0 1; do
    read -r s why < <(timeout 10 squeue -h -j "${job}_$t" --states=all -o '%T %r' 2>/dev/null)
    if final_state "${s:-}"; then
      [ -n "${st[$t]:-}" ] || echo "task $t: $s after $(elapsed) s"
      st[$t]=$s; n=$((n + 1))
    fi
    case "${why:-}" in
      PartitionConfig|BadConstraints|PartitionNodeLimit|PartitionTimeLimit|ReqNodeNotAvail*|NodeDown|InvalidQOS|JobHeld*)
        fail "task $t cannot start: $why"; deadline=0 ;;
    esac
  done
  [ $n -eq 2 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    [ "$deadline" -eq 0 ] || fail "workers did not finish within ${JOB_TIMEOUT}s"
    timeout 10 squeue --states=all -o '%A %i %j %T %r %M'
    timeout 10 scancel "$job"
    break
  fi
  sleep 1
done
HD="$WORK/runs/hpo-test/hpo"
for t in 0 1; do
  echo "---- worker log, task $t"; cat "$HD/worker-${job}_$t.out" 2>/dev/null
  ec=$(timeout 10 scontrol -o show job "${job}_$t" 2>/dev/null | tr ' ' '\n' | sed -n 's/^ExitCode=//p' | head -n1)
  [ "${st[$t]:-}" = COMPLETED ] && [ "$ec" = 0:0 ] && pass "array task $t completed, exit 0" \
    || fail "array task $t: state ${st[$t]:-?}, exit ${ec:-?}"
done
echo "---- experiments/hpo status"
"$HPO" "$SPEC" status --adebert "$BIN"

# ---- the journal: trials, workers, pruning, exit 75
"$PY" - "$HD" <<'PY' >"$WORK/journal-checks.txt" 2>&1
import glob, os, sys, warnings
import optuna
from optuna.storages import JournalFileStorage, JournalStorage
from optuna.trial import TrialState
warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
hd = sys.argv[1]
study = optuna.load_study(study_name="hpo-test", storage=JournalStorage(JournalFileStorage(os.path.join(hd, "journal.log"))))
ts = study.get_trials(deepcopy=False)
def say(ok, msg): print(("ok   " if ok else "FAIL ") + msg)
fin = [t for t in ts if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
say(len(fin) >= 6, f"{len(fin)} trials complete or pruned in the shared journal (want >= 6; {len(ts)} in all)")
say(not [t for t in ts if t.state == TrialState.FAIL], "no failed trial")
tasks = sorted({t.user_attrs.get("slurm_array_task_id") for t in fin})
say(len(tasks) >= 2 and None not in tasks, f"trials run by array tasks {tasks} (want >= 2 distinct)")
pruned = [t for t in fin if t.state == TrialState.PRUNED]
say(len(pruned) >= 1, f"{len(pruned)} trial(s) pruned: {[t.number for t in pruned]}")
say(any(t.number == 2 for t in pruned), "trial 2 (enqueued, lr 1e-6) was pruned")
# Trial 2 has 2 epochs left when it is pruned: its adebert must get the SIGTERM while
# training (exit 75, checkpoint saved). A sampled trial pruned at its last-but-one
# epoch may finish before the signal lands (exit 0): allowed, and said.
for t in pruned:
    rd = t.user_attrs.get("run_dir", "")
    log = open(rd + ".log").read() if os.path.exists(rd + ".log") else ""
    ck = [os.path.basename(p) for p in glob.glob(os.path.join(rd, "ckpt-step*.h5"))]
    ex = t.user_attrs.get("adebert_exit")
    stopped = ex == 75 and ck and "stopped by a signal" in log
    say(stopped if t.number == 2 else (stopped or ex == 0),
        f"pruned trial {t.number}: adebert exit {ex} after epoch {len(t.user_attrs.get('val_f1', []))}"
        + (f" (SIGTERM: stopped, checkpoint {ck})" if stopped else " (finished before the SIGTERM)" if ex == 0 else ""))
done = [t for t in fin if t.state == TrialState.COMPLETE]
say(all(t.user_attrs.get("adebert_exit") == 0 for t in done) and done,
    f"{len(done)} complete trial(s), adebert exit 0; best val F1 {max((t.value for t in done), default=None)}")
PY
grep -vE '^(ok|FAIL) ' "$WORK/journal-checks.txt"
while read -r line; do
  case "$line" in
    "ok   "*) pass "${line#ok   }" ;;
    "FAIL "*) fail "${line#FAIL }" ;;
  esac
done <"$WORK/journal-checks.txt"
grep -qE '^(ok|FAIL) ' "$WORK/journal-checks.txt" || fail "journal checks did not run"

# ---- best: the best-row spec for experiments/run + report
if "$HPO" "$SPEC" best --adebert "$BIN" --out "$WORK/best.json"; then
  why=$("$PY" - "$WORK/best.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
bad = []
if len(b.get("rows", [])) != 1: bad.append("rows %d" % len(b.get("rows", [])))
if len(b.get("seeds", [])) < 5: bad.append("seeds %s" % b.get("seeds"))
if sorted(b.get("protocols", [])) != ["honest", "study"]: bad.append("protocols %s" % b.get("protocols"))
if "lr" not in b["rows"][0].get("train", {}): bad.append("no lr in the row")
print("; ".join(bad))
PY
  )
  [ -z "$why" ] && pass "best: wrote the best-row spec (1 row, >= 5 seeds, honest + study)" || fail "best spec: $why"
  nrun=$(ADEBERT="$BIN" "$SRC/experiments/run" "$WORK/best.json" --dry-run 2>/dev/null | grep -c ' train ')
  [ "$nrun" = 10 ] && pass "experiments/run expands the best-row spec into 10 runs" || fail "experiments/run: $nrun runs"
  # ... and runs them (5 seeds x honest/study, tiny: a few seconds each), then the table
  if ADEBERT="$BIN" "$SRC/experiments/run" "$WORK/best.json" --lanes 2 --threads 1 >"$WORK/best-run.log" 2>&1 \
     && "$SRC/experiments/report" "$WORK/best.json" --out "$WORK/report" --no-plot >"$WORK/report.log" 2>&1; then
    grep -E '^\| tiny-hpo \| (honest|study) \| 5/5 \|' "$WORK/report/table.md"
    [ "$(grep -cE '^\| tiny-hpo \| (honest|study) \| 5/5 \| [0-9.]+ ± [0-9.]+ \|' "$WORK/report/table.md")" = 2 ] \
      && pass "experiments/run + report: the best row on test, honest and study, n=5/5 each" \
      || fail "report table: $(cat "$WORK/report/table.md")"
  else
    fail "experiments/run or report on the best spec failed: $(tail -5 "$WORK/best-run.log" "$WORK/report.log")"
  fi
else
  fail "experiments/hpo best failed"
fi

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ] && [ "$checks" -gt 0 ]
