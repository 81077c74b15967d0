#!/usr/bin/env bash
# adebert tokenize against ids produced by Hugging Face tokenizers 0.20.3
# (BertWordPieceTokenizer) for the same vocab files.
source "$(dirname "$0")/lib.bash"
require_corpus

printf 'Hello, world!\nNaproxen-induced pseudoporphyria in \xc3\x85ngstr\xc3\xb6m units.\n\n' >"$TMP/in.txt"
"$BIN" tokenize --vocab "$CASED_VOCAB" --cased <"$TMP/in.txt" >"$TMP/cased.txt" || fail "tokenize ran"
cat >"$TMP/cased.want" <<'W'
101 8667 117 1362 106 102
101 11896 1643 2180 25926 118 10645 23563 18876 22192 3464 1107 230 2118 2050 26370 2338 119 102
101 102
W
diff -u "$TMP/cased.want" "$TMP/cased.txt" && pass "cased ids match HF" || fail "cased ids match HF"
"$BIN" tokenize --vocab "$UNCASED_VOCAB" --lowercase <"$TMP/in.txt" >"$TMP/uncased.txt"
cat >"$TMP/uncased.want" <<'W'
101 7592 1010 2088 999 102
101 18996 3217 2595 2368 1011 10572 18404 17822 21281 4360 1999 17076 15687 3197 1012 102
101 102
W
diff -u "$TMP/uncased.want" "$TMP/uncased.txt" && pass "uncased ids match HF" || fail "uncased ids match HF"
# Negative control: the wrong casing must give different ids.
"$BIN" tokenize --vocab "$CASED_VOCAB" --lowercase <"$TMP/in.txt" >"$TMP/wrong.txt" 2>/dev/null
cmp -s "$TMP/cased.want" "$TMP/wrong.txt" && fail "casing changes the ids" || pass "casing changes the ids"

printf 'Hello, world!\n' | "$BIN" tokenize --vocab "$CASED_VOCAB" --cased --tokens >"$TMP/tok.txt"
[ "$(cat "$TMP/tok.txt")" = "[CLS] Hello , world ! [SEP]" ] && pass "--tokens prints pieces" || fail "--tokens prints pieces: $(cat "$TMP/tok.txt")"
printf 'Hello, world!\n' | "$BIN" tokenize --vocab "$CASED_VOCAB" --cased --max-seq-len 4 >"$TMP/trunc.txt"
[ "$(cat "$TMP/trunc.txt")" = "101 8667 117 102" ] && pass "--max-seq-len truncates keeping [SEP]" || fail "--max-seq-len: $(cat "$TMP/trunc.txt")"

printf 'fine\nbad \xff byte\n' >"$TMP/bad.txt"
expect_exit 1 "invalid UTF-8 is rejected" -- "$BIN" tokenize --vocab "$CASED_VOCAB" --cased --max-seq-len 8 <"$TMP/bad.txt"
grep -q "line 2" "$TMP/err" && pass "invalid UTF-8 error names the line" || fail "invalid UTF-8 error names the line: $(cat "$TMP/err")"
printf '[PAD]\nhello\n' >"$TMP/vocab_nounk.txt"
expect_exit 1 "vocab without [UNK]/[CLS]/[SEP]" -- "$BIN" tokenize --vocab "$TMP/vocab_nounk.txt" --cased </dev/null
finish
