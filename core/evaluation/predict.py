"""Classify images with a run's original model or any stored variant (used by the CLI and the dashboard)."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.errors import LabError
from core.data.images import load_image, resize_array
from .calibration import apply_temperature, recorded_temperature, top_two

_CACHE: "OrderedDict[tuple, Any]" = OrderedDict()   # (run, variant, threads, file mtime) -> warmed-up Predictor
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def cached_predictor(run_id: str, variant: str, threads: int = 2):
    """A warmed-up Predictor of a run's variant, shared (an LRU of 4) and re-loaded when its model file changes."""
    from core.models.predictor import load_variant, variant_file
    key = (run_id, variant, threads, variant_file(run_id, variant).stat().st_mtime_ns)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    p = load_variant(run_id, variant, threads)
    p.predict(np.zeros((1, p.image_size, p.image_size, 3), np.uint8))   # warm-up: tracing / allocation
    with _LOCK:
        _CACHE[key] = p
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return p


def as_image(src: Any, size: int, i: int = 0) -> tuple[str, np.ndarray]:
    """(name, uint8 (size, size, 3)) for a path, bytes, or an array (H, W[, C]) of any size."""
    if isinstance(src, np.ndarray):
        a = src
        if a.dtype != np.uint8:
            if a.size and (a.min() < 0 or a.max() > 255):
                raise LabError(f"image #{i}: array values must be pixels in 0..255")
            a = a.astype(np.uint8)
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
            raise LabError(f"image #{i}: expected an (H, W), (H, W, 1|3|4) array, got shape {a.shape}")
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        return f"array #{i}", resize_array(a[None], size)[0]
    if isinstance(src, (str, Path)):
        if not Path(src).is_file():
            raise LabError(f"{src}: no such file")
        return str(src), load_image(src, size)
    if isinstance(src, (bytes, bytearray)):
        return f"upload #{i}", load_image(bytes(src), size)
    raise LabError(f"image #{i}: unsupported input {type(src).__name__} (give a path, bytes or a uint8 array)")


def predict(run_id: str, images: Sequence[Any], variant: str = "original", top_k: int = 3,
            threads: int = 2) -> list[dict]:
    """Per image: {"image", "class", "probability", "top": [{"class", "probability"}...], "label", "calibrated",
    "temperature", "latency_ms"}.

    Images are decoded and resized exactly as in training (core.images); the latency is one batch-1 prediction,
    preprocessing included, on a warmed-up predictor. Probabilities are calibrated with the variant's recorded
    temperature when it has one (core.evaluation.calibration); `label` is "A or B" when the top two are within
    calibration.MARGIN.
    """
    if not images:
        raise LabError("no images given")
    if top_k < 1:
        raise LabError("top-k must be at least 1")
    from core.models.predictor import run_info, variant_file
    size = run_info(run_id).image_size
    variant_file(run_id, variant)                       # bad run or variant: fail before any decoding or loading
    decoded = [as_image(src, size, i) for i, src in enumerate(images)]
    p = cached_predictor(run_id, variant, threads)
    temperature = recorded_temperature(run_id, variant)
    return [{"image": name, **answer(p, img, temperature, top_k)} for name, img in decoded]


def answer(p, img: np.ndarray, temperature: float | None, top_k: int) -> dict:
    """One uint8 (S, S, 3) image through a Predictor: {"class", "probability", "top", "label", "calibrated",
    "temperature", "latency_ms"}; the latency is the batch-1 prediction, model preprocessing included."""
    t = time.perf_counter()
    probs = p.predict(img[None])[0]
    ms = (time.perf_counter() - t) * 1000
    if temperature:
        probs = apply_temperature(probs, temperature)
    order = np.argsort(-probs, kind="stable")[:min(top_k, len(p.class_names))]
    top = [{"class": p.class_names[j], "probability": round(float(probs[j]), 6)} for j in order]
    return {"class": top[0]["class"], "probability": top[0]["probability"], "top": top,
            "label": top_two(probs, p.class_names), "calibrated": temperature is not None,
            "temperature": temperature, "latency_ms": round(ms, 3)}
