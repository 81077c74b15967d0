#!/usr/bin/env python3
"""PyTorch + Hugging Face peer of `adebert bench`: full training steps of
BertForSequenceClassification (eager, train mode, dropout on), AdamW (same
hyper-parameters as adebert), HF's dynamic padding to the longest sequence of the
batch, the same batch composition (--lengths from `adebert bench --print-lengths`).

  python3 bench/bench_model_torch.py --model minilm --lengths 32,29,... [--steps 3] [--threads 2] [--json]
      [--autocast bf16] [--compile]

Environments used for the committed results: Debian python3-torch 1.13.1 (apt) +
pip transformers==4.36.2 (see tests/reference/gen_model_reference.py), and PyPI's
current torch (2.15.0, its CUDA build run on the CPU) + transformers 5.25.0 for the
eager, autocast and torch.compile rows (bench/run_cpu_bf16_bench.sh, TORCH_PY).
--compile wraps the model in torch.compile (inductor; the first, untimed warmup steps
compile it: the batch has one shape, so it compiles once; 3 of them by default). Run it
with OMP_WAIT_POLICY=PASSIVE (its best configuration here: it keeps its OpenMP
workers from spinning against OpenBLAS's own threads); the driver does.
"""
import argparse
import json
import resource
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

PRESETS = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37),
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base", choices=sorted(PRESETS))
    ap.add_argument("--lengths", required=True, help="comma-separated sequence lengths (the batch)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first [1; 3 with --compile]")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="bf16: forward and loss under torch.autocast('cpu', bfloat16) (fp32 master weights)")
    ap.add_argument("--compile", action="store_true", help="torch.compile(model) (inductor) before the steps")
    a = ap.parse_args()
    if a.warmup is None:  # compiled: the first steps compile forward, backward and recompile
        a.warmup = 3 if a.compile else 1
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    lens = [int(x) for x in a.lengths.split(",")]
    cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, num_labels=2,
                     **PRESETS[a.model])
    model = BertForSequenceClassification(cfg)
    model.train()
    fwd = torch.compile(model) if a.compile else model
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=2e-5, eps=1e-8)
    B, Lm = len(lens), max(lens)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, cfg.vocab_size, (B, Lm), generator=g)
    mask = torch.zeros(B, Lm, dtype=torch.long)
    for i, n in enumerate(lens):
        mask[i, :n] = 1
    ids = ids * mask  # [PAD] = 0 beyond each length: dynamic padding to the longest
    labels = torch.tensor([i % 2 for i in range(B)])
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
            out = fwd(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    tokens = sum(lens)
    H, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    flops = 3 * (2 * L * (4 * H * H + 2 * H * I) * tokens + L * 4 * sum(n * n for n in lens) * H
                 + 2 * B * (H * H + 2 * H))  # same count as nn_model_train_flops (real tokens)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r = dict(side="pytorch", model=a.model, batch_size=B, tokens_per_step=tokens, padded_tokens=B * Lm,
             steps=a.steps, warmup=a.warmup, ms_per_step=med * 1e3, ms_min=times[0] * 1e3, ms_max=times[-1] * 1e3,
             tokens_per_s=tokens / med, gflops=flops / med * 1e-9, peak_rss_mb=rss,
             threads=torch.get_num_threads(), torch=torch.__version__, final_loss=out.loss.item(),
             precision="bf16-autocast" if a.autocast == "bf16" else "fp32", compiled=a.compile)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"pytorch {a.model}: {r['ms_per_step']:.1f} ms/step, {r['tokens_per_s']:.0f} tokens/s, "
              f"{r['gflops']:.1f} GFLOP/s, peak RSS {rss:.0f} MiB, {r['threads']} threads")


if __name__ == "__main__":
    main()
