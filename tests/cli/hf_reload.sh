#!/usr/bin/env bash
# adebert's export loaded back by Hugging Face Transformers: two random tiny BERTs
# (the real bert-base-cased vocab with a cased tokenizer, bert-base-uncased with a
# lowercasing one) are made by Transformers, imported, exported, and the export is
# loaded with BertForSequenceClassification + AutoTokenizer; HF's softmax[:, 1] on
# 21 ADE corpus sentences (one longer than max_seq_len, so truncation is compared
# too) must equal `adebert predict`'s p_adverse_event (<= 1e-4 relative).
#
# Needs a Python with torch + transformers + safetensors: $ADEBERT_REF_PYTHON, else
# ~/.cache/adebert-venv/bin/python (what launch/install-deps.sh makes), else
# python3. Without one the test is skipped (exit 77) -- except in CI (env CI set),
# where it fails.
source "$(dirname "$0")/lib.bash"
require_corpus

"$BIN" version >"$TMP/version.txt" 2>&1
if grep -q "HDF5 *not built" "$TMP/version.txt"; then
  # no checkpoints in this build: import must refuse in one line (tests/cli/import_export.sh has the rest)
  expect_exit 1 "import without HDF5" -- "$BIN" import --hf "$ADEBERT_SOURCE_DIR/tests/reference/hf/st_f32" --out "$TMP/x.h5"
  finish
fi

PY=""
for cand in "${ADEBERT_REF_PYTHON:-}" "${ADEBERT_VENV:-${HOME:-/tmp}/.cache/adebert-venv}/bin/python" python3; do
  [ -n "$cand" ] || continue
  if "$cand" -c "import torch, transformers, safetensors, tokenizers" >/dev/null 2>&1; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then
  msg="no Python with torch + transformers + safetensors (set ADEBERT_REF_PYTHON or run launch/install-deps.sh)"
  if [ -n "${CI:-}" ]; then echo "FAIL $msg"; exit 1; fi
  echo "SKIPPED: $msg"; exit 77
fi
echo "python: $PY ($("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>/dev/null))"
export TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1 HF_HOME="$TMP/hf_home" TOKENIZERS_PARALLELISM=false

# 10 ADE and 10 negative sentences spread over the corpus, and the longest ADE one
{
  awk -F'|' 'NR % 650 == 1 { print $2 }' "$CORPUS/DRUG-AE.rel" | head -10
  awk 'NR % 1600 == 1 { sub(/^[0-9]+ NEG /, ""); print }' "$CORPUS/ADE-NEG.txt" | head -10
  awk -F'|' '{ print length($2) "\t" $2 }' "$CORPUS/DRUG-AE.rel" | sort -n | tail -1 | cut -f2-
} >"$TMP/sentences.txt"
n=$(wc -l <"$TMP/sentences.txt")
[ "$n" -eq 21 ] && pass "21 sentences" || fail "sentences: got $n"

# make NAME VOCAB LOWER: a random BertForSequenceClassification as Transformers saves it
make_model() {
  "$PY" - "$TMP/$1" "$2" "$3" <<'PY'
import sys, torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
out, vocab, lower = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
torch.manual_seed(11 if lower else 12)
n = sum(1 for _ in open(vocab, encoding="utf-8"))
cfg = BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=48)
m = BertForSequenceClassification(cfg)
with torch.no_grad():  # spread values so that p(ADE) varies across sentences
    for name, p in m.named_parameters():
        if "LayerNorm" not in name:
            p.normal_(0.0, 0.25)
m.save_pretrained(out, safe_serialization=True)
BertTokenizerFast(vocab_file=vocab, do_lower_case=lower).save_pretrained(out)
PY
}
# hf_probs DIR LOWER OUT: HF's p(ADE) on the sentences (float64), after checking the
# directory loads cleanly and its tokenizer has the expected casing
hf_probs() {
  "$PY" - "$1" "$2" "$TMP/sentences.txt" "$3" <<'PY'
import json, sys, torch
from transformers import AutoTokenizer, BertForSequenceClassification, BertTokenizerFast
d, lower, sents, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
model, info = BertForSequenceClassification.from_pretrained(d, output_loading_info=True)
bad = {k: v for k, v in info.items() if v}
assert not bad, f"loading info: {bad}"
if "exp_" in d:
    assert model.config.id2label == {0: "Not_AE", 1: "Adverse_Event"}, model.config.id2label
tok = AutoTokenizer.from_pretrained(d)
assert isinstance(tok, BertTokenizerFast), type(tok)
norm = json.loads(tok.backend_tokenizer.to_str())["normalizer"]
assert norm["lowercase"] == lower, norm
model = model.double().eval()
lines = open(sents, encoding="utf-8").read().split("\n")[:-1]
ps, lens = [], []
with torch.no_grad():
    for s in lines:
        limit = min(tok.model_max_length, model.config.max_position_embeddings)
        enc = tok(s, truncation=True, max_length=limit, return_tensors="pt")
        lens.append(enc["input_ids"].shape[1])
        ps.append(torch.softmax(model(**enc).logits[0], -1)[1].item())
json.dump({"p": ps, "lens": lens, "max_len": min(tok.model_max_length, model.config.max_position_embeddings)},
          open(out, "w"))
PY
}
# compare FILE_HF PREDICT_OUT DESC
compare() {
  python3 - "$1" "$2" <<'PY'
import json, sys
hf = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(hf["p"]), (len(rows), len(hf["p"]))
worst = 0.0
for i, (r, p) in enumerate(zip(rows, hf["p"])):
    q = r["p_adverse_event"]
    rel = abs(q - p) / max(abs(p), 1e-30)
    worst = max(worst, rel)
    assert rel <= 1e-4, f"line {i + 1}: adebert {q!r} vs HF {p!r} (relative {rel:.3g})"
    assert r["label"] == ("Adverse_Event" if q >= 0.5 else "Not_AE"), f"line {i + 1}: label {r['label']}"
spread = max(hf["p"]) - min(hf["p"])
assert spread > 0.05, f"p(ADE) hardly varies ({spread:.3g}): a weak check"
assert max(hf["lens"]) == hf["max_len"], f"no sentence reaches max_seq_len {hf['max_len']}: truncation untested"
print(f"max relative difference {worst:.3g} over {len(rows)} sentences; p in [{min(hf['p']):.3f}, {max(hf['p']):.3f}]")
PY
}

for spec in "cased:$CASED_VOCAB:0" "uncased:$UNCASED_VOCAB:1"; do
  IFS=: read -r name vocab lower <<<"$spec"
  if ! make_model "src_$name" "$vocab" "$lower" 2>"$TMP/err"; then fail "$name: make the HF model: $(tail -3 "$TMP/err")"; continue; fi
  "$BIN" import --hf "$TMP/src_$name" --out "$TMP/$name.h5" >/dev/null 2>"$TMP/err" &&
    pass "$name: import" || { fail "$name: import: $(cat "$TMP/err")"; continue; }
  "$BIN" export --checkpoint "$TMP/$name.h5" --out "$TMP/exp_$name" >/dev/null 2>"$TMP/err" &&
    pass "$name: export" || { fail "$name: export: $(cat "$TMP/err")"; continue; }
  "$BIN" predict --checkpoint "$TMP/$name.h5" <"$TMP/sentences.txt" >"$TMP/pred_$name.jsonl" 2>"$TMP/err" &&
    pass "$name: predict" || { fail "$name: predict: $(head -3 "$TMP/err")"; continue; }
  if hf_probs "$TMP/exp_$name" "$lower" "$TMP/hf_$name.json" 2>"$TMP/err"; then
    pass "$name: HF loads the export (no missing/unexpected keys, casing $lower)"
  else
    fail "$name: HF load of the export: $(grep -v Warning "$TMP/err" | tail -3)"; continue
  fi
  if compare "$TMP/hf_$name.json" "$TMP/pred_$name.jsonl" >"$TMP/cmp" 2>&1; then
    pass "$name: adebert predict == HF on the export ($(cat "$TMP/cmp"))"
  else
    fail "$name: $(tail -1 "$TMP/cmp")"
  fi
  # the original directory gives HF the same numbers: export preserved the model
  if hf_probs "$TMP/src_$name" "$lower" "$TMP/hfsrc_$name.json" 2>"$TMP/err" &&
    python3 -c "import json,sys; a,b=(json.load(open(f))['p'] for f in sys.argv[1:]); sys.exit(a!=b)" \
      "$TMP/hf_$name.json" "$TMP/hfsrc_$name.json"; then
    pass "$name: HF on the original == HF on the export, exactly"
  else
    fail "$name: HF on the original differs from HF on the export"
  fi
done
finish
