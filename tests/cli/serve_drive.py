"""Client side of tests/cli/serve.sh: drives a running `adebert serve` with
http.client/ssl and prints one line per check ("ok ..." / "FAIL ...").

usage: serve_drive.py MODE PORT [args...]
  tls      PORT CA TOKEN PRED_JSONL TEXTS_JSON   the TLS server: handshake, auth, errors,
                                                 results vs predict alone and batched, metrics
  drain    PORT PID PRED_JSONL TEXTS_JSON         16 requests in flight, then SIGTERM
  queue    PORT                                   queue full and queue timeout -> 503
  plain    PORT PRED_JSONL TEXTS_JSON             one list request vs predict (--model)
"""
import http.client
import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point

PHI = "secret patient words"
TOL = 1e-6
failures = 0


def check(ok, desc, detail=""):
    global failures
    if ok:
        print(f"ok   {desc}")
    else:
        failures += 1
        print(f"FAIL {desc}: {detail}"[:600])


def load_pred(path):
    return [json.loads(l)["p_adverse_event"] for l in open(path, encoding="utf-8")]


class Client:
    def __init__(self, port, ctx=None, token=None):
        self.port, self.ctx, self.token = port, ctx, token

    def conn(self):
        if self.ctx:
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def req(self, method, path, body=None, token="default", headers=None, chunked=False):
        c = self.conn()
        h = dict(headers or {})
        tok = self.token if token == "default" else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None:
            h.setdefault("Content-Type", "application/json")
            if isinstance(body, str):
                body = body.encode("utf-8")
        try:
            if chunked:
                c.request(method, path, body=iter([body]), headers=h, encode_chunked=True)
            else:
                c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def classify(self, inputs, path="/v1/classify", threshold=None):
        body = {"inputs": inputs}
        if threshold is not None:
            body["parameters"] = {"threshold": threshold}
        return self.req("POST", path, json.dumps(body))


def compare(results, idx, pred, thr=0.5):
    """results for texts idx: same p as predict within TOL, consistent labels."""
    if not isinstance(results, list) or len(results) != len(idx):
        return f"{len(results) if isinstance(results, list) else results!r} results for {len(idx)} inputs"
    worst = 0.0
    for r, i in zip(results, idx):
        if set(r) != {"label", "score", "p_adverse_event", "threshold"}:
            return f"keys {sorted(r)}"
        p = r["p_adverse_event"]
        worst = max(worst, abs(p - pred[i]))
        if abs(p - pred[i]) > TOL:
            return f"text {i}: serve {p!r} predict {pred[i]!r}"
        lab = "Adverse_Event" if p >= thr else "Not_AE"
        if r["label"] != lab or r["threshold"] != thr:
            return f"text {i}: label {r['label']} threshold {r['threshold']} for p {p} (want {lab} at {thr})"
        if abs(r["score"] - (p if lab == "Adverse_Event" else 1 - p)) > 1e-12:
            return f"text {i}: score {r['score']} for p {p}"
    return f"OK max |diff| {worst:.2e}"


def err_json(status, data, want_status, want_field=None):
    try:
        e = json.loads(data)["error"]
    except Exception as x:  # noqa: BLE001
        return f"not a JSON error body ({x}): {data[:200]!r}"
    if status != want_status or e.get("code") != want_status:
        return f"status {status}, error code {e.get('code')}, want {want_status}: {e}"
    if want_field and want_field not in e.get("message", ""):
        return f"message does not name {want_field}: {e}"
    if PHI in data.decode("utf-8", "replace"):
        return "the error quotes the request text"
    return "OK"


def concurrent(fn, n):
    out = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as x:  # noqa: BLE001
            out[i] = x

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def metrics(cl):
    st, _, data = cl.req("GET", "/metrics")
    m = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            m[k] = float(v)
    return st, m


def mode_tls(port, ca, token, pred_path, texts_path):
    pred = load_pred(pred_path)
    texts = json.load(open(texts_path, encoding="utf-8"))
    ctx = ssl.create_default_context(cafile=ca)
    cl = Client(port, ctx, token)

    # --- TLS
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            ver, cipher = s.version(), s.cipher()[0]
    check(ver in ("TLSv1.2", "TLSv1.3") and ("GCM" in cipher or "CHACHA20" in cipher),
          f"TLS handshake with the test CA: {ver} {cipher}", f"{ver} {cipher}")
    c12 = ssl.create_default_context(cafile=ca)
    c12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with c12.wrap_socket(raw, server_hostname="localhost") as s:
            check(s.version() == "TLSv1.2", f"TLS 1.2 accepted ({s.cipher()[0]})", s.version())
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(ca)
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with old.wrap_socket(raw, server_hostname="localhost") as s:
                check(False, "TLS 1.1 refused", f"handshake succeeded with {s.version()}")
    except (ssl.SSLError, OSError) as x:
        check(True, f"TLS 1.1 refused ({type(x).__name__})")
    try:
        st, _, _ = Client(port).req("GET", "/ping")
        check(False, "plain HTTP to the TLS port fails", f"got HTTP {st}")
    except (http.client.HTTPException, OSError) as x:
        check(True, f"plain HTTP to the TLS port fails ({type(x).__name__})")

    # --- auth
    st, h, data = cl.req("POST", "/v1/classify", json.dumps({"inputs": PHI}), token=None)
    check(st == 401 and h.get("www-authenticate") == "Bearer" and PHI not in data.decode(),
          "401 without a token", f"{st} {h} {data[:200]!r}")
    check(json.loads(data)["error"]["message"] == "unauthorized", "401 says no more than 'unauthorized'", data[:200])
    st, _, _ = cl.req("POST", "/invocations", json.dumps({"inputs": "x"}), token=token[:-1] + "X")
    check(st == 401, "401 with a wrong token", st)
    st, _, _ = cl.req("POST", "/invocations", json.dumps({"inputs": "x"}), token=token + "extra")
    check(st == 401, "401 with a longer token", st)
    st, _, _ = cl.req("GET", "/metrics", token=None)
    check(st == 401, "/metrics needs the token", st)
    st, _, data = cl.req("GET", "/ping", token=None)
    check(st == 200, "/ping (SageMaker) answers without a token", st)
    for path in ("/healthz", "/readyz"):
        st, _, _ = cl.req("GET", path, token=None)
        check(st == 200, f"{path} 200", st)
    st, h, data = cl.classify(texts[0])
    check(st == 200 and h.get("cache-control") == "no-store" and "strict-transport-security" in h,
          "200 with the token (no-store, HSTS)", f"{st} {h}")

    # --- error classes
    cases = [
        ("malformed JSON", b'{"inputs": ["a", ', 400, "body"),
        ("trailing garbage", b'{"inputs": "a"} x', 400, "body"),
        ("not an object", b'["a"]', 400, "body"),
        ("missing inputs", b'{"text": "a"}', 400, "inputs"),
        ("wrong type in the list", json.dumps({"inputs": ["a", "b", PHI, 7]}).encode(), 400, "inputs[3]"),
        ("inputs a number", b'{"inputs": 5}', 400, "inputs"),
        ("empty list", b'{"inputs": []}', 400, "inputs"),
        ("invalid UTF-8", b'{"inputs": ["ok", "' + PHI.encode() + b' \xff\xfe"]}', 400, "inputs[1]"),
        ("lone surrogate escape", b'{"inputs": ["\\ud800"]}', 400, "body"),
        ("threshold a string", b'{"inputs": "a", "parameters": {"threshold": "high"}}', 400, "parameters.threshold"),
        ("threshold out of range", b'{"inputs": "a", "parameters": {"threshold": 1.5}}', 400, "parameters.threshold"),
        ("parameters not an object", b'{"inputs": "a", "parameters": 3}', 400, "parameters"),
        ("nesting too deep", b'{"inputs": ' + b"[" * 40 + b'"a"' + b"]" * 40 + b"}", 400, "nested"),
        ("too many inputs", json.dumps({"inputs": ["t"] * 9}).encode(), 413, "inputs"),
        ("text too long", json.dumps({"inputs": ["ok", PHI + " " + "y" * 3000]}).encode(), 413, "inputs[1]"),
        ("body too large", json.dumps({"inputs": [PHI + " " + "z" * 70000]}).encode(), 413, "body"),
    ]
    for desc, body, want, field in cases:
        st, _, data = cl.req("POST", "/v1/classify", body)
        r = err_json(st, data, want, field)
        check(r == "OK", f"{want} {desc}", r)
    st, _, data = cl.req("POST", "/invocations", json.dumps({"inputs": [PHI + "z" * 70000]}), chunked=True)
    r = err_json(st, data, 413, "body")
    check(r == "OK", "413 body too large, chunked", r)
    st, _, data = cl.req("GET", "/nope?name=" + "secret")
    check(err_json(st, data, 404) == "OK", "404 unknown path", f"{st} {data[:200]!r}")
    st, h, data = cl.req("GET", "/v1/classify")
    check(err_json(st, data, 405) == "OK" and h.get("allow") == "POST", "405 GET /v1/classify (Allow: POST)",
          f"{st} {h}")
    st, h, data = cl.req("POST", "/ping", b"{}")
    check(err_json(st, data, 405) == "OK" and h.get("allow") == "GET", "405 POST /ping (Allow: GET)", f"{st} {h}")

    # --- results vs predict: alone
    n_ok = 0
    worst = []
    for i in range(min(12, len(texts))):
        st, _, data = cl.classify(texts[i], path="/invocations" if i % 2 else "/v1/classify")
        r = compare(json.loads(data), [i], pred) if st == 200 else f"status {st}"
        if r.startswith("OK"):
            n_ok += 1
            worst.append(r)
        else:
            check(False, f"text {i} alone equals predict", r)
    check(n_ok == min(12, len(texts)), f"{n_ok} texts alone equal predict within {TOL}")
    # one list, all texts, in order (spans forwards: more texts than --max-batch? no:
    # --max-inputs 8, so several lists)
    for lo in range(0, len(texts), 8):
        idx = list(range(lo, min(lo + 8, len(texts))))
        st, _, data = cl.classify([texts[i] for i in idx])
        r = compare(json.loads(data), idx, pred) if st == 200 else f"status {st}: {data[:200]!r}"
        if not r.startswith("OK"):
            check(False, f"list {idx[0]}..{idx[-1]} equals predict, in order", r)
            break
    else:
        check(True, "lists of up to 8 texts: one result per input, in order, equal to predict")
    thr = 0.5 + 1e-9 if pred[0] < 0.5 else pred[0]
    st, _, data = cl.classify([texts[0], texts[1]], threshold=thr)
    r = compare(json.loads(data), [0, 1], pred, thr) if st == 200 else f"status {st}"
    check(r.startswith("OK"), f"per-request threshold {thr} is applied and recorded", r)

    # --- results vs predict: mixed concurrent batches
    _, m0 = metrics(cl)
    rnd = random.Random(7)
    plans = []
    for _ in range(24):
        k = rnd.randint(1, 8)
        plans.append([rnd.randrange(len(texts)) for _ in range(k)])

    def one(i):
        idx = plans[i]
        st, _, data = cl.classify([texts[j] for j in idx], path="/invocations" if i % 2 else "/v1/classify")
        return compare(json.loads(data), idx, pred) if st == 200 else f"status {st}: {data[:200]!r}"

    rounds_ok = 0
    for _ in range(2):
        res = concurrent(one, len(plans))
        bad = [r for r in res if not (isinstance(r, str) and r.startswith("OK"))]
        if bad:
            check(False, "24 concurrent requests equal predict", str(bad[0]))
        else:
            rounds_ok += 1
    st, m1 = metrics(cl)
    nb = m1["adebert_batch_size_count"] - m0["adebert_batch_size_count"]
    ns = m1["adebert_batch_size_sum"] - m0["adebert_batch_size_sum"]
    check(rounds_ok == 2, f"2 rounds of 24 concurrent requests ({sum(map(len, plans))} texts each) equal predict "
          f"within {TOL}: {ns:.0f} sequences in {nb:.0f} forwards")
    check(nb < 2 * len(plans), f"concurrent requests were batched together ({ns / max(nb, 1):.1f} sequences per forward)",
          f"{nb} forwards for {2 * len(plans)} requests")

    # --- metrics
    want = {
        'adebert_errors_total{kind="malformed_json"}': 3,
        'adebert_errors_total{kind="wrong_type"}': 7,
        'adebert_errors_total{kind="invalid_utf8"}': 1,
        'adebert_errors_total{kind="out_of_range"}': 1,
        'adebert_errors_total{kind="nesting_depth"}': 1,
        'adebert_errors_total{kind="too_many_inputs"}': 1,
        'adebert_errors_total{kind="text_too_long"}': 1,
        'adebert_errors_total{kind="body_too_large"}': 2,
        'adebert_errors_total{kind="unauthorized"}': 4,
        'adebert_errors_total{kind="not_found"}': 1,
        'adebert_errors_total{kind="method_not_allowed"}': 2,
        'adebert_requests_total{path="/ping",code="200"}': 2,  # serve.sh's curl + ours
        'adebert_requests_total{path="other",code="404"}': 1,
        'adebert_requests_total{path="/metrics",code="401"}': 1,
        'adebert_requests_total{path="/v1/classify",code="413"}': 3,
    }
    bad = [f"{k} = {m1.get(k)} (want {v})" for k, v in want.items() if m1.get(k) != v]
    n200 = m1.get('adebert_requests_total{path="/v1/classify",code="200"}', 0) + \
        m1.get('adebert_requests_total{path="/invocations",code="200"}', 0)
    # serve.sh's curl /invocations, then ours
    want200 = 1 + 1 + 12 + (len(texts) + 7) // 8 + 1 + 2 * len(plans)
    if n200 != want200:
        bad.append(f"{n200} classify 200s counted, {want200} made")
    for k in ("adebert_request_duration_seconds_count", "adebert_queue_depth", 'adebert_batch_size_bucket{le="+Inf"}',
              "adebert_inputs_total"):
        if k not in m1:
            bad.append(f"{k} missing")
    check(not bad, "/metrics counts requests by path and code, errors by kind, batches, latency, queue depth",
          "; ".join(bad))


def mode_drain(port, pid, pred_path, texts_path):
    pred = load_pred(pred_path)
    texts = json.load(open(texts_path, encoding="utf-8"))
    cl = Client(port)
    st, _, _ = cl.req("GET", "/readyz")
    check(st == 200, "/readyz 200 before SIGTERM", st)
    n = 16
    started = threading.Event()

    def one(i):
        idx = [(i * 3 + j) % len(texts) for j in range(1 + i % 4)]
        st, _, data = cl.classify([texts[j] for j in idx])
        return compare(json.loads(data), idx, pred) if st == 200 else f"status {st}: {data[:200]!r}"

    res = [None] * n

    def run(i):
        try:
            res[i] = one(i)
        except Exception as x:  # noqa: BLE001
            res[i] = repr(x)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    started.set()
    # the server holds them for --max-wait-ms (long here): wait until all are in
    # flight (the /metrics request itself is one more)
    t0 = time.time()
    seen = 0
    while time.time() - t0 < 20:
        _, m = metrics(cl)
        seen = m.get("adebert_requests_in_flight", 0) - 1
        if seen >= n:
            break
        time.sleep(0.05)
    check(seen >= n, f"{n} requests in flight before SIGTERM", f"{seen} seen")
    os.kill(pid, signal.SIGTERM)
    for t in ts:
        t.join()
    bad = [r for r in res if not (isinstance(r, str) and r.startswith("OK"))]
    check(not bad, f"SIGTERM with {n} requests in flight: all answered, equal to predict", str(bad[:2]))
    time.sleep(0.2)
    try:
        st, _, _ = cl.req("GET", "/ping")
        check(False, "no new connections after SIGTERM", f"got {st}")
    except OSError as x:
        check(True, f"no new connections after SIGTERM ({type(x).__name__})")


def mode_queue(port):
    cl = Client(port)
    # --max-inputs 4 --max-queue 4 --max-wait-ms 5000 --queue-timeout-ms 300: the
    # first request fills the queue and waits; the second finds it full (503 at once);
    # the first then passes its deadline (503, not a hang).
    out = {}

    def first():
        t0 = time.time()
        out["a"] = cl.classify(["a", "b", "c", "d"]) + (time.time() - t0,)

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.1)
    st, h, data = cl.classify(["e"])
    check(st == 503 and h.get("retry-after") == "1" and json.loads(data)["error"]["code"] == 503,
          "503 + Retry-After when the queue is full", f"{st} {h}")
    t.join()
    st, h, data, dt = out["a"]
    check(st == 503 and h.get("retry-after") == "1" and dt < 4.0,
          f"503 + Retry-After past --queue-timeout-ms ({dt:.2f} s)", f"{st} {h} {dt}")
    _, m = metrics(cl)
    check(m.get('adebert_errors_total{kind="queue_full"}') == 1 and m.get('adebert_errors_total{kind="queue_timeout"}') == 1,
          "queue_full and queue_timeout counted", str({k: v for k, v in m.items() if "queue" in k}))


def mode_plain(port, pred_path, texts_path):
    pred = load_pred(pred_path)
    texts = json.load(open(texts_path, encoding="utf-8"))
    cl = Client(port)
    idx = list(range(min(8, len(texts))))
    st, _, data = cl.classify([texts[i] for i in idx])
    r = compare(json.loads(data), idx, pred) if st == 200 else f"status {st}: {data[:200]!r}"
    check(r.startswith("OK"), f"--model HF_DIR (export of the checkpoint) equals predict: {r}", r)


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    a = sys.argv[3:]
    if mode == "tls":
        mode_tls(port, *a)
    elif mode == "drain":
        mode_drain(port, int(a[0]), a[1], a[2])
    elif mode == "queue":
        mode_queue(port)
    elif mode == "plain":
        mode_plain(port, *a)
    sys.exit(1 if failures else 0)
