"""Small grey-scale benchmarks: Fashion-MNIST (Debian's `dataset-fashion-mnist`, a local copy, or Keras'
download) and scikit-learn's 8 x 8 handwritten digits."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from core.errors import LabError
from .base import Samples
from .sources import datasets_dir, display, env_path, stat_fingerprint

FASHION_CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle_boot")
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_ENV = "LAB_FASHION_MNIST"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not: 2 zero bytes, a type byte, ndim, big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise LabError(f"{path.name}: not a readable IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise LabError(f"{path.name}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    n = int(np.prod(dims)) if dims else 0
    if len(raw) != 4 + 4 * ndim + n * dtype.itemsize:
        raise LabError(f"{path.name}: size does not match its header {dims}")
    return np.frombuffer(raw, dtype, n, 4 + 4 * ndim).reshape(dims)


def fashion_candidates() -> list[Path | None]:
    return [env_path(FASHION_ENV), datasets_dir() / "fashion-mnist", DEBIAN_FASHION,
            Path.home() / ".keras" / "datasets" / "fashion-mnist"]


def find_fashion() -> Path | None:
    for d in fashion_candidates():
        if d is not None and all((d / f).is_file() for pair in FASHION_FILES.values() for f in pair):
            return d
    return None


def fashion_availability() -> tuple[bool, str]:
    d = find_fashion()
    if d is not None:
        return True, f"{'Debian package dataset-fashion-mnist' if d == DEBIAN_FASHION else 'local copy'} at {d}"
    from core.models.backbones import online
    if online():
        return True, "not on this machine: tf_keras.datasets.fashion_mnist downloads it (30 MB) on first use"
    return False, ("not on this machine and no internet: install Debian's package (`apt-get install "
                   f"dataset-fashion-mnist`, files in {DEBIAN_FASHION}/), or put the four *-idx*-ubyte.gz files "
                   f"in {display(datasets_dir() / 'fashion-mnist')}/ (or set {FASHION_ENV}=folder)")


def load_fashion_folder(folder: Path) -> Samples:
    xs, ys, split = [], [], []
    for part, (img_file, lab_file) in FASHION_FILES.items():
        x, y = read_idx(folder / img_file), read_idx(folder / lab_file).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise LabError(f"{folder}: {img_file} and {lab_file} do not match ({x.shape} / {y.shape})")
        if y.size and (y.min() < 0 or y.max() >= len(FASHION_CLASSES)):
            raise LabError(f"{folder / lab_file}: labels outside 0..9")
        xs.append(x.astype(np.uint8))
        ys.append(y)
        split += [part] * len(y)
    files = [folder / f for pair in FASHION_FILES.values() for f in pair]
    return _fashion_samples(np.concatenate(xs), np.concatenate(ys), np.array(split), str(folder),
                            "fashion-" + stat_fingerprint(*files))


def _fashion_samples(x, y, split, source, fingerprint) -> Samples:
    n_train = int((split == "train").sum())
    ids = [f"train #{i}" if i < n_train else f"test #{i - n_train}" for i in range(len(y))]
    return Samples(class_names=list(FASHION_CLASSES), labels=y, images=x, ids=ids, split=split, source=source,
                   fingerprint=fingerprint)


def load_fashion() -> Samples:
    d = find_fashion()
    if d is not None:
        return load_fashion_folder(d)
    ok, why = fashion_availability()
    if not ok:
        raise LabError(f"Fashion-MNIST is not available: {why}")
    from core.tfenv import keras
    (xtr, ytr), (xte, yte) = keras.datasets.fashion_mnist.load_data()
    return _fashion_samples(np.concatenate([xtr, xte]), np.concatenate([ytr, yte]).astype(np.int64),
                            np.array(["train"] * len(ytr) + ["test"] * len(yte)), "tf_keras.datasets.fashion_mnist",
                            "fashion-keras-v1")


def subset(s: Samples, per_class: dict[str, int], seed: int = 0, tag: str = "") -> Samples:
    """A stratified, seeded subset: `per_class[split]` images of every class from each predefined split."""
    rng = np.random.default_rng(seed)
    keep = []
    parts = s.split if s.split is not None else np.array(["train"] * len(s))
    for part, n in per_class.items():
        for c in range(len(s.class_names)):
            idx = np.flatnonzero((parts == part) & (s.labels == c))
            keep.append(np.sort(rng.permutation(idx)[:n]))
    keep = np.sort(np.concatenate(keep))
    return Samples(class_names=list(s.class_names), labels=s.labels[keep],
                   images=None if s.images is None else s.images[keep],
                   paths=None if s.paths is None else [s.paths[i] for i in keep],
                   ids=[s.ids[i] for i in keep], split=None if s.split is None else s.split[keep],
                   source=f"{s.source}, {tag or 'subset'}", fingerprint=f"{s.fingerprint}-{tag or 'subset'}-{seed}",
                   skipped=list(s.skipped))


FASHION_12K = {"train": 1000, "test": 200}


def load_fashion_12k() -> Samples:
    """1,000 training and 200 test images per class: 12k images, split 8k/2k/2k like CIFAR-10's 40k/10k/10k."""
    return subset(load_fashion(), FASHION_12K, 0, "12k subset (1000 train + 200 test per class)")


def load_digits() -> Samples:
    """scikit-learn's 1,797 handwritten digits, 8 x 8, 17 grey levels scaled to 0..255."""
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    x = np.clip(np.round(d.images * (255 / 16)), 0, 255).astype(np.uint8)
    return Samples(class_names=[str(i) for i in range(10)], labels=d.target.astype(np.int64), images=x,
                   ids=[f"digits #{i}" for i in range(len(x))], source="scikit-learn load_digits()",
                   fingerprint=f"sklearn-digits-{len(x)}")
