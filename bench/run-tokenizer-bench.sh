#!/usr/bin/env bash
# Tokenizer throughput, adebert vs Hugging Face `tokenizers` (one thread each, same
# core), on every row of the ADE `hf` view. The two sides alternate ROUNDS times
# (>= 3) per configuration; each run reports the median of REPS repetitions.
# Prints medians over rounds, spread (min..max) and the ratio; writes the raw
# JSON to bench/results/tokenizer-<UTC date>.json.
#   BUILD=build-tok ROUNDS=3 REPS=5 CORE=0 bench/run-tokenizer-bench.sh [DATA_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${ADEBERT_TEST_DATA:-$root/../shared/data}}
build=${BUILD:-$root/build}
[[ $build = /* ]] || build=$root/$build
rounds=${ROUNDS:-3}
reps=${REPS:-5}
core=${CORE:-0}
bin=$build/bench/bench_tokenizer
if [[ ! -x $bin ]]; then
    echo "run-tokenizer-bench: $bin not built (cmake --build $build --target bench_tokenizer)" >&2
    exit 1
fi
if (( rounds < 3 )); then
    echo "run-tokenizer-bench: ROUNDS must be >= 3" >&2
    exit 1
fi
[[ -f $data/ade-corpus-v2/DRUG-AE.rel ]] || { echo "run-tokenizer-bench: no corpus under $data" >&2; exit 1; }

export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | head -c1 | wc -c)
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
date=$(date -u +%Y-%m-%d)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

configs=("bert-base-cased-vocab.txt --cased" "bert-base-uncased-vocab.txt --lowercase")
for ((r = 1; r <= rounds; r++)); do
    for ci in "${!configs[@]}"; do
        read -r vocab flag <<<"${configs[$ci]}"
        taskset -c "$core" "$bin" --data "$data" --vocab "$data/vocab/$vocab" "$flag" --reps "$reps" \
            >"$tmp/a-$ci-$r.json"
        taskset -c "$core" python3 "$root/bench/tokenizer_peer.py" --data "$data" --vocab "$data/vocab/$vocab" \
            "$flag" --reps "$reps" >"$tmp/h-$ci-$r.json"
        echo "round $r config $ci done" >&2
    done
done

mkdir -p "$root/bench/results"
out=$root/bench/results/tokenizer-$date.json
python3 - "$tmp" "$rounds" "${#configs[@]}" "$out" "$rev" "$dirty" "$cpu" "$stamp" "$core" <<'EOF'
import json, statistics, sys
tmp, rounds, ncfg, out, rev, dirty, cpu, stamp, core = sys.argv[1:]
rounds, ncfg = int(rounds), int(ncfg)
res = {"benchmark": "tokenizer", "date": stamp, "git_revision": rev, "git_dirty": dirty == "1",
       "cpu": cpu, "core": int(core), "threads": 1,
       "env": {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}, "configs": []}
for c in range(ncfg):
    a = [json.load(open("%s/a-%d-%d.json" % (tmp, c, r))) for r in range(1, rounds + 1)]
    h = [json.load(open("%s/h-%d-%d.json" % (tmp, c, r))) for r in range(1, rounds + 1)]
    assert all(x["tokens"] == h[0]["tokens"] for x in a + h), "sides produced different token counts"
    def summ(runs, key):
        v = [x[key]["rows_per_s"] for x in runs if key in x]
        return {"median_rows_per_s": statistics.median(v), "min": min(v), "max": max(v),
                "spread_pct": round(100 * (max(v) - min(v)) / statistics.median(v), 1)} if v else None
    s = {"adebert_corpus_csr": summ(a, "corpus_csr"), "adebert_encode_per_row": summ(a, "encode_per_row"),
         "hf_encode_batch": summ(h, "encode_batch"), "hf_encode_batch_fast": summ(h, "encode_batch_fast"),
         "hf_encode_per_row": summ(h, "encode_per_row")}
    ratio = {"csr_vs_encode_batch": s["adebert_corpus_csr"]["median_rows_per_s"] / s["hf_encode_batch"]["median_rows_per_s"],
             "per_row_vs_per_row": s["adebert_encode_per_row"]["median_rows_per_s"] / s["hf_encode_per_row"]["median_rows_per_s"]}
    if s["hf_encode_batch_fast"]:
        ratio["csr_vs_encode_batch_fast"] = s["adebert_corpus_csr"]["median_rows_per_s"] / s["hf_encode_batch_fast"]["median_rows_per_s"]
    res["configs"].append({"vocab": a[0]["vocab"], "lowercase": a[0]["lowercase"], "rows": a[0]["rows"],
                           "tokens": a[0]["tokens"], "tokenizers_version": h[0]["tokenizers_version"],
                           "summary": s, "ratio_adebert_over_hf": ratio, "raw": {"adebert": a, "hf": h}})
    print("%s lowercase=%d (%d rows, %d tokens; rows/s, median over %d rounds [min..max])"
          % (a[0]["vocab"], a[0]["lowercase"], a[0]["rows"], a[0]["tokens"], rounds))
    for k, v in s.items():
        if v:
            print("  %-24s %12.0f  [%.0f .. %.0f]  spread %.1f%%" % (k, v["median_rows_per_s"], v["min"], v["max"], v["spread_pct"]))
    for k, v in ratio.items():
        print("  ratio adebert/hf %-22s %.1fx" % (k, v))
json.dump(res, open(out, "w"), indent=1)
print("git %s%s, cpu %s; raw results: %s" % (rev, " (dirty)" if dirty == "1" else "", cpu, out))
EOF
