#!/usr/bin/env bash
# Valgrind's thread checkers, helgrind and DRD, over the paths where adebert's threads
# meet (issue 12's heap-corruption hunt): the SIGUSR1 stop of a 2-rank job (Open MPI's
# progress threads beside the main thread; the scenario of tests/cli/mpi_train_failures.sh),
# its --resume, serve (libmicrohttpd's threads, the batcher thread, the scoring workers)
# under concurrent requests then SIGTERM, and eval with 2 OpenMP scoring workers.
# Prints one JSON line per tool and command and appends it to
# bench/results/faults/threads-<date>.jsonl: exit status, errors, and how many of the
# reported contexts have a frame in adebert's own sources ("own"); the rest are inside
# Open MPI, libgomp or glibc. A planted race must be reported first by each tool (the
# negative control), else nothing is measured.
#
#   nice -n 10 bench/faults/threads.sh [BUILD_DIR] [--tools "helgrind drd"] [--keep DIR]
#
# Needs a build with debug info (RelWithDebInfo; CUDA off is fine) and MPI. Valgrind
# does not decode AVX-512: oneDNN and the vector math are held to AVX2, fp32 GEMMs.
# libgomp synchronises with futexes the checkers cannot see, so the eval line's
# OpenMP reports are expected false positives unless libgomp was built with
# --disable-linux-futex; its "own" count is what matters. A few minutes per tool on
# 2 cores.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/bench/faults/lib.sh"
build=$root/build keep="" tools="helgrind drd"
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "threads.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
bin=$build/adebert
[ -x "$bin" ] || { echo "threads.sh: no $bin (build first)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "threads.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
command -v mpirun >/dev/null && "$bin" version 2>&1 | grep -q "MPI (" \
  || { echo "threads.sh: needs mpirun and an MPI build" >&2; exit 1; }
data=${ADEBERT_DATA:-$root/../shared/data}
corpus=$data/ade-corpus-v2 vocab=$data/vocab/bert-base-cased-vocab.txt
[ -f "$corpus/DRUG-AE.rel" ] && [ -f "$vocab" ] || { echo "threads.sh: corpus or vocab missing under $data" >&2; exit 1; }
if [ -n "$keep" ]; then mkdir -p "$keep"; tmp=$(cd "$keep" && pwd); else tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT; fi
out="$root/bench/results/faults/threads-$(date -u +%Y-%m-%d).jsonl"
mkdir -p "$(dirname "$out")"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
vgver=$(valgrind --version)
root_flags=(); [ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
export ONEDNN_MAX_CPU_ISA=AVX2 ADEBERT_VECMATH=avx2 OMP_NUM_THREADS=1
export OMPI_MCA_mca_base_component_disable_dlclose=1
# adebert's own source files: a reported context with a frame in one of them is "own"
own_files=$(cd "$root" && git ls-files '*.c' '*.h' | xargs -n1 basename | sort -u | tr '\n' ' ')

report() { # NAME TOOL EXPECTED_EXIT RC T0 T1 LOGS...
  python3 - "$own_files" "$rev" "$vgver" "$@" <<'PY' | tee -a "$out"
import json, re, sys
own_files, rev, vgver, name, tool, want, rc, t0, t1, *logs = sys.argv[1:]
own = set(own_files.split())
HEAD = re.compile(r"== (Possible data race[^\n]*|Lock order[^\n]*|Thread #\d+ unlocked[^\n]*|Thread #\d+: [^\n]*|"
                  r"Thread #\d+'s call to[^\n]*|Conflicting (?:load|store)[^\n]*|Probably a race[^\n]*|"
                  r"Mutex [^\n]*|Destroying locked[^\n]*|Invalid \w+[^\n]*|[\w ]*reinitialization[^\n]*|"
                  r"The object at address[^\n]*|Thread \d+:$)")
FRAME = re.compile(r"==\d+==\s+(?:at|by) 0x[0-9A-Fa-f]+: (.*)$")
errors = suppressed = 0
contexts, own_ctx, kinds = 0, [], set()
for log in logs:
    lines = open(log, errors="replace").read().splitlines()
    m = re.findall(r"ERROR SUMMARY: ([\d,]+) errors from [\d,]+ contexts \(suppressed: ([\d,]+)", "\n".join(lines))
    if m:
        errors += int(m[-1][0].replace(",", "")); suppressed += int(m[-1][1].replace(",", ""))
    # A report is judged by the frames that made its accesses: the first frame after its
    # headline and after "This conflicts with" (helgrind) -- not the callers below them
    # (every report inside MPI_Init has adebert's main below it), nor allocation sites.
    i = 0
    while i < len(lines):
        h = HEAD.search(lines[i])
        if not h:
            i += 1
            continue
        contexts += 1
        kind = re.sub(r"0x[0-9a-fA-F]+|\d+", "N", h.group(1))[:60]
        kinds.add(kind)
        access, j, expect = [], i + 1, True
        while j < len(lines) and not HEAD.search(lines[j]) and "----" not in lines[j]:
            f = FRAME.search(lines[j])
            if f and expect:
                access.append(f.group(1)); expect = False
            if "This conflicts with" in lines[j]:
                expect = True
            j += 1
        mine = [a for a in access if (re.search(r"\(([\w.+-]+):\d+\)", a) or [None, ""])[1] in own]
        if mine:
            own_ctx.append({"kind": kind, "access": [re.sub(r"^0x\w+: ", "", a)[:80] for a in access][:2]})
        i = j
print(json.dumps({"tool": tool, "command": name, "exit": int(rc), "expected_exit": int(want), "errors": errors,
                  "suppressed": suppressed, "contexts_seen": contexts, "own_contexts": len(own_ctx),
                  "own": own_ctx[:6], "kinds": sorted(kinds)[:8], "wall_s": round(float(t1) - float(t0), 1),
                  "valgrind": vgver, "git_rev": rev}), flush=True)
PY
}

python3 - "$corpus" "$tmp/texts.txt" <<'PY'
import sys
corpus, texts = sys.argv[1:]
pos = [l.split("|")[1].strip() for l in open(corpus + "/DRUG-AE.rel", encoding="utf-8") if l.strip()][:400:8]
neg = [l.split(" ", 2)[2].strip() for l in open(corpus + "/ADE-NEG.txt", encoding="utf-8") if l.strip()][:1000:20]
open(texts, "w", encoding="utf-8").write("\n".join(pos[:20] + neg[:20]) + "\n")
PY
# A planted race (two threads increment one global without a lock): each tool must report
# it, and the classifier must put it in the planted source (counted as "own" for this).
own_files="$own_files planted_race.c"
cat >"$tmp/planted_race.c" <<'C'
#include <pthread.h>
static int counter;
static void *bump(void *a) { (void)a; for (int i = 0; i < 1000; i++) counter++; return 0; }
int main(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], 0, bump, 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    return counter == 0;
}
C
cc -g -O0 -pthread -o "$tmp/planted" "$tmp/planted_race.c" || { echo "threads.sh: no C compiler for the negative control" >&2; exit 1; }

tiny=(--model tiny --vocab "$vocab" --cased --precision fp32)
for tool in $tools; do
  # the programs' own exit statuses are reported; only the control exits 99 on a report
  vg=(valgrind --tool="$tool" --num-callers=30 --smc-check=all-non-file ${VALGRIND_EXTRA:-})
  d=$tmp/$tool; mkdir -p "$d"
  t0=$(date +%s.%N); "${vg[@]}" --error-exitcode=99 --log-file="$d/control.vg.log" "$tmp/planted"; rc=$?; t1=$(date +%s.%N)
  report negative_control "$tool" 99 "$rc" "$t0" "$t1" "$d/control.vg.log"
  tail -1 "$out" | python3 -c "import json, sys; r = json.loads(sys.stdin.read()); sys.exit(0 if r['exit'] == 99 and r['own_contexts'] >= 1 and r['contexts_seen'] >= 1 else 1)" \
    || { echo "threads.sh: $tool did not report the planted race: stopping" >&2; exit 1; }

  # 1. 2 ranks, each under the tool; SIGUSR1 to mpirun once 3 steps are logged: exit 75
  run=$d/run
  t0=$(date +%s.%N)
  timeout 1200 mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np 2 \
    "${vg[@]}" --log-file="$d/stop.%q{OMPI_COMM_WORLD_RANK}.vg.log" \
    "$bin" train --data "$corpus" "${tiny[@]}" --limit 2000 --batch-size 8 --lr 1e-3 --quiet --epochs 50 \
    --out "$run" >"$d/stop.out" 2>"$d/stop.err" &
  pid=$!
  for _ in $(seq 1 6000); do
    [ -f "$run/train_log.jsonl" ] && [ "$(wc -l <"$run/train_log.jsonl")" -ge 3 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  kill -USR1 "$(pgrep -P "$pid" mpirun)" 2>/dev/null
  wait $pid; rc=$?; t1=$(date +%s.%N)
  report train_2ranks_sigusr1 "$tool" 75 "$rc" "$t0" "$t1" "$d"/stop.*.vg.log

  # 2. --resume of that run on 2 ranks (the same options; --debug-stop-at ends it 2 steps
  #    later, as a signal would): exit 75
  step=$(sed -n 's/.*stopped by a signal at step \([0-9]*\).*/\1/p' "$d/stop.err" | head -1)
  t0=$(date +%s.%N)
  timeout 1200 mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np 2 \
    "${vg[@]}" --log-file="$d/resume.%q{OMPI_COMM_WORLD_RANK}.vg.log" \
    "$bin" train --data "$corpus" "${tiny[@]}" --limit 2000 --batch-size 8 --lr 1e-3 --quiet --epochs 50 \
    --debug-stop-at $(( ${step:-0} + 2 )) --out "$run" --resume >"$d/resume.out" 2>"$d/resume.err"
  rc=$?; t1=$(date +%s.%N)
  report train_2ranks_resume "$tool" 75 "$rc" "$t0" "$t1" "$d"/resume.*.vg.log
  ckpt=$(ls "$run"/ckpt-step*.h5 2>/dev/null | tail -1)

  # 3. serve: 4 concurrent clients x 5 requests (texts of the corpus), then SIGTERM: exit 0
  python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$d/token"; chmod 600 "$d/token"
  t0=$(date +%s.%N)
  "${vg[@]}" --log-file="$d/serve.vg.log" "$bin" serve --checkpoint "$ckpt" --port 0 --token-file "$d/token" \
    --threads 1 --precision fp32 --workers 2 </dev/null >"$d/serve.out" 2>"$d/serve.err" &
  spid=$!
  port=$(serve_port "$d/serve.err" $spid 2400)
  if [ -n "$port" ]; then
    python3 - "$port" "$d/token" "$tmp/texts.txt" >"$d/serve.clients" 2>&1 <<'PY'
import json, sys, threading, urllib.request
port, token, texts = sys.argv[1], open(sys.argv[2]).read().strip(), open(sys.argv[3], encoding="utf-8").read().split("\n")
codes = []
def client(k):
    for i in range(5):
        body = json.dumps({"inputs": texts[(k * 5 + i) % 40: (k * 5 + i) % 40 + 1 + i % 3]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            codes.append(urllib.request.urlopen(req, timeout=300).status)
        except Exception as e:
            codes.append(str(type(e).__name__))
ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print("answers:", sorted(set(map(str, codes))), len(codes))
PY
  fi
  kill -TERM $spid 2>/dev/null
  wait $spid; rc=$?; t1=$(date +%s.%N)
  report serve_4clients_sigterm "$tool" 0 "$rc" "$t0" "$t1" "$d/serve.vg.log"

  # 4. eval with 2 OpenMP scoring workers (libgomp's futexes: expect false positives there)
  t0=$(date +%s.%N)
  OMP_NUM_THREADS=2 "${vg[@]}" --log-file="$d/eval.vg.log" "$bin" eval --checkpoint "$ckpt" --threads 2 \
    --precision fp32 --limit 64 --json >"$d/eval.out" 2>"$d/eval.err"
  rc=$?; t1=$(date +%s.%N)
  report eval_2workers "$tool" 0 "$rc" "$t0" "$t1" "$d/eval.vg.log"
done
echo "# appended to $out; logs in $tmp" >&2
