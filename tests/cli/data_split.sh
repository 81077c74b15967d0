#!/usr/bin/env bash
# adebert data split: the rows of a split as files with a hashed manifest; train and
# eval on such a folder use exactly the rows the flags name; a changed file is refused.
source "$(dirname "$0")/lib.bash"
require_corpus

S="$TMP/splits/grouped"   # nested: parents are created
expect_exit 0 "data split grouped" -- "$BIN" data split --data "$CORPUS" --out "$S" --split grouped --seed 42
for f in train val test; do
  n=$(wc -l <"$S/$f.jsonl")
  want=$(json_get "$S/manifest.json" "j['files']['$f']['rows']")
  [ "$n" = "$want" ] && pass "$f.jsonl has the manifest's $want rows" || fail "$f.jsonl: $n rows, manifest $want"
  sha=$(sha256sum "$S/$f.jsonl" | cut -d' ' -f1)
  [ "$sha" = "$(json_get "$S/manifest.json" "j['files']['$f']['sha256']")" ] && pass "$f.jsonl sha256" ||
    fail "$f.jsonl sha256 differs from the manifest"
  [ "$(stat -c %a "$S/$f.jsonl")" = 600 ] && pass "$f.jsonl is 0600" || fail "$f.jsonl mode $(stat -c %a "$S/$f.jsonl")"
done
[ "$(stat -c %a "$S")" = 700 ] && pass "folder is 0700" || fail "folder mode $(stat -c %a "$S")"
check_py() { # desc python-code (files in argv)
  if python3 -c "$2" "$S" >"$TMP/py.out" 2>&1; then pass "$1"; else fail "$1: $(head -c 300 "$TMP/py.out")"; fi
}
check_py "grouped: no text and no group in both train and test; ids unique" "
import json, sys
d = sys.argv[1]
rows = {p: [json.loads(l) for l in open(f'{d}/{p}.jsonl')] for p in ('train', 'val', 'test')}
tr_text = {r['text'] for r in rows['train']}
tr_grp = {r['group'] for r in rows['train']}
assert not any(r['text'] in tr_text for r in rows['test'])
assert not any(r['group'] in tr_grp for r in rows['test'])
ids = [r['id'] for p in rows for r in rows[p]]
assert len(ids) == len(set(ids)) == 23516, len(ids)
assert all(r['label'] in (0, 1) for p in rows for r in rows[p])
"
expect_exit 1 "an existing --out is refused" -- "$BIN" data split --data "$CORPUS" --out "$S"
expect_exit 2 "a bad --test-fraction is a usage error" -- "$BIN" data split --out "$TMP/x" --test-fraction 0
expect_exit 2 "--out is required" -- "$BIN" data split --data "$CORPUS"
[ ! -e "$TMP/x" ] && pass "nothing written on a usage error" || fail "a usage error left $TMP/x"
ls "$TMP/splits" | grep -q tmp && fail "a temporary folder was left" || pass "no temporary folder left"

# Training on the folder == training with the flags that made it. Dropout off: masks
# are keyed by row id, and a folder numbers its rows anew (train, val, test).
cat >"$TMP/tiny0.json" <<'EOF'
{"model_type": "bert", "vocab_size": 28996, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
 "intermediate_size": 64, "max_position_embeddings": 512, "type_vocab_size": 2,
 "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
EOF
common=(--model "$TMP/tiny0.json" --vocab "$CASED_VOCAB" --cased --epochs 1 --max-steps 8 --lr 1e-3
        --limit 200 --max-seq-len 64 --save-every none --quiet)
"$BIN" train --data "$CORPUS" --split grouped --split-seed 42 "${common[@]}" --out "$TMP/runs/flags" \
  >"$TMP/flags.out" 2>&1 || fail "train with flags: $(tail -2 "$TMP/flags.out")"
"$BIN" train --data "$S" "${common[@]}" --out "$TMP/runs/folder" >"$TMP/folder.out" 2>&1 ||
  fail "train on the folder: $(tail -2 "$TMP/folder.out")"
same_metrics() { python3 - "$1" "$2" <<'PY'
import json, sys
def rows(p):
    out = []
    for l in open(p):
        j = json.loads(l)
        for k in ("seconds", "tokens_per_s", "rss_bytes", "peak_rss_bytes"):
            j.pop(k, None)
        out.append(j)
    return out
a, b = rows(sys.argv[1] + "/metrics.jsonl"), rows(sys.argv[2] + "/metrics.jsonl")
sys.exit(0 if a == b and len(a) == 2 else 1)
PY
}
same_metrics "$TMP/runs/flags" "$TMP/runs/folder" && pass "folder run == flags run (every metric)" ||
  fail "folder run differs from the flags run"
if [ "$(json_get "$TMP/runs/folder/config.json" "j['split_sha256']['test']")" = \
     "$(json_get "$S/manifest.json" "j['files']['test']['sha256']")" ]; then
  pass "the run records the folder's hashes"
else
  fail "config.json lacks the folder's hashes"
fi
# negative control: another split seed gives other rows and other metrics
"$BIN" train --data "$CORPUS" --split grouped --split-seed 7 "${common[@]}" --out "$TMP/runs/seed7" >/dev/null 2>&1
same_metrics "$TMP/runs/flags" "$TMP/runs/seed7" && fail "split seed 7 gave the same metrics" ||
  pass "another --split-seed changes the metrics (control)"

# eval of a checkpoint trained on a folder reads the same folder: its test record again
"$BIN" version >"$TMP/version.txt" 2>&1
if grep -q "HDF5 .*(checkpoints)" "$TMP/version.txt"; then
  "$BIN" train --data "$S" "${common[@]/none/epoch}" --out "$TMP/runs/ckpt" >/dev/null 2>&1 ||
    fail "train on the folder with checkpoints"
  "$BIN" eval --checkpoint "$TMP/runs/ckpt/best.h5" --json >"$TMP/eval.json" 2>"$TMP/eval.err" ||
    fail "eval of the folder run: $(cat "$TMP/eval.err")"
  python3 - "$TMP/eval.json" "$TMP/runs/ckpt/metrics.jsonl" <<'PY' && pass "eval on the folder reproduces the run's test record" || fail "eval differs from the run's test record"
import json, sys
e = json.load(open(sys.argv[1]))
t = [json.loads(l) for l in open(sys.argv[2]) if '"test"' in l][-1]
sys.exit(0 if all(e[k] == t[k] for k in ("tp", "fp", "tn", "fn", "f1", "roc_auc", "eval_loss")) else 1)
PY
fi

# A changed file is refused, naming it, before anything is trained.
cp -r "$S" "$TMP/changed"
sed -i '1s/"label":[01]/"label":9/' "$TMP/changed/test.jsonl"
expect_exit 1 "train on a changed folder is refused" -- "$BIN" train --data "$TMP/changed" "${common[@]}" \
  --out "$TMP/runs/changed"
grep -q "test.jsonl: sha256 does not match" "$TMP/err" && pass "the error names the changed file" ||
  fail "error: $(cat "$TMP/err")"
[ ! -e "$TMP/runs/changed/metrics.jsonl" ] && pass "no run written" || fail "a run was written"
finish
