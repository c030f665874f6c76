"""Cached backbone features: computed once per (data, backbone, weights, size, pooling, taps), reused by every run."""
from __future__ import annotations

import hashlib
import os
from typing import Callable

import numpy as np

from core.data.prepare import PreparedData
from .extractor import Extractor
from core.store.paths import cache_dir
from core.store.settings import batch_rows


def features_key(data: PreparedData, backbone: str, weights: str, pooling: str, taps: tuple[str, ...] = ()) -> str:
    """One cache entry per (data, backbone, weights, size, pooling, tap set); the last-layer key is as before taps."""
    raw = f"{data.fingerprint}|{data.dataset}|{data.image_size}|{backbone}|{weights}|{pooling}|v1"
    raw += f"|taps={','.join(taps)}" if taps else ""
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


class FeatureStore:
    """Pooled features of every image of `data` (row i belongs to image i), computed by rows on demand.

    Training asks for the train and validation rows, evaluation for the test rows, so each stage pays for its own
    backbone pass. The rows known so far are saved (features and a mask of known rows) and later runs load them.
    Randomly initialised backbones are never cached: their features change with every build. Images are read and
    extracted a batch within the memory budget at a time (core.store.settings.batch_rows).
    `make_extractor(n)` is called once, when the first unknown rows are asked for, with the number of unknown rows.
    """

    def __init__(self, make_extractor: Callable[[int], Extractor], dim: int, data: PreparedData, backbone: str,
                 weights: str, pooling: str, taps: tuple[str, ...] = ()) -> None:
        self._make, self.dim, self.data = make_extractor, dim, data
        self.extractor: Extractor | None = None
        self.path = cache_dir() / "features" / f"{features_key(data, backbone, weights, pooling, taps)}.npz"
        self.cacheable = weights != "random" and bool(data.fingerprint)
        self.values: np.ndarray | None = None
        self._known = np.zeros(len(data.images), bool)
        if self.cacheable and self.path.exists():
            try:
                with np.load(self.path) as z:
                    values, known = z["values"], z["known"]
                if values.shape[0] == known.shape[0] == len(data.images):
                    self.values, self._known = values, known.astype(bool)
            except (OSError, ValueError, KeyError):
                pass                                  # an unreadable cache is recomputed
        self.was_cached = self.values is not None

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Features of the images at `idx` (computing those not known yet)."""
        idx = np.asarray(idx, dtype=np.int64)
        missing = idx[~self._known[idx]]
        if len(missing):
            if self.extractor is None:
                self.extractor = self._make(int((~self._known).sum()))
            step = batch_rows(self.data.image_size ** 2 * 3 * 5)     # uint8 images + their float32 input
            for i in range(0, len(missing), step):                 # a multiple of 32: the same batches as one call
                part = missing[i:i + step]
                feats = self.extractor.extract(self.data.images[part])
                if self.values is None:
                    self.values = np.zeros((len(self.data.images), feats.shape[1]), np.float32)
                self.values[part] = feats
                self._known[part] = True
            self._save()
        return self.values[idx] if self.values is not None else np.zeros((0, self.dim), np.float32)

    def _save(self) -> None:
        if not self.cacheable:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.stem}.tmp{os.getpid()}.npz")
        np.savez(tmp, values=self.values, known=self._known)
        os.replace(tmp, self.path)
