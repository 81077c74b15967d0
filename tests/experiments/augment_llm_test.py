#!/usr/bin/python3
"""experiments/augment/llm_fewshot.py against an OpenAI-compatible server process on
loopback (ctest augment_llm).

THE SERVER IS tests/experiments/fake_openai_server.py, NOT A LANGUAGE MODEL: a real
HTTP server speaking the OpenAI chat/completions protocol (request checks, response
and error shapes, usage) that misbehaves on command. This test proves the client's
protocol and error handling, not the quality of what a model would generate. (No
real server is cheap here: Debian 12 has no llama.cpp package, llama-cpp-python has
no wheel for this Python and builds for many minutes, and no weights can be fetched.)

Checked: each prompt holds exactly k training positives (the ones its prompt_id
names) and no validation/test text (with a control that the check sees one); the
request bodies for chat and completions; 500s are retried with exponential backoff;
a slow answer times out and is retried; --max-requests stops the requests; a rerun
continues at the next request without repeating one (also after a crash between
writing the rows and the state); a malformed, a wrongly shaped and a truncated body,
a cut-off last sentence and chatter are counted drops; a 400 is not retried; an
unreachable endpoint or one that drops connections exits 1 with one line and leaves
valid partial output. Nothing printed quotes a training or generated sentence.
"""
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augment_testlib import PY, ac, check, done, make_split, quotes_any, rows, run, tmpdir  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
tmp = tmpdir("augment-llm")
split = make_split(tmp)
data, man = ac.load_split(split)
norm = ac.normalize
train_by_id = {r["id"]: r for r in data["train"]}
train_pos_norm = {norm(r["text"]) for r in data["train"] if r["label"] == 1}
eval_texts = [norm(r["text"]) for p in ("val", "test") for r in data[p]]
eval_set = set(eval_texts)
rels, _ = ac.load_relations(ac.find_corpus(man, split))
lex = ac.lexicon(ac.train_templates(data["train"], rels)[0])
simple = lambda s: s.isalpha() and s.islower() and len(s) > 5  # noqa: E731
words = {"drugs": sorted(s for s in lex["drug"].values() if simple(s))[:50],
         "effects": sorted(s for s in lex["effect"].values() if simple(s) and not ac.is_plural(s))[:50]}
with open(os.path.join(tmp, "words.json"), "w") as f:
    json.dump(words, f)

log = os.path.join(tmp, "server.log")
srv = subprocess.Popen([PY, os.path.join(HERE, "fake_openai_server.py"), "--words", os.path.join(tmp, "words.json"),
                        "--log", log, "--lifetime", "240"], stdout=subprocess.PIPE, text=True)
port = int(srv.stdout.readline().split()[1])
BASE = f"http://127.0.0.1:{port}/v1"
noproxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
printed = []


def control(queue):
    noproxy.open(urllib.request.Request(f"http://127.0.0.1:{port}/_control", json.dumps({"queue": queue}).encode(),
                                        {"Content-Type": "application/json"}), timeout=5).read()
    open(log, "w").close()


def reqs():
    with open(log) as f:
        return [json.loads(l) for l in f if l.strip()]


def llm(out, *args, filt=False):
    a = ["--split", split, "--out", out, "--endpoint", BASE, "--backoff", "0.05", "--timeout", "5", *args]
    if not filt:
        a.append("--no-filter")
    rc, so, se = run("llm_fewshot", *a)
    printed.append(so + se)
    return rc, so, se


def state(out):
    return json.load(open(ac.side_path(out, ".state.json")))


def examples(prompt):
    """The numbered example lines of a prompt made from prompt.txt."""
    head = prompt.split("\n\nWrite ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\d+\. (.*)$", head, re.M)]


def leaks(prompt):
    p = norm(prompt)
    return any(len(t) >= 30 and t in p for t in eval_texts)


def valid_jsonl(path):
    try:
        rs = rows(path)
        return all(set(r) == {"text", "label", "source", "prompt_id"} for r in rs), len(rs)
    except (ValueError, OSError):
        return False, 0


# ---- 0. reply parsing (no server)
sys.path.insert(0, ac.ROOT + "/experiments/augment")
import llm_fewshot  # noqa: E402
got, d = llm_fewshot.parse_reply(
    "<think>Let me think about drugs.</think>Sure! Here are three:\n1. \"Drug A caused rash in one patient.\"\n"
    "2) Drug B caused severe nausea in two. 3. Drug C caused a mild tremor here.\nLet me know if you need more.\n"
    "4. Drug D caused \ud800 odd text.\n5. An unterminated sentence about drug E", False)
check(got == ["Drug A caused rash in one patient.", "Drug B caused severe nausea in two.",
              "Drug C caused a mild tremor here."] and
      d == {"not_a_sentence": 2, "invalid_utf8": 1, "unterminated": 1},
      f"parse_reply: quotes, '2)', inline '3.', a think block; chatter, a surrogate, an unterminated line dropped ({d})")
got, d = llm_fewshot.parse_reply("* Drug A caused a rash today.\n* Drug B caused a fever and", True)
check(got == ["Drug A caused a rash today."] and d == {"truncated_sentence": 1}, "bullets; cut at max_tokens: last dropped")

# ---- A. chat, with the filter: the prompts
control([])
A = os.path.join(tmp, "a.jsonl")
rc, so, se = llm(A, "--count", 12, filt=True)
R, Q = rows(A), reqs()
check(rc == 0 and len(R) == 12 and len(Q) == 3, f"chat: 12 rows from 3 requests (exit {rc}, {len(Q)} requests)")
body_ok = all(q["path"] == "/v1/chat/completions" and q["body"]["model"] == "default" and
              q["body"]["temperature"] == 0.9 and q["body"]["max_tokens"] == 512 and
              [m["role"] for m in q["body"]["messages"]] == ["user"] for q in Q)
check(body_ok, "request bodies: model, one user message, temperature, max_tokens")
prompts = [q["body"]["messages"][0]["content"] for q in Q]
ex = [examples(p) for p in prompts]
check(all(len(e) == 5 for e in ex), "each prompt shows exactly k = 5 examples")
check(all(norm(t) in train_pos_norm for e in ex for t in e), "every example is a training positive")
check(not any(norm(t) in eval_set for e in ex for t in e) and not any(leaks(p) for p in prompts),
      "no validation or test text anywhere in the prompts")
check(leaks(prompts[0] + "\n" + eval_texts[7]), "control: the leak check sees a test sentence put in a prompt")
ok = True
for r in R:
    m = re.match(r"^llm:s1:r(\d+):shots=([\d,]+)$", r["prompt_id"])
    ok &= bool(m) and [" ".join(train_by_id[int(s)]["text"].split()) for s in m.group(2).split(",")] == \
        ex[int(m.group(1))]
check(ok, "each row's prompt_id names its request and the training row ids of the examples it was shown")
check(all(r["label"] == "Adverse_Event" and r["source"] == "llm_fewshot:default" for r in R),
      "rows are Adverse_Event, source llm_fewshot:<model>")
rep = json.load(open(os.path.join(tmp, "a.filter.json")))
check(rep["checked"] == 12 and rep["kept"] == 12 and rep["cumulative"]["usage"]["total_tokens"] > 0,
      "the filter saw every sentence; the report sums the usage fields")
K3 = os.path.join(tmp, "k3.jsonl")
control([])
rc, so, se = llm(K3, "--count", 5, "--k", 3)
check(rc == 0 and all(len(examples(q["body"]["messages"][0]["content"])) == 3 for q in reqs()),
      "--k 3: exactly 3 examples")

# ---- B. 500s: retried with exponential backoff, the same request resent
control(["500", "500"])
B = os.path.join(tmp, "b.jsonl")
rc, so, se = llm(B, "--count", 5, "--backoff", "0.2")
Q = reqs()
gaps = [Q[i + 1]["t"] - Q[i]["t"] for i in range(len(Q) - 1)]
check(rc == 0 and len(Q) == 3 and len(rows(B)) == 5, f"two 500s then an answer: 3 requests, 5 rows (exit {rc})")
check(len(gaps) == 2 and gaps[0] >= 0.2 and gaps[1] >= 0.4 and Q[0]["body"] == Q[2]["body"],
      f"backoff doubles: waits {', '.join(f'{g:.2f}' for g in gaps)} s >= 0.2, 0.4; the same body resent")
check(state(B)["retries"] == {"http_500": 2}, "the state counts 2 retries on HTTP 500")
control(["429"])
rc, so, se = llm(os.path.join(tmp, "b2.jsonl"), "--count", 5)
check(rc == 0 and len(reqs()) == 2, "a 429 (Retry-After: 0) is retried")

# ---- C. the request budget, then D. resume
control([])
C = os.path.join(tmp, "c.jsonl")
rc, so, se = llm(C, "--count", 100, "--max-requests", 3)
first = open(C, "rb").read()
check(rc == 0 and len(reqs()) == 3 and len(rows(C)) == 15 and state(C)["next_request"] == 3 and "--max-requests" in so,
      "--max-requests 3: 3 requests, 15 rows, stopped and said so")
check(json.load(open(os.path.join(tmp, "c.filter.json")))["complete"] is False, "the report says incomplete")
control([])
rc, so, se = llm(C, "--count", 100, "--max-requests", 2)
Rc = rows(C)
ridx = [int(re.match(r"llm:s1:r(\d+):", r["prompt_id"]).group(1)) for r in Rc]
check(rc == 0 and len(reqs()) == 2 and open(C, "rb").read().startswith(first) and len(Rc) == 25,
      "resume: 2 more requests, the first 15 rows untouched, 25 rows")
check(sorted(set(ridx)) == [0, 1, 2, 3, 4] and len({norm(r["text"]) for r in Rc}) == 25,
      "requests 0..4 once each, no sentence twice")
check(state(C)["requests_sent"] == 5, "the state counts 5 requests over both runs")
# a crash after writing the rows but before the state: the rows tell where to go on
st = state(C)
st["next_request"] = 3
json.dump(st, open(ac.side_path(C, ".state.json"), "w"))
control([])
rc, so, se = llm(C, "--count", 100, "--max-requests", 1)
r_new = [int(re.match(r"llm:s1:r(\d+):", r["prompt_id"]).group(1)) for r in rows(C)][25:]
check(rc == 0 and r_new == [5] * 5, "a state behind the rows: the rerun goes on at request 5, not 3")
before = open(C, "rb").read()
rc, so, se = llm(C, "--count", 100, "--seed", 2)
check(rc == 1 and len(se.strip().splitlines()) == 1 and open(C, "rb").read() == before,
      "another --seed on the same output: exit 1, one line, output unchanged")

# ---- E. malformed, wrongly shaped, truncated bodies, a cut-off sentence, chatter: counted drops
control(["malformed", "truncated", "badshape", "length", "chatter", "ok"])
E = os.path.join(tmp, "e.jsonl")
rc, so, se = llm(E, "--count", 100, "--max-requests", 6, "--retries", 0)
d = state(E)["drops"]
check(rc == 0 and valid_jsonl(E) == (True, 14), f"6 answers, 3 unusable: 14 rows, valid JSONL (exit {rc})")
check(d.get("malformed_response") == 2 and d.get("truncated_response") == 1,
      f"malformed + wrongly shaped = 2 malformed_response, 1 truncated_response ({d})")
check(d.get("truncated_sentence") == 1 and d.get("not_a_sentence") == 2,
      "finish_reason length: the cut sentence dropped; chatter: 2 lines dropped")

# ---- F. a slow answer: timed out, retried
control(["slow:1.5"])
F = os.path.join(tmp, "f.jsonl")
rc, so, se = llm(F, "--count", 5, "--timeout", "0.5")
check(rc == 0 and len(rows(F)) == 5 and state(F)["retries"] == {"timeout": 1}, "a slow answer times out, is retried")

# ---- G. /v1/completions
control([])
G = os.path.join(tmp, "g.jsonl")
rc, so, se = llm(G, "--count", 5, "--api", "completions")
Q = reqs()
check(rc == 0 and len(rows(G)) == 5 and len(Q) == 1 and Q[0]["path"] == "/v1/completions" and
      "messages" not in Q[0]["body"] and len(examples(Q[0]["body"]["prompt"])) == 5,
      "--api completions: POST /v1/completions with a prompt string of 5 examples")

# ---- H. a 400: not retried
control(["400"])
rc, so, se = llm(os.path.join(tmp, "h.jsonl"), "--count", 5)
check(rc == 1 and len(se.strip().splitlines()) == 1 and "HTTP 400" in se and len(reqs()) == 1,
      "HTTP 400: one request, exit 1, one line")

# ---- I. unreachable, and connections dropped mid-run
s = socket.socket()
s.bind(("127.0.0.1", 0))
dead = s.getsockname()[1]
s.close()
before = open(C, "rb").read()
rc, so, se = run("llm_fewshot", "--split", split, "--out", C, "--endpoint", f"http://127.0.0.1:{dead}/v1",
                 "--count", 100, "--retries", 2, "--backoff", "0.01", "--no-filter")
printed.append(so + se)
check(rc == 1 and len(se.strip().splitlines()) == 1 and "cannot get an answer" in se,
      f"unreachable endpoint: exit 1, one line ({se.strip()[:120]})")
check(open(C, "rb").read() == before and valid_jsonl(C)[0], "... the partial output is untouched and valid")
control(["ok", "close", "close", "close"])
I = os.path.join(tmp, "i.jsonl")
rc, so, se = llm(I, "--count", 20, "--retries", 2)
check(rc == 1 and len(se.strip().splitlines()) == 1 and valid_jsonl(I) == (True, 5) and
      state(I)["next_request"] == 1, "connections dropped after one answer: exit 1, one line, its 5 rows kept")
control([])
rc, so, se = llm(I, "--count", 20, "--retries", 2)
check(rc == 0 and valid_jsonl(I) == (True, 20) and len({norm(r["text"]) for r in rows(I)}) == 20,
      "the rerun completes 20 rows without repeats")

generated = [r["text"] for p in (A, C, E, I) for r in rows(p)]
check(not quotes_any("\n".join(printed), [r["text"] for r in data["train"]] + generated),
      "nothing printed quotes a training or generated sentence")
srv.terminate()
srv.wait(10)
done(tmp)
