#!/usr/bin/env bash
# io/fetch-ade-corpus.sh verifies sha256 and installs nothing on a mismatch
# (tested against a local file:// mirror: no network in tests).
source "$(dirname "$0")/lib.bash"
require_corpus
SCRIPT="$ADEBERT_SOURCE_DIR/io/fetch-ade-corpus.sh"
mkdir -p "$TMP/mirror" "$TMP/badmirror"
cp "$CORPUS"/DRUG-AE.rel "$CORPUS"/ADE-NEG.txt "$CORPUS"/DRUG-DOSE.rel "$TMP/mirror/"
ADEBERT_CORPUS_URL="file://$TMP/mirror" bash "$SCRIPT" "$TMP/good" >"$TMP/log" 2>&1 \
  && cmp -s "$TMP/good/DRUG-AE.rel" "$CORPUS/DRUG-AE.rel" && pass "fetch from a good mirror" || fail "fetch from a good mirror: $(cat "$TMP/log")"
"$BIN" data stats --data "$TMP/good" --json >/dev/null && pass "fetched corpus loads" || fail "fetched corpus loads"
cp "$TMP/mirror/"* "$TMP/badmirror/"
printf 'x' >>"$TMP/badmirror/ADE-NEG.txt"
ADEBERT_CORPUS_URL="file://$TMP/badmirror" bash "$SCRIPT" "$TMP/bad" >"$TMP/log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "wrong sha256" "$TMP/log" && pass "a corrupted file is refused" || fail "a corrupted file is refused (rc $rc)"
[ ! -e "$TMP/bad/DRUG-AE.rel" ] && [ -z "$(ls -A "$TMP/bad")" ] && pass "nothing installed after a failed fetch" || fail "nothing installed after a failed fetch: $(ls -A "$TMP/bad")"
# The vocab fetcher shares the same code path.
mkdir -p "$TMP/vmirror"
cp "$CASED_VOCAB" "$TMP/vmirror/vocab.txt"
ADEBERT_VOCAB_URL="file://$TMP/vmirror" bash "$ADEBERT_SOURCE_DIR/io/fetch-vocab.sh" "$TMP/v" >"$TMP/log" 2>&1 \
  && cmp -s "$TMP/v/vocab.txt" "$CASED_VOCAB" && pass "fetch-vocab from a good mirror" || fail "fetch-vocab: $(cat "$TMP/log")"
cp "$UNCASED_VOCAB" "$TMP/vmirror/vocab.txt"
ADEBERT_VOCAB_URL="file://$TMP/vmirror" bash "$ADEBERT_SOURCE_DIR/io/fetch-vocab.sh" "$TMP/v2" >"$TMP/log" 2>&1 \
  && fail "fetch-vocab refuses the wrong file" || pass "fetch-vocab refuses the wrong file"
finish
