#!/usr/bin/env bash
# Downloads the ADE corpus v2 (Gurulingappa et al., JBI 2012) from the public copy the
# Hugging Face dataset loader uses, checks sha256, and installs the files only when
# all three verify.
#
#   io/fetch-ade-corpus.sh [DEST_DIR]        default: data/ade-corpus-v2
#   ADEBERT_CORPUS_URL=<base URL> overrides the source (file:// works, for mirrors).
#
# Then:  adebert data stats --data DEST_DIR   (or export ADEBERT_DATA=DEST_DIR)
set -euo pipefail
source "$(dirname "$0")/fetch-lib.sh"
fetch_verified "${ADEBERT_CORPUS_URL:-https://raw.githubusercontent.com/trunghlt/AdverseDrugReaction/master/ADE-Corpus-V2}" \
  "${1:-data/ade-corpus-v2}" \
  DRUG-AE.rel=542cdc483ccc94927762eaf2c9a8ecac49a6c10037dda2895be6a6e20160f75a \
  ADE-NEG.txt=8f506c159042ce354fbf26981dc39971dde8f09b1158d94106eab1e516e53fcf \
  DRUG-DOSE.rel=78b46dfcdc1325d7f81e5e01f5a424e380e4b38fafca02f6e8f67064ca73f2db
