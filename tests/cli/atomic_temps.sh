#!/usr/bin/env bash
# Temporaries of killed writers do not accumulate (issue 12; io/tmpfile.c):
#  1. `train --dump-params FILE` SIGKILLed while its output is being written (its fsync
#     stalled by tests/faultshim.c) leaves FILE.tmp.HOST.PID.XXXXXX naming its pid; a
#     second writer of FILE, alive and stalled the same way, has one too; a third, normal
#     run writes FILE and removes the killed writer's temporary but not the live one's.
#     Negative control: the temporary was there (with the killed pid) before the third run.
#  2. `data split` and `export` (folders) remove the temporary folders of dead writers
#     of the same target (planted: a pid that exited), keep one of another host.
source "$(dirname "$0")/lib.bash"
require_corpus
SHIM="${ADEBERT_FAULTSHIM:?ADEBERT_FAULTSHIM not set (run through ctest)}"
[ -f "$SHIM" ] || { echo "FAIL $SHIM missing (build the faultshim target)"; exit 1; }
export OMP_NUM_THREADS=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 96 --epochs 1 --batch-size 8
      --max-seq-len 64 --quiet --threads 1)
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
wait_for() { for _ in $(seq 1 1200); do "$@" && return 0; sleep 0.05; done; return 1; }
temps() { compgen -G "$1.tmp.*" || true; }
# temp_of TARGET PID: the temporary of TARGET written by PID
temp_of() { temps "$1" | grep -E "\.tmp\.[A-Za-z0-9_-]+\.$2\.[A-Za-z0-9]{6}$"; }
has_temp_of() { [ -n "$(temp_of "$1" "$2")" ]; }
P="$TMP/params.bin"

# ---- 1. a killed and a live --dump-params writer, then a normal one
stalled() { # OUT_DIR: a run whose fsync of params.bin's temporary sleeps 120 s
  env LD_PRELOAD="$SHIM" FAULTSHIM_OP=fsync FAULTSHIM_MATCH=params.bin.tmp. FAULTSHIM_DELAY_US=120000000 \
    "$BIN" "${args[@]}" --save-every none --out "$1" --dump-params "$P" >"$1.log" 2>&1 &
}
stalled "$TMP/r1"; killed=$!
wait_for has_temp_of "$P" $killed && pass "writer 1 (pid $killed) stalled in its write: $(basename "$(temp_of "$P" $killed)")" \
  || fail "writer 1 made no temporary named after its pid: $(ls "$TMP")"
kill -KILL $killed; wait $killed 2>/dev/null
[ -n "$(temp_of "$P" $killed)" ] && [ ! -e "$P" ] && pass "SIGKILL left its temporary behind (no FILE)" \
  || fail "after the kill: $(ls "$TMP")"
stalled "$TMP/r2"; live=$!
wait_for has_temp_of "$P" $live && pass "writer 2 (pid $live) alive, stalled in its write" \
  || fail "writer 2 made no temporary: $(ls "$TMP")"
save=epoch; version_says "HDF5 *not built" && save=none  # best.h5 for the export below
"$BIN" "${args[@]}" --save-every $save --out "$TMP/r3" --dump-params "$P" >"$TMP/r3.log" 2>&1 \
  || fail "writer 3: $(tail -2 "$TMP/r3.log")"
[ -s "$P" ] && pass "writer 3 wrote FILE ($(stat -c %s "$P") bytes)" || fail "writer 3 wrote no FILE"
[ -z "$(temp_of "$P" $killed)" ] && pass "writer 3 removed the killed writer's temporary" \
  || fail "the killed writer's temporary is still there: $(temps "$P")"
alive $live && [ -n "$(temp_of "$P" $live)" ] && pass "the live writer's temporary was kept" \
  || fail "the live writer's temporary was removed (or it died): $(temps "$P")"
kill -KILL $live; wait $live 2>/dev/null
[ "$(temps "$P" | wc -l)" = 1 ] && pass "only the live (now killed) writer's temporary remains" \
  || fail "temporaries: $(temps "$P")"

# ---- 2. folders: data split and export
host=$(temp_of "$P" $live | sed -E 's/.*\.tmp\.([A-Za-z0-9_-]+)\.[0-9]+\.[A-Za-z0-9]{6}$/\1/')
dead=$(sh -c 'echo $$')   # a process that has exited
kill -0 "$dead" 2>/dev/null && fail "pid $dead should be dead"
plant() { # TARGET HOST: a stale temporary folder of TARGET with two files
  local d="$1.tmp.$2.$dead.Ab12Cd"; mkdir -p "$d"; echo x >"$d/train.jsonl"; echo x >"$d/manifest.json"; echo "$d"
}
stale=$(plant "$TMP/split" "$host"); other=$(plant "$TMP/split" "$host-elsewhere")
[ -d "$stale" ] && [ -d "$other" ] || fail "planting failed"
"$BIN" data split --data "$CORPUS" --out "$TMP/split" --split grouped --seed 42 >/dev/null 2>"$TMP/split.err" \
  || fail "data split: $(cat "$TMP/split.err")"
[ -f "$TMP/split/manifest.json" ] && [ ! -e "$stale" ] && pass "data split removed a dead writer's temporary folder" \
  || fail "data split: $(ls "$TMP")"
[ -d "$other" ] && pass "... and kept another host's" || fail "data split removed another host's temporary"
if version_says "HDF5 *not built"; then
  pass "export: skipped (no HDF5: no checkpoints)"
else
  stale=$(plant "$TMP/hf" "$host")
  "$BIN" export --checkpoint "$TMP/r3/best.h5" --out "$TMP/hf" >/dev/null 2>"$TMP/ex.err" || fail "export: $(cat "$TMP/ex.err")"
  [ -f "$TMP/hf/model.safetensors" ] && [ ! -e "$stale" ] && [ -z "$(temps "$TMP/hf")" ] \
    && pass "export removed a dead writer's temporary folder, left none of its own" || fail "export: $(ls "$TMP")"
fi
finish
