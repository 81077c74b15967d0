#!/usr/bin/env bash
# Inference speed (issue 15): `adebert eval` of a fine-tuned checkpoint on its test
# split, wall time including model load, for each NAME=BIN side and precision,
# alternated ROUNDS times (default 3). One JSON line per run to OUT (default
# bench/results/infer_cpu_<date>.jsonl, appended), then medians.
#   bench/run_infer_bench.sh CHECKPOINT NAME=BIN [NAME=BIN...]
# Env: ROUNDS, PRECISIONS (default "fp32 bf16"), THREADS (default: all cores), OUT.
# A build whose eval has no --precision option (before bf16 inference) runs once per
# round, in fp32, without it.
set -euo pipefail
ckpt=${1:?usage: run_infer_bench.sh CHECKPOINT NAME=BIN [NAME=BIN...]}; shift
[ $# -gt 0 ] || { echo "run_infer_bench.sh: give at least one NAME=BIN" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/bench/results/infer_cpu_$(date -u +%Y-%m-%d).jsonl}
rounds=${ROUNDS:-3} threads=${THREADS:-$(nproc)}
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
first=$(( $( [ -f "$out" ] && wc -l <"$out" || echo 0) + 1 ))  # the summary covers this run's lines only
for r in $(seq 1 "$rounds"); do
  for side in "$@"; do
    name=${side%%=*} bin=${side#*=}
    precs=${PRECISIONS:-fp32 bf16} popt=1
    help=$("$bin" eval --help 2>&1 || true)
    grep -q -- "--precision" <<<"$help" || { precs=fp32 popt=0; }
    for p in $precs; do
      flag=(); [ $popt = 1 ] && flag=(--precision "$p")
      t0=$(date +%s.%N)
      OMP_NUM_THREADS=$threads "$bin" eval --checkpoint "$ckpt" "${flag[@]}" --json >"$tmp/m.json" 2>"$tmp/err" \
        || { echo "run_infer_bench.sh: $name $p failed: $(tail -1 "$tmp/err")" >&2; exit 1; }
      t1=$(date +%s.%N)
      python3 - "$name" "$p" "$r" "$t0" "$t1" "$tmp/m.json" "$cpu" "$rev" "$threads" >>"$out" <<'PY'
import json, sys
name, p, r, t0, t1, mj, cpu, rev, th = sys.argv[1:]
m = json.load(open(mj))
n = sum(m[k] for k in ("tp", "fp", "tn", "fn"))
s = float(t1) - float(t0)
print(json.dumps({"what": "adebert eval, test split, wall incl. load", "side": name, "precision": p, "round": int(r),
                  "seconds": round(s, 2), "rows": n, "rows_per_s": round(n / s, 1) if n else None,
                  "f1": m.get("f1"), "cpu": cpu, "threads": int(th), "rev": rev}))
PY
      tail -1 "$out"
    done
  done
done
python3 - "$out" "$first" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]).readlines()[int(sys.argv[2]) - 1:] if '"side"' in l]
for k in dict.fromkeys((r["side"], r["precision"]) for r in rows):
    s = [r["seconds"] for r in rows if (r["side"], r["precision"]) == k]
    print(f"{k[0]:10} {k[1]:5} median {statistics.median(s):6.2f} s  (min {min(s):.2f}, max {max(s):.2f}, n {len(s)})")
PY
