#!/usr/bin/env python3
"""Generate the PyTorch + Hugging Face reference fixture for tests/test_nn_reference.c.

Pinned environment (what produced the committed fixture):
  Debian 12 python3-torch 1.13.1+dfsg (apt) + python3-numpy 1.24.2 (apt), and
  pip transformers==4.36.2 safetensors==0.4.1 in a venv with --system-site-packages:
    apt-get install -y python3-torch python3-numpy python3-venv
    python3 -m venv --system-site-packages /tmp/venv-ref
    /tmp/venv-ref/bin/pip install transformers==4.36.2 safetensors==0.4.1
    /tmp/venv-ref/bin/python tests/reference/gen_model_reference.py tests/reference/fixture

The model runs in float64 (the reference is the exact math; adebert's fp32 is
compared against it). HF's dropout modules are put in eval mode and their output
is replaced, through forward hooks, by adebert's counter-based masks, recomputed
here with the same Philox4x32-10 keying as nn/philox.h (the C test checks the
stored masks against nn_dropout_multiplier, so the two cannot drift apart).

Outputs (all F32/F64 safetensors; integer data stored as F32, exact):
  config.json, model.safetensors      the tiny model (HF names, as HF saves them)
  reference.safetensors               batch, eval/train logits+loss+grads,
                                      dropout masks, AdamW deltas after 3 steps
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, get_linear_schedule_with_warmup

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF

# ---------------------------------------------------------------- adebert RNG

def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def rng_key(seed, epoch):
    z = splitmix64(splitmix64(seed) ^ epoch)
    return z & M32, z >> 32


def philox_bits(key, sample, site, pos, elem):
    """nn_rng_bits, vectorised over broadcastable uint arrays."""
    sample, site, pos, elem = np.broadcast_arrays(*(np.asarray(a, dtype=np.uint64) for a in (sample, site, pos, elem)))
    c0, c1, c2, c3 = elem >> np.uint64(2), pos.copy(), site.copy(), sample.copy()
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    m32 = np.uint64(M32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        hi0, lo0, hi1, lo1 = p0 >> np.uint64(32), p0 & m32, p1 >> np.uint64(32), p1 & m32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + np.uint64(0x9E3779B9)) & m32
        k1 = (k1 + np.uint64(0xBB67AE85)) & m32
    words = np.stack([c0, c1, c2, c3])
    return np.take_along_axis(words, (elem & np.uint64(3))[None].astype(np.int64), 0)[0]


def multiplier(key, sample, site, pos, elem, p):
    p32 = np.float32(p)
    if p32 <= 0:
        return np.ones(np.broadcast(sample, site, pos, elem).shape, dtype=np.float64)
    bits = philox_bits(key, sample, site, pos, elem)
    u = (bits >> np.uint64(8)).astype(np.float64) / 16777216.0
    keep = u >= np.float64(p32)
    scale = np.float64(np.float32(1.0) / (np.float32(1.0) - p32))
    return keep * scale


SITE_EMB, SITE_CLS = 0, 1
def site_attn(l): return 2 + 3 * l
def site_attn_out(l): return 3 + 3 * l
def site_ffn_out(l): return 4 + 3 * l

# ---------------------------------------------------------------- setup

def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(1234)
    np.random.seed(1234)
    cfg = BertConfig(vocab_size=211, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.15, classifier_dropout=None,
                     num_labels=3, pad_token_id=0, layer_norm_eps=1e-12, hidden_act="gelu")
    model = BertForSequenceClassification(cfg)  # HF init (normal 0.02, LN 1/0, pad row 0)
    with torch.no_grad():  # larger weights: a strongly non-linear model is a sharper test
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.mul_(5.0)
            else:
                p.add_(0.1 * torch.randn_like(p))
        model.bert.embeddings.word_embeddings.weight[cfg.pad_token_id].zero_()
    model = model.double()
    model.eval()  # dropout modules become identities; hooks apply adebert's masks
    names = [n for n, _ in model.named_parameters()]
    H, nh, L = cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers

    lens = [9, 1, 14, 5, 11]
    sample_ids = [17, 4, 1023, 99, 5]
    B, Lm = len(lens), max(lens)
    ids = [[2] + list(np.random.randint(3, cfg.vocab_size, size=n - 1)) for n in lens]  # [CLS]-like first token
    types = [list(np.random.randint(0, 2, size=n)) for n in lens]
    labels = [0, 2, 1, 2, 0]
    class_w = np.array([0.5, 2.0, 1.25])
    seed = 42

    input_ids = torch.zeros(B, Lm, dtype=torch.long)
    token_types = torch.zeros(B, Lm, dtype=torch.long)
    attn = torch.zeros(B, Lm, dtype=torch.long)
    for b in range(B):
        input_ids[b, :lens[b]] = torch.tensor(ids[b])
        token_types[b, :lens[b]] = torch.tensor(types[b])
        attn[b, :lens[b]] = 1
    y = torch.tensor(labels)
    w = torch.tensor(class_w, dtype=torch.float64)

    # -------------------------------------------------------- dropout masks
    samp = np.array(sample_ids, dtype=np.uint64)
    pos = np.arange(Lm, dtype=np.uint64)
    hid = np.arange(H, dtype=np.uint64)

    def token_mask(key, site, p):
        return multiplier(key, samp[:, None, None], site, pos[None, :, None], hid[None, None, :], p)

    def masks_for(epoch):
        key = rng_key(seed, epoch)
        ph, pa = cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob
        m = {"embeddings": token_mask(key, SITE_EMB, ph)}
        head = np.arange(nh, dtype=np.uint64)
        for l in range(L):
            m[f"layer.{l}.attn_probs"] = multiplier(
                key, samp[:, None, None, None], site_attn(l), pos[None, None, :, None],
                head[None, :, None, None] * np.uint64(cfg.max_position_embeddings) + pos[None, None, None, :], pa)
            m[f"layer.{l}.attn_out"] = token_mask(key, site_attn_out(l), ph)
            m[f"layer.{l}.ffn_out"] = token_mask(key, site_ffn_out(l), ph)
        m["classifier"] = multiplier(key, samp[:, None], SITE_CLS, 0, hid[None, :], ph)
        return m

    active = {"masks": None}

    def hook_for(key):
        def hook(module, inp, out):
            if active["masks"] is None:
                return out
            return out * torch.from_numpy(active["masks"][key]).to(out.dtype)
        return hook

    model.bert.embeddings.dropout.register_forward_hook(hook_for("embeddings"))
    for l, layer in enumerate(model.bert.encoder.layer):
        layer.attention.self.dropout.register_forward_hook(hook_for(f"layer.{l}.attn_probs"))
        layer.attention.output.dropout.register_forward_hook(hook_for(f"layer.{l}.attn_out"))
        layer.output.dropout.register_forward_hook(hook_for(f"layer.{l}.ffn_out"))
    model.dropout.register_forward_hook(hook_for("classifier"))

    def loss_of(denom):
        logits = model(input_ids=input_ids, attention_mask=attn, token_type_ids=token_types).logits
        nll = torch.nn.functional.cross_entropy(logits, y, weight=w, reduction="sum")
        return logits, nll / denom

    denom = float(class_w[labels].sum())  # sum of class weights over the (global) batch
    tensors = {}
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    save_file({n: p.detach().float().contiguous() for n, p in model.named_parameters()},
              os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    # float32 weights are what adebert loads: run the reference from exactly those
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(p.float().double())
    init = {n: p.detach().clone() for n, p in model.named_parameters()}

    for case, epoch in (("eval", None), ("train", 0)):
        active["masks"] = None if epoch is None else masks_for(epoch)
        model.zero_grad(set_to_none=True)
        logits, loss = loss_of(denom)
        loss.backward()
        tensors[f"{case}.logits"] = logits.detach()
        tensors[f"{case}.loss"] = loss.detach().reshape(1)
        for n, p in model.named_parameters():
            tensors[f"{case}.grad.{n}"] = p.grad.detach().clone()
    for k, v in masks_for(0).items():
        tensors[f"mask.{k}"] = torch.from_numpy(v)

    # -------------------------------------------------------- 3 AdamW steps
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=1, num_training_steps=4)
    # denominators: step 2 uses a small one so that its gradient norm exceeds 1.0
    probe_norm = torch.sqrt(sum((tensors[f"train.grad.{n}"] ** 2).sum() for n in names)).item()
    denoms = [denom * probe_norm * 3.0, denom * probe_norm / 3.0, denom * probe_norm * 3.0]
    norms, lrs = [], []
    for step in range(3):
        active["masks"] = masks_for(step)
        opt.zero_grad(set_to_none=True)
        _, loss = loss_of(denoms[step])
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())
        opt.step()
        sched.step()
    assert norms[0] < 1.0 and norms[1] > 1.0 and norms[2] < 1.0, norms
    assert lrs[0] == 0.0, lrs
    for n, p in model.named_parameters():
        tensors[f"adamw.delta.{n}"] = (p.detach() - init[n]).clone()
    tensors["adamw.grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    tensors["adamw.lrs"] = torch.tensor(lrs, dtype=torch.float64)
    tensors["adamw.denominators"] = torch.tensor(denoms, dtype=torch.float64)

    # -------------------------------------------------------- batch (packed)
    flat_ids = [t for s in ids for t in s]
    flat_types = [t for s in types for t in s]
    offsets = np.concatenate([[0], np.cumsum(lens)])
    tensors["batch.ids"] = torch.tensor(flat_ids, dtype=torch.float64)
    tensors["batch.token_types"] = torch.tensor(flat_types, dtype=torch.float64)
    tensors["batch.offsets"] = torch.tensor(offsets, dtype=torch.float64)
    tensors["batch.labels"] = torch.tensor(labels, dtype=torch.float64)
    tensors["batch.sample_ids"] = torch.tensor(sample_ids, dtype=torch.float64)
    tensors["batch.class_weights"] = torch.tensor(class_w, dtype=torch.float64)
    tensors["batch.denominator"] = torch.tensor([denom], dtype=torch.float64)
    tensors["batch.seed"] = torch.tensor([seed], dtype=torch.float64)
    # float32 on disk: adebert's reader takes F32/F16/BF16 (values here are exact or
    # well within the 1e-4 tolerances)
    save_file({k: v.float().contiguous() for k, v in tensors.items()},
              os.path.join(out_dir, "reference.safetensors"),
              metadata={"torch": torch.__version__, "transformers": transformers.__version__})
    conf = cfg.to_dict()
    conf["architectures"] = ["BertForSequenceClassification"]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
    print(f"torch {torch.__version__} transformers {transformers.__version__}: "
          f"eval loss {tensors['eval.loss'].item():.6f} train loss {tensors['train.loss'].item():.6f} "
          f"grad norms {norms} lrs {lrs}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixture"))
