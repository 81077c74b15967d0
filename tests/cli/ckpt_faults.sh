#!/usr/bin/env bash
# Checkpoint faults (issue 12): what a save that fails or is killed leaves behind, and
# that nothing but complete checkpoints is ever read.
#  1. injected errors (tests/faultshim.c, LD_PRELOAD): open/write/fsync/rename of the
#     checkpoint's temporary fail with ENOSPC/EIO/EROFS -> one error line naming the
#     file, exit 1, no .tmp left, the previous checkpoint intact; --resume then ends
#     bit-identical to the uninterrupted run. A shim that matches nothing changes nothing.
#  2. killed writer: SIGKILL while a checkpoint is being written (writes slowed by the
#     shim so that the kill lands inside the save), 10 times in one chain: no partial
#     file ever gets a checkpoint's name (--resume never has to skip one), eval and
#     export refuse the partial .tmp in one line, --resume removes it, and the chain
#     ends bit-identical. import and export killed mid-write leave no output.
#  3. read-only run directory: tests run as root, where mode bits do not bind, so a
#     read-only bind mount in a private mount namespace (unshare -m) stands in; without
#     unshare, the shim fails open() under the directory with EROFS. Mounted before
#     --resume: refused in one line; mounted mid-run: the job ends with one line at its
#     next save, non-zero; the checkpoints are intact and --resume completes exactly.
#  4. checkpoints deleted under a running job: the job carries on (no warning about the
#     old ones it meant to prune) and ends bit-identical; the newest deleted then the job
#     killed: --resume takes the older one, still exact. The run directory deleted:
#     one error line, non-zero exit, promptly.
source "$(dirname "$0")/lib.bash"
require_corpus
if version_says "HDF5 *not built"; then
  echo "note: a build without HDF5 has no checkpoints: nothing to test here"
  pass "skipped (no HDF5)"
  finish
fi
SHIM="${ADEBERT_FAULTSHIM:?ADEBERT_FAULTSHIM not set (run through ctest)}"
[ -f "$SHIM" ] || { echo "FAIL $SHIM missing (build the faultshim target)"; exit 1; }
export OMP_NUM_THREADS=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
# 48 steps (192 train rows, batch 8, 2 epochs), a checkpoint every 2 steps
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 192 --epochs 2 --batch-size 8
      --max-seq-len 64 --lr 1e-3 --quiet --threads 1 --save-every 2)
# a plain command (not a function), so that `"${shim[@]}" cmd &` gives the program's own pid
shim=(env LD_PRELOAD="$SHIM" FAULTSHIM_LOG="$TMP/shim.log")
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
# wait_for COND_CMD... : up to 60 s
wait_for() { for _ in $(seq 1 1200); do "$@" && return 0; sleep 0.05; done; return 1; }
has_tmp() { compgen -G "$1/*.h5.tmp" >/dev/null; }
no_tmp() { ! has_tmp "$1"; }
has_ckpt() { compgen -G "$1/ckpt-step*.h5" >/dev/null; }
steps_done() { sed -n 's/^done: \([0-9]*\) steps.*/\1/p' "$1"; }

"$BIN" "${args[@]}" --out "$TMP/ref" --dump-params "$TMP/ref.bin" >"$TMP/ref.log" 2>&1 \
  && pass "uninterrupted run" || fail "uninterrupted run: $(tail -2 "$TMP/ref.log")"
# a run stopped at step 10: the starting point of the fault scenarios
"$BIN" "${args[@]}" --out "$TMP/base" --debug-stop-at 10 >/dev/null 2>&1
[ -f "$TMP/base/ckpt-step00000010.h5" ] && pass "base run stopped at step 10 with its checkpoint" || fail "no base checkpoint"
fresh_copy() { rm -rf "$1"; cp -a "$TMP/base" "$1"; }

# ---- 1. injected errors during a save
fresh_copy "$TMP/nomatch"
FAULTSHIM_OP=rename FAULTSHIM_MATCH=no-such-path FAULTSHIM_ERRNO=EIO "${shim[@]}" "$BIN" "${args[@]}" --out "$TMP/nomatch" \
  --resume --dump-params "$TMP/nomatch.bin" >/dev/null 2>&1
cmp -s "$TMP/ref.bin" "$TMP/nomatch.bin" && [ ! -s "$TMP/shim.log" ] \
  && pass "the shim matching nothing changes nothing (bit-identical, no injected call)" || fail "shim pass-through"
for spec in open:ENOSPC:1 write:EIO:5 fsync:EIO:1 rename:EROFS:1 write:ENOSPC:20; do
  IFS=: read -r op e nth <<<"$spec"
  d="$TMP/inj-$op-$nth"
  fresh_copy "$d"
  : >"$TMP/shim.log"
  FAULTSHIM_OP=$op FAULTSHIM_MATCH=ckpt-step00000012.h5.tmp FAULTSHIM_NTH=$nth FAULTSHIM_ERRNO=$e \
    expect_exit 1 "$op fails ($e, call $nth) in the save of step 12: exit 1, one line" -- \
    "${shim[@]}" "$BIN" "${args[@]}" --out "$d" --resume
  [ -s "$TMP/shim.log" ] || fail "$op: the shim injected nothing (the check above proves nothing)"
  grep -q "ckpt-step00000012.h5" "$TMP/err" \
    && pass "$op: the error names the checkpoint: $(cut -c1-110 "$TMP/err")" || fail "$op: error: $(cat "$TMP/err")"
  has_tmp "$d" && fail "$op: a .tmp was left: $(ls "$d")" || pass "$op: no .tmp left"
  [ ! -e "$d/ckpt-step00000012.h5" ] && cmp -s "$d/ckpt-step00000010.h5" "$TMP/base/ckpt-step00000010.h5" \
    && pass "$op: no step-12 checkpoint, step 10's intact" || fail "$op: checkpoints: $(ls "$d")"
  "$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.log" 2>&1
  grep -q "resumed_from_step 10" "$d.log" && cmp -s "$TMP/ref.bin" "$d.bin" \
    && pass "$op: --resume from step 10 ends bit-identical" || fail "$op: resume: $(tail -2 "$d.log")"
done

# ---- 2. SIGKILL inside a save, 10 times in one chain (writes of *.h5.tmp slowed to 3 ms each)
d="$TMP/killed"
fresh_copy "$d"
RANDOM=12
mid=0 evref=0 exref=0 kills=0
for i in $(seq 1 10); do
  FAULTSHIM_OP=write FAULTSHIM_MATCH=.h5.tmp FAULTSHIM_DELAY_US=3000 \
    "${shim[@]}" "$BIN" "${args[@]}" --out "$d" --resume >"$d.$i.log" 2>&1 &
  pid=$!
  # the last kill's .tmp goes first (--resume removes it), then 0-2 saves complete and
  # the kill lands 0-300 ms into the next one
  has_tmp "$d" && wait_for grep -q "a save that did not finish" "$d.$i.log"
  skip=$((RANDOM % 3)) began=1
  for s in $(seq 0 $skip); do
    wait_for has_tmp "$d" || { began=0; break; }
    [ "$s" -lt $skip ] && wait_for no_tmp "$d"
  done
  [ $began = 1 ] || { kill -KILL $pid; wait $pid; fail "kill $i: no save began"; continue; }
  sleep "$(printf '0.%03d' $((RANDOM % 300)))"
  has_tmp "$d" && mid=$((mid + 1))
  kill -KILL $pid
  wait $pid 2>/dev/null
  kills=$((kills + 1))
  tmpf=$(compgen -G "$d/*.h5.tmp" | head -n 1)
  if [ -n "$tmpf" ]; then
    "$BIN" eval --checkpoint "$tmpf" --json >"$TMP/ev.out" 2>"$TMP/ev.err"; rc=$?
    [ $rc -ne 0 ] && [ "$(wc -l <"$TMP/ev.err")" = 1 ] && [ ! -s "$TMP/ev.out" ] && evref=$((evref + 1))
    [ $rc -gt 128 ] && fail "kill $i: eval of a partial checkpoint crashed ($rc)"
    rm -rf "$TMP/exp"
    "$BIN" export --checkpoint "$tmpf" --out "$TMP/exp" >/dev/null 2>"$TMP/ex.err"; rc=$?
    [ $rc -ne 0 ] && [ "$(wc -l <"$TMP/ex.err")" = 1 ] && [ ! -e "$TMP/exp" ] && exref=$((exref + 1))
    [ $rc -gt 128 ] && fail "kill $i: export of a partial checkpoint crashed ($rc)"
  fi
done
echo "     $kills kills, $mid with a save in flight; eval refused $evref and export $exref partial files"
[ $kills = 10 ] && [ $mid -ge 8 ] && pass "10 SIGKILLs, $mid of them inside a save" || fail "kills $kills, inside a save $mid"
[ $evref -ge $((mid - 1)) ] && [ $evref -ge 5 ] && pass "eval refused the partial files ($evref), one line each" \
  || fail "eval refused $evref of $mid partial files"
[ $exref -ge $((mid - 1)) ] && [ $exref -ge 5 ] && pass "export refused the partial files ($exref), no output left" \
  || fail "export refused $exref of $mid partial files"
grep -l "skipping checkpoint" "$d".*.log >/dev/null && fail "a resume met a damaged file under a checkpoint's name" \
  || pass "no resume ever met a damaged file under a checkpoint's name (none skipped)"
"$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.final.log" 2>&1 \
  || fail "final resume: $(tail -2 "$d.final.log")"
removed=$(cat "$d".*.log | grep -c "removed .*\.h5\.tmp (a save that did not finish)")
[ "$removed" -ge 1 ] && no_tmp "$d" && pass "--resume removed the killed saves' .tmp files ($removed)" \
  || fail "temporaries: removed $removed: $(ls "$d")"
cmp -s "$TMP/ref.bin" "$d.bin" && pass "after 10 killed saves the chain ends bit-identical" \
  || fail "killed-writer chain differs from the uninterrupted run"

# import and export killed mid-write: no output under the final name
"$BIN" export --checkpoint "$TMP/ref/best.h5" --out "$TMP/hf" >/dev/null 2>&1 || fail "export of best.h5"
ok_imp=0 ok_exp=0 partial_refused=0 partial_whole=0
for i in 1 2 3; do
  rm -rf "$TMP/imp.h5" "$TMP/imp.h5.tmp"
  FAULTSHIM_OP=write FAULTSHIM_MATCH=imp.h5.tmp FAULTSHIM_DELAY_US=3000 \
    "${shim[@]}" "$BIN" import --hf "$TMP/hf" --out "$TMP/imp.h5" --cased >/dev/null 2>&1 &
  pid=$!
  wait_for test -e "$TMP/imp.h5.tmp"; sleep "0.0$((RANDOM % 10))"; kill -KILL $pid; wait $pid 2>/dev/null
  [ ! -e "$TMP/imp.h5" ] && ok_imp=$((ok_imp + 1))
  rm -rf "$TMP/exp2" "$TMP"/exp2.tmp.*
  # export writes its files with stdio (not interposable): its fsyncs are slowed instead
  FAULTSHIM_OP=fsync FAULTSHIM_MATCH=exp2.tmp. FAULTSHIM_DELAY_US=250000 \
    "${shim[@]}" "$BIN" export --checkpoint "$TMP/ref/best.h5" --out "$TMP/exp2" >/dev/null 2>&1 &
  pid=$!
  wait_for compgen -G "$TMP/exp2.tmp.*"; ms=$(( (i - 1) * 400 + RANDOM % 300 )); sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"; kill -KILL $pid
  wait $pid 2>/dev/null
  [ ! -e "$TMP/exp2" ] && ok_exp=$((ok_exp + 1))
  part=$(compgen -G "$TMP/exp2.tmp.*" | head -n 1)
  if [ -n "$part" ]; then
    # what a killed export leaves is refused in one line, or (when config.json, vocab.txt and
    # model.safetensors were all complete) imported with the exported weights, never half
    rm -f "$TMP/imp2.h5"
    "$BIN" import --hf "$part" --out "$TMP/imp2.h5" --cased >/dev/null 2>"$TMP/imp2.err"; rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$(wc -l <"$TMP/imp2.err")" = 1 ] && [ ! -e "$TMP/imp2.h5" ]; then
      partial_refused=$((partial_refused + 1))
    elif [ $rc = 0 ]; then
      rm -rf "$TMP/hf2"
      "$BIN" export --checkpoint "$TMP/imp2.h5" --out "$TMP/hf2" >/dev/null 2>&1 &&
        cmp -s "$TMP/hf/model.safetensors" "$TMP/hf2/model.safetensors" && partial_whole=$((partial_whole + 1))
    fi
  fi
done
[ $ok_imp = 3 ] && pass "import killed mid-write 3 times: no CKPT.h5 left" || fail "import left output $((3 - ok_imp)) times"
[ $ok_exp = 3 ] && pass "export killed mid-write 3 times: no HF_DIR left" || fail "export left output $((3 - ok_exp)) times"
[ $partial_refused -ge 1 ] && [ $((partial_refused + partial_whole)) = 3 ] \
  && pass "import of a killed export's folder: refused in one line ($partial_refused) or, complete, the same weights ($partial_whole)" \
  || fail "import of a partial export folder: refused $partial_refused, whole $partial_whole of 3: $(cat "$TMP/imp2.err")"

# ---- 3. a read-only run directory
if unshare -m --propagation private true 2>/dev/null; then
  how="read-only bind mount (unshare -m)"
  d="$TMP/ro1"
  fresh_copy "$d"
  unshare -m --propagation private bash -c 'mount --bind -o ro "$1" "$1" && exec "${@:2}"' _ "$d" \
    "$BIN" "${args[@]}" --out "$d" --resume >"$TMP/out" 2>"$TMP/err"
  rc=$?
  [ $rc = 1 ] && [ "$(wc -l <"$TMP/err")" = 1 ] && grep -q "Read-only file system" "$TMP/err" \
    && pass "$how before --resume: refused, one line: $(cut -c1-100 "$TMP/err")" || fail "ro before resume: exit $rc: $(cat "$TMP/err")"
  diff -r "$d" "$TMP/base" >/dev/null && pass "... and the run directory is unchanged" || fail "ro: the run directory changed"
  d="$TMP/ro2"
  fresh_copy "$d"
  # mid-run: the job starts writable; once it saved step 14, the directory is mounted read-only over itself
  unshare -m --propagation private bash -c '
    "${@:2}" >"$1.out" 2>"$1.err" & pid=$!
    for _ in $(seq 1 1200); do [ -e "$1/ckpt-step00000014.h5" ] && break; sleep 0.05; done
    mount --bind -o ro "$1" "$1" || echo "mount failed" >>"$1.err"
    t0=$EPOCHREALTIME; wait $pid; rc=$?
    echo "$rc $t0 $EPOCHREALTIME" >"$1.rc"' _ "$d" "$BIN" "${args[@]}" --out "$d" --resume
  read -r rc t0 t1 <"$d.rc"
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  [ "$rc" != 0 ] && [ "$rc" -lt 128 ] && [ "$(wc -l <"$d.err")" = 1 ] && grep -q "Read-only file system" "$d.err" \
    && pass "$how mid-run: exit $rc after ${dt}s, one line: $(cut -c1-100 "$d.err")" || fail "ro mid-run: exit $rc: $(cat "$d.err")"
  last=$(compgen -G "$d/ckpt-step*.h5" | sort | tail -n 1)
  # a save in flight when the mount came cannot remove its .tmp (the directory is read-only):
  # the next --resume, writable again, does
  left=0; has_tmp "$d" && left=1
  "$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.log" 2>&1
  { [ $left = 0 ] || grep -q "a save that did not finish" "$d.log"; } && no_tmp "$d" \
    && pass "ro mid-run: no .tmp left (one left in the read-only directory: $left, removed by --resume)" \
    || fail "ro mid-run: temporaries: $(ls "$d")"
  grep -q "resumed_from_step $((10#$(basename "$last" .h5 | tr -dc 0-9)))" "$d.log" && cmp -s "$TMP/ref.bin" "$d.bin" \
    && pass "writable again: --resume from its newest checkpoint ($(basename "$last")) ends bit-identical" \
    || fail "ro mid-run resume: $(tail -2 "$d.log")"
else
  how="shim EROFS on open (no unshare here)"
  d="$TMP/ro1"
  fresh_copy "$d"
  FAULTSHIM_OP=open FAULTSHIM_MATCH="$d/" FAULTSHIM_TIMES=0 FAULTSHIM_ERRNO=EROFS \
    expect_exit 1 "$how before --resume: refused, one line" -- "${shim[@]}" "$BIN" "${args[@]}" --out "$d" --resume
  grep -q "Read-only file system" "$TMP/err" && pass "... saying so" || fail "ro: $(cat "$TMP/err")"
fi

# ---- 4. checkpoints deleted under a running job
d="$TMP/del"
fresh_copy "$d"
FAULTSHIM_OP=write FAULTSHIM_MATCH=.h5.tmp FAULTSHIM_DELAY_US=500 \
  "${shim[@]}" "$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.log" 2>&1 &
pid=$!
deleted=0
while alive $pid; do # every checkpoint that appears is deleted at once (with best.h5)
  for f in "$d"/ckpt-step*.h5 "$d"/best.h5; do [ -e "$f" ] && rm -f "$f" && deleted=$((deleted + 1)); done
  sleep 0.02
done
wait $pid
rc=$?
[ $rc = 0 ] && [ $deleted -ge 5 ] && pass "checkpoints deleted as they appeared ($deleted): the job still ends, exit 0" \
  || fail "deleted $deleted, exit $rc: $(tail -2 "$d.log")"
grep -q "warning" "$d.log" && fail "warnings: $(grep warning "$d.log" | head -2)" || pass "no warning about checkpoints already gone"
cmp -s "$TMP/ref.bin" "$d.bin" && pass "... and its parameters are bit-identical" || fail "deleted checkpoints: parameters differ"

# the newest deleted, then the job killed: --resume takes the older one, exactly
d="$TMP/del2"
fresh_copy "$d"
"$BIN" "${args[@]}" --out "$d" --resume >/dev/null 2>&1 &
pid=$!
wait_for test -e "$d/ckpt-step00000020.h5"
kill -STOP $pid
newest=$(compgen -G "$d/ckpt-step*.h5" | sort | tail -n 1)
older=$(compgen -G "$d/ckpt-step*.h5" | sort | tail -n 2 | head -n 1)
rm -f "$newest"
kill -KILL $pid; wait $pid 2>/dev/null
"$BIN" "${args[@]}" --out "$d" --resume --dump-params "$d.bin" >"$d.log" 2>&1
s_old=$((10#$(basename "$older" .h5 | tr -dc 0-9)))
[ "$newest" != "$older" ] && grep -q "resumed_from_step $s_old" "$d.log" && cmp -s "$TMP/ref.bin" "$d.bin" \
  && pass "newest checkpoint deleted, job killed: resumed from the older (step $s_old), bit-identical" \
  || fail "del2: newest $newest older $older: $(grep resumed "$d.log")"

# the whole run directory deleted under the job
d="$TMP/gone"
fresh_copy "$d"
"$BIN" "${args[@]}" --out "$d" --resume >"$d.out" 2>"$d.err" &
pid=$!
wait_for test -e "$d/ckpt-step00000012.h5"
# renamed away first, then removed: a plain rm -rf races the job's next save (a file
# created between rm's unlinks and its rmdir leaves the directory in place, ENOTEMPTY)
mv "$d" "$d.removed" && rm -rf "$d.removed"
t0=$EPOCHREALTIME
wait $pid
rc=$?
dt=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
[ $rc = 1 ] && [ "$(wc -l <"$d.err")" = 1 ] && grep -q "No such file or directory" "$d.err" \
  && pass "run directory deleted: exit 1 after ${dt}s, one line: $(cut -c1-100 "$d.err")" \
  || fail "run directory deleted: exit $rc: $(head -c 300 "$d.err")"
finish
