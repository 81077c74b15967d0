#!/usr/bin/env python3
"""The Hugging Face peer: the same pretrained model fine-tuned with HF Trainer on
PyTorch, on the same split folder and hyperparameters as an adebert row. Random
batches (Trainer's default sampler), dynamic padding, AdamW with weight decay off
biases and LayerNorm, linear warmup + decay, clip 1.0, evaluation on val and test
after every epoch. Writes OUT/metrics.jsonl in adebert's schema.

  hf_peer.py --data SPLIT_DIR --model HF_DIR --out OUT [--seed 1] [--epochs 1]
             [--lr 5e-5] [--batch-size 32] [--max-seq-len 128] [--warmup-ratio 0.1]
             [--weight-decay 0.01] [--threads N]

Runs in the venv that launch/install-deps.sh makes (torch, transformers 4.36.2,
accelerate); never downloads (HF_HUB_OFFLINE=1): the model must be a local folder.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-len", type=int, default=128)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--select", choices=["val", "last"], default="val", help="recorded only; report picks")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        common.die(f"{a.model}: not a Hugging Face folder (no config.json)")
    try:
        import numpy as np
        import torch
        from transformers import (AutoTokenizer, BertForSequenceClassification, DataCollatorWithPadding,
                                  Trainer, TrainerCallback, TrainingArguments)
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        common.die(f"the reference venv is needed (launch/install-deps.sh): {e}")
    hf_logging.set_verbosity_error()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows, man = common.load_split(a.data)
    tok = AutoTokenizer.from_pretrained(a.model)

    class DS(torch.utils.data.Dataset):
        def __init__(self, texts, labels):
            self.enc = tok(texts, truncation=True, max_length=a.max_seq_len)
            self.labels = labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            d = {k: v[i] for k, v in self.enc.items()}
            d["labels"] = self.labels[i]
            return d

    ds = {p: DS(*rows[p]) for p in common.PARTS if rows[p][0]}
    model = BertForSequenceClassification.from_pretrained(a.model, num_labels=2)
    os.makedirs(a.out, mode=0o700, exist_ok=True)
    args = TrainingArguments(
        output_dir=os.path.join(a.out, "trainer"), num_train_epochs=a.epochs, learning_rate=a.lr,
        per_device_train_batch_size=a.batch_size, per_device_eval_batch_size=64, warmup_ratio=a.warmup_ratio,
        weight_decay=a.weight_decay, max_grad_norm=1.0, lr_scheduler_type="linear", seed=a.seed,
        data_seed=a.seed, evaluation_strategy="no", save_strategy="no", logging_steps=50, report_to=[],
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True, dataloader_num_workers=0)
    records = []
    t_start = time.time()

    def evaluate(trainer, epoch, step):
        for p in ("val", "test"):
            if p not in ds:
                continue
            out = trainer.predict(ds[p])
            logits = out.predictions
            z = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(z)[:, 1] / np.exp(z).sum(axis=1)
            m = common.metrics(rows[p][1], prob.tolist())
            records.append(common.record(p, epoch, step, m, eval_loss=float(out.metrics.get("test_loss", 0.0)),
                                         seconds=round(time.time() - t_start, 1), trainer="hf"))
            print(f"hf_peer: epoch {epoch} {p} F1 {m['f1']:.4f} ROC-AUC {m['roc_auc']:.4f}", flush=True)
        common.write_jsonl(os.path.join(a.out, "metrics.jsonl"), records)

    class EvalEachEpoch(TrainerCallback):
        """val and test after every epoch (the schedule spans all epochs)."""
        trainer = None

        def on_epoch_end(self, args_, state, control, **kw):
            evaluate(self.trainer, round(state.epoch), state.global_step)

    cb = EvalEachEpoch()
    trainer = Trainer(model=model, args=args, train_dataset=ds["train"],
                      data_collator=DataCollatorWithPadding(tok), callbacks=[cb])
    cb.trainer = trainer
    trainer.train()
    with open(os.path.join(a.out, "hf_peer.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                   "threads": torch.get_num_threads(), "seconds": round(time.time() - t_start, 1),
                   "split_sha256": {p: man["files"][p]["sha256"] for p in common.PARTS}, "args": vars(a)}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
