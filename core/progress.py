"""Progress reporting: training emits ProgressEvents; the CLI prints them, the dashboard's job runner stores them."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass
class ProgressEvent:
    stage: str                       # e.g. "features", "head", "fine-tune", "evaluate", "compress:pruning"
    message: str = ""
    epoch: int | None = None         # 1-based, within the stage
    epochs: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    eta_seconds: float | None = None
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[ProgressEvent], None]


def silent(_: ProgressEvent) -> None:
    """A Progress that ignores everything."""


def keras_callback(progress: Progress, stage: str, epochs: int, epoch_offset: int = 0):
    """A Keras callback that reports each finished epoch of a stage, with an ETA for the stage."""
    from .tfenv import keras

    class _Report(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()
            progress(ProgressEvent(stage, f"{stage}: starting", 0, epochs))

        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1 - epoch_offset
            per = (time.perf_counter() - self.t0) / max(done, 1)
            metrics = {k: float(v) for k, v in (logs or {}).items() if k != "lr"}
            progress(ProgressEvent(stage, f"{stage}: epoch {done}/{epochs}", done, epochs, metrics,
                                   eta_seconds=per * max(epochs - done, 0)))

    return _Report()
