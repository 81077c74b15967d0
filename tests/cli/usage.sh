#!/usr/bin/env bash
# --help everywhere, one clear line and a usage exit (2) for every bad invocation.
source "$(dirname "$0")/lib.bash"

expect_exit 0 "adebert --help" -- "$BIN" --help
grep -q "data stats" "$TMP/out" && grep -q "tokenize" "$TMP/out" && pass "--help lists the commands" || fail "--help lists the commands"
expect_exit 0 "data stats --help" -- "$BIN" data stats --help
grep -q -- "--split grouped" "$TMP/out" && pass "data stats --help documents grouped" || fail "data stats --help documents grouped"
expect_exit 0 "tokenize --help" -- "$BIN" tokenize --help
expect_exit 0 "version" -- "$BIN" version
expect_exit 2 "no command" -- "$BIN"
expect_exit 2 "unknown command" -- "$BIN" frobnicate
expect_exit 2 "eval without --checkpoint: usage error" -- "$BIN" eval
expect_exit 2 "data without subcommand" -- "$BIN" data
expect_exit 2 "data unknown subcommand" -- "$BIN" data plot
expect_exit 2 "unknown option" -- "$BIN" data stats --bogus
expect_exit 2 "missing option value" -- "$BIN" data stats --seed
expect_exit 2 "bad view" -- "$BIN" data stats --view all
expect_exit 2 "bad split" -- "$BIN" data stats --split kfold
expect_exit 2 "negative seed" -- "$BIN" data stats --seed -1
expect_exit 2 "seed with junk" -- "$BIN" data stats --seed 12abc
expect_exit 2 "val fraction 1" -- "$BIN" data stats --val-fraction 1
expect_exit 2 "val fraction nan" -- "$BIN" data stats --val-fraction nan
expect_exit 2 "casing without vocab" -- "$BIN" data stats --cased
expect_exit 2 "stray argument" -- "$BIN" data stats extra
expect_exit 2 "tokenize without vocab" -- "$BIN" tokenize
expect_exit 2 "tokenize both casings" -- "$BIN" tokenize --vocab x --cased --lowercase
expect_exit 2 "tokenize max len 1" -- "$BIN" tokenize --vocab x --max-seq-len 1
expect_exit 1 "tokenize missing vocab file" -- "$BIN" tokenize --vocab "$TMP/none.txt" --cased
expect_exit 1 "stats on a missing corpus" -- "$BIN" data stats --data "$TMP/nowhere"
grep -q "fetch-ade-corpus" "$TMP/err" && pass "missing corpus error points at the fetch script" || fail "missing corpus error points at the fetch script"
expect_exit 0 "bench --help" -- "$BIN" bench --help
expect_exit 0 "train --help" -- "$BIN" train --help
grep -q -- "--batch-size B" "$TMP/out" && grep -q "GLOBAL batch" "$TMP/out" && pass "train --help documents the global batch" \
  || fail "train --help documents the global batch"
expect_exit 2 "bench: zero steps" -- "$BIN" bench --steps 0
expect_exit 2 "bench: unknown lengths" -- "$BIN" bench --lengths uniform
expect_exit 2 "bench: bad --device" -- "$BIN" bench --device tpu
expect_exit 2 "bench: unknown preset" -- "$BIN" bench --model huge
# a real (tiny) measurement, as JSON with the documented keys
"$BIN" bench --model tiny --batch-size 4 --seq-len 16 --steps 2 --json >"$TMP/b.json" 2>"$TMP/b.err" \
  && python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if all(j[k] > 0 for k in ('ms_per_step','tokens_per_s','gflops','peak_rss_mb')) and j['tokens_per_step'] == 64 else 1)" "$TMP/b.json" \
  && pass "bench --json reports ms_per_step, tokens_per_s, gflops, peak_rss_mb" || fail "bench --json: $(cat "$TMP/b.json" "$TMP/b.err")"
# version names the GELU/exp vector-math path, and follows ADEBERT_VECMATH
version_says "vecmath +GELU and softmax exp: (avx512|avx2) \(libmvec\)|vecmath +GELU and softmax exp: scalar" \
  && ADEBERT_VECMATH=scalar version_says "vecmath +GELU and softmax exp: scalar \(libm\)" \
  && pass "version names the vector-math path (scalar when ADEBERT_VECMATH=scalar)" || fail "version: no vecmath line"
finish
