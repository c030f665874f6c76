"""Measurements that do not depend on the model format: file size, gzipped size, weight statistics, timing.

Sparsity is reported three ways for every variant, Keras or TFLite alike:
  sparsity            zeros among the prunable kernels (Conv2D and Dense kernels: what tfmot prunes)
  sparsity_all        zeros among all stored weights (biases, BatchNorm, depthwise kernels included)
  sparsity_depthwise  zeros among DepthwiseConv2D kernels (tfmot never prunes them: they stay dense)
"""
from __future__ import annotations

import gzip
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np


def file_sizes(path: Path) -> dict:
    """Size on disk and gzipped size (the file's bytes at gzip level 9), in bytes."""
    data = Path(path).read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


@dataclass
class WeightCount:
    """Running totals of elements and zeros for the three sparsity groups."""
    params: int = 0
    zeros: int = 0
    prunable: int = 0
    prunable_zeros: int = 0
    depthwise: int = 0
    depthwise_zeros: int = 0
    max_unique_per_kernel: int = 0

    def add(self, values: np.ndarray, group: str | None = None) -> None:
        n, z = int(values.size), int(np.count_nonzero(values == 0))
        self.params += n
        self.zeros += z
        if group == "prunable":
            self.prunable += n
            self.prunable_zeros += z
        elif group == "depthwise":
            self.depthwise += n
            self.depthwise_zeros += z
        if group in ("prunable", "depthwise") and values.size:
            self.max_unique_per_kernel = max(self.max_unique_per_kernel, int(np.unique(values).size))

    def summary(self) -> dict:
        def ratio(z: int, n: int) -> float | None:
            return round(z / n, 6) if n else None
        return {"params": self.params, "sparsity": ratio(self.prunable_zeros, self.prunable),
                "sparsity_all": ratio(self.zeros, self.params),
                "sparsity_depthwise": ratio(self.depthwise_zeros, self.depthwise),
                "prunable_params": self.prunable, "max_unique_per_kernel": self.max_unique_per_kernel}


def percentile_ms(seconds: Iterable[float]) -> dict:
    s = np.asarray(list(seconds)) * 1000.0
    return {"latency_ms_p50": round(float(np.percentile(s, 50)), 4),
            "latency_ms_p95": round(float(np.percentile(s, 95)), 4),
            "latency_ms_mean": round(float(s.mean()), 4), "latency_runs": int(s.size)}


def latency(run_once: Callable[[], object], runs: int = 100, warmup: int = 10) -> dict:
    """Batch-1 latency of `run_once` after `warmup` calls: median, p95 and mean over `runs` timed calls."""
    for _ in range(warmup):
        run_once()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - t)
    return percentile_ms(times)


def throughput(run_batch: Callable[[], object], batch: int, repeats: int = 5) -> float:
    """Images per second of repeated calls on one batch (after one warm-up call)."""
    run_batch()
    t = time.perf_counter()
    for _ in range(repeats):
        run_batch()
    return round(batch * repeats / (time.perf_counter() - t), 2)


# ---------------------------------------------------------------- which weights tfmot prunes


def registry_weights(registry, layer) -> list[str]:
    return list(registry._LAYERS_WEIGHTS_MAP.get(layer.__class__, []))


def prunable_weight_names(layer) -> list[str]:
    """Names of the weights tfmot prunes in this layer (Conv2D/Dense kernels; none for DepthwiseConv2D)."""
    import core.tfenv  # noqa: F401  (tf_keras must be set up before tfmot is imported)
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry
    return registry_weights(prune_registry.PruneRegistry, layer)


def weight_group(layer, weight) -> str | None:
    """'prunable' for kernels tfmot would prune, 'depthwise' for depthwise kernels, else None."""
    if any(weight is getattr(layer, n, None) for n in prunable_weight_names(layer)):
        return "prunable"
    from core.tfenv import keras
    if isinstance(layer, keras.layers.DepthwiseConv2D) and weight is layer.depthwise_kernel:
        return "depthwise"
    return None
