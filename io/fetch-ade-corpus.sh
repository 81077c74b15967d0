#!/usr/bin/env bash
# Downloads the ADE corpus v2 (Gurulingappa et al., JBI 2012) from the public copy the
# Hugging Face dataset loader uses, checks sha256, and installs the files atomically.
#
#   io/fetch-ade-corpus.sh [DEST_DIR]        default: data/ade-corpus-v2
#   ADEBERT_CORPUS_URL=<base URL> overrides the source (file:// works, for mirrors).
#
# Then:  adebert data stats --data DEST_DIR   (or export ADEBERT_DATA=DEST_DIR)
set -euo pipefail
dest="${1:-data/ade-corpus-v2}"
base="${ADEBERT_CORPUS_URL:-https://raw.githubusercontent.com/trunghlt/AdverseDrugReaction/master/ADE-Corpus-V2}"
declare -A sha=(
  [DRUG-AE.rel]=542cdc483ccc94927762eaf2c9a8ecac49a6c10037dda2895be6a6e20160f75a
  [ADE-NEG.txt]=8f506c159042ce354fbf26981dc39971dde8f09b1158d94106eab1e516e53fcf
  [DRUG-DOSE.rel]=78b46dfcdc1325d7f81e5e01f5a424e380e4b38fafca02f6e8f67064ca73f2db
)
command -v curl >/dev/null || { echo "fetch-ade-corpus: curl is needed (apt-get install curl)" >&2; exit 1; }
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for f in DRUG-AE.rel ADE-NEG.txt DRUG-DOSE.rel; do
  if [ -f "$dest/$f" ] && echo "${sha[$f]}  $dest/$f" | sha256sum -c --quiet - 2>/dev/null; then
    echo "fetch-ade-corpus: $f already present and verified"
    continue
  fi
  echo "fetch-ade-corpus: downloading $f"
  if ! curl -fsSL --retry 3 -o "$tmp/$f" "$base/$f"; then
    echo "fetch-ade-corpus: download of $f from $base failed" >&2
    exit 1
  fi
  if ! echo "${sha[$f]}  $tmp/$f" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "fetch-ade-corpus: $f has the wrong sha256 (expected ${sha[$f]}); nothing installed" >&2
    exit 1
  fi
done
# All verified: move into place (rename within one file system is atomic per file).
for f in DRUG-AE.rel ADE-NEG.txt DRUG-DOSE.rel; do
  [ -f "$tmp/$f" ] && mv -f "$tmp/$f" "$dest/$f"
done
echo "fetch-ade-corpus: corpus ready in $dest"
