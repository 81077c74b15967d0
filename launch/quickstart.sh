#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install packages, build adebert, get the
# ADE corpus if it is not here, and run the main job.
#   launch/quickstart.sh
# Today the main job is `adebert data stats` (corpus, honest splits, leakage); it
# becomes training once `adebert train` lands.
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
vocab_args=()
for v in "$root/../shared/data/vocab/bert-base-cased-vocab.txt" "$root/data/vocab.txt"; do
  if [ -f "$v" ]; then vocab_args=(--vocab "$v" --cased); break; fi
done
echo
echo "== the split most papers use: random 80/20 of the HF rows =="
build/adebert data stats --data "$data" --split random "${vocab_args[@]}"
echo
echo "== the honest split: no PubMed abstract or sentence in both train and test =="
build/adebert data stats --data "$data" --split grouped
