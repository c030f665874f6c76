"""The linear-probe floor: a tuned L2 logistic regression on a run's own features, to judge the lab's head against.

Independent of the lab's head fit (its own pipeline and a finer C grid), it is what a practitioner would run by hand:
standardise, fit scikit-learn's LogisticRegression for each C on the training rows, keep the C with the best
validation accuracy, and report its test accuracy.
"""
from __future__ import annotations

import numpy as np

PROBE_C = tuple(np.logspace(-4, 2, 7))   # decades: independent of the lab's own grid


def probe_accuracy(features: np.ndarray, labels: np.ndarray, index: dict[str, np.ndarray]) -> dict:
    """{'accuracy': test accuracy of the tuned probe, 'C': the C it chose, 'val_accuracy': its validation accuracy}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    tr, va, te = (np.asarray(index[k]) for k in ("train", "val", "test"))
    fit_rows, choose_rows = (tr, va) if len(va) else (tr, tr)
    best = None
    for C in PROBE_C:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
        model.fit(features[fit_rows], labels[fit_rows])
        score = model.score(features[choose_rows], labels[choose_rows])
        if best is None or score > best[0]:
            best = (score, C, model)
    score, C, model = best
    return {"accuracy": round(float(model.score(features[te], labels[te])), 4), "C": float(C),
            "val_accuracy": round(float(score), 4)}
