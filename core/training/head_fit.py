"""Training a head on cached features with one compiled function per epoch.

On cached features an epoch of a small head is a few milliseconds of arithmetic; Keras `fit` spends far more than
that per epoch on iterators, per-step Python calls and bookkeeping. `fit_features` runs each epoch's mini-batch
loop and the validation pass inside one `tf.function`, and drives ordinary Keras callbacks (progress,
EarlyStopping with its own semantics) so the result is a Keras-style history.
"""
from __future__ import annotations

import numpy as np


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

    cbs = keras.callbacks.CallbackList(callbacks, model=model)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    model.stop_training = False
    cbs.on_train_begin()
    for e in range(epochs):
        cbs.on_epoch_begin(e)
        logs = {k: float(v) for k, v in epoch(tf.constant(rng.permutation(n), tf.int32)).items()}
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        cbs.on_epoch_end(e, logs)
        if model.stop_training:
            break
    cbs.on_train_end()
    return history
