#!/usr/bin/env bash
# The one-command GPU check. Compiles nothing on the GPU host: it runs a build made
# elsewhere by bench/gpu/prepare.sh and carried over (binaries, the libraries the
# host lacks, the corpus), phase after phase, most valuable first, each under its
# own `timeout` and inside one overall --budget, writing as it goes, so a check cut
# short still leaves what it measured. A table is printed last.
#
#   here:      bench/gpu/prepare.sh build-gpu-carry
#   GPU host:  bench/gpu/check.sh [--build build-gpu-carry] [--budget S] LOG_DIR
#   anywhere:  bench/gpu/check.sh --dry-run [--no-prepare] [--build DIR] LOG_DIR
#              (GPU steps skipped and said so; prepare.sh and CPU toy runs exercised)
#
# Phases (caps in seconds; a phase gets min(cap, budget left), skipped below its floor):
#   1 ctest -L gpu on the carried build (per-op GPU vs CPU, whole model, determinism)
#   2 bf16 GEMM peak (torch.matmul) and adebert bench --device cuda, base, batch 32,
#     ADE lengths and fixed 32x128, MFU and ratios to the committed peer figures
#   3 NCCL one-rank self-test (bench_nccl: dist_nccl_selftest, fp32 and bf16 wires)
#   3b cluster checks: train without --device on a GPU job picks cuda (binding line);
#     with MPI, GPUs+1 ranks are refused naming both counts; with 2+ GPUs, NCCL's NET/
#     (needs several nodes for EFA/IB: not checkable on one host)
#   4 fine-tune: adebert train --device cuda, random-init base, ADE grouped split,
#     10 epochs (or what the budget leaves), per-epoch F1 and wall time
#   opt-in: ADEBERT_CHECK_MEMCHECK=1  the gpu test programs under compute-sanitizer memcheck
#           ADEBERT_CHECK_PEER=1      rerun the PyTorch + HF peer (minutes)
# Other env: ADEBERT_CHECK_PRECISIONS ("bf16"; e.g. "bf16 fp32 tf32"),
#   ADEBERT_CHECK_EPOCHS (10), ADEBERT_CHECK_LR (1e-4), ADEBERT_CHECK_TRAIN_ARGS (extra flags),
#   ADEBERT_CHECK_BUDGET (240; --budget wins). Give the device call a timeout_s of at
#   least budget + 15: what the phases wrote comes back even when it is cut.
# LOG_DIR gets at most 5 files (the device tool brings back 8): summary.txt, env.txt,
# log.txt (every command's output, appended live), results.jsonl (raw JSON of each
# measurement), metrics.jsonl (the fine-tune's).
set -uo pipefail
usage="usage: bench/gpu/check.sh [--dry-run] [--no-prepare] [--build DIR] [--data DIR] [--budget SECONDS] LOG_DIR"
root=$(cd "$(dirname "$0")/../.." && pwd)
dry=0 prepare=1 build="" data="" budget="${ADEBERT_CHECK_BUDGET:-240}" logdir=""
die_usage() { echo "check.sh: $1 ($usage)" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1;;
    --no-prepare) prepare=0;;
    --build) [ $# -ge 2 ] || die_usage "--build needs a folder"; build=$2; shift;;
    --data) [ $# -ge 2 ] || die_usage "--data needs a folder"; data=$2; shift;;
    --budget) [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 10 ] || die_usage "--budget needs seconds >= 10"
      budget=$2; shift;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; echo "$usage"; exit 0;;
    -*) die_usage "unknown option $1";;
    *) [ -z "$logdir" ] || die_usage "one LOG_DIR only"; logdir=$1;;
  esac
  shift
done
[ -n "$logdir" ] || die_usage "LOG_DIR missing"
build=${build:-$root/build-gpu-carry}
mkdir -p "$logdir" || exit 1
logdir=$(cd "$logdir" && pwd)
summary="$logdir/summary.txt" log="$logdir/log.txt" results="$logdir/results.jsonl"
: >"$summary"; : >"$log"; : >"$results"; rm -f "$logdir/metrics.jsonl"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t_start=$(date +%s)
report=(python3 "$root/bench/gpu/check_report.py")
row() { printf '%-34s %s\n' "$1" "$2" | tee -a "$summary"; }
left() { echo $(( budget - ($(date +%s) - t_start) )); }
# phase_timeout CAP FLOOR: seconds this phase may take, or 0 when the budget is spent
phase_timeout() {
  local l; l=$(( $(left) - 5 ))
  [ "$l" -ge "$2" ] || { echo 0; return; }
  [ "$l" -lt "$1" ] && echo "$l" || echo "$1"
}
# run_logged NAME SECONDS OUTFILE CMD...: runs CMD under timeout; stdout to OUTFILE,
# stderr to OUTFILE.err, both appended to the log as they come; returns CMD's status
# (124: timed out)
run_logged() {
  local name=$1 t=$2 out=$3; shift 3
  echo "===== $name: timeout ${t}s, $(date -u +%T): $*" >>"$log"
  timeout -k 5 "$t" "$@" 2> >(tee -a "$log" >"$out.err") | tee -a "$log" >"$out"
  local rc=${PIPESTATUS[0]}
  sleep 0.1 # let the stderr tee finish
  echo "===== $name: exit $rc after $(( $(date +%s) - t_start ))s total" >>"$log"
  return "$rc"
}
status_text() { case "$1" in 0) echo ok;; 124|137) echo "TIMED OUT (${2}s)";; 77) echo SKIPPED;; *) echo "FAILED (exit $1)";; esac; }

# ---- the build: prepared here (dry run) or carried
if [ "$dry" -eq 1 ] && [ "$prepare" -eq 1 ]; then
  if "$root/bench/gpu/prepare.sh" "$build" >>"$log" 2>&1; then row "prepare.sh" "ok: $build"
  else row "prepare.sh" "FAILED (see log.txt)"; fi
fi
build=$(cd "$build" 2>/dev/null && pwd) || build=""
ab="$build/adebert"
if [ -z "$build" ] || [ ! -x "$ab" ]; then
  row "build" "FAILED: no adebert under ${build:-the --build folder}: run bench/gpu/prepare.sh DIR where it builds, carry DIR"
  echo; echo "== summary =="; cat "$summary"; exit 1
fi
# a copy may have lost the execute bits
chmod u+x "$ab" "$build"/bench/bench_* "$build"/tests/test_* 2>/dev/null
PREPARED_ROOT="" PREPARED_OUT="" PREPARED_GIT=""
[ -f "$build/prepared.env" ] && . "$build/prepared.env"
export ADEBERT_GIT_REV="${ADEBERT_GIT_REV:-${PREPARED_GIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}}"
# ctest files hold absolute paths of the machine that built them: move them here.
if { [ -n "$PREPARED_OUT" ] && [ "$PREPARED_OUT" != "$build" ]; } || { [ -n "$PREPARED_ROOT" ] && [ "$PREPARED_ROOT" != "$root" ]; }; then
  # through placeholders, so a new path holding an old one is not replaced twice
  sed_args=()
  [ -n "$PREPARED_OUT" ] && sed_args+=(-e "s|$PREPARED_OUT|@ADEBERT_OUT@|g")
  [ -n "$PREPARED_ROOT" ] && sed_args+=(-e "s|$PREPARED_ROOT|@ADEBERT_ROOT@|g")
  sed_args+=(-e "s|@ADEBERT_OUT@|$build|g" -e "s|@ADEBERT_ROOT@|$root|g")
  find "$build" -name CTestTestfile.cmake -exec sed -i "${sed_args[@]}" {} +
  # once only: the next run compares against the new place
  sed -i -e "s|^PREPARED_ROOT=.*|PREPARED_ROOT=$root|" -e "s|^PREPARED_OUT=.*|PREPARED_OUT=$build|" "$build/prepared.env"
  echo "ctest paths moved: $PREPARED_ROOT -> $root, $PREPARED_OUT -> $build" >>"$log"
fi
if [ -z "$data" ]; then
  for d in "$build/data" "$root/../shared/data" "$root/shared/data"; do
    [ -f "$d/ade-corpus-v2/DRUG-AE.rel" ] && { data=$d; break; }
  done
fi
# Libraries: the carried ones first (prepare.sh's lib/, also in the RUNPATH), then the
# host's CUDA 13 libraries (cuBLAS, NCCL) from the toolkit or from PyTorch's wheels.
# Only for adebert's programs (the `with_libs` prefix): python3 and torch keep theirs.
libdirs="$build/lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib \
         $(python3 -c 'import glob, os, nvidia
for p in nvidia.__path__:
    for f in glob.glob(p + "/**/lib/lib*.so*", recursive=True):
        if os.path.basename(f).startswith(("libcublas", "libnccl", "libcudart")): print(os.path.dirname(f))' 2>/dev/null | sort -u); do
  [ -d "$d" ] && libdirs="$libdirs:$d"
done
with_libs=(env "LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")

# ---- environment
gpu=0
if [ "$dry" -eq 0 ] && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then gpu=1; fi
{
  echo "date: $(date -u +%FT%TZ)"
  echo "git: $ADEBERT_GIT_REV (prepared: ${PREPARED_GIT:-?} ${PREPARED_DATE:-} ${PREPARED_NVCC:-})"
  echo "build: $build   data: ${data:-none}   budget: ${budget}s"
  echo "for adebert: ${with_libs[1]}"
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  python3 -c "import importlib.metadata as m
for p in ('torch', 'transformers', 'nvidia-cublas', 'nvidia-nccl-cu13'):
    try: print(p, m.version(p))
    except Exception: print(p, 'not installed')" 2>&1
  echo "--- adebert version"; timeout 30 "${with_libs[@]}" "$ab" version 2>&1
  echo "--- ldd adebert"; "${with_libs[@]}" ldd "$ab" 2>&1
} >"$logdir/env.txt"
if [ "$dry" -eq 1 ]; then
  row "mode" "dry run: GPU steps skipped; CPU toys instead"
elif [ "$gpu" -eq 0 ]; then
  row "mode" "no GPU (nvidia-smi -L lists none): GPU steps skipped"
else
  row "mode" "$(nvidia-smi -L | head -1 | cut -c1-60); budget ${budget}s"
fi
missing=$(for b in "$ab" "$build"/bench/bench_* "$build"/tests/test_*; do [ -x "$b" ] && "${with_libs[@]}" ldd "$b" 2>/dev/null | grep 'not found'; done | awk '{print $1}' | sort -u | tr '\n' ' ')
[ -z "$missing" ] || row "libraries" "MISSING: $missing(see env.txt)"
row "adebert version" "$(sed -n '/^--- adebert version/,/^---/p' "$logdir/env.txt" | grep -m1 '^ *CUDA' | sed 's/^ *//' | cut -c1-90)"

# ---- 1. ctest -L gpu
ctest_args=(--test-dir "$build" -L gpu)
if [ "$gpu" -eq 1 ]; then
  t=$(phase_timeout 120 15)
  if [ "$t" -eq 0 ]; then row "1 ctest -L gpu" "SKIPPED: out of budget"
  else
    s0=$(date +%s)
    run_logged "ctest -L gpu" "$t" "$work/ctest.out" "${with_libs[@]}" ctest "${ctest_args[@]}" --output-on-failure --no-tests=error --timeout "$t"
    rc=$?
    line=$(grep -E 'tests passed|No tests were found' "$work/ctest.out" | tail -1)
    failed=$(awk '/tests FAILED:/ {f = 1; next} f && /^[[:space:]]+[0-9]+ - / {printf "%s ", $3}' "$work/ctest.out")
    skipped=$(awk '/(Skipped)/ && / - / {printf "%s ", $3}' "$work/ctest.out")
    row "1 ctest -L gpu" "$(status_text $rc "$t"): ${line:-no summary line} ($(( $(date +%s) - s0 ))s)${failed:+; failed: $failed}${skipped:+; SKIPPED (no GPU seen?): $skipped}"
  fi
else
  n=$(ctest "${ctest_args[@]}" -N 2>>"$log" | sed -n 's/^ *Test *#[0-9]*: //p' | tr '\n' ' ')
  row "1 ctest -L gpu" "SKIPPED (no GPU): would run ${n:-no test (none labelled gpu)}"
fi

# ---- 2. throughput: GEMM peak, adebert bench, peer figures
peer_files=("$root"/bench/results/gpu-2026-11-28-peer-run*/peer.jsonl)
if [ "$gpu" -eq 1 ]; then
  t=$(phase_timeout 60 15)
  if [ "$t" -gt 0 ] && run_logged "bf16 GEMM peak" "$t" "$work/peak.out" "${report[@]}" peak; then
    cat "$work/peak.out" >>"$results"
  else
    row "2 bf16 GEMM peak" "FAILED or out of budget: MFU not computed (see log.txt)"
  fi
  for prec in ${ADEBERT_CHECK_PRECISIONS:-bf16}; do
    for lengths in ade fixed; do
      largs=(--seq-len 128); [ "$lengths" = ade ] && largs=(--lengths ade)
      name="2 bench $prec $lengths"
      t=$(phase_timeout 60 10)
      [ "$t" -gt 0 ] || { row "$name" "SKIPPED: out of budget"; continue; }
      run_logged "$name" "$t" "$work/bench.out" "${with_libs[@]}" "$ab" bench --device cuda --precision "$prec" --model base \
        --batch-size 32 "${largs[@]}" --steps 30 --warmup 5 --json
      rc=$?
      if [ "$rc" -eq 0 ] && "${report[@]}" record bench device=cuda precision="$prec" <"$work/bench.out" >>"$results"; then :
      else row "$name" "$(status_text $rc "$t"): $(tail -1 "$work/bench.out.err" | cut -c1-90)"; fi
    done
  done
else
  # CPU toy: the same bench path and report code, at tiny size
  t=$(phase_timeout 60 5)
  if [ "$t" -eq 0 ]; then row "2 bench (CPU toy)" "SKIPPED: out of budget"
  else
    run_logged "bench (CPU toy)" "$t" "$work/bench.out" "${with_libs[@]}" "$ab" bench --device cpu --model tiny --batch-size 8 \
      --seq-len 32 --steps 2 --warmup 1 --threads 1 --json \
      && "${report[@]}" record bench device=cpu precision=fp32 <"$work/bench.out" >>"$results" \
      || row "2 bench (CPU toy)" "FAILED (see log.txt)"
  fi
  row "2 bench --device cuda" "SKIPPED (no GPU): peer figures below are the committed ones"
fi
"${report[@]}" bench "$results" "${peer_files[@]}" 2>>"$log" | tee -a "$summary"

# ---- 3. NCCL one-rank self-test
nccl_bin="$build/bench/bench_nccl"
if [ ! -x "$nccl_bin" ]; then
  row "3 NCCL self-test" "SKIPPED: no bench/bench_nccl in the build"
else
  t=$(phase_timeout 45 8)
  if [ "$t" -eq 0 ]; then row "3 NCCL self-test" "SKIPPED: out of budget"
  else
    run_logged "NCCL self-test" "$t" "$work/nccl.out" "${with_libs[@]}" NCCL_DEBUG=WARN "$nccl_bin" --timeout $(( t > 20 ? t - 10 : t ))
    rc=$?
    msg=$(tail -1 "$work/nccl.out"); [ -n "$msg" ] || msg=$(tail -1 "$work/nccl.out.err")
    msg=$(sed -e 's/^bench_nccl: //' -e 's/^rank [0-9]* on [^:]*: //' -e 's/^SKIPPED: //' <<<"$msg")
    note=""; grep -q 'MPI (' "$logdir/env.txt" || note=" [one rank: the carried build is MPI=OFF]"
    [ "$dry" -eq 1 ] && note="$note [dry run]"
    row "3 NCCL self-test" "$(status_text $rc "$t"): $msg$note"
  fi
fi

# ---- 3b. cluster checks (issue 14): the device default, the binding line, and with an
# MPI build on a multi-GPU host the ranks-vs-GPUs refusal with real devices and the
# network NCCL picks. Several nodes (srun block:block/cpu-bind, EFA, requeue onto
# another node) need a real cluster: launch/slurm/adebert.sbatch with ADEBERT_DRY_RUN=1
# shows the plan; on the cluster, grep "binding:" and "NET/" in the job log.
if [ "$gpu" -eq 0 ] || [ -z "$data" ]; then
  row "3b cluster checks" "SKIPPED: $([ "$gpu" -eq 0 ] && echo "no GPU" || echo "no corpus")"
else
  t=$(phase_timeout 60 10)
  if [ "$t" -eq 0 ]; then row "3b cluster checks" "SKIPPED: out of budget"
  else
    ct=(train --data "$data/ade-corpus-v2" --model tiny --vocab "$data/vocab/bert-base-cased-vocab.txt" --cased
        --limit 64 --max-steps 1 --epochs 1 --quiet --save-every none)
    run_logged "cluster: device default" "$t" "$work/cl1.out" "${with_libs[@]}" SLURM_GPUS_PER_NODE=1 \
      ADEBERT_PRINT_BINDING=1 "$ab" "${ct[@]}" --out "$work/cl1"
    rc=$?
    msg=$(grep -h "binding:" "$work/cl1.out" "$work/cl1.out.err" 2>/dev/null | head -1 | sed 's/.*binding: //' | cut -c1-110)
    ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    if [ "$rc" -eq 0 ] && grep -q "MPI (" "$logdir/env.txt" && command -v mpirun >/dev/null; then
      rf=(); [ "$(id -u)" -ne 0 ] || rf=(--allow-run-as-root)
      run_logged "cluster: ranks > GPUs" 60 "$work/cl2.out" "${with_libs[@]}" mpirun "${rf[@]}" --oversubscribe \
        -np $((ngpu + 1)) "$ab" "${ct[@]}" --device cuda --out "$work/cl2"
      if grep -qh "ranks on one node but $ngpu GPU(s)" "$work/cl2.out" "$work/cl2.out.err" 2>/dev/null; then
        msg="$msg; $((ngpu + 1)) ranks on $ngpu GPU(s) refused"
      else
        rc=1; msg="$msg; ranks > GPUs NOT refused"
      fi
      if [ "$ngpu" -ge 2 ]; then
        run_logged "cluster: NCCL network" 60 "$work/cl3.out" "${with_libs[@]}" mpirun "${rf[@]}" -x NCCL_DEBUG=INFO \
          -x NCCL_DEBUG_SUBSYS=INIT,NET -np 2 "$ab" "${ct[@]}" --device cuda --out "$work/cl3"
        net=$(grep -ohE "NET/[A-Za-z]+" "$work/cl3.out" "$work/cl3.out.err" 2>/dev/null | sort -u | tr '\n' ' ')
        msg="$msg; NCCL: ${net:-no NET/ line}"
      fi
    fi
    row "3b cluster checks" "$(status_text $rc "$t"): $msg"
  fi
fi

# ---- 4. fine-tune
vocab="$data/vocab/bert-base-cased-vocab.txt"
if [ -z "$data" ]; then
  row "4 fine-tune" "SKIPPED: no corpus (prepare.sh copies it to BUILD/data; or --data DIR)"
else
  help=$("${with_libs[@]}" "$ab" train --help 2>&1)
  extra=()
  grep -q -- '--save-every' <<<"$help" && extra+=(--save-every none)
  if [ "$gpu" -eq 1 ]; then
    name="4 fine-tune base (cuda)"
    targs=(--device cuda --model base --vocab "$vocab" --cased --split grouped --epochs "${ADEBERT_CHECK_EPOCHS:-10}"
           --lr "${ADEBERT_CHECK_LR:-1e-4}" --batch-size 32 --max-seq-len 128 --seed 42)
    grep -q 'bf16' <<<"$help" && targs+=(--precision bf16)
    t=$(phase_timeout 100000 30)
  else
    name="4 fine-tune (CPU toy)"
    targs=(--device cpu --model tiny --vocab "$vocab" --cased --split grouped --epochs 2 --limit 400
           --lr 1e-3 --batch-size 32 --max-seq-len 64 --threads 1 --seed 42)
    t=$(phase_timeout 120 10)
  fi
  # shellcheck disable=SC2206
  targs+=("${extra[@]}" ${ADEBERT_CHECK_TRAIN_ARGS:-})
  if [ "$t" -eq 0 ]; then row "$name" "SKIPPED: out of budget"
  else
    s0=$(date +%s)
    run_logged "$name" "$t" "$work/train.out" "${with_libs[@]}" "$ab" train --data "$data/ade-corpus-v2" --out "$work/run" "${targs[@]}"
    rc=$?
    wall=$(( $(date +%s) - s0 ))
    [ -f "$work/run/metrics.jsonl" ] && cp "$work/run/metrics.jsonl" "$logdir/metrics.jsonl"
    why=""; [ "$rc" -eq 0 ] || why=": $(grep -v '^[[:space:]]*$' "$work/train.out.err" | tail -1 | cut -c1-90)"
    row "$name" "$(status_text $rc "$t") after ${wall}s$why"
    [ -f "$logdir/metrics.jsonl" ] && "${report[@]}" train "$logdir/metrics.jsonl" "$wall" | tee -a "$summary"
  fi
fi

# ---- opt-in: memcheck, peer
if [ "${ADEBERT_CHECK_MEMCHECK:-0}" = 1 ]; then
  if [ "$gpu" -eq 0 ]; then row "5 memcheck ctest -L gpu" "SKIPPED (no GPU)"
  else
    # the gpu-labelled test programs themselves, with ctest's environment
    for name in $(ctest "${ctest_args[@]}" -N 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: //p'); do
      bin="$build/tests/$name"
      [ -x "$bin" ] || { row "5 memcheck $name" "SKIPPED: not a test program"; continue; }
      t=$(phase_timeout 300 30)
      [ "$t" -gt 0 ] || { row "5 memcheck $name" "SKIPPED: out of budget"; continue; }
      run_logged "memcheck $name" "$t" "$work/mc.out" "${with_libs[@]}" ADEBERT_TEST_DATA="$data" ADEBERT_SOURCE_DIR="$root" \
        ADEBERT_BIN="$ab" OMP_NUM_THREADS=1 compute-sanitizer --tool memcheck --error-exitcode 86 "$bin"
      rc=$?
      row "5 memcheck $name" "$(status_text $rc "$t"): $(grep -h 'ERROR SUMMARY' "$work/mc.out" "$work/mc.out.err" | tail -1)"
    done
  fi
fi
if [ "${ADEBERT_CHECK_PEER:-0}" = 1 ]; then
  peer=(python3 "$root/bench/gpu/peer_hf.py")
  if [ "$gpu" -eq 1 ]; then
    peer+=(--device cuda --steps 50 --warmup 10 ${ADEBERT_PEER_MODES:+--modes "$ADEBERT_PEER_MODES"}); t=$(phase_timeout 420 60)
  else
    peer+=(--device cpu --tiny --steps 2 --warmup 1 --modes eager); t=$(phase_timeout 300 20)
  fi
  if [ "$t" -eq 0 ]; then row "6 peer (PyTorch + HF)" "SKIPPED: out of budget"
  elif run_logged "peer" "$t" "$work/peer.out" "${peer[@]}"; then
    "${report[@]}" record peer-rerun <"$work/peer.out" >>"$results"
    python3 - "$work/peer.out" <<'PY' | tee -a "$summary"
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"): continue
    r = json.loads(line)
    extra = f", warm-up incl. compile {r['compile_s']:.1f} s" if r.get("compile_s") else ""
    print(f"{'6 peer ' + r['mode'] + ' ' + r['lengths'] + ' (' + r['device'] + ', ' + r['model'] + ')':34s} "
          f"{r['tokens_per_s']:10.0f} tok/s  {r['sequences_per_s']:8.1f} seq/s  {r['ms_per_step']:8.2f} ms/step{extra}")
PY
  else row "6 peer (PyTorch + HF)" "FAILED or timed out (see log.txt)"; fi
fi

row "wall time" "$(( $(date +%s) - t_start ))s of ${budget}s budget; logs in $logdir"
echo
echo "== summary =="
cat "$summary"
