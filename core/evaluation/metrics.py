"""Classification metrics from stored predictions (scikit-learn): the one place any accuracy figure comes from."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str],
                           ids: list[str] | None = None) -> dict:
    """Accuracy, loss, per-class precision/recall/F1/support, confusion matrix and the misclassified samples."""
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    probs = probs / probs.sum(1, keepdims=True).clip(1e-12)  # float32 softmax rows sum to 1 only within ~1e-7
    y_pred = probs.argmax(1)
    labels = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                   output_dict=True, zero_division=0)
    wrong = np.flatnonzero(y_pred != y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": float(log_loss(y_true, probs, labels=labels)),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "per_class": {c: {k: float(report[c][k]) for k in ("precision", "recall", "f1-score", "support")}
                      for c in class_names},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "misclassified": [{"index": int(i), "id": ids[i] if ids else str(i), "true": class_names[y_true[i]],
                           "pred": class_names[y_pred[i]], "confidence": float(probs[i, y_pred[i]])}
                          for i in wrong],
        "num": int(len(y_true)),
    }


def agreement(reference_probs: np.ndarray, probs: np.ndarray) -> dict:
    """How closely a variant follows the original: share of equal top-1 and the largest probability gap."""
    a, b = np.asarray(reference_probs), np.asarray(probs)
    return {"agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
            "max_prob_diff": float(np.max(np.abs(a - b))) if a.size else 0.0}
