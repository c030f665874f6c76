"""Honest confidence: temperature scaling fitted on the validation split, and the expected calibration error.

Every variant ends in a softmax, so log(probabilities) are its logits up to a constant per image; scaling them by
1 / T and taking the softmax again changes how sure the model sounds, never which class it names (T > 0).
T is the one number minimising the negative log-likelihood of the validation labels (scipy's bounded scalar search
on log T). The ECE is measured on the test split, before and after scaling with that T.
"""
from __future__ import annotations

import numpy as np

MARGIN = 0.15                   # top two within this: "A or B"
LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))
EPS = 1e-12                     # int8 outputs hold exact zeros: their log is clipped, not -inf
SEEN_NOTE = ("the temperature was fitted on validation images the head was also fitted on (small data: train+val), "
             "so the calibrated ECE is optimistic")


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, np.float64), EPS, None))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    return float(-_log_softmax(logits / t)[np.arange(len(labels)), labels].mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the NLL of softmax(log(probs) / T) for these labels (T in [0.05, 20])."""
    from scipy.optimize import minimize_scalar       # scipy comes with scikit-learn; imported only to fit
    logits, labels = _log_probs(probs), np.asarray(labels, np.int64)
    if not len(labels):
        raise ValueError("no images to fit a temperature on")
    res = minimize_scalar(lambda s: _nll(logits, labels, float(np.exp(s))), bounds=LOG_T_BOUNDS, method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


def at_bound(temperature: float) -> bool:
    """True when a fitted T sits on a search bound: the likelihood had no minimum inside (e.g. no validation errors,
    where sharpening forever only helps)."""
    return min(abs(np.log(temperature) - b) for b in LOG_T_BOUNDS) < 1e-3


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / T), float32 like the predictors' outputs; T = 1 returns the probabilities unchanged."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    probs = np.asarray(probs)
    if temperature == 1:
        return probs
    return np.exp(_log_softmax(_log_probs(probs) / temperature)).astype(np.float32)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Top-1 ECE: over equal-width confidence bins (lo, hi], the share-weighted gap |accuracy - mean confidence|."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    if not len(labels):
        return 0.0
    conf, hit = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, hit, bins) - np.bincount(which, conf, bins))     # per bin: n * |acc - conf|
    return float(gap.sum() / n.sum())


def top_two(probs: np.ndarray, class_names: list[str], margin: float = MARGIN) -> str:
    """The top class ("white"), or "white or silver" when the second is within `margin` of it."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, kind="stable")
    first = class_names[order[0]]
    if len(order) > 1 and probs[order[0]] - probs[order[1]] <= margin:
        return f"{first} or {class_names[order[1]]}"
    return first


def calibration_record(val_probs: np.ndarray | None, val_labels: np.ndarray | None, test_probs: np.ndarray,
                       test_labels: np.ndarray, val_seen: bool = False) -> dict:
    """{temperature, ece, ece_calibrated} of one model: T fitted on validation, ECE on test before and after scaling.

    T is None without validation images, or when it cannot be fitted (at_bound; `calibration_note` says why);
    `calibration_note` also says when the model was fitted on those validation images (`val_seen`)."""
    ece = round(expected_calibration_error(test_probs, test_labels), 6)
    if val_probs is None or not len(val_probs):
        return {"temperature": None, "ece": ece, "ece_calibrated": None}
    t = round(fit_temperature(val_probs, val_labels), 4)       # the T stored is the T applied
    if at_bound(t):
        wrong = int((np.asarray(val_probs).argmax(1) != np.asarray(val_labels)).sum())
        return {"temperature": None, "ece": ece, "ece_calibrated": None, "calibration_note": (
            f"no temperature: on the {len(val_probs)} validation images ({wrong} misclassified) the likelihood keeps "
            f"improving as T goes to {'0' if t < 1 else 'infinity'}, so none can be fitted; probabilities unscaled")}
    out = {"temperature": t, "ece": ece,
           "ece_calibrated": round(expected_calibration_error(apply_temperature(test_probs, t), test_labels), 6)}
    if val_seen:
        out["calibration_note"] = SEEN_NOTE
    return out


def recorded_temperature(run_id: str, variant: str = "original") -> float | None:
    """The temperature recorded for a stored variant (its metrics.json; for the original, else run.json), or None."""
    from core.models.predictor import variant_file
    from core.store.runs import read_json, run_dir
    variant_file(run_id, variant)                                # a bad name fails here, before any path is built
    folder = run_dir(run_id)
    stored = folder / "variants" / variant / "metrics.json"
    if stored.is_file():
        t = read_json(stored).get("temperature")
    elif variant == "original" and (folder / "run.json").is_file():
        t = (read_json(folder / "run.json").get("calibration") or {}).get("temperature")
    else:
        t = None
    return float(t) if t else None
