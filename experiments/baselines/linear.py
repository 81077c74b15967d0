#!/usr/bin/python3
"""The linear baseline on a split folder: TF-IDF (word 1-2-grams + char 2-5-grams
within word boundaries) + logistic regression, C chosen on validation F1 only (5-fold
stratified cross-validation inside train when the split has no validation set, as in
the study protocol). Writes OUT/metrics.jsonl (adebert's schema) and OUT/linear.json.

  experiments/baselines/linear.py --data SPLIT_DIR --out OUT [--grid 0.3,1,3,10,30]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="an `adebert data split` folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--grid", default="0.3,1,3,10,30,100,300,1000", help="values of C")
    a = ap.parse_args()
    try:
        grid = [float(x) for x in a.grid.split(",")]
        assert grid and all(c > 0 for c in grid)
    except (ValueError, AssertionError):
        common.die(f"--grid must be positive numbers separated by commas, not {a.grid!r}")
    try:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
    except ImportError as e:
        common.die(f"scikit-learn is needed (apt-get install python3-sklearn): {e}")
    rows, man = common.load_split(a.data)
    (xtr, ytr), (xva, yva), (xte, yte) = rows["train"], rows["val"], rows["test"]
    t0 = time.time()

    def featurise(fit_texts):
        w = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        c = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
        w.fit(fit_texts)
        c.fit(fit_texts)
        return lambda t: hstack([w.transform(t), c.transform(t)]).tocsr()

    def fit(texts, labels, C):
        f = featurise(texts)
        m = LogisticRegression(C=C, max_iter=2000, solver="liblinear")
        m.fit(f(texts), labels)
        return f, m

    def f1_of(labels, scores):
        return common.metrics(labels, scores)["f1"]

    sel = {}
    if xva:
        for C in grid:
            f, m = fit(xtr, ytr, C)
            sel[C] = f1_of(yva, m.predict_proba(f(xva))[:, 1])
        how = "validation F1"
    else:
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(xtr, ytr))
        for C in grid:
            s = 0.0
            for tr, va in folds:
                f, m = fit([xtr[i] for i in tr], [ytr[i] for i in tr], C)
                s += f1_of([ytr[i] for i in va], m.predict_proba(f([xtr[i] for i in va]))[:, 1])
            sel[C] = s / len(folds)
        how = "5-fold CV F1 inside train (no validation set)"
    best_c = max(grid, key=lambda c: (sel[c], -c))
    f, m = fit(xtr, ytr, best_c)
    recs = []
    if xva:
        recs.append(common.record("val", 1, 0, common.metrics(yva, m.predict_proba(f(xva))[:, 1]), C=best_c))
    recs.append(common.record("test", 1, 0, common.metrics(yte, m.predict_proba(f(xte))[:, 1]), C=best_c,
                              seconds=round(time.time() - t0, 1)))
    os.makedirs(a.out, mode=0o700, exist_ok=True)
    common.write_jsonl(os.path.join(a.out, "metrics.jsonl"), recs)
    common.write_jsonl(os.path.join(a.out, "linear.json"),
                       [{"C": best_c, "selected_on": how, "grid": {str(k): v for k, v in sel.items()},
                         "split_sha256": {p: man["files"][p]["sha256"] for p in common.PARTS}}])
    t = recs[-1]
    print(f"linear: C={best_c} ({how}); test F1 {t['f1']:.4f} P {t['precision']:.4f} R {t['recall']:.4f} "
          f"ROC-AUC {t['roc_auc']:.4f}")


if __name__ == "__main__":
    main()
