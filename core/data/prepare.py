"""From a dataset entry to labelled uint8 arrays at the model's input size, split train/val/test.

Labels travel with their images as one array pair through decoding, caching and splitting; nothing
downstream shuffles one without the other.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from .datasets import MIN_IMAGES_PER_CLASS, get_dataset
from core.data.datasets.folder import printable
from core.errors import LabError
from .images import load_image, resize_array
from core.store.paths import cache_dir
from core.store.runs import atomic_write_bytes

SPLITS = ("train", "val", "test")


@dataclass
class PreparedData:
    """All usable images of a dataset at one size, and the indices of each split."""
    dataset: str
    class_names: list[str]
    image_size: int
    images: np.ndarray                 # uint8 (N, S, S, 3)
    labels: np.ndarray                 # int64 (N,)
    ids: list[str]                     # where each image came from
    index: dict[str, np.ndarray]       # split -> indices into images/labels
    source: str = ""
    fingerprint: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def x(self, split: str) -> np.ndarray:
        return self.images[self.index[split]]

    def y(self, split: str) -> np.ndarray:
        return self.labels[self.index[split]]

    def split_ids(self, split: str) -> list[str]:
        return [self.ids[i] for i in self.index[split]]

    def counts(self) -> dict[str, list[int]]:
        k = len(self.class_names)
        return {s: np.bincount(self.y(s), minlength=k).tolist() for s in SPLITS}


def split_indices(labels: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0,
                  predefined: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Stratified, seeded train/val/test indices; a predefined train/test split is kept (val carved from train)."""
    f_train, f_val, f_test = fractions
    if min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 or f_train <= 0 or f_test <= 0:
        raise LabError(f"split fractions {fractions} must be non-negative, sum to 1, with train and test > 0")
    idx = np.arange(len(labels))
    if predefined is not None and {"train", "test"} <= set(predefined.tolist()):
        test = idx[predefined == "test"]
        val = idx[predefined == "val"]
        train = idx[predefined == "train"]
        if len(val) == 0 and f_val > 0:
            train, val = train_test_split(train, test_size=f_val / (f_train + f_val), random_state=seed,
                                          stratify=labels[train])
    else:
        rest, test = train_test_split(idx, test_size=f_test, random_state=seed, stratify=labels)
        if f_val > 0:
            train, val = train_test_split(rest, test_size=f_val / (f_train + f_val), random_state=seed,
                                          stratify=labels[rest])
        else:
            train, val = rest, rest[:0]
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def count_problems(class_names: list[str], labels: np.ndarray, minimum: int = MIN_IMAGES_PER_CLASS) -> list[str]:
    """Every reason the usable images cannot train a classifier, each naming the classes concerned."""
    problems = []
    if len(class_names) < 2:
        problems.append(f"only one class ({', '.join(class_names) or 'none'}); a classifier needs at least two"
                        if class_names else "no classes found; a classifier needs at least two")
    counts = np.bincount(labels, minlength=len(class_names)) if len(class_names) else np.zeros(0, np.int64)
    empty = [c for c, n in zip(class_names, counts) if n == 0]
    if empty:
        problems.append(f"class folder{'s' if len(empty) > 1 else ''} {', '.join(repr(c) for c in empty)} "
                        f"{'have' if len(empty) > 1 else 'has'} no usable images (empty, or every file was skipped); "
                        "add images or remove the folder")
    small = [f"'{c}' has {n}" for c, n in zip(class_names, counts) if 0 < n < minimum]
    if small:
        problems.append(f"too few usable images: {'; '.join(small)}; each class needs at least {minimum} "
                        "to be split into train, validation and test")
    return problems


def check_counts(class_names: list[str], labels: np.ndarray, minimum: int = MIN_IMAGES_PER_CLASS) -> None:
    """Raise LabError naming every class with too few usable images (and a single class, and empty ones)."""
    problems = count_problems(class_names, labels, minimum)
    if problems:
        raise LabError("; ".join(problems) if len(problems) > 1 else problems[0])


def decode_files(paths: list[str], size: int, names: list[str] | None = None
                  ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode files in parallel; (images, indices of the good ones, [(name, reason)] of the bad ones)."""
    names = names or [printable(p) for p in paths]
    out = np.empty((len(paths), size, size, 3), np.uint8)
    ok, skipped = [], []

    def one(i: int) -> tuple[int, str | None]:
        try:
            out[i] = load_image(paths[i], size)
            return i, None
        except LabError as e:
            msg = str(e)
            why = msg[len(paths[i]) + 2:] if msg.startswith(f"{paths[i]}: ") else msg.split(": ", 1)[-1]
            return i, printable(why)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for i, err in pool.map(one, range(len(paths))):
            (skipped.append((names[i], err)) if err else ok.append(i))
    return out[ok], ok, skipped


def prepare(dataset: str, image_size: int, seed: int = 0,
            fractions: tuple[float, float, float] | None = None) -> PreparedData:
    """Load, decode (cached on disk per dataset fingerprint and size), check and split a dataset."""
    spec = get_dataset(dataset)
    available, why = spec.availability()
    if not available:
        raise LabError(f"dataset '{spec.name}' is not available here: {why}")
    s = spec.load()
    key = hashlib.sha256(f"{s.fingerprint or spec.name}|{image_size}".encode()).hexdigest()[:20]
    cached = cache_dir() / "images" / f"{key}.npz"
    meta_path = cached.with_suffix(".json")
    hit = None
    if cached.exists() and meta_path.exists() and s.fingerprint:
        try:                                    # a damaged cache entry is a miss, never an error
            with np.load(cached) as z:
                hit = z["images"], z["keep"]
            skipped = [tuple(x) for x in json.loads(meta_path.read_text())["skipped"]]
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
            hit = None
    if hit is not None:
        images, keep = hit
    else:
        if s.images is not None:
            images, keep, skipped = resize_array(s.images, image_size), np.arange(len(s)), []
        else:
            images, keep, skipped = decode_files(s.paths or [], image_size, s.ids)
            keep = np.asarray(keep, np.int64)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tag = f"{os.getpid()}-{threading.get_ident()}"
        tmp = cached.with_name(cached.stem + f".tmp{tag}.npz")
        try:                                    # written atomically: a crash leaves no half-written entry
            np.savez(tmp, images=images, keep=keep)
            atomic_write_bytes(meta_path, json.dumps({"skipped": skipped, "dataset": spec.name,
                                                      "size": image_size}).encode())
            os.replace(tmp, cached)
        except OSError:
            pass                                # a cache that cannot be written (full disk) only costs time
        finally:
            tmp.unlink(missing_ok=True)
    labels = s.labels[keep]
    check_counts(s.class_names, labels)
    index = split_indices(labels, fractions or spec.split, seed, None if s.split is None else s.split[keep])
    return PreparedData(dataset=spec.name, class_names=s.class_names, image_size=image_size, images=images,
                        labels=labels, ids=[s.ids[i] for i in keep], index=index, source=s.source,
                        fingerprint=s.fingerprint, skipped=list(s.skipped) + list(skipped))
