"""What the experiments/augment tests share (not a test itself): checks, a split
folder made by the built adebert, running the tools, and a privacy check on output.
Run under ctest (ADEBERT_BIN, ADEBERT_TEST_DATA, ADEBERT_SOURCE_DIR set)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("ADEBERT_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
AUG = os.path.join(SRC, "experiments", "augment")
sys.path.insert(0, AUG)
import augcommon as ac  # noqa: E402,F401 (re-exported to the tests)

BIN = os.environ.get("ADEBERT_BIN") or os.path.join(SRC, "build", "adebert")
DATA = os.environ.get("ADEBERT_TEST_DATA") or os.path.join(SRC, "..", "shared", "data")
CORPUS = os.path.join(DATA, "ade-corpus-v2")
PY = "/usr/bin/python3"

checks = 0
fails = 0


def check(cond, what):
    global checks, fails
    checks += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails += 1
    return cond


def tmpdir(name):
    return tempfile.mkdtemp(prefix=f"{name}.")


def make_split(tmp, name="split", extra=()):
    if not os.path.isfile(os.path.join(CORPUS, "DRUG-AE.rel")):
        print(f"FAIL corpus missing at {CORPUS}")
        sys.exit(1)
    d = os.path.join(tmp, name)
    p = subprocess.run([BIN, "data", "split", "--data", CORPUS, "--out", d, "--split", "grouped", "--seed", "42",
                        *extra], capture_output=True, text=True)
    if p.returncode:
        print(f"FAIL adebert data split: {p.stderr.strip()}")
        sys.exit(1)
    return d


def run(tool, *args, timeout=120, env=None):
    """(exit code, stdout, stderr) of experiments/augment/<tool>.py."""
    p = subprocess.run([PY, os.path.join(AUG, tool + ".py"), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def quotes_any(output, texts, minlen=25):
    """Does printed output hold any of these texts (or a 25-char piece of one)?"""
    for t in texts:
        if len(t) >= minlen and (t in output or t[:minlen] in output or t[-minlen:] in output):
            return True
    return False


def done(tmp):
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{checks - fails} passed, {fails} failed")
    sys.exit(1 if fails else 0)
