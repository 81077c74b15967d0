#!/usr/bin/env python3
"""Helpers of bench/gpu/check.sh (standard library only, except `peak`, which needs torch).

  record PHASE [KEY=VALUE ...]      stdin: one JSON object (adebert bench --json, ...);
                                    stdout: it with "phase" and the KEY=VALUEs added
  peak [--n 8192]                   bf16 GEMM rate through torch.matmul on the GPU (JSON)
  bench RESULTS.jsonl PEER.jsonl... summary rows: adebert bench records next to the
                                    committed peer figures, MFU against the measured peak
  train METRICS.jsonl WALL_S        summary rows of a fine-tune: per-epoch F1, wall time

MFU: model FLOPs/token = 6*N + 12*L*H*T (N = the encoder's matrix weights,
L*(4H^2 + 2HI); T = the sequence's length; real tokens only), i.e. the FLOPs
nn_model_train_flops counts (adebert bench's "gflops"), divided by the bf16 GEMM
rate measured on the same GPU.
"""
import json, os, re, sys

BASE = dict(L=12, H=768, I=3072)


def row(name, text):
    print(f"{name:34s} {text}")


def flops_per_token(lengths_kind, seq_len=128, hist_path=None, cfg=BASE):
    L, H, I = cfg["L"], cfg["H"], cfg["I"]
    n = L * (4 * H * H + 2 * H * I)
    if lengths_kind == "fixed":
        t_eff = seq_len
    else:  # E[T^2]/E[T] over the ADE length histogram, clipped like the peer clips
        hist = json.load(open(hist_path))["histogram"]
        s1 = sum(min(l, seq_len) * c for l, c in hist)
        s2 = sum(min(l, seq_len) ** 2 * c for l, c in hist)
        t_eff = s2 / s1
    return 6 * n + 12 * L * H * t_eff


def cmd_record(argv):
    phase, kv = argv[0], argv[1:]
    text = sys.stdin.read().strip()
    objs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                objs.append(json.loads(line))
            except ValueError:
                pass
    if not objs:
        print(f"record: no JSON object in the output ({text[:200]!r})", file=sys.stderr)
        return 1
    for o in objs:
        rec = {"phase": phase}
        for item in kv:
            k, _, v = item.partition("=")
            rec[k] = v
        rec.update({k: v for k, v in o.items() if k not in rec})
        print(json.dumps(rec))
    return 0


def cmd_peak(argv):
    import time
    import torch
    n = int(argv[argv.index("--n") + 1]) if "--n" in argv else 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(3):  # best of 3 means of 10: the clock ramps up in the first ones
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(10):
            a @ b
        e1.record()
        torch.cuda.synchronize()
        s = e0.elapsed_time(e1) / 1e3 / 10
        best = max(best, 2.0 * n ** 3 / s / 1e12)
    print(json.dumps({"phase": "peak", "tflops": best, "n": n, "dtype": "bf16", "gpu": torch.cuda.get_device_name(),
                      "torch": torch.__version__}))
    return 0


def load(path):
    out = []
    if path and os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def cmd_bench(argv):
    results, peers = argv[0], argv[1:]
    recs = load(results)
    peak = next((r["tflops"] for r in reversed(recs) if r.get("phase") == "peak"), None)
    hist = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ade-lengths.json")
    peer = {}  # (mode, lengths) -> [(run, tok/s, mfu)]
    for p in peers:
        d = os.path.basename(os.path.dirname(os.path.abspath(p)))
        m = re.search(r"run\d+$", d)
        run = m.group(0) if m else d
        for r in load(p):
            if r.get("device") != "cuda" or r.get("model") != "base":
                continue
            mfu = None
            if peak:
                mfu = r["tokens_per_s"] * flops_per_token(r["lengths"], hist_path=hist) / (peak * 1e12)
            peer.setdefault((r["mode"], r["lengths"]), []).append((run, r["tokens_per_s"], mfu))
    if peak:
        row("bf16 GEMM peak (torch.matmul)", f"{peak:.0f} TFLOP/s (8192^3, best of 3 x 10) = the MFU denominator")
    for r in recs:
        if r.get("phase") != "bench":
            continue
        kind = r.get("lengths", "fixed")
        tps = float(r["tokens_per_s"])
        gflops = r.get("gflops")
        if gflops is None and kind == "fixed":
            gflops = tps * flops_per_token("fixed", int(r.get("seq_len", 128))) / 1e9
        mfu = f"MFU {100 * float(gflops) / (peak * 1e3):.1f}%" if (peak and gflops is not None) else "MFU n/a"
        name = f"adebert {r.get('device', '?')} {r.get('precision', '?')} {kind} ({r.get('model', '?')})"
        text = f"{tps:10.0f} tok/s  {float(r['ms_per_step']):7.2f} ms/step  {mfu}"
        ratios = []
        for mode in ("eager", "compile"):
            for run, ptps, _ in peer.get((mode, kind), []):
                ratios.append(f"x{tps / ptps:.2f} vs {mode} {run}")
        if ratios and r.get("device") == "cuda" and r.get("model") == "base":
            text += "  (" + ", ".join(ratios) + ")"
        row(name, text)
    for (mode, kind), lst in sorted(peer.items()):
        for run, ptps, mfu in lst:
            m = f"  MFU {100 * mfu:.1f}%" if mfu is not None else ""
            row(f"peer {mode} {kind} ({run})", f"{ptps:10.0f} tok/s (committed){m}")
    return 0


def cmd_train(argv):
    path, wall = argv[0], float(argv[1])
    recs = load(path)
    if not recs:
        row("fine-tune", f"no metrics rows after {wall:.0f} s")
        return 1
    test = [r for r in recs if r.get("split") == "test"]
    val = [r for r in recs if r.get("split") == "val"]
    row("fine-tune epochs done", f"{len(test)} in {wall:.0f} s wall")
    for r in test:
        v = next((x for x in val if x.get("epoch") == r.get("epoch")), None)
        vf = f"val F1 {v['f1']:.3f}  " if v else ""
        tps = r.get("tokens_per_s")
        row(f"  epoch {r.get('epoch')}", f"{vf}test F1 {r['f1']:.3f}  P {r['precision']:.3f}  R {r['recall']:.3f}  "
            f"ROC-AUC {r['roc_auc']:.3f}  loss {r['train_loss']:.4f}"
            + (f"  {tps:.0f} tok/s" if isinstance(tps, (int, float)) else ""))
    if val:
        best = max(val, key=lambda x: x["f1"])
        bt = next((x for x in test if x.get("epoch") == best.get("epoch")), None)
        row("  best val F1", f"{best['f1']:.3f} at epoch {best.get('epoch')}"
            + (f" (test F1 {bt['f1']:.3f})" if bt else ""))
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("record", "peak", "bench", "train"):
        print(__doc__, file=sys.stderr)
        return 2
    return {"record": cmd_record, "peak": cmd_peak, "bench": cmd_bench, "train": cmd_train}[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
