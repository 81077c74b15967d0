#!/usr/bin/env bash
# Soak of `adebert serve` (issue 11): SECONDS at CONNS connections with a seeded mix of
# valid, batched, per-threshold, oversized, malformed, invalid-UTF-8, wrongly typed,
# unauthenticated and health requests (bench/serve/soak.py checks every answer; valid
# ones against `adebert predict` within 1e-6). The server's RSS is sampled every 5 s;
# at the end it gets SIGTERM and must exit 0. Writes a JSON summary (soak figures, RSS
# series, exit status, sanitizer findings) to OUT.
#
#   bench/serve/soak.sh BUILD_DIR CKPT.h5 OUT.json [SECONDS=600] [CONNS=64] [SEED=1]
#
# With an ASan build (BUILD_DIR/CMakeCache.txt has ADEBERT_SANITIZE=ON) the server runs
# under ASan+LSan (tests/lsan.supp) and its report is checked: any "ERROR:" fails.
set -euo pipefail
build=${1:?usage: soak.sh BUILD_DIR CKPT.h5 OUT.json [SECONDS] [CONNS] [SEED]}
ckpt=${2:?checkpoint}
out=${3:?output json}
seconds=${4:-600}; conns=${5:-64}; seed=${6:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
corpus=${ADEBERT_DATA:-$root/../shared/data/ade-corpus-v2}
PY=/usr/bin/python3
max_body=65536; max_text=16384
work=$(mktemp -d)
spid=""
trap 'kill "$spid" 2>/dev/null || true; rm -rf "$work"' EXIT

# 600 corpus sentences (both labels, many lengths) + a few edge texts; predict scores them
$PY - "$corpus" "$work/texts.json" "$work/texts.txt" <<'PY'
import json, sys
pos = [l.split("|")[1].strip() for l in open(sys.argv[1] + "/DRUG-AE.rel", encoding="utf-8") if l.strip()]
neg = [l.split(" ", 2)[2].strip() for l in open(sys.argv[1] + "/ADE-NEG.txt", encoding="utf-8") if l.strip()]
texts = list(dict.fromkeys(pos[::11] + neg[::31]))[:600]
texts += ["", "Ibuprofène a causé une éruption — 頭痛 after 5 mg/día.", "word " * 300]
json.dump(texts, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
open(sys.argv[3], "w", encoding="utf-8").write("".join(t + "\n" for t in texts))
PY
"$build/adebert" predict --checkpoint "$ckpt" <"$work/texts.txt" >"$work/pred.jsonl" 2>"$work/pred.err"
token=$($PY -c 'import secrets; print(secrets.token_urlsafe(32))')
printf '%s\n' "$token" >"$work/token"; chmod 600 "$work/token"

asan=0
grep -q "^ADEBERT_SANITIZE:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null && asan=1
if [ $asan = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
  export OMPI_MCA_mca_base_component_disable_dlclose=1
fi
"$build/adebert" serve --checkpoint "$ckpt" --port 0 --token-file "$work/token" --max-connections 1024 \
  --max-body-bytes $max_body --max-text-bytes $max_text --no-access-log >"$work/server.out" 2>"$work/server.err" &
spid=$!
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*listening on [a-z]*:\/\/.*:\([0-9][0-9]*\) (.*/\1/p' "$work/server.err" | head -1)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$spid" 2>/dev/null || { echo "soak.sh: serve did not start: $(tail -3 "$work/server.err")" >&2; exit 1; }
  sleep 0.5
done
[ -n "$port" ] || { echo "soak.sh: no port in serve's output" >&2; exit 1; }
echo "soak.sh: serve pid $spid port $port, ${seconds}s at $conns connections (asan=$asan)" >&2

( while kill -0 "$spid" 2>/dev/null; do
    printf '%s %s\n' "$(date +%s)" "$(awk '/^VmRSS/ {print $2}' "/proc/$spid/status" 2>/dev/null)"
    sleep 5
  done ) >"$work/rss.txt" &
rss_pid=$!
set +e
$PY "$root/bench/serve/soak.py" "$port" "$token" "$work/texts.json" "$work/pred.jsonl" "$seconds" "$conns" "$seed" \
  $max_body $max_text >"$work/soak.json"
soak_rc=$?
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
kill -TERM "$spid"; wait "$spid"; serve_rc=$?
set -e
kill "$rss_pid" 2>/dev/null || true; wait "$rss_pid" 2>/dev/null || true
spid=""
leaked_text=0
# no request text in the server's logs: look for 40-byte windows of every text
$PY - "$work/texts.json" "$work/server.err" "$work/server.out" "$work/metrics.txt" >"$work/phi.txt" <<'PY'
import json, sys
texts = [t for t in json.load(open(sys.argv[1], encoding="utf-8")) if len(t) >= 40 and not t.startswith("word ")]
blob = "".join(open(p, encoding="utf-8", errors="replace").read() for p in sys.argv[2:])
print(sum(1 for t in texts if t[:40] in blob or t[-40:] in blob))
PY
leaked_text=$(cat "$work/phi.txt")
sanitizer=$(grep -c "ERROR: \(Address\|Leak\|Undefined\)Sanitizer\|runtime error:" "$work/server.err" || true)

$PY - "$work" "$out" "$soak_rc" "$serve_rc" "$leaked_text" "$sanitizer" "$asan" "$seconds" "$(git -C "$root" rev-parse --short HEAD)" <<'PY'
import json, os, platform, re, subprocess, sys
w, out = sys.argv[1], sys.argv[2]
soak = json.load(open(w + "/soak.json"))
rss = [(int(a), int(b)) for a, b in (l.split() for l in open(w + "/rss.txt") if len(l.split()) == 2)]
t0 = rss[0][0] if rss else 0
series = [[t - t0, kb] for t, kb in rss]
dur = float(sys.argv[8])
# flatness: the median RSS of the second minute vs the last minute (the first minute
# holds the allocator's warm-up: primitive caches, worker buffers)
def med(xs):
    xs = sorted(xs); return xs[len(xs) // 2] if xs else None
early = med([kb for t, kb in series if 60 <= t < 120]) if dur >= 180 else med([kb for t, kb in series[:len(series)//3]])
late = med([kb for t, kb in series if t >= series[-1][0] - 60]) if series else None
model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
cpu = next((l.split(":", 1)[1].strip() for l in model.splitlines() if l.startswith("Model name")), "?")
metrics = {}
for l in open(w + "/metrics.txt"):
    m = re.match(r'^(adebert_requests_total|adebert_errors_total)\{?([^}]*)\}?\s+(\S+)', l)
    if m:
        metrics[m.group(1) + ("{" + m.group(2) + "}" if m.group(2) else "")] = float(m.group(3))
res = {"soak": soak, "serve_exit": int(sys.argv[4]), "soak_exit": int(sys.argv[3]),
       "texts_found_in_logs": int(sys.argv[5]), "sanitizer_errors": int(sys.argv[6]), "asan": sys.argv[7] == "1",
       "rss_kb_early": early, "rss_kb_late": late,
       "rss_growth_pct": round(100.0 * (late - early) / early, 2) if early and late else None,
       "rss_series_kb": series, "server_metrics": metrics, "cpu": cpu, "rev": sys.argv[9]}
ok = (res["soak_exit"] == 0 and res["serve_exit"] == 0 and res["texts_found_in_logs"] == 0
      and res["sanitizer_errors"] == 0)
res["pass"] = ok
tmp = out + ".tmp"
json.dump(res, open(tmp, "w"), indent=1)
os.replace(tmp, out)
s = soak
print(f"soak: {s['requests']} requests in {s['seconds']} s ({s['requests_per_s']}/s) at {s['connections']} connections; "
      f"failures {s['failures']}, overload 503s {s['overload_503']}, max |p - predict| {s['max_abs_diff_vs_predict']:.1e}; "
      f"serve exit {res['serve_exit']}; RSS {early} -> {late} kB ({res['rss_growth_pct']}%); "
      f"texts in logs {res['texts_found_in_logs']}; sanitizer errors {res['sanitizer_errors']}; "
      f"{'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
