#!/usr/bin/env bash
# No corpus text where it does not belong (issue 12; DESIGN.md: "Logs never contain
# corpus text"). A small TSV of 400 corpus sentences (every row training can use) and a
# session over it: train with failures (a bad option, a bad label on a line holding a
# sentence, a stop at step 6 with exit 75), --resume, eval (--json --out --scores),
# predict (stdin and --input, one invalid UTF-8 line holding a sentence), export,
# import, data stats. Then every file of the run directory, of the export and import,
# and every captured stdout/stderr is scanned for any 40-byte window of any of the 400
# sentences. Files meant to hold text are not scanned: the TSV itself and predict's
# input (both checked to be found by the scanner: the negative control). predict's
# output holds no text either and is scanned.
# Modes: the documented policy (README, DESIGN.md): a run directory is 0700 and every
# file in it 0600 (checkpoints, metrics, logs, scores, predictions, the lock), whatever
# the umask: the session runs under umask 000, so a mode that merely came from the umask
# cannot pass. `import`'s checkpoint is 0600 too; an export is for other tools and
# follows the umask (printed, not judged).
source "$(dirname "$0")/lib.bash"
require_corpus
export OMP_NUM_THREADS=1
umask 000
W=40
# 200 positive and 200 negative sentences, spread over the files; labels as TSV
python3 - "$CORPUS" "$TMP/small.tsv" "$TMP/sentences.txt" <<'EOF'
import sys
root, tsv, sents = sys.argv[1:]
pos, neg, seen = [], [], set()
for l in open(f"{root}/DRUG-AE.rel", encoding="utf-8"):
    t = l.split("|")[1]
    if t not in seen: seen.add(t); pos.append(t)
for l in open(f"{root}/ADE-NEG.txt", encoding="utf-8"):
    t = l.rstrip("\n").split(" ", 2)[2]
    if t not in seen: seen.add(t); neg.append(t)
def pick(xs):
    xs = [x for x in xs if "\t" not in x and len(x) >= 50]
    return [xs[i * len(xs) // 200] for i in range(200)]
rows = [(t, 1) for t in pick(pos)] + [(t, 0) for t in pick(neg)]
with open(tsv, "w", encoding="utf-8") as f:
    for t, y in rows: f.write(f"{t}\t{y}\n")
with open(sents, "w", encoding="utf-8") as f:
    for t, _ in rows: f.write(t + "\n")
EOF
[ "$(wc -l <"$TMP/small.tsv")" = 400 ] && pass "400 corpus sentences in a TSV" || fail "small.tsv has $(wc -l <"$TMP/small.tsv") rows"
L="$TMP/logs"; mkdir -p "$L"
run() { local name=$1; shift; "$@" >"$L/$name.out" 2>"$L/$name.err"; echo $?; }
args=(train --data "$TMP/small.tsv" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 2 --batch-size 16
      --max-seq-len 64 --lr 1e-3 --threads 1 --save-every 4 --out "$TMP/run")

rc=$(run badopt "$BIN" "${args[@]}" --lr abc); [ "$rc" = 2 ] && pass "bad option: exit 2" || fail "bad option: exit $rc"
# a bad label on a line that holds a sentence: the error must name the line, not echo it
{ head -n 5 "$TMP/small.tsv"; printf '%s\tmaybe\n' "$(sed -n 300p "$TMP/sentences.txt")"; } >"$TMP/bad.tsv"
rc=$(run badlabel "$BIN" train --data "$TMP/bad.tsv" --model tiny --vocab "$CASED_VOCAB" --cased --out "$TMP/badrun")
[ "$rc" != 0 ] && [ "$(wc -l <"$L/badlabel.err")" = 1 ] && pass "bad label: exit $rc, one line: $(cut -c1-100 "$L/badlabel.err")" \
  || fail "bad label: exit $rc: $(head -c 200 "$L/badlabel.err" | wc -c) bytes"
rc=$(run stop "$BIN" "${args[@]}" --debug-stop-at 6); [ "$rc" = 75 ] && pass "stopped at step 6: exit 75" || fail "stop: exit $rc"
rc=$(run resume "$BIN" "${args[@]}" --resume); [ "$rc" = 0 ] && pass "--resume completes" || fail "resume: exit $rc"
rc=$(run eval "$BIN" eval --checkpoint "$TMP/run/best.h5" --json --out "$TMP/run/eval.jsonl" --scores "$TMP/run/scores.tsv")
[ "$rc" = 0 ] && pass "eval --json --out --scores" || fail "eval: exit $rc: $(head -c 200 "$L/eval.err" | wc -c) bytes of stderr"
head -n 20 "$TMP/sentences.txt" >"$TMP/predict_in.txt"
rc=$(run predict "$BIN" predict --checkpoint "$TMP/run/best.h5" --input "$TMP/predict_in.txt" --output "$TMP/run/pred.jsonl")
[ "$rc" = 0 ] && [ "$(wc -l <"$TMP/run/pred.jsonl")" = 20 ] && pass "predict: 20 lines scored" || fail "predict: exit $rc"
"$BIN" predict --checkpoint "$TMP/run/best.h5" <"$TMP/predict_in.txt" >"$L/predict_stdin.out" 2>"$L/predict_stdin.err" \
  || fail "predict on stdin"
{ sed -n 30p "$TMP/sentences.txt" | tr -d '\n'; printf '\xff\xfe\n'; } >"$TMP/predict_bad.txt"
rc=$(run predict_bad "$BIN" predict --checkpoint "$TMP/run/best.h5" --input "$TMP/predict_bad.txt")
[ "$rc" != 0 ] && [ "$(wc -l <"$L/predict_bad.err")" = 1 ] && pass "predict on invalid UTF-8: exit $rc, one line" \
  || fail "predict on invalid UTF-8: exit $rc"
rc=$(run export "$BIN" export --checkpoint "$TMP/run/best.h5" --out "$TMP/export"); [ "$rc" = 0 ] && pass "export" || fail "export: exit $rc"
rc=$(run import "$BIN" import --hf "$TMP/export" --out "$TMP/imported.h5" --cased); [ "$rc" = 0 ] && pass "import" || fail "import: exit $rc"
rc=$(run stats "$BIN" data stats --data "$TMP/small.tsv" --vocab "$CASED_VOCAB" --cased --json)
[ "$rc" = 0 ] && pass "data stats" || fail "data stats: exit $rc"

# the scan: prints "HIT file" for each file holding a window of a sentence
scan() { python3 - "$TMP/sentences.txt" "$W" "$@" <<'EOF'
import os, sys
sents, w, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
wins = set()
for s in open(sents, "rb").read().split(b"\n"):
    if len(s) < w: continue
    for i in range(0, max(0, len(s) - w) + 1):
        wins.add(s[i:i + w])
files = []
for p in paths:
    if os.path.isdir(p):
        for d, _, fs in os.walk(p):
            files += [os.path.join(d, f) for f in fs]
    elif os.path.isfile(p):
        files.append(p)
n = 0
for f in sorted(files):
    b = open(f, "rb").read()
    n += 1
    if len(b) < w: continue
    for i in range(0, max(0, len(b) - w) + 1):
        if b[i:i + w] in wins:
            print("HIT", f, "at byte", i)
            break
print("scanned", n)
EOF
}
scan "$TMP/small.tsv" "$TMP/predict_in.txt" >"$TMP/neg.txt"
[ "$(grep -c ^HIT "$TMP/neg.txt")" = 2 ] && pass "negative control: the scanner finds the sentences in the TSV and predict's input" \
  || fail "negative control: $(cat "$TMP/neg.txt")"
scan "$TMP/run" "$TMP/export" "$TMP/imported.h5" "$TMP/badrun" "$L" >"$TMP/scan.txt"
n=$(sed -n 's/^scanned //p' "$TMP/scan.txt")
if grep -q ^HIT "$TMP/scan.txt"; then fail "corpus text found: $(grep ^HIT "$TMP/scan.txt" | head -5 | tr '\n' ';')"
else pass "no $W-byte window of the 400 sentences in any of $n files (run dir, checkpoints, export, import, $(ls "$L" | wc -l) captured logs)"; fi

# modes (umask 000): the documented policy, then a report of the rest
[ "$(stat -c %a "$TMP/run")" = 700 ] && pass "run directory 0700" || fail "run directory $(stat -c %a "$TMP/run")"
nfiles=$(find "$TMP/run" -type f | wc -l)
bad=$(find "$TMP/run" -mindepth 1 \( -type f ! -perm 0600 \) -o \( -type d ! -perm 0700 \) | sed "s|$TMP/||" | tr '\n' ' ')
[ -z "$bad" ] && [ "$(find "$TMP/run" -name '*.h5' | wc -l)" -ge 2 ] && [ "$nfiles" -ge 8 ] \
  && pass "all $nfiles files of the run directory 0600 under umask 000 (checkpoints, metrics, logs, scores, lock)" \
  || fail "not 0600/0700 under umask 000: ${bad:-none, but too few files ($nfiles)}"
[ "$(stat -c %a "$TMP/imported.h5")" = 600 ] && pass "import's checkpoint 0600" || fail "imported.h5 $(stat -c %a "$TMP/imported.h5")"
echo "     umask $(umask); modes of what the session wrote:"
( cd "$TMP" && find run export imported.h5 -printf '%m %y %p\n' | sed 's/ckpt-step[0-9]*/ckpt-stepN/' | sort -k3 -u \
    | awk '{ printf "       %s %s %s\n", $1, $2, $3 }' )
finish
