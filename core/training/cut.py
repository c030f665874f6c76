"""Fine-tuning above a cut: the frozen layers below it are computed once per image, cached, and only the top trains.

A cut is a layer whose output is the only tensor the layers above it read from the layers below (pooled taps of
lower stages are allowed too: they are cached as the small vectors they become). MobileNetV2's residual blocks
make that true only at block boundaries, so a requested first trainable layer is snapped down to the nearest cut:
at least the requested layers train. The bottom and the top are replays of the model's own graph on new inputs,
calling the same layer objects, so training the top trains the full model's weights; nothing is copied.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.data.lazy import NpyFile, NpyWriter
from core.store.paths import cache_dir
from core.store.settings import batch_rows, memory_budget

POOL_PREFIX = "head_pool"        # weightless pooling of a tap (core.models.heads.pooled)


def float32_max_bytes() -> int:
    """Activations up to this size are stored as float32 and held in RAM, larger ones as float16 on disk and read
    batch by batch: 1/8 of the memory budget (256 MB at the default 2048 MB)."""
    return memory_budget() // 8


@dataclass
class Split:
    bottom: object               # Model(image -> [cut activation, *pooled taps below the cut])
    top: object                  # Model([cut activation, *pooled taps] -> probabilities)
    cut: str                     # the cut layer's name
    first_trainable: int         # index in model.layers of the first layer above the cut
    pooled: list[str]            # pooling layers moved into the bottom (their vectors are cached)


def _graph(model) -> tuple[list[str], dict[str, list[str]]]:
    """Layer names in order and, for each, the names of the layers it reads (one call per layer in these models)."""
    cfg = model.get_config()
    order, inbound = [], {}
    for layer in cfg["layers"]:
        nodes = layer["inbound_nodes"]
        if len(nodes) > 1:
            raise ValueError(f"layer {layer['name']} is called more than once in the model")
        reads = [n[0] for n in nodes[0]] if nodes else []
        if nodes and any(n[3] for n in nodes[0]):
            raise ValueError(f"layer {layer['name']} is called with keyword arguments")
        order.append(layer["name"])
        inbound[layer["name"]] = reads
    return order, inbound


def valid_cuts(model, n_backbone: int) -> list[int]:
    """Indices c (< n_backbone) of backbone layers whose output is the only full tensor the rest reads from below."""
    order, inbound = _graph(model)
    pos = {n: i for i, n in enumerate(order)}
    cuts = []
    for c in range(1, n_backbone):
        crossing = set()
        for name in order[c + 1:]:
            if name.startswith(POOL_PREFIX) and all(pos[r] <= c for r in inbound[name]):
                continue                                   # a tap below the cut: pooled in the bottom
            crossing |= {r for r in inbound[name] if pos[r] <= c}
        if crossing == {order[c]}:
            cuts.append(c)
    return cuts


def _replay(model, names: list[str], inbound: dict[str, list[str]], tensors: dict):
    for name in names:
        layer = model.get_layer(name)
        ins = [tensors[r] for r in inbound[name]]
        tensors[name] = layer(ins if len(ins) > 1 else ins[0])
    return tensors


def split(model, n_backbone: int, first_trainable: int) -> Split | None:
    """The model split at the highest cut below `first_trainable` (None if there is none)."""
    from core.tfenv import keras
    cuts = [c for c in valid_cuts(model, n_backbone) if c < first_trainable]
    if not cuts:
        return None
    c = cuts[-1]
    order, inbound = _graph(model)
    pos = {n: i for i, n in enumerate(order)}
    pooled = [n for n in order[c + 1:] if n.startswith(POOL_PREFIX) and all(pos[r] <= c for r in inbound[n])]
    image = keras.Input(model.input_shape[1:], name="image")
    below = _replay(model, order[1:c + 1] + pooled, inbound, {order[0]: image})
    bottom = keras.Model(image, [below[order[c]]] + [below[p] for p in pooled], name="below_cut")
    ins = {order[c]: keras.Input(model.get_layer(order[c]).output_shape[1:], name="cut")}
    ins |= {p: keras.Input(model.get_layer(p).output_shape[1:], name=f"{p}_in") for p in pooled}
    above = _replay(model, [n for n in order[c + 1:] if n not in pooled], inbound, dict(ins))
    top = keras.Model(list(ins.values()), above[order[-1]], name="above_cut")
    return Split(bottom, top, order[c], c + 1, pooled)


class ActivationCache:
    """The bottom's outputs for every image of a dataset on disk (float32, or float16 when large), computed and
    written a batch within the memory budget at a time, held in RAM when small and read by rows when large.

    Keyed by (data fingerprint, backbone, weights, size, pooling, taps, cut): the layers below a cut are frozen and
    pretrained, so their outputs never change. Random weights are never cached."""

    def __init__(self, key: str, cacheable: bool) -> None:
        self.folder = cache_dir() / "cut" / key
        self.cacheable = cacheable
        self.was_cached = cacheable and (self.folder / "done").is_file()

    @staticmethod
    def key(fingerprint: str, dataset: str, backbone: str, weights: str, size: int, pooling: str,
            taps: tuple[str, ...], cut: str) -> str:
        raw = f"{fingerprint}|{dataset}|{backbone}|{weights}|{size}|{pooling}|{','.join(taps)}|{cut}|v1"
        return f"{cut}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    def arrays(self, bottom, images, predict: Callable) -> list:
        """[cut activations, *pooled taps] for `images` (row i = image i), computed once and stored."""
        if not self.was_cached:
            self._compute(bottom, images, predict)
        return _read_back(self.folder if self.cacheable else self._scratch)

    def _compute(self, bottom, images, predict: Callable) -> None:
        shapes = [tuple(int(d) for d in s[1:]) for s in _output_shapes(bottom)]
        row_bytes = sum(int(np.prod(s)) for s in shapes) * 4
        dtype = np.float32 if row_bytes * len(images) <= float32_max_bytes() else np.float16
        tmp = self.folder.with_name(self.folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            writers = [NpyWriter(tmp / f"out{i}.npy", s, dtype) for i, s in enumerate(shapes)]
            step = batch_rows(row_bytes + int(np.prod(images.shape[1:])) * 5)
            for i in range(0, len(images), step):            # a multiple of 32: the same batches as one call
                for w, o in zip(writers, predict(bottom, images[i:i + step])):
                    w.append(o)
            for w in writers:
                w.close()
            (tmp / "done").touch()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not self.cacheable:                            # random weights: used by this run only, then deleted
            self._scratch = tmp
            weakref.finalize(self, shutil.rmtree, tmp, True)
            return
        try:
            os.replace(tmp, self.folder)                 # another process may have stored the same: keep theirs
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)


def _output_shapes(model) -> list:
    shape = model.output_shape
    return shape if isinstance(shape, list) else [shape]


def _read_back(folder) -> list:
    """The stored outputs: in RAM when they fit float32_max_bytes, else read by rows from disk (NpyFile)."""
    files = sorted(folder.glob("out*.npy"), key=lambda f: int(f.stem[3:]))
    arrays = [NpyFile(f) for f in files]
    if sum(a.nbytes for a in arrays) <= float32_max_bytes():
        return [np.load(f) for f in files]
    return arrays


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # bottom model -> its compiled function


def predict_bottom(bottom, images: np.ndarray, batch_size: int = 32, backbone: str | None = None) -> list[np.ndarray]:
    """The bottom's outputs for uint8 images, in order, through one compiled function (preprocessing first)."""
    from core.models.backbones import preprocess
    from core.tfenv import tf
    fn = _COMPILED.get(bottom)
    if fn is None:          # one trace per bottom: it is called once per batch of images within the budget
        spec = tf.TensorSpec((None,) + tuple(bottom.input_shape[1:]), tf.float32)
        fn = _COMPILED[bottom] = tf.function(lambda x: bottom(x, training=False), input_signature=[spec],
                                             autograph=False)
    parts = [fn(preprocess(backbone, images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    parts = [p if isinstance(p, (list, tuple)) else [p] for p in parts]      # a single output comes back bare
    return [np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(len(parts[0]))]



class Batches:
    """Seeded shuffled batches of cached activations (read from the memory map batch by batch) and their labels."""

    def __init__(self, arrays: list[np.ndarray], rows: np.ndarray, labels: np.ndarray, batch_size: int,
                 shuffle: bool, seed: int) -> None:
        self.arrays, self.rows, self.labels, self.batch_size = arrays, np.asarray(rows), labels, batch_size
        self.shuffle, self.rng = shuffle, np.random.default_rng(seed)

    def __call__(self):
        order = self.rng.permutation(self.rows) if self.shuffle else self.rows
        for i in range(0, len(order), self.batch_size):
            idx = np.sort(order[i:i + self.batch_size])           # sorted reads from the memory map
            yield tuple(a[idx].astype(np.float32) for a in self.arrays), self.labels[idx]

    def dataset(self):
        """Small activations go through tf.data from memory (one seeded shuffle per epoch); large ones are read from
        the memory map batch by batch."""
        from core.tfenv import tf
        if sum(a[:1].nbytes for a in self.arrays) * len(self.rows) <= float32_max_bytes():
            x = tuple(np.asarray(a[self.rows], np.float32) for a in self.arrays)
            ds = tf.data.Dataset.from_tensor_slices((x, self.labels[self.rows]))
            if self.shuffle:
                ds = ds.shuffle(len(self.rows), seed=int(self.rng.integers(1 << 31)), reshuffle_each_iteration=True)
            return ds.batch(self.batch_size).prefetch(2)
        sig = (tuple(tf.TensorSpec((None,) + a.shape[1:], tf.float32) for a in self.arrays),
               tf.TensorSpec((None,), tf.int64))
        return tf.data.Dataset.from_generator(self, output_signature=sig).prefetch(2)
