#!/usr/bin/env bash
# Training memory stays flat across epochs (issue 12). Each metrics.jsonl record of
# `adebert train` carries rank 0's rss_bytes (now, /proc/self/statm) and peak_rss_bytes
# (getrusage); a 3-epoch tiny run (25 steps an epoch) must end with an RSS less than
# RSS_BOUND_MB above the one after its first epoch. Measured on 2 EPYC cores: +0.1 to
# +0.6 MB (bf16 and fp32); before oneDNN's primitive cache was bounded (nn/cpu/gemm.c),
# bf16 grew +27 MB over the same 3 epochs.
# Negative control: the same check on synthetic series, one growing 3 MB an epoch and
# one with RSS missing (null), must fail; a flat one must pass. Also: the records keep
# the schema's keys first, in order (backward compatible), and peak >= rss.
source "$(dirname "$0")/lib.bash"
require_corpus
RSS_BOUND_MB=4
unset ONEDNN_PRIMITIVE_CACHE_CAPACITY DNNL_PRIMITIVE_CACHE_CAPACITY

# rss_flat METRICS BOUND_MB: the RSS of the last record of each epoch; fails (printing
# why) unless there are >= 3 epochs, every value is a positive whole number, and the last
# exceeds the first by less than BOUND_MB.
rss_flat() { python3 - "$1" "$2" <<'PY'
import json, sys
by_epoch = {}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        by_epoch[r["epoch"]] = r.get("rss_bytes")
series = [by_epoch[e] for e in sorted(by_epoch)]
if len(series) < 3:
    sys.exit(f"{len(series)} epochs, want >= 3")
# (a JSON number: the writer's shortest round-trip form may be 9.015296e+07)
if not all(isinstance(v, (int, float)) and v > 0 and v == int(v) for v in series):
    sys.exit(f"rss_bytes missing or not a positive whole number: {series}")
mb = [v / 2**20 for v in series]
growth = mb[-1] - mb[0]
print("RSS per epoch (MB): " + " ".join(f"{v:.2f}" for v in mb) + f"; growth {growth:+.2f} MB")
sys.exit(0 if growth < float(sys.argv[2]) else 1)
PY
}

# ---- negative control: synthetic series
synth() { # FILE MB...: one val and one test record per epoch with these RSS figures
  python3 - "$@" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for e, mb in enumerate(sys.argv[2:], 1):
        for split in ("val", "test"):
            rss = None if mb == "null" else int(float(mb) * 2**20)
            f.write(json.dumps({"split": split, "epoch": e, "rss_bytes": rss}) + "\n")
PY
}
synth "$TMP/grow.jsonl" 100 103 106
rss_flat "$TMP/grow.jsonl" $RSS_BOUND_MB >"$TMP/out" 2>&1 && fail "a series growing 3 MB an epoch passed: $(cat "$TMP/out")" \
  || pass "negative control: a series growing 3 MB an epoch fails ($(tail -1 "$TMP/out"))"
synth "$TMP/null.jsonl" 100 null 100
rss_flat "$TMP/null.jsonl" $RSS_BOUND_MB >"$TMP/out" 2>&1 && fail "a series with a missing RSS passed" \
  || pass "negative control: a missing RSS fails ($(tail -1 "$TMP/out"))"
synth "$TMP/two.jsonl" 100 100
rss_flat "$TMP/two.jsonl" $RSS_BOUND_MB >"$TMP/out" 2>&1 && fail "a 2-epoch series passed" \
  || pass "negative control: 2 epochs are not enough"
synth "$TMP/flat.jsonl" 100 101.5 101
rss_flat "$TMP/flat.jsonl" $RSS_BOUND_MB >"$TMP/out" 2>&1 && pass "a flat series passes ($(tail -1 "$TMP/out"))" \
  || fail "a flat series failed: $(cat "$TMP/out")"

# ---- a real 3-epoch run
run="$TMP/run"
"$BIN" train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 200 --epochs 3 --batch-size 8 \
  --max-seq-len 64 --lr 1e-3 --threads 1 --save-every none --quiet --out "$run" >"$TMP/train.log" 2>&1 \
  || { fail "train: $(tail -2 "$TMP/train.log")"; finish; }
res=$(python3 - "$run/metrics.jsonl" <<'PY'
import json, sys
keys = ["schema_version", "split", "epoch", "step", "lr", "train_loss", "eval_loss", "precision", "recall", "f1",
        "accuracy", "roc_auc", "pr_auc", "tp", "fp", "tn", "fn", "grad_norm", "loss_scale", "seconds", "tokens_per_s"]
recs = [json.loads(l) for l in open(sys.argv[1])]
problems = []
for r in recs:
    if list(r)[:len(keys)] != keys: problems.append(f"keys {list(r)}")
    whole = lambda v: isinstance(v, (int, float)) and v == v and v == int(v)
    if not (whole(r.get("rss_bytes")) and whole(r.get("peak_rss_bytes"))):
        problems.append(f"rss fields {r.get('rss_bytes')!r} {r.get('peak_rss_bytes')!r}")
    elif not r["peak_rss_bytes"] >= r["rss_bytes"] > 0: problems.append(f"peak {r['peak_rss_bytes']} < rss {r['rss_bytes']}")
print("; ".join(problems) if problems else f"OK {len(recs)} records")
PY
)
case "$res" in OK*) pass "records: schema keys first, then rss_bytes <= peak_rss_bytes ($res)";; *) fail "records: $res";; esac
# (ldd's output captured first: `ldd | grep -q` fails under pipefail when grep exits early)
libs=$(ldd "$BIN" 2>/dev/null || true)
if grep -q libasan <<<"$libs"; then
  # ASan keeps freed blocks in quarantine (up to 256 MB): RSS growth means nothing there
  rss_flat "$run/metrics.jsonl" 1000000 >"$TMP/out" 2>&1 && pass "sanitized build: RSS not bounded ($(tail -1 "$TMP/out"))" \
    || fail "sanitized build: $(cat "$TMP/out")"
else
  rss_flat "$run/metrics.jsonl" $RSS_BOUND_MB >"$TMP/out" 2>&1 \
    && pass "3 epochs: RSS grew less than $RSS_BOUND_MB MB ($(tail -1 "$TMP/out"))" \
    || fail "3 epochs: RSS not flat: $(cat "$TMP/out")"
fi
finish
