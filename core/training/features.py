"""Cached backbone features: computed once per (data, backbone, weights, size, pooling, taps), reused by every run."""
from __future__ import annotations

import hashlib
import os
import weakref
from typing import Callable

import numpy as np

from core.data.lazy import NpyFile, create_npy, write_npy
from core.data.prepare import PreparedData
from .extractor import Extractor
from core.store.paths import cache_dir
from core.store.settings import batch_rows, in_ram_limit


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
        # Features larger than a quarter of the memory budget live on disk (a float32 .npy written and read by rows,
        # next to its mask of known rows) instead of in the .npz: the same key, the same values.
        self.on_disk = len(data.images) * dim * 4 > in_ram_limit()
        self.npy, self.known_path = self.path.with_suffix(".npy"), self.path.with_suffix(".known.npy")
        self.values: np.ndarray | NpyFile | None = None
        self._known = np.zeros(len(data.images), bool)
        if self.cacheable:
            try:
                if self.on_disk and self.npy.exists() and self.known_path.exists():
                    values, known = NpyFile(self.npy), np.load(self.known_path)
                elif self.path.exists():
                    with np.load(self.path) as z:
                        values, known = z["values"], z["known"]
                else:
                    values = known = None
                if values is not None and values.shape[0] == known.shape[0] == len(data.images):
                    if self.on_disk and isinstance(values, np.ndarray):   # stored before it counted as large
                        write_npy(self.npy, [values], values.shape[1:], np.float32)
                        values = NpyFile(self.npy)
                    self.values, self._known = values, known.astype(bool)
            except (OSError, ValueError, KeyError):
                pass                                  # an unreadable cache is recomputed
        self.was_cached = self.values is not None

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Features of the images at `idx` (computing those not known yet)."""
        idx = self.ensure(idx)
        return self.values[idx] if self.values is not None else np.zeros((0, self.dim), np.float32)

    def ensure(self, idx: np.ndarray) -> np.ndarray:
        """Compute the features of the images at `idx` not known yet, without returning them (no copy)."""
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
                    self.values = self._new(feats.shape[1])
                if isinstance(self.values, NpyFile):
                    self.values.write(part, feats)
                else:
                    self.values[part] = feats
                self._known[part] = True
            self._save()
        return idx

    def _new(self, dim: int) -> np.ndarray | NpyFile:
        shape = (len(self.data.images), dim)
        if not self.on_disk:
            return np.zeros(shape, np.float32)
        if self.cacheable:
            return create_npy(self.npy, shape, np.float32)
        scratch = self.npy.with_name(f"{self.npy.stem}.scratch{os.getpid()}-{id(self)}.npy")
        weakref.finalize(self, scratch.unlink, True)              # random weights: this run's only
        return create_npy(scratch, shape, np.float32)

    def _save(self) -> None:
        if not self.cacheable:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.values, NpyFile):                      # the rows are written: now say they are known
            tmp = self.known_path.with_name(f"{self.known_path.stem}.tmp{os.getpid()}.npy")
            np.save(tmp, self._known)
            os.replace(tmp, self.known_path)
            return
        tmp = self.path.with_name(f"{self.path.stem}.tmp{os.getpid()}.npz")
        np.savez(tmp, values=self.values, known=self._known)
        os.replace(tmp, self.path)
