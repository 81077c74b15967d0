#!/usr/bin/python3
"""Synthetic positives from a large language model behind any OpenAI-compatible
endpoint, prompted with k training positives.

  experiments/augment/llm_fewshot.py --split SPLIT_DIR --out OUT.jsonl
      --endpoint http://127.0.0.1:8080/v1 [--api chat|completions] [--model NAME]
      [--count 100] [--k 5] [--per-request 5] [--seed 1] [--temperature 0.9]
      [--max-tokens 512] [--max-requests 100] [--retries 4] [--backoff 1]
      [--max-backoff 30] [--timeout 120] [--prompt experiments/augment/prompt.txt]
      [--api-key-env OPENAI_API_KEY] [filter options]

Request i (0, 1, 2, ...) shows k positives drawn from the split's train.jsonl with
random.Random("<seed>/<i>"): the same request always shows the same examples, also
after a resume. The prompt is prompt.txt with {examples} (a numbered list) and {n}
(--per-request) filled in; --api chat sends it as one user message to
BASE/chat/completions, --api completions as the prompt of BASE/completions. The reply
is cut into sentences (numbered or bulleted lines; list markers, quotes and
<think> blocks removed); a malformed or truncated response, an unfinished last
sentence (finish_reason "length"), chatter and unterminated lines are counted drops.
Every sentence then passes experiments/augment/filter.py (unless --no-filter) and is
written as {"text", "label": "Adverse_Event", "source": "llm_fewshot:<model>",
"prompt_id": "llm:s<seed>:r<i>:shots=<train ids>"}.

Failures: HTTP 429/5xx, timeouts and connection errors are retried (--retries times,
waiting --backoff x 2^attempt seconds, at most --max-backoff, or the server's
Retry-After); other HTTP errors and exhausted retries end the run with one line on
stderr and exit 1. --max-requests caps the HTTP requests of one invocation (retries
included). OUT and OUT.state.json (OUT less .jsonl) are rewritten atomically after every response, so
OUT is always valid JSONL; running the same command again continues at the next
request and never repeats a request or a kept sentence. Exit 0 when --count rows are
there or the budget is spent (the summary says which), 1 on failure, 2 on bad usage.

Privacy: the prompts carry training sentences to the endpoint; use a server you run
(the corpus may hold patient data). Nothing printed holds corpus or generated text.
"""
import argparse
import collections
import hashlib
import http.client
import ipaddress
import json
import os
import random
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import augcommon as ac  # noqa: E402
import filter as flt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PARSE_DROPS = ("malformed_response", "truncated_response", "empty_response", "truncated_sentence",
               "not_a_sentence", "unterminated", "invalid_utf8", "surplus")
STATE_KEYS = {"seed": "--seed", "k": "--k", "per_request": "--per-request", "api": "--api", "model": "--model",
              "prompt_sha256": "--prompt template", "train_sha256": "--split (other training rows)"}


class Fatal(Exception):
    pass


class Budget(Exception):
    pass


# ------------------------------------------------------------------ prompts

def shot_pool(train_rows):
    """Distinct training positives (first row id of each normalised text), by id."""
    seen, pool = set(), []
    for r in sorted(train_rows, key=lambda r: r["id"]):
        n = ac.normalize(r["text"])
        if r["label"] == 1 and n and n not in seen:
            seen.add(n)
            pool.append((r["id"], " ".join(r["text"].split())))
    return pool


def build_prompt(template, pool, seed, i, k, n):
    rng = random.Random(f"{seed}/{i}")
    shots = rng.sample(pool, k)
    examples = "\n".join(f"{j}. {t}" for j, (_, t) in enumerate(shots, 1))
    prompt = template.replace("{examples}", examples).replace("{n}", str(n))
    return prompt, [sid for sid, _ in shots], rng.randrange(2 ** 31)


# ------------------------------------------------------------------ replies

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_MARK = re.compile(r"^\s*(?:\(?\d{1,3}\s*[.):\]]|[-*\u2022\u00b7])\s*")
_INLINE = re.compile(r"(?<=[.!?])\s+(?=\d{1,3}[.)]\s+\S)")
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def parse_reply(content, cut):
    """(sentences, drops) from a reply's text; cut: the reply stopped at max_tokens."""
    drops = collections.Counter()
    content = _THINK.sub("", content)
    items = []
    for line in content.splitlines():
        for part in _INLINE.split(line):  # '1. A. 2. B.' on one line
            s = part.strip()
            if not s:
                continue
            numbered = bool(_MARK.match(s))
            s = _MARK.sub("", s, count=1).strip()
            if s.startswith("**") and s.endswith("**"):
                s = s[2:-2].strip()
            if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
                s = s[1:-1].strip()
            items.append((s, numbered))
    if cut and items:
        items.pop()
        drops["truncated_sentence"] += 1
    any_numbered = any(num for _, num in items)
    out = []
    for s, numbered in items:
        if (any_numbered and not numbered) or s.endswith(":") or len(s.split()) < 3 or \
                not re.search(r"[^\W\d_]", s):
            drops["not_a_sentence"] += 1
        elif s[-1] not in ".!?" and s[-2:] not in ('."', ".)", ".'", ".\u201d"):
            drops["unterminated"] += 1
        elif not ac.valid_text(s):
            drops["invalid_utf8"] += 1
        else:
            out.append(s)
    return out, drops


def reply_text(api, body):
    """(text, finish_reason, usage) of a response body, or None if it is not the
    OpenAI shape."""
    try:
        j = json.loads(body.decode("utf-8"))
        ch = j["choices"][0]
        text = ch["message"]["content"] if api == "chat" else ch["text"]
        if not isinstance(text, str):
            return None
        usage = j.get("usage") if isinstance(j.get("usage"), dict) else {}
        return text, ch.get("finish_reason"), usage
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


# ------------------------------------------------------------------ HTTP

class Client:
    def __init__(self, a):
        self.a = a
        base = a.endpoint.rstrip("/")
        self.url = base + ("/chat/completions" if a.api == "chat" else "/completions")
        u = urllib.parse.urlparse(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ac.AugError("--endpoint must be an http(s) URL, e.g. http://127.0.0.1:8080/v1")
        self.where = f"{u.scheme}://{u.netloc}"
        handlers = []
        try:
            loop = u.hostname == "localhost" or ipaddress.ip_address(u.hostname).is_loopback
        except ValueError:
            loop = False
        if loop:  # a proxy from the environment must not get loopback requests
            handlers.append(urllib.request.ProxyHandler({}))
        self.opener = urllib.request.build_opener(*handlers)
        key = os.environ.get(a.api_key_env, "") if a.api_key_env else ""
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.sent = 0
        self.wait = 0.0
        self.retried = collections.Counter()

    def body(self, prompt, seed):
        b = {"model": self.a.model, "temperature": self.a.temperature, "max_tokens": self.a.max_tokens,
             "seed": seed, "n": 1, "stream": False}
        if self.a.api == "chat":
            b["messages"] = [{"role": "user", "content": prompt}]
        else:
            b["prompt"] = prompt
        return json.dumps(b).encode("utf-8")

    def post(self, data, i):
        """The response body of request i (bytes), None for a truncated body; retries
        what may pass. Raises Budget or Fatal."""
        a = self.a
        last = ""
        for attempt in range(a.retries + 1):
            if self.sent >= a.max_requests:
                raise Budget()
            if attempt:
                time.sleep(self.wait)
            self.sent += 1
            self.wait = min(a.max_backoff, a.backoff * 2 ** attempt)
            req = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
            try:
                with self.opener.open(req, timeout=a.timeout) as resp:
                    try:
                        return resp.read()
                    except http.client.IncompleteRead:
                        return None
                    except (socket.timeout, TimeoutError):
                        last = "timed out reading the response"
                        self.retried["timeout"] += 1
                        continue
            except urllib.error.HTTPError as e:
                code = e.code
                ra = e.headers.get("Retry-After") if e.headers else None
                e.close()
                if code == 429 or code >= 500:
                    last = f"HTTP {code}"
                    self.retried[f"http_{code}"] += 1
                    if ra and ra.strip().isdigit():
                        self.wait = min(a.max_backoff, float(ra))
                    continue
                raise Fatal(f"{self.where} answered HTTP {code} ({e.reason}) to request {i}: not retried "
                            "(check --endpoint, --api, --model, --api-key-env)")
            except (socket.timeout, TimeoutError):
                last = f"no answer within --timeout {a.timeout:g} s"
                self.retried["timeout"] += 1
            except urllib.error.URLError as e:
                r = e.reason
                last = r.strerror if isinstance(r, OSError) and r.strerror else str(r)
                self.retried["connection"] += 1
            except (http.client.HTTPException, ConnectionError) as e:
                last = type(e).__name__
                self.retried["connection"] += 1
        raise Fatal(f"cannot get an answer from {self.where}: {last} ({a.retries + 1} attempts at request {i})")


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", required=True, help="an `adebert data split` folder (shots from its train.jsonl)")
    ap.add_argument("--out", required=True, help="output JSONL (state in OUT.state.json, OUT less .jsonl)")
    ap.add_argument("--endpoint", required=True, help="base URL of the API, e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--api", choices=("chat", "completions"), default="chat", help="[chat]")
    ap.add_argument("--model", default="default", help="model name sent with each request [default]")
    ap.add_argument("--count", type=int, default=100, help="rows wanted in OUT [100]")
    ap.add_argument("--k", type=int, default=5, help="training positives per prompt [5]")
    ap.add_argument("--per-request", type=int, default=5, help="sentences asked for per request [5]")
    ap.add_argument("--seed", type=int, default=1, help="seed of the shot draws [1]")
    ap.add_argument("--temperature", type=float, default=0.9, help="[0.9]")
    ap.add_argument("--max-tokens", type=int, default=512, help="[512]")
    ap.add_argument("--max-requests", type=int, default=100,
                    help="HTTP requests this invocation may send, retries included [100]")
    ap.add_argument("--retries", type=int, default=4, help="retries of a failed request [4]")
    ap.add_argument("--backoff", type=float, default=1.0, help="first retry wait, doubled each time [1 s]")
    ap.add_argument("--max-backoff", type=float, default=30.0, help="longest wait [30 s]")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per request [120]")
    ap.add_argument("--prompt", default=os.path.join(HERE, "prompt.txt"), help="template [prompt.txt here]")
    ap.add_argument("--api-key-env", default="OPENAI_API_KEY",
                    help="environment variable holding the API key, sent as a Bearer token [OPENAI_API_KEY]")
    flt.add_args(ap)
    a = ap.parse_args()
    if a.count < 1 or a.k < 1 or a.per_request < 1 or a.max_requests < 0 or a.retries < 0 or \
            a.backoff < 0 or a.timeout <= 0 or a.max_tokens < 1:
        ap.error("need --count, --k, --per-request, --max-tokens >= 1, --timeout > 0, and no negative "
                 "--max-requests, --retries, --backoff")
    state_path = ac.side_path(a.out, ".state.json")
    rows = []
    try:
        flt.check_args(a)
        try:
            with open(a.prompt, "rb") as f:
                tbytes = f.read()
            template = tbytes.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ac.AugError(f"{a.prompt}: {getattr(e, 'strerror', None) or 'not UTF-8'}")
        if "{examples}" not in template:
            raise ac.AugError(f"{a.prompt}: the template has no {{examples}} placeholder")
        train, man = ac.load_split(a.split, parts=("train",))
        pool = shot_pool(train["train"])
        if len(pool) < a.k:
            raise ac.AugError(f"{a.split}: {len(pool)} distinct training positives, fewer than --k {a.k}")
        conf = {"seed": a.seed, "k": a.k, "per_request": a.per_request, "api": a.api, "model": a.model,
                "prompt_sha256": hashlib.sha256(tbytes).hexdigest(), "train_sha256": man["files"]["train"]["sha256"]}

        # resume: OUT and its state must come from this configuration
        state = {"version": 1, **conf, "next_request": 0, "requests_sent": 0, "responses": 0,
                 "drops": {}, "retries": {}, "usage": {}}
        if os.path.exists(state_path):
            try:
                with open(state_path, encoding="utf-8") as f:
                    old = json.load(f)
            except (OSError, ValueError):
                raise ac.AugError(f"{state_path}: unreadable; remove it and {a.out} to start again")
            for key, opt in STATE_KEYS.items():
                if old.get(key) != conf[key]:
                    raise ac.AugError(f"{a.out} was made with another {opt}; use another --out or remove it "
                                      f"and {state_path}")
            state.update(old)
        rows = ac.read_rows(a.out)
        if rows and not os.path.exists(state_path):
            raise ac.AugError(f"{a.out} exists without {state_path}: not this tool's output; use another --out")
        done_req = [int(m.group(1)) for r in rows for m in [re.match(r"llm:s\d+:r(\d+):", r.get("prompt_id", ""))]
                    if m]
        if done_req:  # a crash between writing OUT and its state
            state["next_request"] = max(state["next_request"], max(done_req) + 1)

        f = None if a.no_filter else flt.make(a, a.split)
        seen = set()
        for r in rows:
            seen.add(ac.normalize(r["text"]))
            if f is not None:
                f.add_existing(r["text"])
        client = Client(a)
        drops = collections.Counter()
        usage = collections.Counter()
        start_rows, stop = len(rows), "count"
        print(f"llm_fewshot: {len(rows)} rows in {a.out}, continuing at request {state['next_request']}; "
              f"{len(pool)} distinct training positives to draw {a.k} from", flush=True)

        def save():
            ac.write_jsonl(a.out, rows)
            st = dict(state)
            st["drops"] = dict(collections.Counter(state["drops"]) + drops +
                               (collections.Counter(f.counts) if f else collections.Counter()))
            st["retries"] = dict(collections.Counter(state["retries"]) + client.retried)
            st["usage"] = dict(collections.Counter(state["usage"]) + usage)
            st["requests_sent"] = state["requests_sent"] + client.sent
            st["rows"] = len(rows)
            ac.write_json(state_path, st)
            return st

        try:
            while len(rows) < a.count:
                i = state["next_request"]
                prompt, shot_ids, req_seed = build_prompt(template, pool, a.seed, i, a.k, a.per_request)
                body = client.post(client.body(prompt, req_seed), i)
                state["responses"] += 1
                got = None if body is None else reply_text(a.api, body)
                before = len(rows)
                if body is None:
                    drops["truncated_response"] += 1
                elif got is None:
                    drops["malformed_response"] += 1
                else:
                    text, finish, u = got
                    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                        if isinstance(u.get(key), int):
                            usage[key] += u[key]
                    sents, d = parse_reply(text, finish == "length")
                    drops.update(d)
                    if not sents and not d:
                        drops["empty_response"] += 1
                    pid = f"llm:s{a.seed}:r{i}:shots={','.join(str(s) for s in shot_ids)}"
                    for s in sents:
                        if len(rows) >= a.count:
                            drops["surplus"] += 1
                            continue
                        if f is not None:
                            if f.check(s, ac.POS, f"r{i}") is not None:
                                continue
                        elif ac.normalize(s) in seen:
                            drops["dup_synthetic"] += 1
                            continue
                        seen.add(ac.normalize(s))
                        rows.append({"text": s, "label": ac.POS, "source": f"llm_fewshot:{a.model}",
                                     "prompt_id": pid})
                state["next_request"] = i + 1
                save()
                print(f"request {i}: {len(rows) - before} rows kept, {len(rows)}/{a.count} in all", flush=True)
        except Budget:
            stop = "budget"
        except Fatal as e:
            save()
            ac.die(f"{e}; {a.out} keeps {len(rows)} valid rows, run again to continue")
        st = save()
        pd = ", ".join(f"{k} {drops[k]}" for k in PARSE_DROPS if drops[k]) or "none"
        print(f"llm_fewshot: {client.sent} HTTP requests this run ({sum(client.retried.values())} retries), "
              f"{len(rows) - start_rows} rows added, {len(rows)}/{a.count} in {a.out}; reply drops: {pd}",
              flush=True)
        if stop == "budget":
            print(f"llm_fewshot: stopped by --max-requests {a.max_requests} before --count {a.count}; "
                  "run again to continue", flush=True)
        extra = {"generator": "llm_fewshot", "endpoint": client.where, "complete": len(rows) >= a.count,
                 "stopped_by": stop, "this_run": {"requests_sent": client.sent, "retries": dict(client.retried),
                                                  "reply_drops": dict(drops), "rows_added": len(rows) - start_rows},
                 "cumulative": st}
        flt.finish(f, a, a.out, rows, extra)
    except ac.AugError as e:
        ac.die(str(e))
    except KeyboardInterrupt:
        ac.die(f"interrupted; {a.out} keeps {len(rows)} valid rows, run again to continue", 130)


if __name__ == "__main__":
    main()
