"""Rendering a balanced, deterministic set: image i is drawn from `np.random.default_rng([seed, i])`."""
from __future__ import annotations

from typing import Callable

import numpy as np


def render_all(render: Callable[[int, int, np.random.Generator], np.ndarray], n_classes: int, n_per_class: int,
               size: int, seed: int, progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, size, size, 3), labels int64 (N,)), classes interleaved; `progress(fraction)` every 40."""
    labels = np.tile(np.arange(n_classes, dtype=np.int64), n_per_class)
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = render(int(label), size, np.random.default_rng([seed, i]))
        if progress is not None and (i % 40 == 39 or i == len(labels) - 1):
            progress((i + 1) / len(labels))          # e.g. a dashboard's progress bar
    return images, labels
