#!/usr/bin/env bash
# Chaos soak of `adebert train --resume` under mpirun (issue 12).
#
# One uninterrupted reference run, then chains of launches on fresh run directories:
# a chain starts from scratch, and each launch is hit by a fault at a random step
# (SIGUSR1, SIGTERM or SIGKILL, sent to rank 0, to a random rank or to mpirun), then
# resumed with --resume, until a launch runs the schedule to its end. The chain's
# final parameters (--dump-params) must equal the reference bit for bit, and its
# metrics.jsonl (timing and memory fields aside) line for line. Every random choice comes from
# --seed (bash's RANDOM) and is recorded in events.jsonl, one line per launch.
#
#   bench/faults/chaos.sh [--cycles 100] [--ranks 2] [--seed 1] [--out DIR]
#                         [--bin build/adebert] [--data DIR] [--vocab FILE]
#                         [--ref-bin FILE] [--perturb] [--round-robin] [--launch-limit 120]
#
# A cycle is one launch with a fault; the soak runs until --cycles faults were sent
# and the chain under way completed. Outputs in --out: events.jsonl, summary.json,
# summary.md, and each launch's stdout/stderr (chainC.LK.out/.err). Run directories
# of matching chains are deleted. --perturb adds --debug-perturb-resume to the first
# resume of the first chain (whose first fault is then SIGUSR1 to rank 0 in the first
# half of the schedule): a negative control, that chain must mismatch. --round-robin
# takes the 9 (signal, target) kinds in turn instead of at random (short CI runs
# cover each); the steps stay random.
# Exit 0 only with no mismatch, no hang and at least one completed chain.
#
# A hang is a launch still running --launch-limit seconds after it started, or a
# rank still alive 60 s after mpirun ended; it is killed, counted and the chain
# abandoned. Faults are sent only once train_log.jsonl shows steps (signals are then
# blocked and collected once per step by every rank).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
cycles=100 ranks=2 seed=1 rr=0 out="" bin="$src/build/adebert" ref_bin="" perturb=0 launch_limit=120
data="${ADEBERT_TEST_DATA:-$src/../shared/data}/ade-corpus-v2"
vocab="${ADEBERT_TEST_DATA:-$src/../shared/data}/vocab/bert-base-cased-vocab.txt"
# the schedule: 48 steps (192 train rows, batch 8, 2 epochs), a checkpoint every 4
limit=192 epochs=2 batch=8 save_every=4 max_kills=4
while [ $# -gt 0 ]; do
  case $1 in
    --cycles) cycles=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --ref-bin) ref_bin=$2; shift 2 ;;
    --perturb) perturb=1; shift ;;
    --round-robin) rr=1; shift ;;
    --launch-limit) launch_limit=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "chaos.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out=$(mktemp -d /tmp/adebert-chaos.XXXXXX)
mkdir -p "$out" || exit 2
[ -x "$bin" ] || { echo "chaos.sh: $bin is not executable" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "chaos.sh: mpirun not found" >&2; exit 2; }
root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
export OMP_NUM_THREADS=1
RANDOM=$seed
targs=(train --data "$data" --model tiny --vocab "$vocab" --cased --limit $limit --epochs $epochs
       --batch-size $batch --max-seq-len 64 --lr 1e-3 --quiet --threads 1 --save-every $save_every)
total=$(( (limit + batch - 1) / batch * epochs ))
events="$out/events.jsonl"
: >"$events"

now() { echo "${EPOCHREALTIME/./}"; } # microseconds
secs_since() { local d=$(( $(now) - $1 )); printf '%d.%03d' $((d / 1000000)) $((d / 1000 % 1000)); }
whole_secs_since() { echo $(( ($(now) - $1) / 1000000 )); }
# alive PID: running (a zombie is not: our orphans are reparented to a reaper we do not control)
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
last_step() { tail -n 4 "$1/train_log.jsonl" 2>/dev/null | sed -n 's/^{"step":\([0-9]*\),.*/\1/p' | tail -n 1; }
rank_of() { { tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'; }
strip_metrics() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l); [d.pop(k, None) for k in ('seconds', 'tokens_per_s', 'rss_bytes', 'peak_rss_bytes')]; print(json.dumps(d, sort_keys=True))" "$1"; }
mpi() { mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np "$ranks" "$@"; }

echo "chaos: seed $seed, $ranks ranks, $cycles cycles, schedule $total steps (checkpoint every $save_every); out $out"
if [ -z "$ref_bin" ]; then
  ref_bin="$out/ref.bin"
  mpi "$bin" "${targs[@]}" --out "$out/ref" --dump-params "$ref_bin" >"$out/ref.out" 2>"$out/ref.err" ||
    { echo "chaos: the reference run failed: $(tail -2 "$out/ref.err")" >&2; exit 1; }
  strip_metrics "$out/ref/metrics.jsonl" >"$out/ref.metrics"
  rm -rf "$out/ref"
fi
[ -s "$ref_bin" ] || { echo "chaos: no reference parameters $ref_bin" >&2; exit 1; }
ref_metrics="${ref_bin%.bin}.metrics"

signals=(USR1 TERM KILL)
targets=(rank0 rank mpirun)
faults=0 chain=0
while [ $faults -lt "$cycles" ]; do
  chain=$((chain + 1))
  dir="$out/chain$chain"
  rm -rf "$dir" "$dir.bin"
  kills=0 k=0 status=running
  while [ $status = running ]; do
    k=$((k + 1))
    resume=(); [ $k -gt 1 ] && resume=(--resume)
    dbg=(); [ $perturb = 1 ] && [ $chain = 1 ] && [ $k = 2 ] && dbg=(--debug-perturb-resume)
    # a fault in this launch? up to max_kills per chain, while cycles remain
    sig="" tgt="" want=-1 jitter=0
    if [ $kills -lt $max_kills ] && [ $faults -lt "$cycles" ]; then
      if [ $rr = 1 ]; then sig=${signals[faults % 3]} tgt=${targets[faults / 3 % 3]}
      else sig=${signals[RANDOM % 3]} tgt=${targets[RANDOM % 3]}; fi
      cur=$(last_step "$dir"); cur=${cur:-0}
      want=$(( cur + 1 + RANDOM % (total - cur > 1 ? total - cur - 1 : 1) ))
      if [ $perturb = 1 ] && [ $chain = 1 ] && [ $k = 1 ]; then sig=USR1 tgt=rank0 want=$(( 1 + RANDOM % (total / 2) )); fi
      jitter=$(( RANDOM % 200 )) # ms after the step shows: mid-step, mid-save or mid-eval
    fi
    log="$dir.L$k"
    rm -f "$dir.bin"
    t_start=$(now)
    # mpirun itself in the background (not a function: $! must be mpirun, the ranks its children)
    mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np "$ranks" \
      "$bin" "${targs[@]}" --out "$dir" --dump-params "$dir.bin" "${resume[@]}" "${dbg[@]}" >"$log.out" 2>"$log.err" &
    mp=$!
    seen=-1 sent=0 victim="" hit="" t_kill="" hang=0
    pids=""
    while alive $mp; do
      # the ranks, once all are started (mpirun forks them directly on one node)
      if [ -z "$pids" ]; then
        p=$(pgrep -P $mp | tr '\n' ' ')
        [ "$(wc -w <<<"$p")" -ge "$ranks" ] && pids=$p
      fi
      if [ -n "$sig" ] && [ $sent = 0 ]; then
        s=$(last_step "$dir")
        if [ -n "$s" ] && [ "$s" -ge "$want" ] && [ -n "$pids" ]; then
          sleep "$(printf '0.%03d' $jitter)"
          seen=$(last_step "$dir")
          case $tgt in
            mpirun) victim=$mp hit=mpirun ;;
            rank0|rank)
              r=0; [ $tgt = rank ] && r=$((RANDOM % ranks))
              for p in $pids; do [ "$(rank_of "$p")" = "$r" ] && victim=$p; done
              hit="rank$r" ;;
          esac
          if [ -n "$victim" ] && kill -"$sig" "$victim" 2>/dev/null; then sent=1; t_kill=$(now); fi
        fi
      fi
      if [ "$(whole_secs_since "$t_start")" -ge "$launch_limit" ]; then
        hang=1
        kill -KILL $mp $pids 2>/dev/null
        break
      fi
      sleep 0.02
    done
    wait $mp
    rc=$?
    end_s=null; [ -n "$t_kill" ] && end_s=$(secs_since "$t_kill")
    # ranks left behind by mpirun (killed mpirun): how long until they are gone
    t_end=$(now) linger=0
    for p in $pids; do
      while alive "$p"; do
        if [ "$(whole_secs_since "$t_end")" -ge 60 ]; then hang=1; kill -KILL "$p" 2>/dev/null; sleep 0.2; break; fi
        sleep 0.05
      done
    done
    linger=$(secs_since "$t_end")
    resumed=$(sed -n 's/^  resumed_from_step \([0-9]*\):.*/\1/p' "$log.out" | head -n 1)
    skipped=$(grep -c "warning: skipping checkpoint" "$log.err")
    tmps=$(find "$dir" -maxdepth 1 -name '*.tmp' 2>/dev/null | wc -l)
    [ $sent = 1 ] && { faults=$((faults + 1)); kills=$((kills + 1)); }
    outcome=faulted
    if [ $hang = 1 ]; then outcome=hang; status=hang
    elif [ $rc = 0 ] && [ -f "$dir/done.json" ]; then outcome=completed; status=done
    elif [ $sent = 0 ]; then outcome=failed_unfaulted; status=failed
    fi
    printf '{"chain":%d,"launch":%d,"resume":%s,"signal":"%s","target":"%s","hit":"%s","want_step":%d,"seen_step":%d,"jitter_ms":%d,"sent":%s,"rc":%d,"end_s":%s,"linger_s":%s,"resumed_from":%s,"skipped_ckpts":%d,"tmp_files":%d,"outcome":"%s"}\n' \
      $chain $k "$([ $k -gt 1 ] && echo true || echo false)" "$sig" "$tgt" "$hit" "$want" "${seen:--1}" "$jitter" \
      "$([ $sent = 1 ] && echo true || echo false)" $rc "$end_s" "$linger" "${resumed:-null}" "$skipped" "$tmps" \
      $outcome >>"$events"
  done
  match=false metrics=false
  if [ $status = done ]; then
    cmp -s "$ref_bin" "$dir.bin" && match=true
    [ -f "$ref_metrics" ] && diff -q <(strip_metrics "$dir/metrics.jsonl") "$ref_metrics" >/dev/null && metrics=true
  fi
  printf '{"chain":%d,"status":"%s","launches":%d,"faults":%d,"params_match":%s,"metrics_match":%s}\n' \
    $chain $status $k $kills $match $metrics >>"$events"
  echo "chain $chain: $status after $k launches ($kills faults), parameters $([ $match = true ] && echo match || echo DIFFER)"
  [ $match = true ] && [ $metrics = true ] && rm -rf "$dir" "$dir.bin"
done

python3 - "$events" "$out" "$seed" "$ranks" "$cycles" "$total" <<'EOF'
import collections, json, os, platform, subprocess, sys
events, out, seed, ranks, cycles, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
L = [json.loads(l) for l in open(events)]
launches = [e for e in L if "launch" in e]
chains = [e for e in L if "status" in e]
sent = [e for e in launches if e["sent"]]
rcs = collections.defaultdict(collections.Counter)
ends = collections.defaultdict(list)
for e in sent:
    k = f'{e["signal"]}->{e["target"]}'
    rcs[k][str(e["rc"])] += 1
    if e["end_s"] is not None: ends[k].append(e["end_s"])
def model():
    try:
        for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if l.startswith("Model name"): return l.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor()
s = {
    "seed": seed, "ranks": ranks, "cycles_asked": cycles, "schedule_steps": total,
    "cpu": model(), "nproc": os.cpu_count(),
    "cycles": len(sent), "launches": len(launches),
    "faults_by_signal": dict(collections.Counter(e["signal"] for e in sent)),
    "faults_by_target": dict(collections.Counter(e["target"] for e in sent)),
    "faults_by_process_hit": dict(collections.Counter(e["hit"] for e in sent)),
    "rc_by_fault": {k: dict(v) for k, v in sorted(rcs.items())},
    "job_end_after_fault_s": {k: {"max": max(v), "median": sorted(v)[len(v) // 2]} for k, v in sorted(ends.items())},
    "max_rank_linger_s": max((e["linger_s"] for e in launches), default=0),
    "launches_finished_before_fault": sum(1 for e in launches if e["signal"] and not e["sent"]),
    "checkpoints_skipped_on_resume": sum(e["skipped_ckpts"] for e in launches),
    "stale_tmp_files_seen": sum(1 for e in launches if e["tmp_files"]),
    "chains": len(chains), "chains_completed": sum(1 for c in chains if c["status"] == "done"),
    "mismatches": sum(1 for c in chains if c["status"] == "done" and not c["params_match"]),
    "metrics_mismatches": sum(1 for c in chains if c["status"] == "done" and not c["metrics_match"]),
    "hangs": sum(1 for e in launches if e["outcome"] == "hang"),
    "failed_without_fault": sum(1 for e in launches if e["outcome"] == "failed_unfaulted"),
}
json.dump(s, open(os.path.join(out, "summary.json"), "w"), indent=1)
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(f"# chaos soak: seed {seed}, {ranks} ranks, {total}-step schedule ({s['cpu']}, {s['nproc']} CPUs)\n\n")
    f.write("| figure | value |\n|---|---|\n")
    for k in ("cycles", "launches", "chains_completed", "mismatches", "metrics_mismatches", "hangs",
              "failed_without_fault", "checkpoints_skipped_on_resume", "stale_tmp_files_seen", "max_rank_linger_s"):
        f.write(f"| {k} | {s[k]} |\n")
    f.write("\n| fault | count | mpirun exit codes | job end after fault: median / max s |\n|---|---|---|---|\n")
    for k in sorted(rcs):
        e = s["job_end_after_fault_s"].get(k, {})
        f.write(f"| {k} | {sum(rcs[k].values())} | {dict(rcs[k])} | {e.get('median', '-')} / {e.get('max', '-')} |\n")
print(json.dumps({k: s[k] for k in ("cycles", "chains_completed", "mismatches", "metrics_mismatches", "hangs", "faults_by_signal", "faults_by_target")}))
sys.exit(0 if s["mismatches"] == 0 and s["metrics_mismatches"] == 0 and s["hangs"] == 0 and s["chains_completed"] > 0 and s["failed_without_fault"] == 0 else 1)
EOF
