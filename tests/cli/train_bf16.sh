#!/usr/bin/env bash
# bf16 training on the CPU (--precision bf16 / auto): oneDNN bf16 GEMMs, fp32 master
# weights and every other op in fp32. Exits 77 (skipped) where `adebert version`
# says the CPU has no bf16 GEMM. Checks: the banner names bf16 and the ISA; two runs
# are bit-identical (same machine and threads); bf16 is really on (its parameters
# differ from an fp32 run: the negative control) yet learns like fp32; a stop and
# --resume ends bit-identical to the uninterrupted bf16 run; the run's test record is
# what `adebert eval` gives (evaluation runs in fp32); 2 ranks agree with 1 to bf16
# accuracy; ONEDNN_MAX_CPU_ISA=AVX512_CORE (no bf16 instructions): --precision bf16
# is one clear error, auto falls back to fp32 and says why.
source "$(dirname "$0")/lib.bash"
require_corpus
"$BIN" version >"$TMP/version.txt" 2>&1
if ! grep -q "fp32 and bf16" "$TMP/version.txt"; then
  echo "SKIPPED: no CPU bf16 GEMM here: $(grep 'CPU ' "$TMP/version.txt")"
  exit 77
fi
export OMP_NUM_THREADS=1

args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 400 --epochs 2 --batch-size 16
      --lr 1e-3 --quiet)
# bitwise FILE1 FILE2: identical dumps
bitwise() { cmp -s "$1" "$2"; }

"$BIN" "${args[@]}" --precision bf16 --out "$TMP/b1" --dump-params "$TMP/b1.bin" >"$TMP/b1.log" 2>&1 \
  || fail "bf16 run: $(tail -2 "$TMP/b1.log")"
grep -q "bf16 GEMMs (oneDNN avx512_core_\(bf16\|amx\))" "$TMP/b1.log" && pass "banner: bf16 GEMMs and the ISA" \
  || fail "banner: $(grep 'CPU backend' "$TMP/b1.log")"
"$BIN" "${args[@]}" --out "$TMP/b2" --dump-params "$TMP/b2.bin" >"$TMP/b2.log" 2>&1 || fail "auto run"
grep -q "bf16 GEMMs" "$TMP/b2.log" && pass "--precision auto picks bf16 on this CPU" \
  || fail "auto: $(grep 'CPU backend' "$TMP/b2.log")"
bitwise "$TMP/b1.bin" "$TMP/b2.bin" && pass "two bf16 runs: bit-identical parameters" \
  || fail "two bf16 runs differ by $(params_maxrel "$TMP/b1.bin" "$TMP/b2.bin")"

"$BIN" "${args[@]}" --precision fp32 --out "$TMP/f" --dump-params "$TMP/f.bin" >"$TMP/f.log" 2>&1 || fail "fp32 run"
d=$(params_maxrel "$TMP/f.bin" "$TMP/b1.bin")
python3 -c "import sys; sys.exit(0 if 1e-6 < float(sys.argv[1]) < 0.05 else 1)" "$d" \
  && pass "bf16 parameters differ from fp32 (by $d: bf16 is on) but stay close" \
  || fail "bf16 vs fp32 parameters: max relative difference $d (want 1e-6 .. 0.05)"
f1() { python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(max(r['f1'] for r in rows if r['split'] == 'test'))" "$1/metrics.jsonl"; }
lb=$(train_losses "$TMP/b1" | tail -5 | python3 -c "import sys; v=[float(x) for x in sys.stdin]; print(sum(v)/len(v))")
lf=$(train_losses "$TMP/f" | tail -5 | python3 -c "import sys; v=[float(x) for x in sys.stdin]; print(sum(v)/len(v))")
python3 -c "import sys; b, f = map(float, sys.argv[1:]); sys.exit(0 if abs(b - f) <= 0.05 * f + 0.01 else 1)" "$lb" "$lf" \
  && pass "bf16 learns like fp32: last-5-step loss $lb vs $lf; test F1 $(f1 "$TMP/b1") vs $(f1 "$TMP/f")" \
  || fail "bf16 loss $lb vs fp32 $lf"

if grep -q "HDF5 .*(checkpoints)" "$TMP/version.txt"; then
  # stop at step 30 (checkpoint), resume: the same parameters as the uninterrupted run
  "$BIN" "${args[@]}" --precision bf16 --out "$TMP/r" --debug-stop-at 30 >"$TMP/r1.log" 2>&1
  rc=$?
  [ $rc -eq 75 ] || fail "bf16 stop at step 30: exit $rc"
  "$BIN" "${args[@]}" --precision bf16 --out "$TMP/r" --resume --dump-params "$TMP/r.bin" >"$TMP/r2.log" 2>&1 \
    || fail "bf16 resume: $(tail -2 "$TMP/r2.log")"
  bitwise "$TMP/b1.bin" "$TMP/r.bin" && pass "bf16 stop + --resume: bit-identical to the uninterrupted run" \
    || fail "bf16 resume differs by $(params_maxrel "$TMP/b1.bin" "$TMP/r.bin")"
  # the run's test record (evaluated in fp32) is what eval of its best checkpoint says
  "$BIN" "${args[@]}" --precision bf16 --out "$TMP/e" --save-every epoch >/dev/null 2>&1 || fail "bf16 run with checkpoints"
  "$BIN" eval --checkpoint "$TMP/e/best.h5" --json >"$TMP/eval.json" 2>"$TMP/eval.err" || fail "eval: $(cat "$TMP/eval.err")"
  python3 - "$TMP/eval.json" "$TMP/e/best.json" "$TMP/e/metrics.jsonl" <<'PY' \
    && pass "eval of the bf16 run's best.h5 reproduces its test record" || fail "eval differs from the bf16 run's record"
import json, sys
ev = json.load(open(sys.argv[1]))
best = json.load(open(sys.argv[2]))
rows = [json.loads(l) for l in open(sys.argv[3]) if l.strip()]
rec = [r for r in rows if r["split"] == "test" and r["step"] == best["step"]][0]
bad = [k for k in ("f1", "roc_auc", "pr_auc", "eval_loss") if abs(ev[k] - rec[k]) > 1e-6 * max(1, abs(rec[k]))]
print("differ:", bad, {k: (ev[k], rec[k]) for k in bad}) if bad else None
sys.exit(1 if bad else 0)
PY
else
  echo "note: no HDF5 in this build: resume and eval checks left out"
fi

if grep -q "MPI (" "$TMP/version.txt" && command -v mpirun >/dev/null; then
  rf=(); [ "$(id -u)" -eq 0 ] && rf=(--allow-run-as-root)
  timeout 300 mpirun "${rf[@]}" --oversubscribe --bind-to none -np 2 "$BIN" "${args[@]}" --precision bf16 \
    --out "$TMP/m" --dump-params "$TMP/m.bin" >"$TMP/m.log" 2>&1 || fail "2-rank bf16 run: $(tail -2 "$TMP/m.log")"
  d=$(params_maxrel "$TMP/b1.bin" "$TMP/m.bin")
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 0.05 else 1)" "$d" \
    && pass "2 ranks vs 1 in bf16: parameters within $d" || fail "2 ranks vs 1 in bf16: $d"
fi

# a CPU without bf16 instructions, as oneDNN is told to see it
ONEDNN_MAX_CPU_ISA=AVX512_CORE "$BIN" "${args[@]}" --precision bf16 --out "$TMP/n1" >"$TMP/n1.out" 2>"$TMP/n1.err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/n1.err")" -eq 1 ] && grep -q "^adebert train: --precision bf16: .*AVX512-BF16" "$TMP/n1.err" \
  && pass "no bf16 instructions: --precision bf16 is one clear error (exit 1)" || fail "no-bf16 error: rc $rc $(cat "$TMP/n1.err")"
ONEDNN_MAX_CPU_ISA=AVX512_CORE "$BIN" "${args[@]}" --max-steps 3 --out "$TMP/n2" >"$TMP/n2.log" 2>&1 \
  && grep -q "fp32 GEMMs (no bf16: .*AVX512-BF16" "$TMP/n2.log" \
  && pass "no bf16 instructions: auto falls back to fp32 and says why" || fail "auto fallback: $(grep 'CPU backend' "$TMP/n2.log")"
finish
