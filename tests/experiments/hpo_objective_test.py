#!/usr/bin/python3
"""experiments/hpo's objective reads validation records only (ctest hpo_objective).

A fake metrics.jsonl, and a fake `adebert train` that writes one, whose test F1 is
higher than its validation F1 at every epoch: the objective must return the best
validation F1. Negative control: the same checks with the split filter switched off
(VAL_SPLIT = None) must fail, so the checks can see a leak. Also: the pruning path
(SIGTERM to the fake adebert, its exit 75 recorded, optuna.TrialPruned) and the spec's
hpo errors (one line, exit 2). Run with /usr/bin/python3 (Debian's optuna).
"""
import importlib.machinery
import importlib.util
import io
import json
import os
import sys
import tempfile
import contextlib
import shutil

SRC = os.environ.get("ADEBERT_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
loader = importlib.machinery.SourceFileLoader("hpo", os.path.join(SRC, "experiments", "hpo"))
spec_ = importlib.util.spec_from_loader("hpo", loader)
hpo = importlib.util.module_from_spec(spec_)
loader.exec_module(hpo)
import optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails += 1


VAL = [0.50, 0.60, 0.55]
TEST = [0.90, 0.95, 0.97]
tmp = tempfile.mkdtemp(prefix="hpo-objective.")

# ---- 1. the metrics reader on a fake metrics.jsonl
path = os.path.join(tmp, "metrics.jsonl")
with open(path, "w") as f:
    for e, (v, t) in enumerate(zip(VAL, TEST), 1):
        f.write(json.dumps({"split": "val", "epoch": e, "step": 10 * e, "f1": v}) + "\n")
        f.write(json.dumps({"split": "test", "epoch": e, "step": 10 * e, "f1": t}) + "\n")
    f.write('{"split": "val", "epoch": 4, "st')  # a line still being written


def reader_value():
    recs, off = hpo.read_val(path)
    return hpo.objective_value(recs), recs, off


v, recs, off = reader_value()
check(v == max(VAL), f"objective from metrics.jsonl = best val F1 {max(VAL)} (got {v})")
check(all(r["split"] == "val" for r in recs) and len(recs) == 3, "only the 3 val records are read")
check(off == len(open(path, "rb").read().rsplit(b"\n", 1)[0]) + 1, "the partial last line is left for later")
hpo.VAL_SPLIT = None
v_leak, _, _ = reader_value()
hpo.VAL_SPLIT = "val"
check(v_leak != max(VAL), f"negative control: without the filter the same check fails (got {v_leak}, test F1)")

# ---- 2. the whole objective (run_trial) on a fake adebert
fake = os.path.join(tmp, "adebert")
with open(fake, "w") as f:
    f.write(f"""#!/usr/bin/python3
import json, os, signal, sys, time
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
VAL, TEST = {VAL!r}, {TEST!r}
with open(os.path.join(out, "metrics.jsonl"), "w") as m:
    for e in range(1, 4):
        for split, f1 in (("val", VAL[e - 1]), ("test", TEST[e - 1])):
            m.write(json.dumps({{"split": split, "epoch": e, "step": 10 * e, "f1": f1}}) + "\\n")
            m.flush()
        for _ in range(int(os.environ.get("FAKE_EPOCH_S", "0")) * 20):
            if stop:
                sys.exit(75)
            time.sleep(0.05)
sys.exit(75 if stop else 0)
""")
os.chmod(fake, 0o755)
vocab = os.path.join(tmp, "vocab.txt")
open(vocab, "w").write("[PAD]\n")
specfile = os.path.join(tmp, "spec.json")
json.dump({"name": "t", "data": tmp, "runs_dir": os.path.join(tmp, "runs"), "seeds": [1],
           "rows": [{"name": "r", "model": "tiny", "vocab": vocab, "casing": "cased"}],
           "hpo": {"space": {"lr": {"low": 1e-5, "high": 1e-3, "log": True}}}}, open(specfile, "w"))
sp = hpo.specmod.load(specfile, adebert=fake)


def objective_value_of_trial(pruner=None):
    shutil.rmtree(os.path.join(tmp, "runs"), ignore_errors=True)
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    trial = study.ask()
    try:
        return hpo.run_trial(trial, sp, sp["hpo"]), trial
    except optuna.TrialPruned:
        return "pruned", trial


v, trial = objective_value_of_trial()
check(v == max(VAL), f"run_trial returns the best val F1 {max(VAL)} (got {v})")
check(trial.user_attrs.get("val_f1") == [[1, 0.5], [2, 0.6], [3, 0.55]], "val F1 per epoch recorded")
hpo.VAL_SPLIT = None
v_leak, _ = objective_value_of_trial()
hpo.VAL_SPLIT = "val"
check(v_leak != max(VAL), f"negative control: run_trial without the filter fails the check (got {v_leak})")

# ---- 3. pruning: SIGTERM to adebert, exit 75 recorded, TrialPruned
os.environ["FAKE_EPOCH_S"] = "3"
v, trial = objective_value_of_trial(optuna.pruners.ThresholdPruner(lower=0.99))
check(v == "pruned", "a trial below the threshold is pruned (optuna.TrialPruned)")
check(trial.user_attrs.get("adebert_exit") == 75, f"the pruned trial's adebert exited 75 on SIGTERM "
      f"(got {trial.user_attrs.get('adebert_exit')})")
check(trial.user_attrs.get("val_f1") == [[1, 0.5]], "pruned after the first epoch")
del os.environ["FAKE_EPOCH_S"]

# ---- 4. bad hpo objects: one line, exit 2, nothing run
BAD = [
    ({"space": {"lr": {"low": 1e-5, "high": 1e-3}}, "n_trails": 3}, "unknown key 'n_trails'"),
    ({"space": {}}, "space must be a non-empty object"),
    ({"space": {"lr": {"low": 1e-3, "high": 1e-5, "log": True}}}, "low (0.001) must be below high"),
    ({"space": {"lr": {"low": 0, "high": 1e-3, "log": True}}}, "a log range needs low > 0"),
    ({"space": {"epochs": {"low": 1.5, "high": 3}}}, "integer parameter takes integer low and high"),
    ({"space": {"batch_size": {"choices": []}}}, "choices must be a non-empty list"),
    ({"space": {"dropout": {"low": 0, "high": 0.5}}}, "hpo.space.dropout: unknown parameter"),
    ({"space": {"lr": {"low": 1e-5, "high": 1e-3}}, "protocol": "study"}, "protocol must be \"honest\""),
    ({"space": {"lr": {"low": 1e-5, "high": 1e-3}}, "pruner": {"kind": "median"}}, "unknown kind 'median'"),
    ({"space": {"lr": {"low": 1e-5, "high": 1e-3}}, "enqueue": [{"lr": 1}]}, "lr=1 is outside the space"),
]
for h, want in BAD:
    bad = os.path.join(tmp, "bad.json")
    json.dump({"name": "bad", "data": tmp, "runs_dir": os.path.join(tmp, "badruns"), "seeds": [1],
               "rows": [{"name": "r", "model": "tiny", "vocab": vocab, "casing": "cased"}], "hpo": h}, open(bad, "w"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = hpo.main([bad, "local", "--adebert", fake])
    lines = err.getvalue().strip().splitlines()
    check(rc == 2 and len(lines) == 1 and want in lines[0] and not os.path.exists(os.path.join(tmp, "badruns")),
          f"bad hpo {json.dumps(h)[:60]}...: exit 2, one line: {lines[0] if lines else '(none)'}")

shutil.rmtree(tmp, ignore_errors=True)
print(f"{'FAILED' if fails else 'passed'}: {fails} failure(s)")
sys.exit(1 if fails else 0)
