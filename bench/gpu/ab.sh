#!/usr/bin/env bash
# Two adebert builds' `bench --device cuda` side by side on one GPU, alternated:
# round after round, each length mode, A then B (B then A on even rounds, so neither
# side always runs on a warmer GPU). One JSON line per run, tagged side/round.
#
#   bench/gpu/ab.sh BIN_A BIN_B ROUNDS OUT.jsonl [bench options...]
#   e.g. bench/gpu/ab.sh build-gpu-carry/adebert build-gpu-carry/adebert-old 3 $OUT/ab.jsonl \
#          --precision bf16 --model base --batch-size 32
# Libraries: run it with check.sh's LD_LIBRARY_PATH (the carried lib/ and the host's
# cuBLAS); the script adds BIN_A's lib/ folder.
set -uo pipefail
[ $# -ge 4 ] || { echo "usage: bench/gpu/ab.sh BIN_A BIN_B ROUNDS OUT.jsonl [bench options...]" >&2; exit 2; }
a=$1 b=$2 rounds=$3 out=$4; shift 4
for x in "$a" "$b"; do [ -x "$x" ] || { echo "ab.sh: $x is not an executable" >&2; exit 2; }; done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "ab.sh: ROUNDS must be a positive integer" >&2; exit 2; }
export LD_LIBRARY_PATH="$(dirname "$a")/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
: >"$out"
fails=0
for r in $(seq 1 "$rounds"); do
  for lengths in ade fixed; do
    largs=(--seq-len 128); [ "$lengths" = ade ] && largs=(--lengths ade)
    order=("A:$a" "B:$b"); [ $((r % 2)) -eq 0 ] && order=("B:$b" "A:$a")
    for sb in "${order[@]}"; do
      side=${sb%%:*} bin=${sb#*:}
      if line=$(timeout 120 "$bin" bench --device cuda "${largs[@]}" --steps 30 --warmup 5 --json "$@" 2>/dev/null | grep '^{' | tail -1) \
         && [ -n "$line" ]; then
        python3 -c 'import json, sys
r = json.loads(sys.argv[1]); r.update(side=sys.argv[2], bin=sys.argv[3], round=int(sys.argv[4]), lengths=sys.argv[5])
print(json.dumps(r))' "$line" "$side" "$(basename "$bin")" "$r" "$lengths" >>"$out"
      else
        echo "ab.sh: round $r $lengths side $side failed" >&2; fails=$((fails + 1))
      fi
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for lengths in ("ade", "fixed"):
    for side in ("A", "B"):
        v = [r["tokens_per_s"] for r in rows if r["lengths"] == lengths and r["side"] == side]
        if v:
            print(f"{lengths:5s} {side} {rows[[r['side'] for r in rows].index(side)]['bin']:20s} "
                  f"median {statistics.median(v):9.0f} tok/s  (min {min(v):.0f}, max {max(v):.0f}, n {len(v)})")
PY
exit $((fails > 0))
