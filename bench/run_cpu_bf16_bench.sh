#!/usr/bin/env bash
# CPU bf16 (issue 15): adebert fp32, adebert bf16 (oneDNN AVX512-BF16/AMX), PyTorch
# eager fp32 and PyTorch bf16 autocast, full training steps of MiniLM-L6 on a batch of
# 32 ADE-distributed lengths (and 32x128), the four sides alternated ROUNDS times
# (default 3). Raw JSON lines to bench/results/bf16_cpu_<date>.jsonl with the CPU
# model and the ISA oneDNN chose (ONEDNN_VERBOSE), then medians and ratios.
#
#   bench/run_cpu_bf16_bench.sh BUILD_DIR [PYTHON] [THREADS] [ROUNDS]
#
# CASES="model ade|fixed batch seqlen steps[;...]" picks cases (default: both below).
# PYTHON must import torch and transformers (launch/install-deps.sh's venv:
# ~/.cache/adebert-venv/bin/python; Debian's torch 1.13.1). TORCH_PY=PYTHON2 adds a
# second PyTorch (a current PyPI build: launch/install-deps.sh with
# ADEBERT_TORCH_PEER=1 makes ~/.cache/adebert-torch-venv) with eager fp32, eager bf16
# autocast and, unless COMPILE=0, torch.compile fp32 and bf16 autocast.
set -euo pipefail
build=${1:?usage: run_cpu_bf16_bench.sh BUILD_DIR [PYTHON] [THREADS] [ROUNDS]}
py=${2:-$HOME/.cache/adebert-venv/bin/python}
threads=${3:-2}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/bench/results/bf16_cpu_$(date -u +%Y-%m-%d).jsonl}
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
export ADEBERT_GIT_REV=$rev
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
isa=$(ONEDNN_VERBOSE=1 "$build/adebert" bench --model tiny --steps 1 --warmup 0 --precision bf16 2>/dev/null \
      | grep -o 'brg:avx512_core[a-z_0-9]*' | sort -u | tr '\n' ' ')
echo "cpu: $cpu; oneDNN bf16 matmul: ${isa:-none}; threads $threads; rounds $rounds; rev $rev"
cases=("minilm ade 32 128 5" "minilm fixed 32 128 3")
[ -n "${CASES:-}" ] && IFS=';' read -r -a cases <<< "$CASES"  # e.g. CASES="minilm ade 32 128 5"
: > "$out.tmp"
tag() { sed "s|^{|{\"case\":\"$1\",\"round\":$2,\"cpu\":\"$cpu\",\"isa\":\"${isa% }\",|"; }
for c in "${cases[@]}"; do
  read -r model kind bs seq steps <<< "$c"
  if [ "$kind" = ade ]; then largs=(--lengths ade); else largs=(--seq-len "$seq"); fi
  lens=$("$build/adebert" bench --model "$model" --batch-size "$bs" "${largs[@]}" --print-lengths)
  for r in $(seq 1 "$rounds"); do
    for p in fp32 bf16; do
      OMP_NUM_THREADS=$threads "$build/adebert" bench --model "$model" --batch-size "$bs" "${largs[@]}" \
        --steps "$steps" --threads "$threads" --precision "$p" --json | tag "$model/$kind" "$r" >> "$out.tmp"
    done
    for tpy in "$py" ${TORCH_PY:+"$TORCH_PY"}; do
      comps=(""); [ "$tpy" = "${TORCH_PY:-}" ] && [ "${COMPILE:-1}" = 1 ] && comps+=(--compile)
      for comp in "${comps[@]}"; do
        for a in none bf16; do
          OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE "$tpy" "$root/bench/bench_model_torch.py" --model "$model" \
            --lengths "$lens" --steps "$steps" --threads "$threads" --autocast "$a" --json ${comp:+"$comp"} \
            | tag "$model/$kind" "$r" >> "$out.tmp"
        done
      done
    done
  done
done
mv "$out.tmp" "$out"
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def label(r):
    if r["side"] == "adebert":
        return "adebert " + r["precision"]
    return f"torch {r['torch'].split('+')[0]} {r['precision']}" + (" compile" if r.get("compiled") else "")
print(f"{'case':14} {'side':34} {'tokens/s med':>12} {'min':>8} {'max':>8} {'ms/step':>8}")
for case in dict.fromkeys(r["case"] for r in rows):
    rc = [r for r in rows if r["case"] == case]
    med = {}
    for lab in dict.fromkeys(label(r) for r in rc):
        rs = [r for r in rc if label(r) == lab]
        tps = [r["tokens_per_s"] for r in rs]
        med[lab] = statistics.median(tps)
        print(f"{case:14} {lab:34} {med[lab]:12.1f} {min(tps):8.1f} {max(tps):8.1f} "
              f"{statistics.median(r['ms_per_step'] for r in rs):8.1f}")
    a16 = med["adebert bf16"]
    print(f"{case:14} adebert bf16/fp32 {a16 / med['adebert fp32']:.2f}; adebert bf16 over each PyTorch row: "
          + ", ".join(f"{lab} {a16 / v:.2f}" for lab, v in med.items() if lab.startswith("torch")))
PY
