#!/usr/bin/python3
"""experiments/report --baseline ROW (the ablation comparison) on fabricated runs.

Three rows over 5 seeds on the honest protocol, with known test F1s: "base"; "up",
each seed +0.02 over base (beyond a seed spread of ~0.003: the verdict must say yes,
the paired difference must be exactly +0.02 with sd 0); "noise", the base figures
reshuffled across seeds (mean equal: must say no). The validation records pick an
earlier epoch for one run, to show the comparison uses the selected test F1. A
baseline that is no row is refused (exit 2)."""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("ADEBERT_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
checks = fails = 0


def check(ok, what):
    global checks, fails
    checks += 1
    fails += 0 if ok else 1
    print(("ok   " if ok else "FAIL ") + what)


base = [0.830, 0.834, 0.828, 0.833, 0.831]
rows = {"base": base, "up": [x + 0.02 for x in base], "noise": [base[i] for i in (2, 0, 4, 1, 3)]}
with tempfile.TemporaryDirectory() as tmp:
    spec = {"name": "abl", "runs_dir": os.path.join(tmp, "runs"), "seeds": [1, 2, 3, 4, 5], "protocols": ["honest"],
            "train": {"epochs": 2}, "rows": [{"name": r, "model": "tiny", "vocab": os.path.join(tmp, "v.txt"), "casing": "cased"} for r in rows]}
    open(os.path.join(tmp, "v.txt"), "w").write("[PAD]\n")
    sp = os.path.join(tmp, "spec.json")
    json.dump(spec, open(sp, "w"))
    for r, f1s in rows.items():
        for s, f1 in enumerate(f1s, 1):
            d = os.path.join(tmp, "runs", "abl", r, "honest", f"seed{s}")
            os.makedirs(d)
            # epoch 1: val best only for seed 1 of "up" (its epoch-1 test F1 is then selected)
            v1 = 0.9 if (r == "up" and s == 1) else 0.5
            recs = [{"split": "val", "epoch": 1, "step": 10, "f1": v1}, {"split": "test", "epoch": 1, "step": 10,
                    "f1": f1 if (r == "up" and s == 1) else 0.1},
                    {"split": "val", "epoch": 2, "step": 20, "f1": 0.6}, {"split": "test", "epoch": 2, "step": 20,
                    "f1": 0.2 if (r == "up" and s == 1) else f1}]
            with open(os.path.join(d, "metrics.jsonl"), "w") as f:
                f.write("".join(json.dumps(x) + "\n" for x in recs))
            open(os.path.join(d, "DONE"), "w").close()
    out = os.path.join(tmp, "res")
    p = subprocess.run([os.path.join(ROOT, "experiments/report"), sp, "--out", out, "--no-plot", "--baseline", "base"],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"report --baseline base: exit {p.returncode} {p.stderr.strip()[-200:]}")
    md = open(os.path.join(out, "table.md")).read() if os.path.exists(os.path.join(out, "table.md")) else ""
    line = {r: next((l for l in md.splitlines() if l.startswith(f"| {r} | honest | +") or
                     l.startswith(f"| {r} | honest | -")), "") for r in ("up", "noise")}
    cells = {r: [c.strip() for c in line[r].split("|")[1:-1]] for r in line}
    check(len(cells["up"]) == 7 and cells["up"][2] == "+0.0200", f"up: Δ mean +0.0200 ({line['up']!r})")
    check(len(cells["up"]) == 7 and cells["up"][3] == "+0.0200 ± 0.0000 (5)", "up: paired Δ +0.0200 ± 0.0000 over 5 seeds")
    check(len(cells["up"]) == 7 and cells["up"][6].startswith("yes"), "up: beyond the seed spread")
    check(len(cells["noise"]) == 7 and cells["noise"][2] in ("+0.0000", "-0.0000"), f"noise: Δ 0 ({line['noise']!r})")
    check(len(cells["noise"]) == 7 and cells["noise"][6].startswith("no"), "noise: not beyond the seed spread")
    check("| base | honest | +" not in md, "the baseline is not compared with itself")
    p = subprocess.run([os.path.join(ROOT, "experiments/report"), sp, "--out", out, "--no-plot", "--baseline", "nope"],
                       capture_output=True, text=True)
    check(p.returncode == 2 and p.stderr.count("\n") == 1 and "nope" in p.stderr,
          f"--baseline nope: exit 2, one line ({p.returncode}, {p.stderr.strip()!r})")
print(f"{checks - fails} passed, {fails} failed")
sys.exit(1 if fails or not checks else 0)
