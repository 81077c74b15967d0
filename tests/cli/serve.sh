#!/usr/bin/env bash
# adebert serve (issue 11), the real server on free loopback ports, driven by curl and
# Python's http.client/ssl (tests/cli/serve_drive.py) with a test CA made by openssl:
#  - options: --help, one-line errors, non-loopback bind refused without TLS, keys and
#    token files readable by others refused;
#  - TLS 1.2+/AEAD only (TLS 1.1 refused, plain HTTP to the TLS port fails);
#  - bearer token (401 without / with a wrong one, 200 with it);
#  - every error class (400 malformed JSON, wrong types, invalid UTF-8, depth, range;
#    413 body, inputs, text; 404; 405), errors name the field, never quote the text;
#  - results equal `adebert predict` within 1e-6, alone, in lists and in mixed
#    concurrent batches (24 concurrent requests, twice); /metrics counts all of it;
#  - queue full / queue timeout -> 503 + Retry-After; SIGTERM with 16 requests in
#    flight -> all answered, exit 0; --model HF_DIR (adebert export) equals predict;
#  - --precision bf16 equals predict --precision bf16 (and differs from fp32);
#  - --batch-wait adaptive answers a lone request at once, fixed holds it --max-wait-ms;
#  - no request text in the server's stderr.
source "$(dirname "$0")/lib.bash"
require_corpus
PY=/usr/bin/python3
DRIVE="$(dirname "$0")/serve_drive.py"
for tool in openssl curl "$PY"; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found (launch/install-deps.sh installs it)"; exit 1; }
done

"$BIN" version >"$TMP/version.txt" 2>&1
if ! grep -q "HDF5 .*(checkpoints)" "$TMP/version.txt"; then
  # Without HDF5 there is no checkpoint to serve (and no export to make an HF folder
  # from): serve says so in one line.
  echo "note: this build has no HDF5: serve's checkpoint tests are skipped; only its errors are checked"
  : >"$TMP/fake.h5"
  expect_exit 1 "serve --checkpoint without HDF5" -- "$BIN" serve --checkpoint "$TMP/fake.h5" --port 0
  grep -q "without HDF5\|ADEBERT_HDF5=OFF" "$TMP/err" && pass "serve names HDF5" || fail "serve names HDF5: $(cat "$TMP/err")"
  expect_exit 1 "serve --model: not an HF folder" -- "$BIN" serve --model "$TMP" --port 0
  finish
fi

# ---------------------------------------------------------------- a tiny checkpoint
run="$TMP/run"
"$BIN" train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --limit 200 --epochs 1 --max-steps 3 \
  --batch-size 16 --lr 1e-3 --max-seq-len 64 --save-every epoch --quiet --out "$run" >"$TMP/train.log" 2>"$TMP/train.err"
ckpt="$run/best.h5"
[ -f "$ckpt" ] && pass "train wrote a checkpoint" || { fail "train wrote a checkpoint: $(tail -3 "$TMP/train.err")"; finish; }

# Texts: corpus sentences of many lengths (some past max_seq_len 64: truncated), an
# empty one, non-ASCII ones. predict scores them once: the reference.
$PY - "$CORPUS" "$TMP/texts.json" "$TMP/texts.txt" <<'PY'
import json, sys
lines = [l.split("|")[1].strip() for l in open(sys.argv[1] + "/DRUG-AE.rel", encoding="utf-8") if l.strip()][:400:13]
lines += [l.split(" ", 2)[2].strip() for l in open(sys.argv[1] + "/ADE-NEG.txt", encoding="utf-8") if l.strip()][:300:17]
lines += ["", "Ibuprofène a causé une éruption — 頭痛 after 5 mg/día.", "word " * 200]
json.dump(lines, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
open(sys.argv[3], "w", encoding="utf-8").write("".join(t + "\n" for t in lines))
PY
"$BIN" predict --checkpoint "$ckpt" <"$TMP/texts.txt" >"$TMP/pred.jsonl" 2>"$TMP/pred.err" \
  && [ "$(wc -l <"$TMP/pred.jsonl")" -eq "$($PY -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$TMP/texts.json")" ] \
  && pass "predict scored the reference texts" || fail "predict: $(cat "$TMP/pred.err")"

# ---------------------------------------------------------------- test CA, key, token
(
  cd "$TMP" || exit 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj /CN=adebert-test-CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile san.ext
) >"$TMP/openssl.log" 2>&1 && pass "test CA and server certificate made" || { fail "openssl: $(tail -3 "$TMP/openssl.log")"; finish; }
chmod 600 "$TMP/srv.key"
token=$($PY -c 'import secrets; print(secrets.token_urlsafe(32))')
printf '%s\n' "$token" >"$TMP/token"
chmod 600 "$TMP/token"

# ---------------------------------------------------------------- options
S=("$BIN" serve --checkpoint "$ckpt" --port 0)
expect_exit 0 "serve --help" -- "$BIN" serve --help
grep -q "/invocations" "$TMP/out" && pass "--help lists the API" || fail "--help: $(head -3 "$TMP/out")"
expect_exit 2 "serve: no model" -- "$BIN" serve
expect_exit 2 "serve: --checkpoint and --model" -- "$BIN" serve --checkpoint "$ckpt" --model "$TMP"
expect_exit 2 "serve: unknown flag" -- "${S[@]}" --bogus
expect_exit 2 "serve: bad --port" -- "${S[@]}" --port 70000
expect_exit 2 "serve: bad --threshold" -- "${S[@]}" --threshold 1.5
expect_exit 2 "serve: bad --max-batch" -- "${S[@]}" --max-batch 0
expect_exit 2 "serve: bad --batch-wait" -- "${S[@]}" --batch-wait sometimes
expect_exit 2 "serve: --device cuda" -- "${S[@]}" --device cuda
expect_exit 2 "serve: --tls-cert without --tls-key" -- "${S[@]}" --tls-cert "$TMP/srv.pem"
expect_exit 2 "serve: --host not numeric" -- "${S[@]}" --host localhost
expect_exit 2 "serve: non-loopback --host without TLS refused" -- "${S[@]}" --host 0.0.0.0
grep -q "tls-cert" "$TMP/err" && pass "the refusal names --tls-cert" || fail "non-loopback refusal: $(cat "$TMP/err")"
expect_exit 2 "serve: non-loopback IPv6 --host without TLS refused" -- "${S[@]}" --host ::
expect_exit 2 "serve: --max-inputs over --max-queue" -- "${S[@]}" --max-inputs 10 --max-queue 5
expect_exit 1 "serve: missing checkpoint" -- "$BIN" serve --checkpoint "$TMP/nope.h5" --port 0
expect_exit 1 "serve --model: not an HF folder" -- "$BIN" serve --model "$TMP" --port 0
cp "$TMP/srv.key" "$TMP/open.key"; chmod 640 "$TMP/open.key"
expect_exit 1 "serve: a group-readable TLS key refused" -- "${S[@]}" --tls-cert "$TMP/srv.pem" --tls-key "$TMP/open.key"
grep -q "chmod 600" "$TMP/err" && ! grep -q "BEGIN" "$TMP/err" && pass "the refusal says chmod 600 (and no key)" \
  || fail "key refusal: $(cat "$TMP/err")"
cp "$TMP/token" "$TMP/open.token"; chmod 644 "$TMP/open.token"
expect_exit 1 "serve: a world-readable token file refused" -- "${S[@]}" --token-file "$TMP/open.token"
grep -q "$token" "$TMP/err" && fail "the refusal quotes the token" || pass "the refusal does not quote the token"
printf 'short\n' >"$TMP/short.token"; chmod 600 "$TMP/short.token"
expect_exit 1 "serve: a short token refused" -- "${S[@]}" --token-file "$TMP/short.token"
expect_exit 1 "serve: a certificate that is not PEM" -- "${S[@]}" --tls-cert "$TMP/texts.txt" --tls-key "$TMP/srv.key"

# ---------------------------------------------------------------- servers
# start_server NAME ARGS...: adebert serve ARGS --port 0 in the background (stderr to
# $TMP/NAME.err); sets pid and port once it listens.
start_server() {
  local name=$1; shift
  "$BIN" serve --port 0 "$@" 2>"$TMP/$name.err" &
  pid=$!
  port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*listening on https\?:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$TMP/$name.err" | head -1)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "$name server did not start: $(head -c 400 "$TMP/$name.err")"
  kill "$pid" 2>/dev/null
  return 1
}
# stop_server NAME: SIGTERM, expect exit 0.
stop_server() {
  kill -TERM "$pid"
  wait "$pid"
  local rc=$?
  [ $rc -eq 0 ] && pass "$1 server: SIGTERM -> exit 0" || fail "$1 server: SIGTERM -> exit $rc: $(tail -3 "$TMP/$1.err")"
}

# The TLS server: token, small limits, batching window 30 ms.
if start_server tls --checkpoint "$ckpt" --tls-cert "$TMP/srv.pem" --tls-key "$TMP/srv.key" --token-file "$TMP/token" \
    --max-inputs 8 --max-text-bytes 2000 --max-body-bytes 65536 --max-batch 64 --max-wait-ms 30 --workers 4; then
  pass "TLS server listens on port $port"
  curl -sS --cacert "$TMP/ca.pem" "https://localhost:$port/ping" >"$TMP/curl.out" 2>&1 \
    && grep -q ok "$TMP/curl.out" && pass "curl: https /ping with the test CA" || fail "curl /ping: $(cat "$TMP/curl.out")"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/ca.pem" --tlsv1.1 --tls-max 1.1 "https://localhost:$port/ping")
  [ "$code" = 000 ] && pass "curl: TLS 1.1 refused" || fail "curl: TLS 1.1 answered $code"
  code=$(curl -s -o "$TMP/curl.out" -w '%{http_code}' --cacert "$TMP/ca.pem" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"inputs": ["Naproxen caused pseudoporphyria."]}' "https://localhost:$port/invocations")
  [ "$code" = 200 ] && grep -q p_adverse_event "$TMP/curl.out" && pass "curl: POST /invocations with the token" \
    || fail "curl /invocations: $code $(cat "$TMP/curl.out")"
  $PY "$DRIVE" tls "$port" "$TMP/ca.pem" "$token" "$TMP/pred.jsonl" "$TMP/texts.json" >"$TMP/drive.out" 2>&1
  rc=$?
  cat "$TMP/drive.out"
  checks=$((checks + $(grep -c '^ok ' "$TMP/drive.out"))); fails=$((fails + $(grep -c '^FAIL ' "$TMP/drive.out")))
  [ $rc -eq 0 ] || grep -q '^FAIL ' "$TMP/drive.out" || fail "serve_drive.py tls exited $rc"
  stop_server tls
  # No request text in the log: the PHI marker, the corpus sentences, the token.
  leak=$($PY - "$TMP/tls.err" "$TMP/texts.json" "$token" <<'PY'
import json, sys
log = open(sys.argv[1], encoding="utf-8", errors="replace").read()
needles = ["secret patient words", sys.argv[3]] + [t for t in json.load(open(sys.argv[2], encoding="utf-8")) if len(t) >= 12]
print(next((n[:40] for n in needles if n in log), ""))
PY
)
  [ -z "$leak" ] && pass "no request text (nor the token) in the server's log ($(wc -l <"$TMP/tls.err") lines)" \
    || fail "the server's log holds request text: $leak"
  grep -q "request [0-9]* /v1/classify 200 inputs=" "$TMP/tls.err" && pass "access log: ids, routes, codes, sizes" \
    || fail "access log: $(head -3 "$TMP/tls.err")"
fi

# Queue full and queue timeout.
if start_server queue --checkpoint "$ckpt" --batch-wait fixed --max-inputs 4 --max-queue 4 --max-wait-ms 5000 --queue-timeout-ms 300; then
  $PY "$DRIVE" queue "$port" >"$TMP/drive.out" 2>&1
  cat "$TMP/drive.out"
  checks=$((checks + $(grep -c '^ok ' "$TMP/drive.out"))); fails=$((fails + $(grep -c '^FAIL ' "$TMP/drive.out")))
  stop_server queue
fi

# SIGTERM with requests in flight (held by a long batching window).
if start_server drain --checkpoint "$ckpt" --batch-wait fixed --max-wait-ms 10000 --queue-timeout-ms 20000 --max-batch 64; then
  drain_pid=$pid
  $PY "$DRIVE" drain "$port" "$drain_pid" "$TMP/pred.jsonl" "$TMP/texts.json" >"$TMP/drive.out" 2>&1
  cat "$TMP/drive.out"
  checks=$((checks + $(grep -c '^ok ' "$TMP/drive.out"))); fails=$((fails + $(grep -c '^FAIL ' "$TMP/drive.out")))
  wait "$drain_pid"
  rc=$?
  [ $rc -eq 0 ] && pass "drained server exited 0" || fail "drained server exited $rc: $(tail -3 "$TMP/drain.err")"
  grep -q "draining" "$TMP/drain.err" && pass "the drain is logged" || fail "drain log: $(tail -3 "$TMP/drain.err")"
fi

# --model HF_DIR: the checkpoint exported, served over loopback HTTP.
if "$BIN" export --checkpoint "$ckpt" --out "$TMP/hf" >"$TMP/export.log" 2>&1; then
  pass "export wrote an HF folder"
  if start_server hf --model "$TMP/hf" --max-seq-len 64; then
    $PY "$DRIVE" plain "$port" "$TMP/pred.jsonl" "$TMP/texts.json" >"$TMP/drive.out" 2>&1
    cat "$TMP/drive.out"
    checks=$((checks + $(grep -c '^ok ' "$TMP/drive.out"))); fails=$((fails + $(grep -c '^FAIL ' "$TMP/drive.out")))
    stop_server hf
  fi
else
  fail "export: $(tail -2 "$TMP/export.log")"
fi

# --batch-wait adaptive (default): a lone client is not held for --max-wait-ms; the
# negative control, fixed, holds it (2 s here).
for mode in adaptive fixed; do
  if start_server wait_$mode --checkpoint "$ckpt" --max-wait-ms 2000 --batch-wait $mode; then
    t=$(curl -s -o /dev/null -w '%{time_total}' -d '{"inputs": "a rash after penicillin"}' "http://127.0.0.1:$port/v1/classify")
    if [ $mode = adaptive ]; then
      awk -v t="$t" 'BEGIN { exit !(t < 1.0) }' && pass "adaptive wait: a lone request answered in ${t}s (max wait 2 s)" \
        || fail "adaptive wait: a lone request took ${t}s"
    else
      awk -v t="$t" 'BEGIN { exit !(t >= 1.9) }' && pass "fixed wait: a lone request held ${t}s (negative control)" \
        || fail "fixed wait: a lone request took only ${t}s"
    fi
    stop_server wait_$mode
  fi
done

# --precision bf16: the server's scores equal `predict --precision bf16`'s (and not
# fp32's: the plain driver on fp32 predictions must fail, the negative control).
# (version_says, not `version | grep -q`: under pipefail that fails when grep closes the
# pipe early, which sent the ASan build down the wrong branch)
if version_says "fp32 and bf16"; then
  "$BIN" predict --checkpoint "$ckpt" --precision bf16 <"$TMP/texts.txt" >"$TMP/pred16.jsonl" 2>"$TMP/pred16.err"
  if start_server bf16 --checkpoint "$ckpt" --precision bf16; then
    grep -q "bf16 GEMMs" "$TMP/bf16.err" && pass "serve --precision bf16 says so" || fail "bf16 banner: $(head -c 300 "$TMP/bf16.err")"
    $PY "$DRIVE" plain "$port" "$TMP/pred16.jsonl" "$TMP/texts.json" >"$TMP/drive.out" 2>&1
    cat "$TMP/drive.out"
    checks=$((checks + $(grep -c '^ok ' "$TMP/drive.out"))); fails=$((fails + $(grep -c '^FAIL ' "$TMP/drive.out")))
    $PY "$DRIVE" plain "$port" "$TMP/pred.jsonl" "$TMP/texts.json" >"$TMP/drive32.out" 2>&1
    grep -q '^FAIL ' "$TMP/drive32.out" && pass "bf16 server differs from fp32 predict (negative control)" \
      || fail "bf16 server matched fp32 predict: bf16 is not on"
    stop_server bf16
  fi
else
  # bounded: were bf16 available after all, the server would start and never exit
  expect_exit 1 "serve --precision bf16 on a CPU without it" -- timeout 60 "$BIN" serve --checkpoint "$ckpt" --port 0 --precision bf16
fi
finish
