#!/usr/bin/env python3
"""PyTorch + Hugging Face peer baseline for adebert's training step.

BertForSequenceClassification (bert-base shape unless --tiny, random init), AdamW
(fused on CUDA), grad-norm clip 1.0, global batch 32 on one device; bf16 autocast on
CUDA (fp32 on CPU). Two batch compositions:
  ade    lengths drawn from the ADE corpus distribution (bench/ade-lengths.json),
         dynamic padding to the longest sequence of each batch (HF's default collator)
  fixed  every sequence 128 tokens
Modes: eager, and torch.compile(dynamic=True) with compile time reported apart.
Prints one JSON object per (mode, lengths) on stdout; progress on stderr.
Tokens/s counts real (unpadded) tokens; padded_tokens_per_s is also given.
"""
import argparse, json, os, random, sys, time

def log(*a):
    print(*a, file=sys.stderr, flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--lengths", default="ade,fixed")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--tiny", action="store_true", help="2x64 model (dry runs on CPU)")
    ap.add_argument("--length-histogram", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ade-lengths.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-warm-widths", dest="warm_widths", action="store_false",
                    help="do not warm up every padded width of the ADE lengths")
    a = ap.parse_args()

    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification
    if a.device == "cuda" and not torch.cuda.is_available():
        log("peer_hf: no CUDA device"); return 2
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    if a.tiny:
        cfg = BertConfig(vocab_size=28996, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=257, num_labels=2)
    else:
        cfg = BertConfig(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, num_labels=2)
    dev = torch.device(a.device)
    hist = json.load(open(a.length_histogram))["histogram"]  # [[length, count], ...]
    lens, weights = [int(l) for l, _ in hist], [int(c) for _, c in hist]

    def make_batches(kind, n, widths=()):
        out = []
        for i in range(n + len(widths)):
            if kind == "fixed":
                ls = [a.seq_len] * a.batch_size
            else:
                ls = [min(l, a.seq_len) for l in rng.choices(lens, weights, k=a.batch_size)]
                if i < len(widths):  # warm-up: one batch padded to each width
                    ls = [min(l, widths[i]) for l in ls]
                    ls[0] = widths[i]
            width = max(ls)
            ids = torch.randint(1000, cfg.vocab_size, (a.batch_size, width))
            mask = torch.zeros(a.batch_size, width, dtype=torch.long)
            for i, l in enumerate(ls):
                mask[i, :l] = 1
            ids = ids * mask  # [PAD] = 0 beyond each sequence
            labels = torch.randint(0, 2, (a.batch_size,))
            out.append((ids.to(dev), mask.to(dev), labels.to(dev), sum(ls), a.batch_size * width))
        return out

    results = []
    for mode in a.modes.split(","):
        model = BertForSequenceClassification(cfg).to(dev).train()
        fused = {"fused": True} if a.device == "cuda" else {}  # fused AdamW is CUDA-only (torch >= 2.0)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, **fused)
        fwd = torch.compile(model, dynamic=True) if mode == "compile" else model
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if a.device == "cuda" else torch.autocast("cpu", enabled=False)

        def step(b):
            ids, mask, labels, _, _ = b
            with amp:
                loss = fwd(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        def sync():
            if a.device == "cuda":
                torch.cuda.synchronize()

        for kind in a.lengths.split(","):
            # Eager PyTorch pays a first-time cost (kernel selection, allocator growth)
            # for every new padded width; a long run has seen them all, so the
            # warm-up visits each width once (--no-warm-widths: only a.warmup steps).
            widths = sorted({min(l, a.seq_len) for l in lens}) if kind == "ade" and a.warm_widths else ()
            warm = make_batches(kind, a.warmup, widths)
            timed = make_batches(kind, a.steps)
            t0 = time.perf_counter()
            for b in warm:
                step(b)
            sync()
            warm_s = time.perf_counter() - t0
            if a.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for b in timed:
                loss = step(b)
            sync()
            dt = time.perf_counter() - t0
            real = sum(b[3] for b in timed)
            padded = sum(b[4] for b in timed)
            r = {
                "side": "pytorch+hf", "mode": mode, "lengths": kind, "device": a.device,
                "model": "tiny" if a.tiny else "base", "batch_size": a.batch_size, "steps": a.steps,
                "ms_per_step": 1000 * dt / a.steps, "tokens_per_s": real / dt,
                "padded_tokens_per_s": padded / dt, "sequences_per_s": a.batch_size * a.steps / dt,
                "padding_fraction": 1 - real / padded, "warmup_s": warm_s, "warmup_steps": len(warm),
                # warm-up of a compiled model = compilation (first shapes) + warm-up steps
                "compile_s": warm_s if mode == "compile" else None, "final_loss": float(loss),
                "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if a.device == "cuda" else None,
                "torch": torch.__version__, "transformers": transformers.__version__,
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
            }
            log(f"peer_hf: {mode:7s} {kind:5s} {r['tokens_per_s']:10.0f} tok/s {r['sequences_per_s']:8.1f} seq/s "
                f"{r['ms_per_step']:7.2f} ms/step (warm-up {warm_s:.1f} s)")
            print(json.dumps(r), flush=True)
            results.append(r)
    return 0

if __name__ == "__main__":
    sys.exit(main())
