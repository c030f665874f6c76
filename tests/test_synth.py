"""Synthetic generators in core.data.synth: determinism, layout, class balance and that classes carry signal."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.data.synth import shapes, vehicles

GENERATORS = [pytest.param(shapes, id="shapes"), pytest.param(vehicles, id="vehicles")]


@pytest.mark.parametrize("mod", GENERATORS)
def test_shape_dtype_and_exact_balance(mod) -> None:
    k = len(mod.CLASS_NAMES)
    images, labels = mod.generate(3, size=48, seed=1)
    assert images.shape == (3 * k, 48, 48, 3) and images.dtype == np.uint8
    assert labels.shape == (3 * k,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=k).tolist() == [3] * k


@pytest.mark.parametrize("mod", GENERATORS)
def test_deterministic_per_seed_and_per_index(mod) -> None:
    a, la = mod.generate(2, size=48, seed=7)
    b, lb = mod.generate(2, size=48, seed=7)
    assert a.tobytes() == b.tobytes() and la.tolist() == lb.tolist()
    c, lc = mod.generate(2, size=48, seed=8)
    assert lc.tolist() == la.tolist()
    assert all((x != y).any() for x, y in zip(a, c)), "a different seed must change every image"
    # Image i depends only on (seed, i): a longer run starts with the shorter one.
    longer, _ = mod.generate(3, size=48, seed=7)
    assert longer[: len(a)].tobytes() == a.tobytes()
    assert mod.render(int(la[5]), 48, np.random.default_rng([7, 5])).tobytes() == a[5].tobytes()


@pytest.mark.parametrize("mod", GENERATORS)
def test_images_vary_and_class_means_differ(mod) -> None:
    images, labels = mod.generate(4, size=48, seed=0)
    flat = images.reshape(len(images), -1).astype(np.float64)
    assert (flat.std(axis=1) > 5).all(), "no image may be (nearly) constant"
    assert len({img.tobytes() for img in images}) == len(images)
    means = np.stack([flat[labels == k].mean(0) for k in range(len(mod.CLASS_NAMES))])
    assert np.abs(means[:, None] - means[None]).max(axis=2)[~np.eye(len(means), dtype=bool)].min() > 1


# ---------------------------------------------------------------- shapes

def _grey32(images: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(x).convert("L").resize((32, 32), Image.BOX), np.float32) / 255
                     for x in images])


def _orientation_spectrum(grey: np.ndarray, bins: int = 24) -> np.ndarray:
    """Rotation-invariant outline features: |DFT| of the gradient-orientation histogram (2 = square, 3 = triangle)."""
    gy, gx = np.gradient(grey, axis=(1, 2))
    mag, ang = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
    idx = (ang / np.pi * bins).astype(int) % bins
    hist = np.stack([np.bincount(i.ravel(), weights=m.ravel(), minlength=bins) for i, m in zip(idx, mag)])
    hist /= hist.sum(axis=1, keepdims=True) + 1e-9
    return np.abs(np.fft.rfft(hist, axis=1))[:, 1:8]


def _fit_score(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(clf.fit(train, y_train).score(test, y_test))


@pytest.fixture(scope="module")
def shape_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train, y_train = shapes.generate(100, size=64, seed=0)
    x_test, y_test = shapes.generate(50, size=64, seed=1)
    return x_train, y_train, x_test, y_test


def test_shapes_are_learnable_from_outline(shape_data) -> None:
    x_train, y_train, x_test, y_test = shape_data
    acc = _fit_score(_orientation_spectrum(_grey32(x_train)), y_train, _orientation_spectrum(_grey32(x_test)), y_test)
    assert acc > 0.6, f"held-out accuracy {acc:.2f} (chance 0.33)"


def test_shapes_not_given_away_by_global_statistics(shape_data) -> None:
    x_train, y_train, x_test, y_test = shape_data

    def stats(x: np.ndarray) -> np.ndarray:
        f = x.reshape(len(x), -1, 3).astype(np.float64)
        lum = f.mean(axis=2)
        dark = (lum < lum.mean(axis=1, keepdims=True) - 30).mean(axis=1)
        return np.c_[f.mean(axis=1), f.std(axis=1), dark]

    acc = _fit_score(stats(x_train), y_train, stats(x_test), y_test)
    assert acc < 0.5, f"colour/brightness/ink amount alone predicts the shape ({acc:.2f})"


# ---------------------------------------------------------------- vehicles

def test_vehicle_colours_show_in_the_body_region(monkeypatch) -> None:
    monkeypatch.setattr(vehicles, "FRONT_SHARE", 0.0)       # rear views: the body sits in the frame's middle
    images, labels = vehicles.generate(8, size=64, seed=0)
    centre = images[:, 32:51, 19:45].reshape(len(images), -1, 3).astype(np.float64).mean(axis=1)  # rows .5-.8
    mean = {name: centre[labels == k].mean(0) for k, name in enumerate(vehicles.CLASS_NAMES)}
    r, g, b = centre[labels == vehicles.CLASS_NAMES.index("red")].T
    assert (r > g + 30).all() and (r > b + 30).all()
    r, g, b = centre[labels == vehicles.CLASS_NAMES.index("blue")].T
    assert (b > r).all() and b.mean() > r.mean() + 30
    assert mean["green"][1] > max(mean["green"][0], mean["green"][2]) + 15
    assert mean["orange"][0] > mean["orange"][1] > mean["orange"][2] + 20
    assert mean["orange"][1] > mean["red"][1] + 30, "orange is told from red by hue"
    brightness = {k: v.mean() for k, v in mean.items()}
    assert brightness["white"] > brightness["silver"] > brightness["grey"] > brightness["black"] + 20
    for name in ("black", "grey", "silver", "white"):  # achromatic paints stay near neutral
        assert np.ptp(mean[name]) < 15, (name, mean[name])


def test_vehicle_fronts_show_their_paint_above_the_lamps(monkeypatch) -> None:
    """Fronts seen from above and close: the hood fills the upper part of the frame (the floor the lower part)."""
    monkeypatch.setattr(vehicles, "FRONT_SHARE", 1.0)
    images, labels = vehicles.generate(8, size=64, seed=0)
    hood = images[:, 6:24, 19:45].reshape(len(images), -1, 3).astype(np.float64).mean(axis=1)
    mean = {name: hood[labels == k].mean(0) for k, name in enumerate(vehicles.CLASS_NAMES)}
    r, g, b = hood[labels == vehicles.CLASS_NAMES.index("red")].T
    assert (r > g + 15).all() and (r > b + 15).all()
    assert mean["blue"][2] > mean["blue"][0] + 30 and mean["green"][1] > max(mean["green"][0], mean["green"][2]) + 15
    brightness = {k: v.mean() for k, v in mean.items()}
    assert min(brightness["white"], brightness["silver"]) > brightness["grey"] > brightness["black"] + 20


def test_vehicle_class_lives_in_the_car_not_the_background() -> None:
    x_train, y_train = vehicles.generate(30, size=32, seed=0)
    x_test, y_test = vehicles.generate(15, size=32, seed=1)

    def colour_stats(patch: np.ndarray) -> np.ndarray:
        p = patch.reshape(len(patch), -1, 3).astype(np.float64)
        return np.c_[p.mean(axis=1), p.std(axis=1)]

    def corners(x: np.ndarray) -> np.ndarray:  # the bottom ones: close fronts fill the top of the frame with paint
        return colour_stats(np.concatenate([x[:, -5:, :5], x[:, -5:, -5:]], axis=2))

    def centre(x: np.ndarray) -> np.ndarray:  # rows .3-.7: a rear's body, a close front's hood
        return colour_stats(x[:, 10:22, 10:22])

    chance = 1 / len(vehicles.CLASS_NAMES)
    assert _fit_score(corners(x_train), y_train, corners(x_test), y_test) < chance + 0.15
    assert _fit_score(centre(x_train), y_train, centre(x_test), y_test) > 0.6
