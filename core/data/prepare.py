"""From a dataset entry to labelled uint8 arrays at the model's input size, split train/val/test.

Labels travel with their images as one array pair through decoding, caching and splitting; nothing
downstream shuffles one without the other.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from .datasets import MIN_IMAGES_PER_CLASS, get_dataset
from core.data.datasets.folder import printable
from core.errors import LabError
from .images import load_image, resize_array
from .lazy import LazyRows, NpyFile, Resized, take, write_npy
from core.store.paths import cache_dir
from core.store.runs import atomic_write_bytes
from core.store.settings import batch_rows, in_ram_limit

SPLITS = ("train", "val", "test")


@dataclass
class PreparedData:
    """All usable images of a dataset at one size, and the indices of each split."""
    dataset: str
    class_names: list[str]
    image_size: int
    images: np.ndarray | LazyRows      # uint8 (N, S, S, 3): in RAM, or read by rows (core.data.lazy) when large
    labels: np.ndarray                 # int64 (N,)
    ids: list[str]                     # where each image came from
    index: dict[str, np.ndarray]       # split -> indices into images/labels
    source: str = ""
    fingerprint: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, np.ndarray)

    def take(self, idx: np.ndarray) -> np.ndarray | LazyRows:
        """The images at `idx`: a numpy array when the data is in RAM, else a lazy view read in batches."""
        return take(self.images, idx)

    def x(self, split: str) -> np.ndarray | LazyRows:
        return self.take(self.index[split])

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


def _decode_in_chunks(s, size: int, keep: list[int], skipped: list) -> Iterator[np.ndarray]:
    """The images of `s` at `size`, a batch within the memory budget at a time; fills `keep` (the indices of the
    usable ones) and `skipped` as it goes."""
    step = batch_rows(size * size * 3)
    for i in range(0, len(s), step):
        if s.images is not None:
            keep.extend(range(i, min(i + step, len(s))))
            yield resize_array(s.images[i:i + step], size)
        else:
            images, ok, bad = decode_files((s.paths or [])[i:i + step], size, s.ids[i:i + step])
            keep.extend(i + j for j in ok)
            skipped.extend(bad)
            yield images


def _load_decoded(npy: Path, meta_path: Path, keep_path: Path):
    """A stored decoded copy: (images, keep, skipped), or None when absent or damaged (a miss, never an error)."""
    if not (npy.exists() and meta_path.exists() and keep_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        keep = np.load(keep_path)
        images = NpyFile(npy)
        if len(images) != len(keep) or meta.get("rows") != len(keep):
            return None
        return images, keep, [tuple(x) for x in meta["skipped"]]
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None


def decoded_images(s, name: str, size: int):
    """The images of samples `s` at `size`, decoded once and stored (per data fingerprint and size) under the cache
    as a uint8 .npy, written batch by batch and atomically. Returns (images, keep, skipped): `images` is a numpy
    array when it fits a quarter of the memory budget, else an `NpyFile` read by rows; or, for a source in memory
    that is smaller than its resized self (28 px Fashion-MNIST at 96 or 224 px), a `Resized` view that resizes
    batches as they are read, with no copy on disk."""
    n_bytes = len(s) * size * size * 3
    if s.images is not None and n_bytes > in_ram_limit() and s.images.nbytes < n_bytes:
        return Resized(s.images, size), np.arange(len(s)), []
    key = hashlib.sha256(f"{s.fingerprint or name}|{size}".encode()).hexdigest()[:20]
    npy = cache_dir() / "images" / f"{key}.npy"
    meta_path, keep_path = npy.with_suffix(".json"), npy.with_suffix(".keep.npy")
    hit = _load_decoded(npy, meta_path, keep_path) if s.fingerprint else None
    if hit is None:
        keep: list[int] = []
        skipped: list[tuple[str, str]] = []
        try:
            write_npy(npy, _decode_in_chunks(s, size, keep, skipped), (size, size, 3), np.uint8)
            np.save(keep_path.with_name(keep_path.name + f".tmp{os.getpid()}.npy"), np.asarray(keep, np.int64))
            os.replace(keep_path.with_name(keep_path.name + f".tmp{os.getpid()}.npy"), keep_path)
            atomic_write_bytes(meta_path, json.dumps({"skipped": skipped, "dataset": name, "size": size,
                                                      "rows": len(keep)}).encode())
        except OSError as e:
            if n_bytes > in_ram_limit():
                raise LabError(f"could not store the decoded images of '{name}' at {size} px in {npy.parent} ({e}); "
                               "free some disk space (the cache folder is safe to delete)") from e
            keep, skipped = [], []              # small enough to hold: a cache that cannot be written only costs time
            chunks = list(_decode_in_chunks(s, size, keep, skipped))
            images = np.concatenate(chunks) if chunks else np.empty((0, size, size, 3), np.uint8)
            return images, np.asarray(keep, np.int64), skipped
        hit = NpyFile(npy), np.asarray(keep, np.int64), skipped
    images, keep, skipped = hit
    if images.nbytes <= in_ram_limit():
        images = np.asarray(images)
    return images, keep, skipped


def prepare(dataset: str, image_size: int, seed: int = 0,
            fractions: tuple[float, float, float] | None = None) -> PreparedData:
    """Load, decode (stored on disk per dataset fingerprint and size, see `decoded_images`), check and split a
    dataset. Memory stays within the budget (core.store.settings.memory_budget) whatever the dataset's size."""
    spec = get_dataset(dataset)
    available, why = spec.availability()
    if not available:
        raise LabError(f"dataset '{spec.name}' is not available here: {why}")
    s = spec.load()
    images, keep, skipped = decoded_images(s, spec.name, image_size)
    labels = s.labels[keep]
    check_counts(s.class_names, labels)
    index = split_indices(labels, fractions or spec.split, seed, None if s.split is None else s.split[keep])
    return PreparedData(dataset=spec.name, class_names=s.class_names, image_size=image_size, images=images,
                        labels=labels, ids=[s.ids[i] for i in keep], index=index, source=s.source,
                        fingerprint=s.fingerprint, skipped=list(s.skipped) + list(skipped))
