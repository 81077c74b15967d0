#!/usr/bin/env bash
# adebert import / export on the Hugging Face fixtures of tests/reference/hf (made by
# tests/reference/gen_hf_models.py): every weight format and name variant imports,
# the reports name what was initialised or dropped, bad inputs give one line, a
# non-zero exit and no output, and import -> export -> import -> export is
# bit-identical. Needs python3 (standard library only) to read safetensors.
source "$(dirname "$0")/lib.bash"
SRC="${ADEBERT_SOURCE_DIR:?ADEBERT_SOURCE_DIR not set}"
FIX="$SRC/tests/reference/hf"
[ -f "$FIX/expected.json" ] || { echo "FAIL fixtures missing at $FIX"; exit 1; }

expect_exit 0 "import --help" -- "$BIN" import --help
grep -q "usage: adebert import" "$TMP/out" || fail "import --help prints usage"
expect_exit 0 "export --help" -- "$BIN" export --help
grep -q "usage: adebert export" "$TMP/out" || fail "export --help prints usage"
expect_exit 2 "import without arguments" -- "$BIN" import
expect_exit 2 "export without arguments" -- "$BIN" export
expect_exit 2 "import --lowercase --cased" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/x.h5" --lowercase --cased
expect_exit 2 "import bad --seed" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/x.h5" --seed -1
expect_exit 2 "import stray argument" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/x.h5" extra

"$BIN" version >"$TMP/version.txt" 2>&1
if grep -q "HDF5 *not built" "$TMP/version.txt"; then
  # Without HDF5 there are no checkpoints: both refuse with one line, write nothing.
  expect_exit 1 "import without HDF5" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/x.h5"
  grep -q "HDF5" "$TMP/err" && pass "import names HDF5" || fail "import names HDF5: $(cat "$TMP/err")"
  [ ! -e "$TMP/x.h5" ] && pass "no checkpoint written" || fail "no checkpoint written"
  expect_exit 1 "export without HDF5" -- "$BIN" export --checkpoint "$TMP/x.h5" --out "$TMP/exp"
  [ ! -e "$TMP/exp" ] && pass "no export written" || fail "no export written"
  finish
fi

# st_read FILE: prints "name dtype shape sha" per tensor, values as fp32 bits (so F16/BF16
# sources compare with F32 exports exactly), sorted by name.
st_read() {
  python3 - "$1" <<'PY'
import hashlib, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
data = b[8 + n:]
out = []
for name, t in h.items():
    if name == "__metadata__":
        continue
    s, e = t["data_offsets"]
    raw = data[s:e]
    if t["dtype"] == "F32":
        f32 = raw
    elif t["dtype"] == "F16":
        f32 = struct.pack("<%df" % (len(raw) // 2), *struct.unpack("<%de" % (len(raw) // 2), raw))
    elif t["dtype"] == "BF16":
        f32 = b"".join(b"\0\0" + raw[i:i + 2] for i in range(0, len(raw), 2))
    else:
        continue
    out.append("%s %s %s" % (name, t["shape"], hashlib.sha256(f32).hexdigest()[:16]))
print("\n".join(sorted(out)))
PY
}

# ---------------------------------------------------------------- imports
declare -A want_lc=([st_f32]=false [st_f16]=true [st_bf16]=true [bin_zip]=false [bin_legacy]=false
  [noprefix]=false [gammabeta]=false [pretraining]=false [nopooler]=false)
for v in st_f32 st_f16 st_bf16 bin_zip bin_legacy noprefix gammabeta pretraining nopooler; do
  "$BIN" import --hf "$FIX/$v" --out "$TMP/$v.h5" >"$TMP/out" 2>"$TMP/$v.err"
  rc=$?
  if [ $rc -ne 0 ]; then fail "import $v: exit $rc: $(head -c 300 "$TMP/$v.err")"; continue; fi
  [ -s "$TMP/$v.h5" ] && pass "import $v" || fail "import $v wrote no checkpoint"
  if "$BIN" export --checkpoint "$TMP/$v.h5" --out "$TMP/exp_$v" >/dev/null 2>"$TMP/err"; then
    pass "export $v"
  else
    fail "export $v: $(cat "$TMP/err")"; continue
  fi
  lc=$(json_get "$TMP/exp_$v/tokenizer_config.json" "str(j['do_lower_case']).lower()")
  [ "$lc" = "${want_lc[$v]}" ] && pass "$v: casing do_lower_case=$lc" || fail "$v: do_lower_case=$lc, want ${want_lc[$v]}"
done
grep -q "WARNING: .*no tokenizer_config.json.*uppercase" "$TMP/st_f16.err" && pass "st_f16: loud casing warning" ||
  fail "st_f16: casing warning: $(cat "$TMP/st_f16.err")"
[ ! -s "$TMP/st_f32.err" ] && pass "st_f32: nothing on stderr" || fail "st_f32: stderr: $(cat "$TMP/st_f32.err")"
grep -q "warning: 1 tensor .* not used: lm_head.bias" "$TMP/noprefix.err" && pass "noprefix: unknown tensor reported" ||
  fail "noprefix: unknown tensor report: $(cat "$TMP/noprefix.err")"
grep -q "initialised .*classifier.weight, classifier.bias" "$TMP/pretraining.err" && pass "pretraining: classifier init reported" ||
  fail "pretraining: report: $(cat "$TMP/pretraining.err")"
grep -qE "cls\.|position_ids" "$TMP/pretraining.err" && fail "pretraining: cls.*/position_ids must be dropped silently" ||
  pass "pretraining: cls.* and position_ids dropped silently"
grep -q "initialised .*bert.pooler.dense.weight, bert.pooler.dense.bias, classifier.weight" "$TMP/nopooler.err" &&
  pass "nopooler: pooler init reported" || fail "nopooler: report: $(cat "$TMP/nopooler.err")"

# Every F32 encoding gives the same export, byte for byte (names, values, config).
for v in bin_zip bin_legacy noprefix gammabeta; do
  if diff -r "$TMP/exp_st_f32" "$TMP/exp_$v" >/dev/null; then pass "$v exports exactly as st_f32"
  else fail "$v exports differently from st_f32"; fi
done
# Exported tensors equal the source tensors exactly (F16/BF16 widened to fp32).
for v in st_f32 st_f16 st_bf16; do
  st_read "$FIX/$v/model.safetensors" >"$TMP/src_$v.txt"
  st_read "$TMP/exp_$v/model.safetensors" >"$TMP/dst_$v.txt"
  if diff "$TMP/src_$v.txt" "$TMP/dst_$v.txt" >/dev/null; then pass "$v: exported tensors == source"
  else fail "$v: exported tensors differ: $(diff "$TMP/src_$v.txt" "$TMP/dst_$v.txt" | head -3)"; fi
done
# The pooler of nopooler is initialised (differs from the real one), the rest is equal.
st_read "$TMP/exp_nopooler/model.safetensors" | grep -v -e pooler -e classifier >"$TMP/np.txt"
grep -v -e pooler -e classifier "$TMP/src_st_f32.txt" | diff - "$TMP/np.txt" >/dev/null && pass "nopooler: encoder equal" ||
  fail "nopooler: encoder differs"
python3 - "$TMP/exp_st_f32" <<'PY' && pass "export: metadata, config and labels" || fail "export: metadata, config and labels"
import json, struct, sys
d = sys.argv[1]
b = open(d + "/model.safetensors", "rb").read(8)
h = json.loads(open(d + "/model.safetensors", "rb").read(8 + struct.unpack("<Q", b)[0])[8:])
assert h["__metadata__"] == {"format": "pt"}, h.get("__metadata__")
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["BertForSequenceClassification"] and c["model_type"] == "bert"
assert c["id2label"] == {"0": "Not_AE", "1": "Adverse_Event"}, c["id2label"]
assert c["label2id"] == {"Not_AE": 0, "Adverse_Event": 1}, c["label2id"]
t = json.load(open(d + "/tokenizer_config.json"))
assert t["tokenizer_class"] == "BertTokenizer" and t["model_max_length"] == 24, t
PY

# Casing flags override tokenizer_config.json / the default.
"$BIN" import --hf "$FIX/st_f16" --out "$TMP/f16c.h5" --cased >/dev/null 2>"$TMP/err" || fail "import --cased"
grep -q WARNING "$TMP/err" && fail "--cased silences the casing warning" || pass "--cased silences the casing warning"
"$BIN" export --checkpoint "$TMP/f16c.h5" --out "$TMP/exp_f16c" >/dev/null 2>&1
[ "$(json_get "$TMP/exp_f16c/tokenizer_config.json" "j['do_lower_case']")" = False ] && pass "--cased recorded" ||
  fail "--cased recorded"
"$BIN" import --hf "$FIX/st_f32" --out "$TMP/f32l.h5" --lowercase >/dev/null 2>"$TMP/err" || fail "import --lowercase"
grep -q "overrides tokenizer_config.json's do_lower_case=false" "$TMP/err" && pass "--lowercase against tokenizer_config noted" ||
  fail "--lowercase note: $(cat "$TMP/err")"

# -------------------------------------------------------------- round trip
"$BIN" import --hf "$TMP/exp_st_f32" --out "$TMP/rt.h5" >/dev/null 2>"$TMP/err" || fail "re-import export: $(cat "$TMP/err")"
"$BIN" export --checkpoint "$TMP/rt.h5" --out "$TMP/exp_rt" >/dev/null 2>"$TMP/err" || fail "re-export: $(cat "$TMP/err")"
diff -r "$TMP/exp_st_f32" "$TMP/exp_rt" >/dev/null && pass "import -> export -> import -> export is bit-identical" ||
  fail "round trip differs: $(diff -r "$TMP/exp_st_f32" "$TMP/exp_rt" | head -3)"
if command -v h5dump >/dev/null; then
  h5dump -g /model "$TMP/st_f32.h5" >"$TMP/m1.txt" 2>/dev/null
  h5dump -g /model "$TMP/rt.h5" >"$TMP/m2.txt" 2>/dev/null
  sed -i 1d "$TMP/m1.txt" "$TMP/m2.txt"  # the file name
  [ -s "$TMP/m1.txt" ] && cmp -s "$TMP/m1.txt" "$TMP/m2.txt" && pass "checkpoint parameters bit-identical (h5dump)" ||
    fail "checkpoint parameters differ (h5dump)"
fi

# ------------------------------------------------------------- bad inputs
no_output() { # DESC PATH: nothing at PATH and no temporaries next to it
  local left; left=$(ls -d "$2"* "$2".tmp* 2>/dev/null | head -3)
  [ -z "$left" ] && pass "$1: nothing written" || fail "$1: left $left"
}
bad_import() { # DESC DIR PATTERN
  expect_exit 1 "$1" -- "$BIN" import --hf "$2" --out "$TMP/bad.h5"
  grep -q -- "$3" "$TMP/err" && pass "$1: error names the cause" || fail "$1: error '$(cat "$TMP/err")' lacks '$3'"
  no_output "$1" "$TMP/bad.h5"
}
bad_import "pickle calling os.system" "$FIX/bad_pickle" "os.system"
bad_import "safetensors header lying about offsets" "$FIX/bad_offsets" "do not match its shape or the data size"
bad_import "missing encoder tensor" "$FIX/bad_missing_encoder" "bert.encoder.layer.1.output.dense.weight is missing"
bad_import "not a directory" "$FIX/st_f32/config.json" "not a directory"
bad_import "no such directory" "$TMP/nowhere" "not a directory"
mkdir -p "$TMP/novocab" && cp "$FIX/st_f32/config.json" "$FIX/st_f32/model.safetensors" "$TMP/novocab/"
bad_import "missing vocab.txt" "$TMP/novocab" "missing vocab.txt"
mkdir -p "$TMP/noconfig" && cp "$FIX/st_f32/vocab.txt" "$FIX/st_f32/model.safetensors" "$TMP/noconfig/"
bad_import "missing config.json" "$TMP/noconfig" "config.json"
mkdir -p "$TMP/noweights" && cp "$FIX/st_f32/config.json" "$FIX/st_f32/vocab.txt" "$TMP/noweights/"
bad_import "no weights file" "$TMP/noweights" "no model.safetensors or pytorch_model.bin"
cp -r "$FIX/st_f32" "$TMP/badtok" && echo '{"do_lower_case": 1}' >"$TMP/badtok/tokenizer_config.json"
bad_import "bad tokenizer_config.json" "$TMP/badtok" "do_lower_case"
cp -r "$FIX/st_f32" "$TMP/wide" && sed -i 's/"intermediate_size": 32/"intermediate_size": 40/' "$TMP/wide/config.json"
bad_import "shapes against config.json" "$TMP/wide" "config.json implies"
cp -r "$FIX/st_f32" "$TMP/trunc" && head -c 20000 "$FIX/st_f32/model.safetensors" >"$TMP/trunc/model.safetensors"
bad_import "truncated safetensors" "$TMP/trunc" "safetensors"
cp -r "$FIX/bin_zip" "$TMP/truncbin" && head -c 20000 "$FIX/bin_zip/pytorch_model.bin" >"$TMP/truncbin/pytorch_model.bin"
bad_import "truncated pytorch_model.bin" "$TMP/truncbin" "pytorch_model.bin"
cp -r "$FIX/st_f32" "$TMP/tfonly" && mv "$TMP/tfonly/model.safetensors" "$TMP/tfonly/tf_model.h5"
bad_import "TensorFlow weights only" "$TMP/tfonly" "TensorFlow"

expect_exit 1 "import into a missing directory" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/nodir/x.h5"
echo keep >"$TMP/exists.h5"
expect_exit 1 "import onto an existing file" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/exists.h5"
[ "$(cat "$TMP/exists.h5")" = keep ] && pass "existing file untouched" || fail "existing file untouched"
expect_exit 0 "import --force replaces it" -- "$BIN" import --hf "$FIX/st_f32" --out "$TMP/exists.h5" --force

expect_exit 1 "export a missing checkpoint" -- "$BIN" export --checkpoint "$TMP/none.h5" --out "$TMP/bad_exp"
no_output "export a missing checkpoint" "$TMP/bad_exp"
head -c 50000 "$TMP/st_f32.h5" >"$TMP/trunc.h5"
expect_exit 1 "export a truncated checkpoint" -- "$BIN" export --checkpoint "$TMP/trunc.h5" --out "$TMP/bad_exp"
no_output "export a truncated checkpoint" "$TMP/bad_exp"
expect_exit 1 "export onto a file" -- "$BIN" export --checkpoint "$TMP/st_f32.h5" --out "$TMP/exists.h5"
expect_exit 1 "export into a non-empty directory" -- "$BIN" export --checkpoint "$TMP/st_f16.h5" --out "$TMP/exp_st_f32"
diff -r "$TMP/exp_st_f32" "$TMP/exp_rt" >/dev/null && pass "non-empty directory untouched" || fail "non-empty directory untouched"
mkdir "$TMP/empty"
expect_exit 0 "export into an empty directory" -- "$BIN" export --checkpoint "$TMP/st_f32.h5" --out "$TMP/empty/"
diff -r "$TMP/exp_st_f32" "$TMP/empty" >/dev/null && pass "export into an empty directory: complete" || fail "export into empty dir differs"
expect_exit 0 "export --force replaces an export" -- "$BIN" export --checkpoint "$TMP/st_f16.h5" --out "$TMP/empty" --force
diff -r "$TMP/exp_st_f16" "$TMP/empty" >/dev/null && pass "--force: new contents" || fail "--force: contents differ"
left=$(ls -d "$TMP"/*.tmp.* "$TMP"/*.old-* 2>/dev/null | head -3)
[ -z "$left" ] && pass "no temporary directories left" || fail "temporaries left: $left"
mkdir -p "$TMP/withsub/sub"
expect_exit 1 "export --force refuses a directory with subdirectories" -- "$BIN" export --checkpoint "$TMP/st_f32.h5" --out "$TMP/withsub" --force
[ -d "$TMP/withsub/sub" ] && pass "that directory untouched" || fail "that directory untouched"
finish
