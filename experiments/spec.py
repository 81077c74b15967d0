"""Table specs: load, validate and expand into runs (used by experiments/run, report, hpo).

A spec is a JSON object:
  name       table name (runs go to RUNS_DIR/<name>/...)
  data       corpus folder [../shared/data/ade-corpus-v2], relative to the repository
  runs_dir   where run directories go [experiments/runs]
  seeds      model seeds, e.g. [1, 2, 3]
  protocols  any of "honest", "study" (both by default)
  train      adebert train options for every row (flag names with '_': epochs, lr, ...);
             augment: a JSONL of synthetic rows, "{protocol}" in it replaced by the protocol
             (each protocol's train split needs its own file: experiments/augment)
  rows       [{name, kind: adebert|linear|hf, model, vocab, casing, train: {...}}]
  hpo        hyperparameter search of one row (experiments/hpo; check_hpo below)
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
              "save_every", "keep_last", "precision", "augment", "augment_ratio"}


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
            if r.get("casing", "cased") not in ("cased", "lowercase"):
                raise SpecError(f"{where}: casing must be cased or lowercase")
            if m in ("tiny", "minilm", "base"):
                if "vocab" not in r or r.get("casing") not in ("cased", "lowercase"):
                    raise SpecError(f"{where}: preset {m} needs vocab and casing (cased|lowercase)")
                if not os.path.isfile(_path(r["vocab"])):
                    raise SpecError(f"{where}: vocab {r['vocab']!r} does not exist")
    if "hpo" in sp:
        sp["hpo"] = check_hpo(sp, path)
    return sp


# The "hpo" object (experiments/hpo; experiments/README.md, "Hyperparameter search"):
#   row        the adebert row whose configuration is searched [the only adebert row]
#   protocol   "honest" (the only one: the objective is validation F1, and the study
#              protocol has no validation set)
#   seed       model seed of every trial; sampler seed of worker W = seed + W [1]
#   n_trials   trials in all, over all workers [40]
#   parallel   workers (trials at a time) for `local` and `submit` [4]
#   space      {param: {"low": L, "high": H[, "log": true]} | {"choices": [...]}};
#              params: the train keys in SPACE_KEYS; integer params take integer bounds
#   pruner     {"kind": hyperband|successive_halving|none, "min_resource": 1,
#               "reduction_factor": 3, "bootstrap_count": 0 (successive_halving)}
#   startup_trials  TPE's random trials before it models [10]
#   enqueue    [{param: value}]: configurations tried first, in order (e.g. the row's own)
#   best_seeds seeds of the best configuration's row in <name>-best.json [1..5] (>= 5)
HPO_KEYS = {"row", "protocol", "seed", "n_trials", "parallel", "space", "pruner", "startup_trials", "enqueue",
            "best_seeds", "comment"}
SPACE_KEYS = {"lr": float, "weight_decay": float, "warmup_ratio": float, "grad_clip": float,
              "batch_size": int, "epochs": int, "max_seq_len": int}
PRUNER_KEYS = {"kind", "min_resource", "reduction_factor", "bootstrap_count"}
PRUNERS = ("hyperband", "successive_halving", "none")


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_hpo(sp, path):
    """Validates and fills in sp["hpo"]; returns it. One SpecError line per problem."""
    h = sp["hpo"]
    w = f"{path}: hpo"
    if not isinstance(h, dict):
        raise SpecError(f"{w}: must be an object")
    unknown = set(h) - HPO_KEYS
    if unknown:
        raise SpecError(f"{w}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(HPO_KEYS))})")
    h = dict(h)
    adebert_rows = [r["name"] for r in sp["rows"] if r["kind"] == "adebert"]
    if "row" not in h:
        if len(adebert_rows) != 1:
            raise SpecError(f"{w}: row missing (the adebert row to search; rows: {', '.join(adebert_rows) or 'none'})")
        h["row"] = adebert_rows[0]
    if h["row"] not in adebert_rows:
        raise SpecError(f"{w}: row {h['row']!r} is not an adebert row of this spec "
                        f"(adebert rows: {', '.join(adebert_rows) or 'none'})")
    h.setdefault("protocol", "honest")
    if h["protocol"] != "honest":
        raise SpecError(f"{w}: protocol must be \"honest\" (the objective is validation F1; "
                        f"{h['protocol']!r} has no validation set)" if h["protocol"] in PROTOCOLS else
                        f"{w}: unknown protocol {h['protocol']!r} (the search uses \"honest\")")
    for k, default, lo in (("seed", 1, 0), ("n_trials", 40, 1), ("parallel", 4, 1), ("startup_trials", 10, 0)):
        h.setdefault(k, default)
        if not isinstance(h[k], int) or isinstance(h[k], bool) or h[k] < lo:
            raise SpecError(f"{w}: {k} must be an integer >= {lo}, not {h[k]!r}")
    h.setdefault("best_seeds", [1, 2, 3, 4, 5])
    bs = h["best_seeds"]
    if (not isinstance(bs, list) or len(bs) < 5 or len(set(map(str, bs))) != len(bs)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in bs)):
        raise SpecError(f"{w}: best_seeds must be a list of at least 5 distinct non-negative integers")

    space = h.get("space")
    if not isinstance(space, dict) or not space:
        raise SpecError(f"{w}: space must be a non-empty object of parameters "
                        f"({', '.join(sorted(SPACE_KEYS))})")
    for k, d in space.items():
        ws = f"{w}.space.{k}"
        if k not in SPACE_KEYS:
            raise SpecError(f"{ws}: unknown parameter (known: {', '.join(sorted(SPACE_KEYS))})")
        typ = SPACE_KEYS[k]
        if not isinstance(d, dict):
            raise SpecError(f"{ws}: must be {{\"low\": L, \"high\": H[, \"log\": true]}} or {{\"choices\": [...]}}")
        if "choices" in d:
            if set(d) != {"choices"}:
                raise SpecError(f"{ws}: choices takes no other keys (got {', '.join(sorted(set(d) - {'choices'}))})")
            c = d["choices"]
            if not isinstance(c, list) or not c:
                raise SpecError(f"{ws}: choices must be a non-empty list")
            for v in c:
                zero_ok = k in ("weight_decay", "warmup_ratio", "grad_clip")
                if not _num(v) or (typ is int and not isinstance(v, int)) or v < 0 or (v == 0 and not zero_ok):
                    raise SpecError(f"{ws}: choice {v!r} is not a valid {'integer' if typ is int else 'number'}"
                                    f"{'' if k in ('weight_decay', 'warmup_ratio', 'grad_clip') else ' > 0'}")
            if len(set(c)) != len(c):
                raise SpecError(f"{ws}: choices repeat a value")
            continue
        extra = set(d) - {"low", "high", "log"}
        if extra:
            raise SpecError(f"{ws}: unknown key {sorted(extra)[0]!r} (a range has low, high, log; a list has choices)")
        if "low" not in d or "high" not in d:
            raise SpecError(f"{ws}: a range needs low and high")
        lo_, hi_ = d["low"], d["high"]
        if not _num(lo_) or not _num(hi_):
            raise SpecError(f"{ws}: low and high must be numbers")
        if typ is int and not (isinstance(lo_, int) and isinstance(hi_, int)):
            raise SpecError(f"{ws}: an integer parameter takes integer low and high")
        if not lo_ < hi_:
            raise SpecError(f"{ws}: low ({lo_}) must be below high ({hi_})")
        if not isinstance(d.get("log", False), bool):
            raise SpecError(f"{ws}: log must be true or false")
        if d.get("log") and lo_ <= 0:
            raise SpecError(f"{ws}: a log range needs low > 0 (got {lo_})")
        if lo_ < 0 or (k in ("lr", "batch_size", "epochs", "max_seq_len") and lo_ <= 0):
            raise SpecError(f"{ws}: low ({lo_}) out of range for {k}")
        if k == "warmup_ratio" and hi_ > 1:
            raise SpecError(f"{ws}: high ({hi_}) above 1 for a ratio")
    h["space"] = space

    pr = dict(h.get("pruner", {}))
    if not isinstance(h.get("pruner", {}), dict):
        raise SpecError(f"{w}.pruner: must be an object")
    unknown = set(pr) - PRUNER_KEYS
    if unknown:
        raise SpecError(f"{w}.pruner: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(PRUNER_KEYS))})")
    pr.setdefault("kind", "hyperband")
    if pr["kind"] not in PRUNERS:
        raise SpecError(f"{w}.pruner: unknown kind {pr['kind']!r} (known: {', '.join(PRUNERS)})")
    for k, default, lo in (("min_resource", 1, 1), ("reduction_factor", 3, 2), ("bootstrap_count", 0, 0)):
        pr.setdefault(k, default)
        if not isinstance(pr[k], int) or isinstance(pr[k], bool) or pr[k] < lo:
            raise SpecError(f"{w}.pruner: {k} must be an integer >= {lo}, not {pr[k]!r}")
    if pr["bootstrap_count"] and pr["kind"] != "successive_halving":
        raise SpecError(f"{w}.pruner: bootstrap_count is a successive_halving setting")
    h["pruner"] = pr

    enq = h.setdefault("enqueue", [])
    if not isinstance(enq, list):
        raise SpecError(f"{w}.enqueue: must be a list of {{param: value}} objects")
    for i, e in enumerate(enq):
        we = f"{w}.enqueue[{i}]"
        if not isinstance(e, dict) or not e:
            raise SpecError(f"{we}: must be a non-empty {{param: value}} object")
        for k, v in e.items():
            if k not in space:
                raise SpecError(f"{we}: {k!r} is not a parameter of the space")
            d = space[k]
            ok = (v in d["choices"]) if "choices" in d else (
                _num(v) and d["low"] <= v <= d["high"] and (SPACE_KEYS[k] is float or isinstance(v, int)))
            if not ok:
                raise SpecError(f"{we}: {k}={v!r} is outside the space ({json.dumps(d)})")
    return h


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


def adebert_cmd(sp, r, protocol, seed, rd, train):
    """`adebert train` for row r under a protocol: its flags, then the train options."""
    pr = PROTOCOLS[protocol]
    cmd = [sp["adebert"], "train", "--data", os.path.normpath(_path(sp["data"])), "--view", pr["view"],
           "--split", pr["split"], "--split-seed", str(pr["split_seed"]), "--val-fraction", str(pr["val_fraction"]),
           "--model", resolve_model(r["model"]), "--seed", str(seed), "--out", rd]
    if "vocab" in r:
        cmd += ["--vocab", _path(r["vocab"])]
    if "casing" in r:
        cmd += ["--" + r["casing"]]
    t2 = dict(train)
    t2.setdefault("keep_last", 1)
    if "augment" in t2:  # synthetic rows for this protocol's train split (experiments/augment)
        t2["augment"] = _path(str(t2["augment"]).replace("{protocol}", protocol))
    for k in sorted(t2):
        cmd += _flag(k, t2[k])
    return cmd


def expand(sp):
    jobs = []
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
                    cmd = adebert_cmd(sp, r, p, s, rd, t)
                elif r["kind"] == "linear":
                    cmd = ["/usr/bin/python3", _path("experiments/baselines/linear.py"), "--data", split_dir(sp, p),
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
    # DONE: written by experiments/run when the command exited 0; done.json: written by
    # adebert train itself at the end of its schedule (runs that Slurm array tasks ran)
    if any(os.path.exists(os.path.join(job["run_dir"], f)) for f in ("DONE", "done.json")):
        return "done"
    if os.path.isdir(job["run_dir"]):
        return "started"
    return "new"


def check_config(job):
    """A run directory made for another configuration is refused (its RUNNER.json); an
    --augment file must exist before the run starts."""
    cmd = job["cmd"]
    if "--augment" in cmd:
        f = cmd[cmd.index("--augment") + 1]
        if not os.path.isfile(f):
            raise SpecError(f"{job['id']}: --augment {f} does not exist; make it first "
                            f"(experiments/augment/span_swap.py --split SPLIT_DIR --out {f})")
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
