"""Training a head on cached features: a linear head fitted by scikit-learn's logistic regression to convergence (C and
the feature set chosen on validation), or a deeper head trained with one compiled function per epoch.

On cached features an epoch of a small head is a few milliseconds of arithmetic; Keras `fit` spends far more than
that per epoch on iterators, per-step Python calls and bookkeeping. `fit_features` runs each epoch's mini-batch
loop and the validation pass inside one `tf.function`, and drives ordinary Keras callbacks (progress,
EarlyStopping with its own semantics) so the result is a Keras-style history.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loop import run_epochs


def fit_features(model, optimizer, x: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None,
                 epochs: int, batch_size: int, seed: int, callbacks: list) -> dict[str, list[float]]:
    """Train `model` (features -> softmax) with sparse categorical cross-entropy; return {metric: per-epoch values}.

    Each epoch visits the training rows in a fresh permutation drawn from `seed` (labels are gathered with the same
    indices as their features). Logged like Keras: loss, accuracy, val_loss, val_accuracy.
    """
    from core.tfenv import keras, tf
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.int32)
    xv, yv = (tf.constant(validation[0], tf.float32), tf.constant(validation[1], tf.int32)) if validation else (None, None)
    n, bs = len(x), int(batch_size)
    steps = -(-n // bs)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    weights = model.trainable_variables
    optimizer.build(weights)            # slot variables now: created inside the first trace they force a second one

    def _accuracy(probs, labels):
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(probs, 1, output_type=tf.int32), labels), tf.float32))

    @tf.function
    def epoch(order):
        loss_sum, hit_sum = tf.constant(0.0), tf.constant(0.0)
        for i in tf.range(steps):
            idx = order[i * bs:(i + 1) * bs]
            xb, yb = tf.gather(xt, idx), tf.gather(yt, idx)
            with tf.GradientTape() as tape:
                probs = model(xb, training=True)
                loss = loss_fn(yb, probs) + tf.add_n([tf.constant(0.0)] + model.losses)
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            k = tf.cast(tf.shape(idx)[0], tf.float32)
            loss_sum += loss * k
            hit_sum += _accuracy(probs, yb) * k
        logs = {"loss": loss_sum / n, "accuracy": hit_sum / n}
        if xv is not None:
            val_probs = model(xv, training=False)
            logs["val_loss"], logs["val_accuracy"] = loss_fn(yv, val_probs), _accuracy(val_probs, yv)
        return logs

    rng = np.random.default_rng(seed)
    return run_epochs(model, callbacks, range(epochs), lambda _: {
        k: float(v) for k, v in epoch(tf.constant(rng.permutation(n), tf.int32)).items()})


# ---------------------------------------------------------------- the linear head, fitted to convergence

C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0)   # inverse L2 strength on standardised features, chosen on validation
SELECT_TOL, FINAL_TOL = 1e-3, 1e-4           # lbfgs tolerance while choosing, and for the final fit
SELECT_MAX_ROWS = 2000     # larger training sets choose C on a stratified sample of this many rows, then refit on all
SMALL_PER_CLASS = 30       # fewer training images than this in some class: choose by cross-validation instead
BN_EPSILON = 1e-3          # keras BatchNormalization's default: the head's normalisation is exactly this standardisation


@dataclass
class LinearHead:
    """A softmax layer on standardised features: probabilities = softmax(((x - mean) / sqrt(var + eps)) @ kernel + bias)."""
    kernel: np.ndarray
    bias: np.ndarray
    mean: np.ndarray | None
    var: np.ndarray | None
    C: float


@dataclass
class Candidate:
    """One feature set the head may read (e.g. the last layer, or several depths), as columns of the cached features."""
    name: str
    columns: slice


@dataclass
class Selection:
    head: LinearHead
    candidate: Candidate
    scores: list[dict]              # one row per (candidate, C): validation (or cross-validated) accuracy and loss
    method: str                     # how C and the candidate were chosen
    fitted_on: str                  # "train" or "train+val"


def _standardise(x: np.ndarray, mean: np.ndarray | None, var: np.ndarray | None, inplace: bool = False) -> np.ndarray:
    if inplace and mean is not None:          # the same values, without a second copy of a large feature matrix
        x -= mean
        x /= np.sqrt(var + BN_EPSILON)
        return x
    return x if mean is None else (x - mean) / np.sqrt(var + BN_EPSILON)


def _standardiser(x: np.ndarray, standardise: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    return (x.mean(0), x.var(0)) if standardise else (None, None)


def _fit(z: np.ndarray, y: np.ndarray, C: float, warm=None, tol: float = FINAL_TOL):
    """An L2 logistic regression on already standardised `z`; `warm` (a fit on the same rows, or one holding the
    coefficients to start from) is refitted from its solution."""
    from sklearn.linear_model import LogisticRegression
    lr = warm or LogisticRegression(max_iter=3000, warm_start=True)
    lr.set_params(C=C, tol=tol)
    return lr.fit(z, y)


def _to_head(lr, mean, var, n_classes: int) -> LinearHead:
    """sklearn's coefficients as a softmax layer over all `n_classes` (a binary model's single logit becomes [0, z])."""
    d = lr.coef_.shape[1]
    kernel, bias = np.zeros((d, n_classes), np.float32), np.full(n_classes, -30.0, np.float32)
    cls = lr.classes_.astype(int)
    if len(cls) == 2 and lr.coef_.shape[0] == 1:
        kernel[:, cls[1]], bias[cls[1]], bias[cls[0]] = lr.coef_[0], lr.intercept_[0], 0.0
    else:
        kernel[:, cls], bias[cls] = lr.coef_.T, lr.intercept_
    return LinearHead(kernel, bias, None if mean is None else mean.astype(np.float32),
                      None if var is None else var.astype(np.float32), float(lr.C))


def predict_linear(head: LinearHead, x: np.ndarray) -> np.ndarray:
    z = _standardise(x, head.mean, head.var) @ head.kernel + head.bias
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import log_loss
    acc = float((probs.argmax(1) == y).mean())
    return acc, float(log_loss(y, np.clip(probs, 1e-7, 1), labels=np.arange(probs.shape[1])))


def _stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split
    if len(y) <= n:
        return np.arange(len(y))
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


def select_linear(features: np.ndarray, labels: np.ndarray, train: np.ndarray, val: np.ndarray, n_classes: int,
                  candidates: list[Candidate], standardise: bool = True, seed: int = 0) -> Selection:
    """Fit an L2 logistic regression (scikit-learn, lbfgs, to convergence) for each candidate feature set and C on
    the training rows, and keep the best on the validation rows (accuracy, then log-loss).

    With fewer than SMALL_PER_CLASS training images in some class, or too few validation rows to tell C values
    apart, C and the candidate are chosen by stratified k-fold cross-validation on train+val, and the final head is
    fitted on train+val: every image counts."""
    from sklearn.model_selection import StratifiedKFold
    y_tr = labels[train]
    counts = np.bincount(y_tr, minlength=n_classes)
    small = counts.min() < SMALL_PER_CLASS or len(val) < 2 * n_classes
    rows: list[dict] = []
    best: tuple | None = None
    if small:
        pool = np.concatenate([train, val])
        y_pool = labels[pool]
        k = int(min(5, np.bincount(y_pool, minlength=n_classes)[np.unique(y_pool)].min()))
        folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(pool, y_pool)) if k >= 2 else \
            [(np.arange(len(pool)), np.arange(len(pool)))]     # a class with one image: judged on the training fit
        method = f"{k}-fold cross-validation on the {len(pool)} training and validation images"
    else:
        sel = train[_stratified_sample(y_tr, SELECT_MAX_ROWS, seed)]
        folds = [(sel, val)]
        pool, method = None, f"the {len(val)} validation images" + (
            f" (C chosen on {len(sel)} of the {len(train)} training images)" if len(sel) < len(train) else "")
    solutions: dict = {}                           # (candidate, C) -> coefficients of its selection fit
    for cand in candidates:
        per_c = np.zeros((len(C_GRID), 2))
        for tr_idx, va_idx in folds:
            tr_rows, va_rows = (pool[tr_idx], pool[va_idx]) if small else (tr_idx, va_idx)
            z_tr = features[tr_rows, cand.columns]           # one copy of just these rows and columns
            mean, var = _standardiser(z_tr, standardise)
            z_tr = _standardise(z_tr, mean, var, inplace=True)
            z_va = _standardise(features[va_rows, cand.columns], mean, var, inplace=True)
            warm = None
            for i, C in enumerate(C_GRID):          # increasing C, warm-started: each fit starts near its answer
                warm = _fit(z_tr, labels[tr_rows], C, warm, SELECT_TOL)
                acc, loss = _score(predict_linear(_to_head(warm, None, None, n_classes), z_va), labels[va_rows])
                per_c[i] += (acc * len(va_rows), loss * len(va_rows))
                if not small:                   # the final fit starts from here (exactly here when not sampled)
                    solutions[cand.name, C] = (warm.coef_.copy(), warm.intercept_.copy(), warm.classes_)
        per_c /= sum(len(v) for _, v in folds)
        for C, (acc, loss) in zip(C_GRID, per_c):
            rows.append({"taps": cand.name, "C": C, "val_accuracy": round(float(acc), 6), "val_loss": round(float(loss), 6)})
            key = (acc, -loss)
            if best is None or key > best[0]:
                best = (key, cand, C)
    _, cand, C = best
    fit_rows = np.concatenate([train, val]) if small else train
    del z_tr, z_va                                          # before the final copy: the head's memory stays two copies
    x = features[fit_rows, cand.columns]
    mean, var = _standardiser(x, standardise)
    start = None
    if (cand.name, C) in solutions and np.array_equal(solutions[cand.name, C][2], np.unique(labels[fit_rows])):
        # refine the chosen fit to the final tolerance, from where it is
        from sklearn.linear_model import LogisticRegression
        start = LogisticRegression(max_iter=3000, warm_start=True)
        start.coef_, start.intercept_, start.classes_ = solutions[cand.name, C]
    lr = _fit(_standardise(x, mean, var, inplace=True), labels[fit_rows], C, start)
    return Selection(_to_head(lr, mean, var, n_classes), cand, rows, method, "train+val" if small else "train")


def set_linear_weights(layers: list, head: LinearHead) -> None:
    """Put a fitted linear head into the Keras head layers (head_norm BatchNormalization, if any, and predictions)."""
    for layer in layers:
        if layer.name == "head_norm":
            layer.set_weights([np.ones_like(head.mean), np.zeros_like(head.mean), head.mean, head.var])
        elif layer.name == "predictions":
            layer.set_weights([head.kernel, head.bias])
