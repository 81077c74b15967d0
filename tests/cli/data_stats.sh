#!/usr/bin/env bash
# adebert data stats reproduces the corpus facts: counts, split sizes, leakage,
# token lengths; the same seed gives the same split; no corpus text is printed.
source "$(dirname "$0")/lib.bash"
require_corpus

stats() { "$BIN" data stats --data "$CORPUS" --json "$@"; }
check() { # file expr desc
  if [ "$(json_get "$1" "$2")" = "True" ]; then pass "$3"; else fail "$3: $(cat "$1")"; fi
}

stats --view hf --split random --seed 42 >"$TMP/hf_random.json" || fail "hf random ran"
check "$TMP/hf_random.json" "j['rows']==23516 and j['positives']==6821 and j['negatives']==16695" "hf view counts"
check "$TMP/hf_random.json" "j['test_rows']==4704 and j['train_rows']+j['val_rows']==18812" "80/20 sizes (test = ceil(0.2 n))"
check "$TMP/hf_random.json" "abs(j['val_rows']-1881)<=1" "val is 10% of train"
check "$TMP/hf_random.json" "600<=j['leaked_test_rows']<=800" "random split of hf leaks ~700 test rows"
check "$TMP/hf_random.json" "0.40<=j['leaked_test_positives']/j['test_positives']<=0.65" "about half the test positives leak"
check "$TMP/hf_random.json" "j['leaked_test_positives']<=j['leaked_test_rows']" "leaked positives <= leaked rows"

stats --view hf --split random --seed 42 >"$TMP/again.json"
cmp -s "$TMP/hf_random.json" "$TMP/again.json" && pass "same seed, same split" || fail "same seed, same split"
stats --view hf --split random --seed 7 >"$TMP/seed7.json"
cmp -s "$TMP/hf_random.json" "$TMP/seed7.json" && fail "another seed changes the split" || pass "another seed changes the split"

stats --view hf --split grouped >"$TMP/grouped.json"
check "$TMP/grouped.json" "j['leaked_test_rows']==0 and j['leaked_val_rows']==0" "grouped split leaks nothing"
check "$TMP/grouped.json" "abs(j['test_rows']-4704)<=200" "grouped test part is ~20%"

stats --view hf --split stratified >"$TMP/strat.json"
check "$TMP/strat.json" "abs(j['test_positives']/j['test_rows']-6821/23516)<0.002" "stratified keeps the class ratio"

stats --view dedup --split random >"$TMP/dedup.json"
check "$TMP/dedup.json" "j['rows']==20896 and j['positives']==4271 and j['negatives']==16625" "dedup view counts"
check "$TMP/dedup.json" "j['leaked_test_rows']==0" "dedup leaks nothing"

stats --view hf --vocab "$CASED_VOCAB" --cased >"$TMP/len.json"
check "$TMP/len.json" "28<=j['token_length']['p50']<=36 and 85<=j['token_length']['p99']<=100" "token lengths: median ~32, p99 ~92"
check "$TMP/len.json" "j['token_length']['p50']<=j['token_length']['p90']<=j['token_length']['p99']<=j['token_length']['max']" "percentiles ordered"

# The human table, and no corpus text anywhere in what adebert prints.
"$BIN" data stats --data "$CORPUS" --vocab "$CASED_VOCAB" >"$TMP/table.txt" 2>"$TMP/table.err" || fail "table ran"
grep -q "leakage" "$TMP/table.txt" && grep -q "warning" "$TMP/table.txt" && pass "table shows leakage and warns" || fail "table shows leakage and warns"
grep -q "note: no --lowercase/--cased given; using --cased" "$TMP/table.err" && pass "casing default is announced" || fail "casing default is announced"
sentence=$(head -1 "$CORPUS/DRUG-AE.rel" | cut -d'|' -f2)
if grep -qF "$sentence" "$TMP/table.txt" "$TMP/table.err" "$TMP/hf_random.json"; then fail "no corpus text printed"; else pass "no corpus text printed"; fi

# Bad corpus: the error names the file and line, not the text.
mkdir -p "$TMP/bad"
cp "$CORPUS/ADE-NEG.txt" "$TMP/bad/"
{ head -3 "$CORPUS/DRUG-AE.rel"; echo "123|only three|fields"; } >"$TMP/bad/DRUG-AE.rel"
expect_exit 1 "malformed DRUG-AE line" -- "$BIN" data stats --data "$TMP/bad"
grep -q "DRUG-AE.rel" "$TMP/err" && grep -q "4" "$TMP/err" && ! grep -q "only three" "$TMP/err" \
  && pass "error names file and line, not the text" || fail "error names file and line, not the text: $(cat "$TMP/err")"
finish
