"""What the baselines share: a split folder's rows (checked against its manifest) and
metrics.jsonl records in adebert's schema, so experiments/report reads every kind."""
import hashlib
import json
import math
import os
import sys

PARTS = ("train", "val", "test")


def die(msg):
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr)
    sys.exit(1)


def load_split(d):
    """{part: (texts, labels)} from `adebert data split` output, hashes verified."""
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die(f"{d}: not a split folder ({e})")
    out = {}
    for p in PARTS:
        path = os.path.join(d, f"{p}.jsonl")
        with open(path, "rb") as f:
            raw = f.read()
        if hashlib.sha256(raw).hexdigest() != man["files"][p]["sha256"]:
            die(f"{path}: sha256 does not match manifest.json (the file was changed)")
        texts, labels = [], []
        for line in raw.decode("utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                texts.append(r["text"])
                labels.append(int(r["label"]))
        out[p] = (texts, labels)
    return out, man


def metrics(labels, scores, threshold=0.5):
    """P/R/F1 (positive = ADE), accuracy, ROC-AUC, PR-AUC (average precision) and the
    confusion matrix, from p(ADE) scores."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    tp = fp = tn = fn = 0
    for y, s in zip(labels, scores):
        p = 1 if s >= threshold else 0
        if p and y:
            tp += 1
        elif p:
            fp += 1
        elif y:
            fn += 1
        else:
            tn += 1
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    both = len(set(labels)) == 2
    return {"precision": prec, "recall": rec, "f1": f1, "accuracy": (tp + tn) / max(1, len(labels)),
            "roc_auc": float(roc_auc_score(labels, scores)) if both else math.nan,
            "pr_auc": float(average_precision_score(labels, scores)) if both else math.nan,
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def record(split, epoch, step, m, **extra):
    r = {"schema_version": 1, "split": split, "epoch": epoch, "step": step}
    r.update(m)
    r.update(extra)
    # JSON has no NaN (an AUC of a one-class split): null
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}


def write_jsonl(path, records):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)
