#!/usr/bin/env bash
# --augment over 2 MPI ranks: every rank reads the file and picks the same rows, so
# the 2-rank run equals the 1-rank run (in fp32: per-step losses within 1e-5 relative, the
# ranks' sample ids partition each global batch) and a whole epoch covers the train
# rows plus exactly the augment rows used. A refusal (a test sentence in the file)
# ends the job with exit 1, nothing written. (Single-process cases: train_augment.sh.)
source "$(dirname "$0")/lib.bash"
require_corpus
require_mpi
export OMP_NUM_THREADS=1

# a small split folder (~300 rows): one whole epoch per run
F="$TMP/f"
"$BIN" data split --data "$CORPUS" --out "$F" --split random --seed 42 >/dev/null 2>&1 || fail "data split"
python3 - "$F" "$TMP/small.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for p in ("train", "val", "test") for l in open(f"{sys.argv[1]}/{p}.jsonl")]
with open(sys.argv[2], "w") as f:
    for r in rows[::75]:
        f.write(json.dumps({"text": r["text"], "label": r["label"]}) + "\n")
PY
SS="$TMP/ss"
"$BIN" data split --data "$TMP/small.jsonl" --out "$SS" --split random --seed 42 >/dev/null 2>&1 || fail "data split (small)"
n_ss=$(cat "$SS"/{train,val,test}.jsonl | wc -l)
n_train=$(json_get "$SS/manifest.json" "j['files']['train']['rows']")
python3 - "$TMP/aug.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(30):
        f.write(json.dumps({"text": f"Synthetic sentence {i}: fakedrug{i} and event {i}.", "label": 1 - i % 3 // 2}) + "\n")
PY

train() { # np tag [extra flags]
  local np=$1 tag=$2; shift 2
  timeout 300 mpirun "${root_flags[@]}" --oversubscribe --bind-to none --timeout 280 -np "$np" \
    "$BIN" train --data "$SS" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 1 --batch-size 8 --lr 1e-3 \
    --max-seq-len 64 --save-every none --precision fp32 --quiet --threads 1 --out "$TMP/$tag" \
    --log-samples "$TMP/$tag.samples" \
    "$@" >"$TMP/$tag.log" 2>&1
}
train 1 np1 --augment "$TMP/aug.jsonl" --augment-ratio 0.25 || fail "np 1 ran: $(tail -2 "$TMP/np1.log")"
train 2 np2 --augment "$TMP/aug.jsonl" --augment-ratio 0.25 && pass "np 2 with --augment ran" ||
  fail "np 2 ran: $(tail -2 "$TMP/np2.log")"
used=$(json_get "$TMP/np2/config.json" "j['augment_rows']['used']")
grep -q "augment: .*: $used of 30 rows used" "$TMP/np2.log" && [ "$used" -gt 0 ] &&
  cmp -s "$TMP/np1/augment_lines.txt" "$TMP/np2/augment_lines.txt" &&
  pass "np 2: the banner and augment_lines.txt name the same $used rows as np 1" || fail "np 2: rows used differ"
res=$(python3 - "$TMP/np1" "$TMP/np2" "$n_ss" "$n_train" "$used" <<'PY'
import json, sys
a, b, n, n_train, used = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
la = [json.loads(l)["loss"] for l in open(a + "/train_log.jsonl")]
lb = [json.loads(l)["loss"] for l in open(b + "/train_log.jsonl")]
if len(la) != len(lb): print(f"step counts {len(la)} vs {len(lb)}"); sys.exit()
worst = max(abs(x - y) / abs(x) for x, y in zip(la, lb))
if worst > 1e-5: print(f"losses differ by {worst:.2e}"); sys.exit()
def shares(prefix, r):
    return {int(l.split()[0]): [int(t) for t in l.split()[1:]] for l in open(f"{prefix}.samples.rank{r}")}
one, r0, r1 = shares(a, 0), shares(b, 0), shares(b, 1)
for step, batch in one.items():
    if r0.get(step, []) + r1.get(step, []) != batch: print(f"step {step}: shares do not partition the batch"); sys.exit()
ids = [i for batch in one.values() for i in batch]
if sorted(ids) != sorted(set(ids)) or len(ids) != n_train + used or set(range(n, n + used)) - set(ids):
    print(f"the epoch holds {len(ids)} rows, want {n_train} + {used} augment rows (ids {n}..)"); sys.exit()
print(f"OK (max loss rel diff {worst:.1e})")
PY
)
[ "${res%% *}" = OK ] && pass "np 2 == np 1 with augment rows (losses, sample shares, the epoch's rows) $res" ||
  fail "np 2 vs np 1: $res"

# a test sentence in the file: the job ends with exit 1 before anything is written
python3 - "$SS/test.jsonl" "$TMP/aug.jsonl" "$TMP/leak.jsonl" <<'PY'
import json, sys
t = json.loads(open(sys.argv[1]).readline())["text"]
rows = [json.loads(l) for l in open(sys.argv[2])]
rows.insert(4, {"text": t.upper(), "label": 1})
open(sys.argv[3], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
train 2 leak --augment "$TMP/leak.jsonl"
rc=$?
[ $rc -eq 1 ] && grep -q -- "--augment $TMP/leak.jsonl: line 5 duplicates a validation/test sentence" "$TMP/leak.log" &&
  [ ! -e "$TMP/leak/metrics.jsonl" ] && pass "np 2: a test sentence in the file is refused (exit 1, line 5)" ||
  fail "np 2 leak: exit $rc: $(tail -3 "$TMP/leak.log")"
finish
