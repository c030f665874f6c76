"""Predictors: uint8 images in, class probabilities out, for a stored .keras or .tflite model.

Preprocessing (core.backbones.preprocess, the one function training used) and int8 (de)quantisation
happen here and nowhere else, so every variant sees exactly the inputs the original saw.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import LabError
from core.store.runs import read_json, run_dir
from .measure import WeightCount

VARIANT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
MODEL_FILES = ("model.tflite", "model.keras")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    folder: Path
    backbone: str
    image_size: int
    class_names: list[str]
    config: dict


def run_info(run_id: str) -> RunInfo:
    """What a predictor needs from a finished run: backbone, input size, class names."""
    folder = run_dir(run_id)
    if not (folder / "model.keras").is_file() or not (folder / "config.json").is_file():
        raise LabError(f"run '{run_id}' has no trained model (did training finish?)")
    cfg = read_json(folder / "config.json")
    return RunInfo(run_id, folder, cfg["backbone"], int(cfg["image_size"]), read_json(folder / "class_names.json"), cfg)


def default_batch(image_size: int) -> int:
    """Evaluation batch: 32 at 96 px (faster per image than 64 or 128 on a 2-core CPU: activations stay in cache),
    fewer for larger inputs so a TFLite arena stays a few hundred MB."""
    return int(max(4, min(32, 32 * (96 / image_size) ** 2)))


class Predictor:
    """Common interface; subclasses implement `_prepare`, `_forward` and `weight_stats`."""
    kind = ""

    def __init__(self, path: Path, backbone: str, image_size: int, class_names: list[str]):
        self.path, self.backbone, self.image_size, self.class_names = Path(path), backbone, image_size, class_names
        self._lock = threading.Lock()

    def check(self, images: np.ndarray) -> np.ndarray:
        """`images` if it is uint8 (N, S, S, 3): a numpy array, or an array read by rows (core.data.lazy)."""
        s = self.image_size
        if not hasattr(images, "__getitem__") or getattr(images, "dtype", None) != np.uint8 or \
                tuple(getattr(images, "shape", ()))[1:] != (s, s, 3):
            got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
            raise LabError(f"expected uint8 images of shape (N, {s}, {s}, 3), got {got}")
        return images

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Probabilities (N, K) float32 for uint8 images (N, S, S, 3), in input order."""
        images = self.check(images)
        b = batch_size or default_batch(self.image_size)
        outs = [self._forward(self._prepare(images[i:i + b])) for i in range(0, len(images), b)]
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, len(self.class_names)), np.float32)

    def runner(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        """A zero-argument call running the model once on this batch, input prepared beforehand (for timing)."""
        x = self._prepare(self.check(images))
        return lambda: self._forward(x)

    def _prepare(self, images: np.ndarray):
        raise NotImplementedError

    def _forward(self, x) -> np.ndarray:
        raise NotImplementedError

    def weight_stats(self) -> WeightCount:
        raise NotImplementedError


class KerasPredictor(Predictor):
    """A tf_keras model, called through one compiled tf.function (never eager, never `predict`)."""
    kind = "keras"

    def __init__(self, path: Path, backbone: str, image_size: int, class_names: list[str]):
        from core.store.runs import load_keras
        from core.tfenv import tf
        super().__init__(path, backbone, image_size, class_names)
        self.model = load_keras(self.path)
        model = self.model
        self._fn = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])

    def _prepare(self, images: np.ndarray):
        from .backbones import preprocess
        from core.tfenv import tf
        return tf.constant(preprocess(self.backbone, images), tf.float32)

    def _forward(self, x) -> np.ndarray:
        return self._fn(x).numpy()

    def weight_stats(self) -> WeightCount:
        from .measure import weight_group
        count = WeightCount()
        for layer in self.model.layers:
            for w in layer.weights:
                count.add(w.numpy(), weight_group(layer, w))
        return count


class TFLitePredictor(Predictor):
    """An ai_edge_litert interpreter (XNNPACK), batched by resizing its input when the batch dimension is dynamic."""
    kind = "tflite"

    def __init__(self, path: Path, backbone: str, image_size: int, class_names: list[str], threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter
        super().__init__(path, backbone, image_size, class_names)
        self.threads = threads
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.resizable = int(self._in["shape_signature"][0]) == -1
        self._batch = int(self._in["shape"][0])
        self.input_dtype = np.dtype(self._in["dtype"]).name
        self.output_dtype = np.dtype(self._out["dtype"]).name

    def _set_batch(self, n: int) -> None:
        if n != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], [n, self.image_size, self.image_size, 3])
            self.interpreter.allocate_tensors()
            self._batch = n

    def _prepare(self, images: np.ndarray) -> np.ndarray:
        from .backbones import preprocess
        x = np.asarray(preprocess(self.backbone, images), np.float32)
        dtype = np.dtype(self._in["dtype"])
        if dtype.kind in "iu":
            scale, zero = self._in["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        return x

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if y.dtype.kind in "iu":
            scale, zero = self._out["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self._set_batch(len(x))
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._out["index"]))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if self.resizable or len(x) == self._batch:
                return self._invoke(x)
            b, outs = self._batch, []
            for i in range(0, len(x), b):       # fixed batch dimension: pad the last chunk
                chunk = x[i:i + b]
                pad = np.zeros((b - len(chunk),) + chunk.shape[1:], chunk.dtype)
                outs.append(self._invoke(np.concatenate([chunk, pad]))[:len(chunk)])
            return np.concatenate(outs)

    def quantization(self) -> dict:
        return {"input": {"dtype": self.input_dtype, "scale_zero_point": list(self._in["quantization"])},
                "output": {"dtype": self.output_dtype, "scale_zero_point": list(self._out["quantization"])}}

    def weight_stats(self) -> WeightCount:
        from .tflite import weight_stats
        return weight_stats(self.path.read_bytes())


def open_model(path: Path, info: RunInfo, threads: int = 2) -> Predictor:
    """A predictor for a .keras or .tflite file of this run."""
    path = Path(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path, info.backbone, info.image_size, info.class_names, threads)
    return KerasPredictor(path, info.backbone, info.image_size, info.class_names)


def variant_names(run_id: str) -> list[str]:
    """Variants stored for a run (besides 'original', which every trained run has)."""
    root = run_dir(run_id) / "variants"
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and any((d / f).is_file() for f in MODEL_FILES)) \
        if root.is_dir() else []
    return ["original"] + found


def variant_file(run_id: str, name: str) -> Path:
    """The model file of a stored variant; LabError naming the available ones if it does not exist."""
    if name == "original":
        return run_dir(run_id) / "model.keras"
    if isinstance(name, str) and VARIANT_NAME_RE.match(name):
        for f in MODEL_FILES:
            p = run_dir(run_id) / "variants" / name / f
            if p.is_file():
                if p.is_symlink() or not p.resolve().is_relative_to(run_dir(run_id).resolve()):
                    raise LabError(f"variant '{name}' of run '{run_id}' points outside the run folder; refused: models load only from the lab's own artifacts")
                return p
    raise LabError(f"run '{run_id}' has no variant '{name}'; available: {', '.join(variant_names(run_id))} "
                   "(create variants with `python -m core compress RUN_ID`)")


def load_variant(run_id: str, name: str = "original", threads: int = 2) -> Predictor:
    """A Predictor for the original model or a stored variant of a run."""
    info = run_info(run_id)
    return open_model(variant_file(run_id, name), info, threads)
