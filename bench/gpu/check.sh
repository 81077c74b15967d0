#!/usr/bin/env bash
# The one-command GPU check. On a GPU host (PyTorch + Transformers installed) it runs,
# in under 8 minutes, every GPU measurement the project needs and prints a short
# table last; full logs go to LOG_DIR.
#
#   bench/gpu/check.sh LOG_DIR            on the GPU host
#   bench/gpu/check.sh --dry-run LOG_DIR  anywhere: GPU steps are skipped (and said so),
#                                         the rest runs on the CPU at toy size
#
# Today it measures the peer baseline (PyTorch + HF BertForSequenceClassification,
# bert-base shape, bf16 autocast, fused AdamW, global batch 32, ADE-distributed
# lengths with dynamic padding and fixed 32x128; eager and torch.compile(dynamic=True)).
# The CUDA issue adds adebert's side: the sm_90 build, per-op GPU-vs-CPU checks,
# whole-model gradients, throughput and MFU next to these figures, NCCL sanity and a
# 10-epoch fine-tune.
set -uo pipefail
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
logdir="${1:?usage: bench/gpu/check.sh [--dry-run] LOG_DIR}"
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
summary="$logdir/summary.txt"
: >"$summary"
row() { printf '%-34s %s\n' "$1" "$2" | tee -a "$summary"; }
t_start=$(date +%s)

{
  echo "date: $(date -u +%FT%TZ)"
  echo "git: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "${ADEBERT_GIT_REV:-unknown}")"
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)" 2>&1
} >"$logdir/env.txt"

gpu=0
if [ "$dry" -eq 0 ] && python3 -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  gpu=1
fi
if [ "$dry" -eq 1 ]; then
  row "mode" "dry run: GPU steps skipped"
elif [ "$gpu" -eq 0 ]; then
  row "mode" "no usable GPU (torch.cuda.is_available() is false): GPU steps skipped"
else
  row "mode" "GPU: $(python3 -c 'import torch; print(torch.cuda.get_device_name())')"
fi

# ---- peer baseline: PyTorch + Hugging Face
peer=(python3 "$root/bench/gpu/peer_hf.py")
if ! python3 -c "import torch, transformers" 2>/dev/null; then
  row "peer (PyTorch + HF)" "SKIPPED: torch/transformers not importable here"
elif [ "$gpu" -eq 1 ]; then
  timeout 420 "${peer[@]}" --device cuda --steps 50 --warmup 10 ${ADEBERT_PEER_MODES:+--modes "$ADEBERT_PEER_MODES"} \
    >"$logdir/peer.jsonl" 2>"$logdir/peer.log" \
    || row "peer (PyTorch + HF)" "FAILED (exit $?; see peer.log)"
else
  timeout 300 "${peer[@]}" --device cpu --tiny --steps 2 --warmup 1 --modes eager >"$logdir/peer.jsonl" 2>"$logdir/peer.log" \
    || row "peer (PyTorch + HF)" "FAILED (exit $?; see peer.log)"
fi
if [ -s "$logdir/peer.jsonl" ]; then
  python3 - "$logdir/peer.jsonl" <<'PY' | tee -a "$summary"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    extra = f", warm-up incl. compile {r['compile_s']:.1f} s" if r.get("compile_s") else ""
    print(f"{'peer ' + r['mode'] + ' ' + r['lengths'] + ' (' + r['device'] + ', ' + r['model'] + ')':34s} "
          f"{r['tokens_per_s']:10.0f} tok/s  {r['sequences_per_s']:8.1f} seq/s  {r['ms_per_step']:8.2f} ms/step{extra}")
PY
fi

# ---- adebert side: added by the CUDA backend issue
row "adebert (CUDA backend)" "not built yet: no CUDA training step to time"

row "wall time" "$(( $(date +%s) - t_start )) s; logs in $logdir"
echo
echo "== summary =="
cat "$summary"
