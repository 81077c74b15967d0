"""Soak client for `adebert serve` (bench/serve/soak.sh): N connections for D seconds,
each a thread with a persistent HTTP/1.1 connection, sending a seeded mix of

  valid      one text                      -> 200, p equal to `adebert predict`'s (1e-6)
  batch      a list of 2-8 texts           -> 200, one result per text, in order, equal
  threshold  one text, a per-request threshold -> 200, label follows that threshold
  big_body   a body past --max-body-bytes  -> 413
  big_text   one text past --max-text-bytes -> 413
  malformed  truncated JSON                -> 400
  badutf8    invalid UTF-8 inside a string -> 400
  badtype    "inputs": 42                  -> 400
  noauth     no bearer token               -> 401
  badauth    a wrong token                 -> 401
  health     GET /healthz                  -> 200

Every response is checked; a wrong answer, an unexpected status or a connection error
counts as a failure (503 with Retry-After is counted apart: overload, not failure). Prints
a JSON summary on stdout; exit 1 on any failure. No request text is ever printed.

  soak.py PORT TOKEN TEXTS_JSON PRED_JSONL SECONDS CONNS SEED MAX_BODY MAX_TEXT
"""
import http.client
import json
import random
import sys
import threading
import time

TOL = 1e-6
KINDS = [("valid", 40), ("batch", 15), ("threshold", 5), ("big_body", 5), ("big_text", 5), ("malformed", 6),
         ("badutf8", 6), ("badtype", 6), ("noauth", 5), ("badauth", 4), ("health", 3)]


def main():
    port, token, texts_p, pred_p = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    seconds, conns, seed = float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    max_body, max_text = int(sys.argv[8]), int(sys.argv[9])
    texts = json.load(open(texts_p, encoding="utf-8"))
    pred = [json.loads(l)["p_adverse_event"] for l in open(pred_p, encoding="utf-8")]
    assert len(texts) == len(pred), "texts and predictions differ in length"
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    lock = threading.Lock()
    counts = {k: 0 for k in names}
    fails = {}
    first_fail = {}
    overload = [0]
    reconnects = [0]
    worst = [0.0]
    deadline = time.monotonic() + seconds

    def fail(kind, why):
        with lock:
            fails[kind] = fails.get(kind, 0) + 1
            first_fail.setdefault(kind, why[:300])

    def check_results(data, idx, thr):
        res = json.loads(data)
        if not isinstance(res, list) or len(res) != len(idx):
            return "wrong number of results"
        w = 0.0
        for r, i in zip(res, idx):
            p = r["p_adverse_event"]
            w = max(w, abs(p - pred[i]))
            if abs(p - pred[i]) > TOL:
                return f"text #{i}: p {p!r} vs predict {pred[i]!r}"
            want = "Adverse_Event" if p >= thr else "Not_AE"
            if r["label"] != want or r["threshold"] != thr:
                return f"text #{i}: label {r['label']} threshold {r['threshold']}"
        with lock:
            worst[0] = max(worst[0], w)
        return None

    def worker(wid):
        rng = random.Random(seed * 1000 + wid)
        conn = None
        while time.monotonic() < deadline:
            kind = rng.choices(names, weights)[0]
            hdr = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
            method, path, body, want, idx, thr = "POST", "/v1/classify", None, 400, None, 0.5
            if kind in ("valid", "noauth", "badauth"):
                idx = [rng.randrange(len(texts))]
                body = json.dumps({"inputs": texts[idx[0]]}).encode()
                want = 200
                if kind == "noauth":
                    del hdr["Authorization"]
                    want = 401
                elif kind == "badauth":
                    hdr["Authorization"] = "Bearer " + "x" * len(token)
                    want = 401
            elif kind == "batch":
                idx = [rng.randrange(len(texts)) for _ in range(rng.randint(2, 8))]
                body = json.dumps({"inputs": [texts[i] for i in idx]}).encode()
                path = rng.choice(["/v1/classify", "/invocations"])
                want = 200
            elif kind == "threshold":
                idx = [rng.randrange(len(texts))]
                thr = rng.choice([0.1, 0.3, 0.6, 0.9])
                body = json.dumps({"inputs": texts[idx[0]], "parameters": {"threshold": thr}}).encode()
                want = 200
            elif kind == "big_body":
                body = b'{"inputs": ["' + b"a" * (max_body + 16) + b'"]}'
                want = 413
            elif kind == "big_text":
                body = b'{"inputs": "' + b"word " * (max_text // 5 + 8) + b'"}'
                want = 413
            elif kind == "malformed":
                full = json.dumps({"inputs": texts[rng.randrange(len(texts))]}).encode()
                body = full[: rng.randrange(1, len(full) - 1)]
            elif kind == "badutf8":
                body = b'{"inputs": "abc \xc3\x28 \xff def"}'
            elif kind == "badtype":
                body = rng.choice([b'{"inputs": 42}', b'{"inputs": [1, 2]}', b'{"texts": ["a"]}', b'[]'])
            elif kind == "health":
                method, path, want = "GET", "/healthz", 200
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request(method, path, body=body, headers=hdr)
                r = conn.getresponse()
                data = r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                    with lock:
                        reconnects[0] += 1
            except Exception as x:  # noqa: BLE001
                if conn is not None:
                    conn.close()
                conn = None
                with lock:
                    reconnects[0] += 1
                fail(kind, f"connection error: {type(x).__name__}")
                continue
            with lock:
                counts[kind] += 1
            if status == 503 and want == 200:
                with lock:
                    overload[0] += 1
                continue
            if status != want:
                fail(kind, f"status {status}, want {want}")
                continue
            if want == 200 and idx is not None:
                why = check_results(data, idx, thr)
                if why:
                    fail(kind, why)
            elif want >= 400:
                try:
                    e = json.loads(data)["error"]
                    assert e["code"] == want
                except Exception:  # noqa: BLE001
                    fail(kind, "error body is not the JSON error")
        if conn is not None:
            conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    total = sum(counts.values())
    out = {"seconds": round(wall, 1), "connections": conns, "seed": seed, "requests": total,
           "requests_per_s": round(total / wall, 1), "by_kind": counts, "failures": sum(fails.values()),
           "failures_by_kind": fails, "first_failure": first_fail, "overload_503": overload[0],
           "reconnects": reconnects[0], "max_abs_diff_vs_predict": worst[0]}
    print(json.dumps(out))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
