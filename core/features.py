"""Cached backbone features: computed once per (data, backbone, weights, size, pooling), reused by every run."""
from __future__ import annotations

import hashlib
import os

import numpy as np

from .data import PreparedData
from .paths import cache_dir
from .pipeline import predict_images


def features_key(data: PreparedData, backbone: str, weights: str, pooling: str) -> str:
    raw = f"{data.fingerprint}|{data.dataset}|{data.image_size}|{backbone}|{weights}|{pooling}|v1"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def cached_features(extractor, data: PreparedData, backbone: str, weights: str, pooling: str,
                    batch_size: int = 64) -> tuple[np.ndarray, bool]:
    """Pooled features for every image of `data` (row i belongs to image i); (features, was_cached).

    Randomly initialised backbones are never cached: their features change with every build.
    """
    path = cache_dir() / "features" / f"{features_key(data, backbone, weights, pooling)}.npy"
    cacheable = weights != "random" and bool(data.fingerprint)
    if cacheable and path.exists():
        feats = np.load(path)
        if feats.shape[0] == len(data.images):
            return feats, True
    feats = predict_images(extractor, backbone, data.images, batch_size).astype(np.float32)
    if cacheable:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, feats)
        os.replace(tmp, path)
    return feats, False
