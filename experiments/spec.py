"""Table specs: load, validate and expand into runs (used by experiments/run, report, hpo).

A spec is a JSON object:
  name       table name (runs go to RUNS_DIR/<name>/...)
  data       corpus folder [../shared/data/ade-corpus-v2], relative to the repository
  runs_dir   where run directories go [experiments/runs]
  seeds      model seeds, e.g. [1, 2, 3]
  protocols  any of "honest", "study" (both by default)
  train      adebert train options for every row (flag names with '_': epochs, lr, ...)
  rows       [{name, kind: adebert|linear|hf, model, vocab, casing, train: {...}}]
A model "fetch:NAME" is io/fetch-model.sh NAME, installed under models/NAME.
"""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The two protocols of every table. study: what the study did (hf view, stratified
# 80/20, split seed 1, no validation set, the last epoch read on the 20% -- rows of
# the test set occur verbatim in train: optimistic). honest: grouped split (no
# abstract or sentence on both sides), validation carved from train, the model
# chosen on validation, test read once.
PROTOCOLS = {
    "honest": {"view": "hf", "split": "grouped", "split_seed": 42, "val_fraction": 0.1, "select": "val"},
    "study": {"view": "hf", "split": "stratified", "split_seed": 1, "val_fraction": 0.0, "select": "last"},
}
KINDS = ("adebert", "linear", "hf")
TOP_KEYS = {"name", "data", "runs_dir", "seeds", "protocols", "train", "rows", "comment", "hpo"}
ROW_KEYS = {"name", "kind", "model", "vocab", "casing", "train", "seeds", "protocols", "comment"}
TRAIN_KEYS = {"epochs", "lr", "weight_decay", "warmup_ratio", "warmup_steps", "batch_size", "max_seq_len",
              "grad_clip", "class_weights", "max_steps", "eval_every", "group_by_length", "limit",
              "save_every", "keep_last", "precision"}


class SpecError(Exception):
    pass


def _path(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


def resolve_model(m):
    """fetch:NAME -> models/NAME (fetched on first use); presets and paths as they are."""
    if m.startswith("fetch:"):
        return os.path.join(os.environ.get("ADEBERT_MODELS", _path("models")), m[len("fetch:"):])
    if m in ("tiny", "minilm", "base"):
        return m
    return _path(m)


def fetch_models(sp):
    for r in sp["rows"]:
        m = r.get("model", "")
        if m.startswith("fetch:"):
            d = resolve_model(m)
            if not os.path.exists(os.path.join(d, "config.json")):
                rc = subprocess.call([_path("io/fetch-model.sh"), m[len("fetch:"):], d])
                if rc:
                    raise SpecError(f"row {r['name']}: could not fetch {m}")


def load(path, adebert=None):
    try:
        with open(path) as f:
            sp = json.load(f)
    except OSError as e:
        raise SpecError(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not JSON ({e.msg} at line {e.lineno})")
    if not isinstance(sp, dict):
        raise SpecError(f"{path}: not a JSON object")
    unknown = set(sp) - TOP_KEYS
    if unknown:
        raise SpecError(f"{path}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    for k in ("name", "rows", "seeds"):
        if k not in sp:
            raise SpecError(f"{path}: missing key {k!r}")
    if not isinstance(sp["name"], str) or not sp["name"] or "/" in sp["name"]:
        raise SpecError(f"{path}: name must be a non-empty string without '/'")
    sp.setdefault("data", "../shared/data/ade-corpus-v2")
    sp.setdefault("runs_dir", "experiments/runs")
    sp.setdefault("protocols", ["honest", "study"])
    sp.setdefault("train", {})
    sp["adebert"] = adebert or os.environ.get("ADEBERT", _path("build/adebert"))
    sp["spec_path"] = os.path.abspath(path)

    def check_protocols(ps, where):
        if not isinstance(ps, list) or not ps:
            raise SpecError(f"{where}: protocols must be a non-empty list")
        for p in ps:
            if p not in PROTOCOLS:
                raise SpecError(f"{where}: unknown protocol {p!r} (known: {', '.join(PROTOCOLS)})")

    def check_train(t, where):
        if not isinstance(t, dict):
            raise SpecError(f"{where}: train must be an object")
        for k in t:
            if k not in TRAIN_KEYS:
                raise SpecError(f"{where}: unknown train key {k!r} (known: {', '.join(sorted(TRAIN_KEYS))})")

    def check_seeds(s, where):
        if not isinstance(s, list) or not s or not all(isinstance(x, int) and x >= 0 for x in s):
            raise SpecError(f"{where}: seeds must be a non-empty list of non-negative integers")

    check_protocols(sp["protocols"], path)
    check_train(sp["train"], path)
    check_seeds(sp["seeds"], path)
    if not os.path.isdir(_path(sp["data"])) and not os.path.isfile(_path(sp["data"])):
        raise SpecError(f"{path}: data {sp['data']!r} does not exist")
    if not isinstance(sp["rows"], list) or not sp["rows"]:
        raise SpecError(f"{path}: rows must be a non-empty list")
    names = set()
    for i, r in enumerate(sp["rows"]):
        where = f"{path}: rows[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not r["name"]:
            raise SpecError(f"{where}: a row is an object with a name")
        where = f"{path}: row {r['name']!r}"
        unknown = set(r) - ROW_KEYS
        if unknown:
            raise SpecError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(ROW_KEYS))})")
        if r["name"] in names or "/" in r["name"]:
            raise SpecError(f"{where}: row names must be unique and contain no '/'")
        names.add(r["name"])
        r.setdefault("kind", "adebert")
        if r["kind"] not in KINDS:
            raise SpecError(f"{where}: unknown kind {r['kind']!r} (known: {', '.join(KINDS)})")
        check_train(r.get("train", {}), where)
        if "protocols" in r:
            check_protocols(r["protocols"], where)
        if "seeds" in r:
            check_seeds(r["seeds"], where)
        if r["kind"] in ("adebert", "hf"):
            if "model" not in r:
                raise SpecError(f"{where}: model missing")
            m = r["model"]
            if not m.startswith("fetch:") and m not in ("tiny", "minilm", "base") and not os.path.exists(_path(m)):
                raise SpecError(f"{where}: model {m!r} does not exist")
            if m in ("tiny", "minilm", "base"):
                if "vocab" not in r or r.get("casing") not in ("cased", "lowercase"):
                    raise SpecError(f"{where}: preset {m} needs vocab and casing (cased|lowercase)")
                if not os.path.isfile(_path(r["vocab"])):
                    raise SpecError(f"{where}: vocab {r['vocab']!r} does not exist")
    return sp


def row_train(sp, r):
    t = dict(sp["train"])
    t.update(r.get("train", {}))
    return t


def split_dir(sp, protocol):
    return os.path.join(_path(sp["runs_dir"]), sp["name"], "splits", protocol)


def run_dir(sp, row, protocol, seed):
    return os.path.join(_path(sp["runs_dir"]), sp["name"], row, protocol, f"seed{seed}")


def _flag(k, v):
    if isinstance(v, bool):
        return [f"--{k.replace('_', '-')}"] if v else []
    return [f"--{k.replace('_', '-')}", str(v)]


def expand(sp):
    jobs = []
    data = os.path.normpath(_path(sp["data"]))
    for r in sp["rows"]:
        protocols = r.get("protocols", sp["protocols"])
        seeds = r.get("seeds", sp["seeds"])
        if r["kind"] == "linear":
            seeds = seeds[:1]  # deterministic given the rows: one run
        t = row_train(sp, r)
        for p in protocols:
            pr = PROTOCOLS[p]
            for s in seeds:
                rd = run_dir(sp, r["name"], p, s)
                if r["kind"] == "adebert":
                    cmd = [sp["adebert"], "train", "--data", data, "--view", pr["view"], "--split", pr["split"],
                           "--split-seed", str(pr["split_seed"]), "--val-fraction", str(pr["val_fraction"]),
                           "--model", resolve_model(r["model"]), "--seed", str(s), "--out", rd]
                    if r["model"] in ("tiny", "minilm", "base"):
                        cmd += ["--vocab", _path(r["vocab"]), "--" + r["casing"]]
                    t2 = dict(t)
                    t2.setdefault("keep_last", 1)
                    for k in sorted(t2):
                        cmd += _flag(k, t2[k])
                elif r["kind"] == "linear":
                    cmd = ["python3", _path("experiments/baselines/linear.py"), "--data", split_dir(sp, p),
                           "--out", rd]
                else:
                    cmd = [os.environ.get("ADEBERT_REF_PYTHON", os.path.expanduser("~/.cache/adebert-venv/bin/python")),
                           _path("experiments/baselines/hf_peer.py"), "--data", split_dir(sp, p),
                           "--model", resolve_model(r["model"]), "--seed", str(s), "--out", rd,
                           "--select", pr["select"]]
                    for k in ("epochs", "lr", "batch_size", "max_seq_len", "warmup_ratio", "weight_decay"):
                        if k in t:
                            cmd += _flag(k, t[k])
                jobs.append({"id": f"{r['name']}/{p}/seed{s}", "row": r["name"], "kind": r["kind"], "protocol": p,
                             "seed": s, "run_dir": rd, "cmd": cmd})
    return jobs


def run_state(job):
    if os.path.exists(os.path.join(job["run_dir"], "DONE")):
        return "done"
    if os.path.isdir(job["run_dir"]):
        return "started"
    return "new"


def check_config(job):
    """A run directory made for another configuration is refused (its RUNNER.json)."""
    rd = job["run_dir"]
    rec = os.path.join(rd, "RUNNER.json")
    if os.path.exists(rec):
        with open(rec) as f:
            old = json.load(f).get("command", [])
        # the program's own path (argv[0]) may move between builds; the rest must match
        if old[1:] != job["cmd"][1:]:
            diff = [c for c in job["cmd"][1:] if c not in old] + [c for c in old[1:] if c not in job["cmd"]]
            raise SpecError(f"{rd} holds a run of a different configuration (differs in: "
                            f"{' '.join(diff[:6])}); remove it or rename the row")
    elif os.path.isdir(rd) and os.listdir(rd):
        raise SpecError(f"{rd} exists and was not made by experiments/run; remove it or rename the row")


def record(job):
    rd = job["run_dir"]
    os.makedirs(rd, mode=0o700, exist_ok=True)
    rec = os.path.join(rd, "RUNNER.json")
    if not os.path.exists(rec):
        with open(rec + ".tmp", "w") as f:
            json.dump({"id": job["id"], "command": job["cmd"]}, f, indent=1)
            f.write("\n")
        os.replace(rec + ".tmp", rec)


def make_splits(sp, protocols):
    """adebert data split for each protocol: the rows the baselines read."""
    for p in sorted(protocols):
        d = split_dir(sp, p)
        if os.path.exists(os.path.join(d, "manifest.json")):
            continue
        pr = PROTOCOLS[p]
        cmd = [sp["adebert"], "data", "split", "--data", _path(sp["data"]), "--out", d, "--view", pr["view"],
               "--split", pr["split"], "--seed", str(pr["split_seed"]), "--val-fraction", str(pr["val_fraction"])]
        if subprocess.call(cmd):
            raise SpecError(f"adebert data split for protocol {p} failed")
