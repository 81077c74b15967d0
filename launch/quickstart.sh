#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install packages, build adebert, get the
# ADE corpus if it is not here, and run the main job.
#   launch/quickstart.sh
# The main job trains a small BERT (the `tiny` preset) from scratch on the CPU for 10
# epochs on the grouped (leak-free) split, printing precision/recall/F1 per epoch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
launch/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
data="${ADEBERT_DATA:-$root/../shared/data/ade-corpus-v2}"
if [ ! -f "$data/DRUG-AE.rel" ]; then
  data="$root/data/ade-corpus-v2"
  io/fetch-ade-corpus.sh "$data"
fi
vocab="${ADEBERT_VOCAB:-$root/../shared/data/vocab/bert-base-cased-vocab.txt}"
if [ ! -f "$vocab" ]; then
  io/fetch-vocab.sh "$root/data/vocab"
  vocab="$root/data/vocab/vocab.txt"
fi
echo
echo "== the corpus, and why the usual random split flatters models =="
build/adebert data stats --data "$data" --split random --vocab "$vocab" --cased
echo
echo "== the main job: train a small BERT from scratch on the honest split, F1 every epoch =="
run="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
mkdir -p runs
build/adebert train --data "$data" --split grouped --model tiny --vocab "$vocab" --cased \
  --epochs 10 --lr 1e-3 --out "$run"
if command -v gnuplot >/dev/null; then experiments/plot-metrics -o "$run/metrics.png" "$run"; fi
echo
echo "== the best checkpoint (by validation F1) on its test split, and on two sentences =="
build/adebert eval --checkpoint "$run/best.h5" --data "$data"
printf '%s\n' "Intravenous azithromycin-induced ototoxicity." "The patient was treated with aspirin for two weeks." |
  build/adebert predict --checkpoint "$run/best.h5"
echo "(export for Hugging Face Transformers: build/adebert export --checkpoint $run/best.h5 --out $run/hf)"
