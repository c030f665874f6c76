"""A training loop for sub-models on cached inputs (the layers above a fine-tuning cut): one traced train step and
one traced validation step, each traced once for any batch size, driving ordinary Keras callbacks.

Keras `fit` traces its train and test functions twice here (the last, smaller batch retraces them) and adds per-step
Python work: about 0.9 s of 6.7 s when fine-tuning the top 20 layers of MobileNetV2 at 96 px (bench.finetune).
The arithmetic, the batch order and the logged metrics (loss and accuracy weighted by batch size, `val_loss`,
`val_accuracy`) are those of `fit` with sparse categorical cross-entropy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .cut import Batches


def _inputs(x):
    """A 1-tuple of inputs (one cached array) is the model's single input."""
    return x[0] if isinstance(x, tuple) and len(x) == 1 else x


def fit_batches(model, optimizer, train: Batches, evaluate: Callable[[], tuple[float, float]] | None, epochs: int,
                callbacks: list, initial_epoch: int = 0) -> dict[str, list[float]]:
    """Train `model` (inputs -> softmax) on `train.epoch()` for epochs initial_epoch..epochs-1, validating
    with `evaluate` (from `evaluator`; callbacks may call it too) after each; return {metric: per-epoch values}."""
    from core.tfenv import keras, tf
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    weights = model.trainable_variables
    optimizer.build(weights)            # slot variables now: created inside the first trace they force a second one

    @tf.function(input_signature=list(train.specs))
    def step(x, y):
        with tf.GradientTape() as tape:
            probs = model(_inputs(x), training=True)
            loss = loss_fn(y, probs) + tf.add_n([tf.constant(0.0)] + model.losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return _sums(loss, probs, y)

    def run_epoch(_: int) -> dict[str, float]:
        total = tf.zeros(3)
        for x, y in train.epoch():
            total += step(x, y)
        n, loss_sum, hits = total.numpy()
        logs = {"loss": float(loss_sum / n), "accuracy": float(hits / n)}
        if evaluate is not None:
            logs["val_loss"], logs["val_accuracy"] = evaluate()
        return logs
    return run_epochs(model, callbacks, range(initial_epoch, epochs), run_epoch)


def run_epochs(model, callbacks: list, epochs: range, run_epoch: Callable[[int], dict[str, float]]
               ) -> dict[str, list[float]]:
    """Drive Keras callbacks around `run_epoch(e)` -> that epoch's logs, as `fit` does (a callback may stop
    training); return {metric: per-epoch values}."""
    from core.tfenv import keras
    cbs = keras.callbacks.CallbackList(callbacks, model=model)
    history: dict[str, list[float]] = {}
    model.stop_training = False
    cbs.on_train_begin()
    for e in epochs:
        cbs.on_epoch_begin(e)
        logs = run_epoch(e)
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        cbs.on_epoch_end(e, logs)
        if model.stop_training:
            break
    cbs.on_train_end()
    return history


def evaluator(model, val: Batches) -> Callable[[], tuple[float, float]]:
    """evaluate() -> (mean loss, accuracy) of `model` on `val.epoch()`, through one traced step."""
    from core.tfenv import keras, tf
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(input_signature=list(val.specs))
    def step(x, y):
        probs = model(_inputs(x), training=False)
        return _sums(loss_fn(y, probs), probs, y)

    def evaluate() -> tuple[float, float]:
        total = tf.zeros(3)
        for x, y in val.epoch():
            total += step(x, y)
        n, loss_sum, hits = total.numpy()
        return float(loss_sum / n), float(hits / n)
    return evaluate


def _sums(loss, probs, y):
    """[rows, loss x rows, correct rows] of a batch, to be summed over an epoch."""
    from core.tfenv import tf
    k = tf.cast(tf.shape(y)[0], tf.float32)
    hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, 1), y), tf.float32))
    return tf.stack([k, loss * k, hits])
