#!/usr/bin/env bash
# Initial weights for training: `--model HF_DIR` with weights starts from them (its
# config, vocab and casing too), `--init CKPT.h5` / `--init HF_DIR` override. With
# --lr 0 (AdamW then changes nothing) the final parameters ARE the initial ones, so:
# HF folder == its imported checkpoint == --init of either, bit for bit; a missing
# classifier is initialised from the seed and named; negative control: the same
# architecture from its config.json alone (random init) differs.
source "$(dirname "$0")/lib.bash"
require_corpus
FIX="${ADEBERT_SOURCE_DIR:?}/tests/reference/hf"
if version_says "HDF5 *not built"; then
  expect_exit 2 "no HDF5: --init CKPT.h5 refused" -- "$BIN" train --out "$TMP/x" --init x.h5
  finish
fi
args=(train --data "$CORPUS" --epochs 1 --limit 64 --batch-size 16 --max-seq-len 24 --lr 0 --quiet --threads 1
      --save-every none)

"$BIN" "${args[@]}" --model "$FIX/st_f32" --out "$TMP/hf" --dump-params "$TMP/hf.bin" >"$TMP/hf.log" 2>&1 \
  && pass "train --model HF_DIR (weights, vocab, casing from the folder)" || fail "train --model HF_DIR: $(tail -2 "$TMP/hf.log")"
"$BIN" import --hf "$FIX/st_f32" --out "$TMP/st.h5" >/dev/null 2>&1 || fail "import"
"$BIN" "${args[@]}" --model "$FIX/st_f32/config.json" --vocab "$FIX/st_f32/vocab.txt" --lowercase --init "$TMP/st.h5" \
  --out "$TMP/ck" --dump-params "$TMP/ck.bin" >"$TMP/ck.log" 2>&1 || fail "--init CKPT: $(tail -2 "$TMP/ck.log")"
cmp -s "$TMP/hf.bin" "$TMP/ck.bin" && pass "--model HF_DIR == --init of its imported checkpoint, bit for bit" \
  || fail "--model HF_DIR and --init CKPT differ"
"$BIN" "${args[@]}" --model "$FIX/st_f32/config.json" --vocab "$FIX/st_f32/vocab.txt" --lowercase --init "$FIX/st_f32" \
  --out "$TMP/hd" --dump-params "$TMP/hd.bin" >"$TMP/hd.log" 2>&1 || fail "--init HF_DIR: $(tail -2 "$TMP/hd.log")"
cmp -s "$TMP/hf.bin" "$TMP/hd.bin" && pass "--init HF_DIR gives the same weights" || fail "--init HF_DIR differs"
"$BIN" "${args[@]}" --model "$FIX/st_f32/config.json" --vocab "$FIX/st_f32/vocab.txt" --lowercase \
  --out "$TMP/rnd" --dump-params "$TMP/rnd.bin" >/dev/null 2>&1
cmp -s "$TMP/hf.bin" "$TMP/rnd.bin" && fail "negative control: random init equals the HF weights" \
  || pass "negative control: config.json alone (random init) differs"
"$BIN" "${args[@]}" --model "$FIX/nopooler" --out "$TMP/np" >"$TMP/np.log" 2>&1 || fail "--model nopooler"
grep -q "pooler" "$TMP/np.log" && pass "a missing pooler is initialised and named" || fail "no pooler warning: $(cat "$TMP/np.log" | head -3)"
expect_exit 1 "--init of a checkpoint of another shape" -- "$BIN" "${args[@]}" --model tiny --vocab "$CASED_VOCAB" --cased \
  --init "$TMP/st.h5" --out "$TMP/bad"
finish
