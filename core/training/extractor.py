"""Feature extractors for frozen-backbone training: the Keras backbone + pooling, or the same graph converted once to a
float32 TFLite model, which runs on XNNPACK about twice as fast on a CPU.

The converted extractor is stored per (backbone, weights, size, pooling, taps, library versions) in the cache and checked
against the Keras extractor on real images when it is built; a build that disagrees is discarded, never used.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np

from core.store.paths import cache_dir
from core.data.pipeline import predict_images

ENGINES = ("auto", "keras", "tflite")
BUILD_MIN_IMAGES = 1000      # auto: below this many images to extract, building (~8 s at 96 px) does not pay
MAX_GAP = 1e-3               # largest allowed |TFLite - Keras| feature difference, relative to the largest feature


@dataclass
class Extractor:
    """`extract(uint8 images) -> features`; `engine` says which runtime computes them and `note` how it was chosen."""
    extract: Callable[[np.ndarray], np.ndarray]
    dim: int
    engine: str
    note: str
    build_seconds: float = 0.0


def tflite_path(backbone: str, weights: str, image_size: int, pooling: str, taps: tuple[str, ...] = (),
                part: str = "") -> Path:
    """Where the converted extractor is stored; `part` names a part of the model other than the whole backbone
    (e.g. the layers below a fine-tuning cut)."""
    raw = f"{backbone}|{weights}|{image_size}|{pooling}|{version('tensorflow')}|{version('ai-edge-litert')}|v1"
    raw += f"|taps={','.join(taps)}" if taps else ""
    raw += f"|part={part}" if part else ""
    kind = (f"{pooling}-taps{len(taps)}" if taps else pooling) + (f"-{part}" if part else "")
    return cache_dir() / "extractors" / f"{backbone}-{image_size}-{kind}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}.tflite"


def build_tflite(keras_extractor, backbone: str, image_size: int, path: Path, check_images: np.ndarray) -> float:
    """Convert `keras_extractor` to float32 TFLite at `path` (atomically); return the largest relative feature gap
    on `check_images`. Raises RuntimeError, leaving nothing at `path`, when the gap exceeds MAX_GAP."""
    from core.models.tflite import convert, export_saved_model
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="extractor-", dir=path.parent))
    try:
        blob = convert(export_saved_model(keras_extractor, image_size, work / "saved_model"), "float32")
        (work / "model.tflite").write_bytes(blob)
        want = predict_images(keras_extractor, backbone, check_images)
        got = _tflite_extract(work / "model.tflite", backbone, image_size)(check_images)
        gap = float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max()))) if len(want) else 0.0
        if not gap <= MAX_GAP:
            raise RuntimeError(f"TFLite feature extractor disagrees with Keras by {gap:.1e} (allowed {MAX_GAP:.0e})")
        os.replace(work / "model.tflite", path)
        return gap
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tflite_extract(path: Path, backbone: str, image_size: int) -> Callable[[np.ndarray], np.ndarray]:
    from core.models.predictor import TFLitePredictor
    predictor = TFLitePredictor(path, backbone, image_size, class_names=[])
    return lambda images: predictor.predict(images, batch_size=32)


def make_extractor(keras_extractor, backbone: str, weights: str, image_size: int, pooling: str,
                   n_images: int, check_images: np.ndarray, engine: str = "auto",
                   taps: tuple[str, ...] = (), part: str = "", dim: int | None = None) -> Extractor:
    """The extractor a run uses. `auto` takes TFLite for pretrained weights when a converted extractor is stored, or
    when at least BUILD_MIN_IMAGES images are to be extracted (then it is built and stored); Keras otherwise.
    Random weights are never stored (they change with every build). `keras_extractor` may be a function that
    builds the Keras model (with `dim`, its output width, given): then it is built only if it is used."""
    if hasattr(keras_extractor, "output_shape"):
        dim, model = int(keras_extractor.output_shape[-1]), (lambda: keras_extractor)
    else:
        model = functools.cache(keras_extractor)
    keras = Extractor(lambda images: predict_images(model(), backbone, images), dim, "keras", "")
    if engine not in ENGINES:
        raise ValueError(f"feature engine must be one of {', '.join(ENGINES)}")
    if engine == "keras":
        keras.note = "Keras (chosen)"
        return keras
    path = tflite_path(backbone, weights, image_size, pooling, taps, part)
    pretrained = weights != "random"
    if pretrained and path.is_file():
        try:
            return Extractor(_tflite_extract(path, backbone, image_size), dim, "tflite", "TFLite float32 (stored)")
        except (ValueError, RuntimeError):
            path.unlink(missing_ok=True)         # unreadable (say, truncated by a full disk): rebuilt below
    if engine == "auto" and (not pretrained or n_images < BUILD_MIN_IMAGES):
        keras.note = ("Keras (random weights: a converted extractor would be used once)" if not pretrained else
                      f"Keras ({n_images} images: fewer than {BUILD_MIN_IMAGES}, converting would not pay)")
        return keras
    t = time.perf_counter()
    scratch = None if pretrained else Path(tempfile.mkdtemp(prefix="extractor-"))
    target = path if scratch is None else scratch / path.name
    try:
        gap = build_tflite(model(), backbone, image_size, target, check_images)
        extract = _tflite_extract(target, backbone, image_size)     # the interpreter holds the model from here on
    except RuntimeError as e:
        keras.note = f"Keras ({e})"
        return keras
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - t
    return Extractor(extract, dim, "tflite",
                     f"TFLite float32 (built in {seconds:.1f} s, max relative gap to Keras {gap:.1e})", seconds)
