"""CIFAR-10: the original `cifar-10-python.tar.gz` (or its extracted `cifar-10-batches-py/`), or Keras' download.

The archive holds six Python-2 pickles (`data_batch_1..5`, `test_batch`), each a dict with `b"data"`
(10000 x 3072 uint8: 1024 red, 1024 green, 1024 blue values, row-major 32 x 32) and `b"labels"`
(10000 ints), plus `batches.meta` with `b"label_names"`. They are read straight from the archive with a
restricted unpickler (numpy arrays, dicts, lists and bytes only): a pickle cannot run code here.
The report's split is 40k train / 10k validation / 10k test: the 10k test batch is kept as the test set
and validation is carved from the 50k training images.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from core.errors import LabError
from .base import Samples
from .sources import datasets_dir, display, env_path, first_existing, load_data_pickle, stat_fingerprint

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
ENV = "LAB_CIFAR10"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
HOST = "www.cs.toronto.edu"
SPLIT = (0.8 * 50 / 60, 0.2 * 50 / 60, 10 / 60)   # 40k / 10k / 10k of 60k
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def candidates() -> list[Path | None]:
    d = datasets_dir()
    return [env_path(ENV), d / ARCHIVE, d / "cifar10" / ARCHIVE, d / FOLDER, d / "cifar10" / FOLDER,
            Path.home() / ".keras" / "datasets" / FOLDER]


def find_local() -> Path | None:
    p = first_existing(candidates())
    if p is not None and p.is_dir() and (p / FOLDER).is_dir():
        p = p / FOLDER
    return p


def how_to_get() -> str:
    return (f"download {ARCHIVE} (163 MB) from {URL} and put it at {display(datasets_dir() / ARCHIVE)} "
            f"(or set {ENV}=/path/to/{ARCHIVE}); with internet, tf_keras.datasets.cifar10 downloads it by itself")


def availability() -> tuple[bool, str]:
    p = find_local()
    if p is not None:
        return True, f"local copy at {display(p)}"
    from core.models.backbones import online
    if online(HOST):
        return True, "not on this machine: tf_keras.datasets.cifar10 downloads it (163 MB) on first use"
    return False, f"not on this machine and no internet: {how_to_get()}"


def _batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = load_data_pickle(io.BytesIO(raw))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise LabError(f"CIFAR-10 {name}: not a CIFAR data pickle ({e})") from e
    if not isinstance(d, dict):
        raise LabError(f"CIFAR-10 {name}: expected a dict, found {type(d).__name__}")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d["labels"], dtype=np.int64)
    except KeyError as e:
        raise LabError(f"CIFAR-10 {name}: no {e} entry; is this the Python version of the archive?") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise LabError(f"CIFAR-10 {name}: unexpected shapes {data.shape} / {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise LabError(f"CIFAR-10 {name}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read_members(path: Path) -> dict[str, bytes]:
    """The batch files by base name, from a .tar.gz (read in memory, never extracted) or a folder."""
    wanted = set(TRAIN_BATCHES) | {"test_batch", "batches.meta"}
    out: dict[str, bytes] = {}
    if path.is_dir():
        for name in wanted:
            if (path / name).is_file():
                out[name] = (path / name).read_bytes()
        return out
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf.getmembers():
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted:
                    out[base] = tf.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise LabError(f"{path.name}: not a readable CIFAR-10 archive ({e})") from e
    return out


def load_local(path: Path) -> Samples:
    members = _read_members(path)
    missing = [n for n in (*TRAIN_BATCHES, "test_batch") if n not in members]
    if missing:
        raise LabError(f"{display(path)}: missing {', '.join(missing)}; expected the Python version of CIFAR-10 "
                       f"({ARCHIVE})")
    xs, ys, split = [], [], []
    for name in (*TRAIN_BATCHES, "test_batch"):
        x, y = _batch(members[name], name)
        xs.append(x)
        ys.append(y)
        split += ["test" if name == "test_batch" else "train"] * len(y)
    names = list(CLASS_NAMES)
    if "batches.meta" in members:
        try:
            meta = load_data_pickle(io.BytesIO(members["batches.meta"]))
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
            raise LabError(f"CIFAR-10 batches.meta: not a CIFAR data pickle ({e})") from e
        got = (meta.get(b"label_names") or meta.get("label_names")) if isinstance(meta, dict) else None
        if got and len(got) == len(CLASS_NAMES):
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in got]
    files = [path / n for n in (*TRAIN_BATCHES, "test_batch")] if path.is_dir() else [path]
    return _samples(np.concatenate(xs), np.concatenate(ys), np.array(split), names,
                    f"{display(path)}", "cifar10-" + stat_fingerprint(*files))


def _samples(x, y, split, names, source, fingerprint) -> Samples:
    seen = {"train": 0, "test": 0}
    ids = []
    for s in split.tolist():
        ids.append(f"{s} #{seen[s]}")
        seen[s] += 1
    return Samples(class_names=names, labels=y, images=x, ids=ids, split=split, source=source,
                   fingerprint=fingerprint)


def load() -> Samples:
    p = find_local()
    if p is not None:
        return load_local(p)
    ok, why = availability()
    if not ok:
        raise LabError(f"CIFAR-10 is not available: {why}")
    from core.tfenv import keras
    (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
    x = np.concatenate([xtr, xte]).astype(np.uint8)
    y = np.concatenate([ytr.ravel(), yte.ravel()]).astype(np.int64)
    split = np.array(["train"] * len(ytr) + ["test"] * len(yte))
    return _samples(x, y, split, list(CLASS_NAMES), "tf_keras.datasets.cifar10", "cifar10-keras-v1")
