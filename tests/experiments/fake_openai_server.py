#!/usr/bin/python3
"""A small OpenAI-compatible HTTP server for tests, on loopback only.

IT IS NOT A LANGUAGE MODEL. It proves that a client speaks the protocol and handles
errors; it says nothing about generation quality. No real server was cheap enough
for CI here: Debian 12 packages no llama.cpp, PyPI's llama-cpp-python has no wheel
for this Python (a C++ build of many minutes on 2 cores), and no model weights can
be fetched. What it implements faithfully enough to check a client:

  POST /v1/chat/completions  request {model, messages: [{role, content}], temperature,
                             max_tokens, ...}; response {id, object:
                             "chat.completion", created, model, choices: [{index,
                             message: {role: "assistant", content}, finish_reason}],
                             usage: {prompt_tokens, completion_tokens, total_tokens}}
  POST /v1/completions       request {model, prompt, ...}; response {id, object:
                             "text_completion", created, model, choices: [{index,
                             text, logprobs: null, finish_reason}], usage}
  GET  /v1/models            {object: "list", data: [{id, object: "model", ...}]}
  errors                     {"error": {message, type, param, code}} with 4xx/5xx

The reply is a numbered list of "--n" (or the "Write N new sentences" of the prompt)
sentences made from --words (a JSON file {"drugs": [...], "effects": [...]}) and a
counter, so each is new. Misbehaviour on command: POST /_control {"queue": [...]}
sets what the next requests get, one entry each, then "ok":
  ok | 500 | 503 | 429 (Retry-After: 0) | 400 | malformed (200, not JSON) |
  badshape (200, JSON without choices) | truncated (Content-Length larger than the
  body, then the connection is closed) | close (closed before any answer) |
  length (finish_reason "length", the last sentence cut) | chatter (a preamble and
  a closing remark around the list) | slow:S (sleeps S seconds, then ok)
Every request is appended to --log as one JSON line {t, path, body}. The server
prints "PORT <n>" when it listens and exits by itself after --lifetime seconds.
"""
import argparse
import http.server
import json
import re
import socketserver
import sys
import threading
import time


class State:
    def __init__(self, words, log, n):
        self.words, self.log, self.n = words, log, n
        self.queue = []
        self.counter = 0
        self.lock = threading.Lock()


def sentences(st, n):
    out = []
    with st.lock:
        for _ in range(n):
            c = st.counter
            st.counter += 1
            d = st.words["drugs"][c % len(st.words["drugs"])]
            e = st.words["effects"][(c * 7 + 3) % len(st.words["effects"])]
            out.append(f"A {20 + c % 60}-year-old patient developed {e} on day {c + 2} of treatment with {d}.")
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, code, obj, headers=None):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b)

    def error(self, code, msg, typ="invalid_request_error", headers=None):
        self.send_json(code, {"error": {"message": msg, "type": typ, "param": None, "code": None}}, headers)

    def do_GET(self):
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "created": 0,
                                                            "owned_by": "tests"}]})
        else:
            self.error(404, "not found")

    def do_POST(self):
        st = self.server.st
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if self.path == "/_control":
            with st.lock:
                st.queue = list(body.get("queue", []))
            self.send_json(200, {"ok": True})
            return
        with st.lock:
            with open(st.log, "a") as f:
                f.write(json.dumps({"t": time.time(), "path": self.path, "body": body}) + "\n")
            act = st.queue.pop(0) if st.queue else "ok"
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self.error(404, f"unknown path {self.path}")
            return
        chat = self.path == "/v1/chat/completions"
        # the request's schema, as an OpenAI server checks it
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            self.error(400, "body must be a JSON object with a string 'model'")
            return
        if chat:
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs or not all(
                    isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and
                    isinstance(m.get("content"), str) for m in msgs):
                self.error(400, "'messages' must be a non-empty list of {role, content}")
                return
            prompt = "\n".join(m["content"] for m in msgs)
        else:
            if not isinstance(body.get("prompt"), str):
                self.error(400, "'prompt' must be a string")
                return
            prompt = body["prompt"]
        for key, typ in (("temperature", (int, float)), ("max_tokens", int), ("seed", int), ("n", int)):
            if key in body and not isinstance(body[key], typ):
                self.error(400, f"'{key}' has the wrong type")
                return
        if act.startswith("slow:"):
            time.sleep(float(act.split(":", 1)[1]))
            act = "ok"
        if act in ("500", "503"):
            self.error(int(act), "the server had an error", "server_error")
            return
        if act == "429":
            self.error(429, "rate limited", "rate_limit_error", {"Retry-After": "0"})
            return
        if act == "400":
            self.error(400, "bad request")
            return
        if act == "close":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if act == "malformed":
            b = b'{"id": "x", "choices": [{"message": {"content": "1. unfinished'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)
            return
        if act == "badshape":
            self.send_json(200, {"id": "x", "object": "chat.completion", "result": "no choices here"})
            return
        m = re.search(r"Write (\d+) new sentences", prompt)
        k = int(m.group(1)) if m else st.n
        sents = sentences(st, k)
        finish = "stop"
        text = "\n".join(f"{i}. {s}" for i, s in enumerate(sents, 1))
        if act == "length":
            text = text[:len(text) - len(sents[-1]) // 2]
            finish = "length"
        elif act == "chatter":
            text = "Sure! Here are new sentences:\n\n" + text + "\n\nI hope these help with your corpus."
        ptok, ctok = len(prompt.split()), len(text.split())
        common = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{st.counter}", "created": int(time.time()),
                  "model": body["model"],
                  "usage": {"prompt_tokens": ptok, "completion_tokens": ctok, "total_tokens": ptok + ctok}}
        if chat:
            obj = {"object": "chat.completion", **common,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": finish}]}
        else:
            obj = {"object": "text_completion", **common,
                   "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}
        if act == "truncated":
            b = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b[:len(b) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_json(200, obj)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that timed out and left (the slow case) is expected: no traceback
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--lifetime", type=float, default=300)
    a = ap.parse_args()
    with open(a.words) as f:
        words = json.load(f)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.st = State(words, a.log, a.n)
    threading.Timer(a.lifetime, srv.shutdown).start()
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
