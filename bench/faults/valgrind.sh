#!/usr/bin/env bash
# Valgrind memcheck over every adebert command (issue 12): version, tokenize, data stats,
# data split, train (1 rank, a few steps of the tiny model, stopped at step 2), train
# --resume, eval, predict, export, import, serve (a few requests, then SIGTERM), each
# with --leak-check=full, errors counted for definite leaks, uninitialised reads,
# invalid accesses and bad frees alike. Prints one JSON line per command (exit status,
# errors, definitely/indirectly lost bytes, suppressed errors, wall seconds) and appends
# them to bench/results/faults/valgrind-<date>.jsonl, after a negative control (a
# planted over-read and leak must be reported).
#
#   nice -n 10 bench/faults/valgrind.sh [BUILD_DIR] [--keep DIR]
#
# Valgrind does not decode AVX-512: oneDNN is held to AVX2 (ONEDNN_MAX_CPU_ISA), the
# vector math too (ADEBERT_VECMATH), GEMMs run in fp32 (the bf16 path needs AVX512-BF16),
# one OpenMP thread. oneDNN writes its kernels at run time: --smc-check=all-non-file.
# Only third-party reports are suppressed (bench/faults/valgrind.supp, each entry
# explained there: today Open MPI's MPI_Init/MPI_Finalize leaks; HDF5 and libgomp gave
# none); nothing of adebert's own code is. --keep DIR keeps the logs (with a ready
# suppression block after each report) and inputs. Inputs are tiny (300 corpus rows,
# 4 training steps): about 2 minutes on 2 busy cores.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/bench/faults/lib.sh"
build=$root/build keep=""
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
bin=$build/adebert
[ -x "$bin" ] || { echo "valgrind.sh: no $bin (build first)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
data=${ADEBERT_DATA:-$root/../shared/data}
corpus=$data/ade-corpus-v2 vocab=$data/vocab/bert-base-cased-vocab.txt
[ -f "$corpus/DRUG-AE.rel" ] && [ -f "$vocab" ] || { echo "valgrind.sh: corpus or vocab missing under $data" >&2; exit 1; }
if [ -n "$keep" ]; then mkdir -p "$keep"; tmp=$(cd "$keep" && pwd); else tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT; fi
out="$root/bench/results/faults/valgrind-$(date -u +%Y-%m-%d).jsonl"
mkdir -p "$(dirname "$out")"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
vgver=$(valgrind --version)
export ONEDNN_MAX_CPU_ISA=AVX2 ADEBERT_VECMATH=avx2 OMP_NUM_THREADS=1
# Open MPI: keep its plugins loaded at exit, so that their frames have names to match
export OMPI_MCA_mca_base_component_disable_dlclose=1
vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
    --smc-check=all-non-file --error-exitcode=99 --track-origins=yes --num-callers=40
    --suppressions="$root/bench/faults/valgrind.supp" --gen-suppressions=all ${VALGRIND_EXTRA:-})

# A small corpus (300 rows of the ADE corpus as TSV) and inputs
python3 - "$corpus" "$tmp/small.tsv" "$tmp/texts.txt" <<'PY'
import sys
corpus, tsv, texts = sys.argv[1:]
pos = [l.split("|")[1].strip() for l in open(corpus + "/DRUG-AE.rel", encoding="utf-8") if l.strip()][:1200:8]
neg = [l.split(" ", 2)[2].strip() for l in open(corpus + "/ADE-NEG.txt", encoding="utf-8") if l.strip()][:3000:20]
with open(tsv, "w", encoding="utf-8") as f:
    f.write("text\tlabel\n")
    for i in range(max(len(pos), len(neg))):
        if i < len(pos): f.write(pos[i].replace("\t", " ") + "\t1\n")
        if i < len(neg): f.write(neg[i].replace("\t", " ") + "\t0\n")
open(texts, "w", encoding="utf-8").write("\n".join(pos[:3] + neg[:3] + ["", "Ibuprofène a causé une éruption — 頭痛."]) + "\n")
PY

# run NAME EXPECTED_EXIT CMD...: CMD under memcheck (stdin from $stdin, default /dev/null)
run() {
  local name=$1 want=$2; shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  "${vg[@]}" --log-file="$tmp/$name.vg.log" "$@" <"${stdin:-/dev/null}" >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
  t1=$(date +%s.%N)
  report "$name" "$want" "$rc" "$t0" "$t1" "$*"
}
report() {
  python3 - "$tmp/$1.vg.log" "$@" "$rev" "$vgver" <<'PY' | tee -a "$out"
import json, re, sys
log, name, want, rc, t0, t1, cmd, rev, vgver = sys.argv[1:]
s = open(log, errors="replace").read()
num = lambda pat: int(re.findall(pat, s)[-1].replace(",", "")) if re.findall(pat, s) else None
err = re.findall(r"ERROR SUMMARY: ([\d,]+) errors from [\d,]+ contexts \(suppressed: ([\d,]+) from", s)
kinds = sorted(set(re.findall(r"==\d+== (Invalid \w+ of size \d+|Conditional jump[^\n]*|Use of uninitialised[^\n]*|"
                               r"Syscall param [^\n]*|Mismatched free[^\n]*|Invalid free[^\n]*|"
                               r"[\d,]+ (?:\([^)]*\) )?bytes in [\d,]+ blocks are definitely lost)", s)))
print(json.dumps({"command": name, "exit": int(rc), "expected_exit": int(want),
    "errors": int(err[-1][0].replace(",", "")) if err else None,
    "definitely_lost_bytes": num(r"definitely lost: ([\d,]+) bytes"), "indirectly_lost_bytes": num(r"indirectly lost: ([\d,]+) bytes"),
    "suppressed_errors": int(err[-1][1].replace(",", "")) if err else None,
    "wall_s": round(float(t1) - float(t0), 1), "kinds": kinds[:8], "argv": cmd.replace(sys.argv[1].rsplit("/", 1)[0], "TMP"),
    "valgrind": vgver, "git_rev": rev}))
PY
}

# Negative control: a program with a planted heap over-read and a 64-byte definite leak,
# under the same options and suppressions, must come back with errors and lost bytes
# (else the figures below prove nothing).
if cc -g -O0 -x c -o "$tmp/planted" - <<'C'
#include <stdlib.h>
int main(void) {
    char *p = malloc(8), *volatile q = malloc(64);
    volatile char c = p[8]; /* over-read */
    (void)c; (void)q;
    free(p);
    return 0; /* q: lost */
}
C
then
  run negative_control 99 "$tmp/planted"
  python3 -c "
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
sys.exit(0 if r['command'] == 'negative_control' and r['exit'] == 99 and r['errors'] >= 2 and r['definitely_lost_bytes'] == 64 else 1)" \
    "$out" || { echo "valgrind.sh: the negative control was not reported as planted: stopping" >&2; exit 1; }
else
  echo "valgrind.sh: no C compiler: negative control skipped" >&2
fi

tiny=(--model tiny --vocab "$vocab" --cased --max-seq-len 64 --batch-size 8 --lr 1e-3 --threads 1 --precision fp32)
run version 0 "$bin" version
stdin=$tmp/texts.txt run tokenize 0 "$bin" tokenize --vocab "$vocab" --cased --max-seq-len 32
stdin=$tmp/texts.txt run tokenize_tokens 0 "$bin" tokenize --vocab "$vocab" --lowercase --tokens
run data_stats 0 "$bin" data stats --data "$tmp/small.tsv" --split grouped --vocab "$vocab" --cased
run data_stats_ade 0 "$bin" data stats --data "$corpus" --view dedup --split grouped --json
run data_split 0 "$bin" data split --data "$tmp/small.tsv" --split stratified --out "$tmp/split"
# 240 train rows of the folder, batch 8: 4 steps, checkpoints every 2; stopped at step 2 (exit 75)
run train 75 "$bin" train --data "$tmp/split" "${tiny[@]}" --epochs 1 --max-steps 4 --save-every 2 \
  --debug-stop-at 2 --out "$tmp/run"
run train_resume 0 "$bin" train --data "$tmp/split" "${tiny[@]}" --epochs 1 --max-steps 4 --save-every 2 \
  --out "$tmp/run" --resume --dump-params "$tmp/params.bin"
ckpt=$tmp/run/best.h5
run eval 0 "$bin" eval --checkpoint "$ckpt" --threads 1 --precision fp32 --json --scores "$tmp/scores.tsv"
stdin=$tmp/texts.txt run predict 0 "$bin" predict --checkpoint "$ckpt" --threads 1 --precision fp32
run export 0 "$bin" export --checkpoint "$ckpt" --out "$tmp/hf"
run import 0 "$bin" import --hf "$tmp/hf" --out "$tmp/imported.h5" --cased

# serve: plain HTTP on loopback with a token; /ping, /readyz, two classifications, /metrics,
# a refused request, then SIGTERM (exit 0)
python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$tmp/token"; chmod 600 "$tmp/token"
t0=$(date +%s.%N)
"${vg[@]}" --log-file="$tmp/serve.vg.log" "$bin" serve --checkpoint "$ckpt" --port 0 --token-file "$tmp/token" \
  --threads 1 --precision fp32 --workers 2 </dev/null >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
port=$(serve_port "$tmp/serve.err" $spid 1200)
if [ -n "$port" ]; then
  tok=$(cat "$tmp/token") u="http://127.0.0.1:$port"
  {
    curl -sS -m 120 "$u/ping"; echo
    curl -sS -m 120 "$u/readyz"; echo
    curl -sS -m 120 -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
      -d '{"inputs": ["Naproxen caused pseudoporphyria.", "The patient recovered."]}' "$u/invocations"; echo
    curl -sS -m 120 -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
      -d '{"inputs": "Rash after amoxicillin.", "parameters": {"threshold": 0.3}}' "$u/v1/classify"; echo
    curl -sS -m 120 -H "Authorization: Bearer $tok" "$u/metrics" | head -3
    curl -sS -m 120 -o /dev/null -w 'unauthorised: %{http_code}\n' -d '{"inputs": ["x"]}' "$u/invocations"
    curl -sS -m 120 -o /dev/null -w 'bad json: %{http_code}\n' -H "Authorization: Bearer $tok" -d '{"inputs": [' "$u/invocations"
  } >"$tmp/serve.curl" 2>&1
fi
kill -TERM $spid 2>/dev/null
wait $spid
src=$?
t1=$(date +%s.%N)
report serve 0 "$src" "$t0" "$t1" "serve --checkpoint $ckpt --port 0 --token-file TOKEN (+ 7 requests, SIGTERM)"
echo "# appended to $out; logs in $tmp" >&2
