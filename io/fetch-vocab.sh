#!/usr/bin/env bash
# Downloads the bert-base-cased WordPiece vocab.txt (28,996 tokens; also BioBERT's
# and Bio_ClinicalBERT's) from the Hugging Face hub and checks its sha256.
#
#   io/fetch-vocab.sh [DEST_DIR]        default: data/vocab  -> DEST_DIR/vocab.txt
#   ADEBERT_VOCAB_URL=<base URL> overrides the source (file:// works, for mirrors).
set -euo pipefail
source "$(dirname "$0")/fetch-lib.sh"
fetch_verified "${ADEBERT_VOCAB_URL:-https://huggingface.co/bert-base-cased/resolve/main}" "${1:-data/vocab}" \
  vocab.txt=eeaa9875b23b04b4c54ef759d03db9d1ba1554838f8fb26c5d96fa551df93d02
