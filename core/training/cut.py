"""Fine-tuning above a cut: the frozen layers below it are computed once per image, cached, and only the top trains.

A cut is a layer whose output is the only tensor the layers above it read from the layers below (pooled taps of
lower stages are allowed too: they are cached as the small vectors they become). MobileNetV2's residual blocks
make that true only at block boundaries, so a requested first trainable layer is snapped down to the nearest cut:
at least the requested layers train. The bottom and the top are replays of the model's own graph on new inputs
(core.models.graph), calling the same layer objects, so training the top trains the full model's weights.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from core.data.lazy import NpyFile, NpyWriter
from core.models.graph import layer_graph, replay
from core.store.paths import cache_dir
from core.store.settings import batch_rows, memory_budget

POOL_PREFIX = "head_pool"        # weightless pooling of a tap (core.models.heads.pooled)


def float32_max_bytes() -> int:
    """Activations up to this size are stored as float32 and held in RAM, larger ones as float16 on disk and read
    batch by batch: 1/8 of the memory budget (256 MB at the default 2048 MB)."""
    return memory_budget() // 8


@dataclass
class Split:
    top: object                  # Model([cut activation, *pooled taps] -> probabilities)
    cut: str                     # the cut layer's name
    first_trainable: int         # index in model.layers of the first layer above the cut
    pooled: list[str]            # pooling layers moved into the bottom (their vectors are cached)
    shapes: list[tuple[int, ...]]            # the row shapes of [cut activation, *pooled taps]
    build_bottom: Callable[[], object]      # -> Model(image -> [cut activation, *pooled taps]), built when needed


def valid_cuts(model, n_backbone: int, graph: tuple[list[str], dict[str, list[str]]] | None = None) -> list[int]:
    """Indices c (< n_backbone) of backbone layers whose output is the only full tensor the rest reads from below."""
    order, inbound = graph or layer_graph(model)
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


def split(model, n_backbone: int, first_trainable: int) -> Split | None:
    """The model split at the highest cut below `first_trainable` (None if there is none). The bottom is replayed
    only when asked for (`build_bottom`): with its outputs cached, or its converted form stored, it is never built."""
    from core.tfenv import keras
    order, inbound = graph = layer_graph(model)
    cuts = [c for c in valid_cuts(model, n_backbone, graph) if c < first_trainable]
    if not cuts:
        return None
    c = cuts[-1]
    pos = {n: i for i, n in enumerate(order)}
    pooled = [n for n in order[c + 1:] if n.startswith(POOL_PREFIX) and all(pos[r] <= c for r in inbound[n])]

    def build_bottom():
        image = keras.Input(model.input_shape[1:], name="image")
        below = replay(model, order[1:c + 1] + pooled, inbound, {order[0]: image})
        return keras.Model(image, [below[order[c]]] + [below[p] for p in pooled], name="below_cut")
    ins = {n: keras.Input(model.get_layer(n).output_shape[1:], name="cut" if n == order[c] else f"{n}_in")
           for n in [order[c]] + pooled}
    above = replay(model, [n for n in order[c + 1:] if n not in pooled], inbound, dict(ins))
    top = keras.Model(list(ins.values()), above[order[-1]], name="above_cut")
    shapes = [tuple(int(d) for d in i.shape[1:]) for i in ins.values()]
    return Split(top, order[c], c + 1, pooled, shapes, build_bottom)


class ActivationCache:
    """The bottom's outputs for rows of a dataset on disk (float32, or float16 when large), computed and written a
    batch within the memory budget at a time, held in RAM when small and read by rows when large.

    Keyed by (data fingerprint, backbone, weights, size, pooling, taps, cut, rows): the layers below a cut are frozen
    and pretrained, so their outputs never change. Only the rows fine-tuning reads are computed (training, validation
    and the few test images of the final check; evaluation runs the whole model on the test split anyway). Random
    weights are never cached."""

    def __init__(self, key: str, cacheable: bool) -> None:
        self.folder = cache_dir() / "cut" / key
        self.cacheable = cacheable
        self.was_cached = cacheable and (self.folder / "done").is_file()

    @staticmethod
    def key(fingerprint: str, dataset: str, backbone: str, weights: str, size: int, pooling: str,
            taps: tuple[str, ...], cut: str, rows: np.ndarray) -> str:
        rows_hash = hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest()[:16]
        raw = f"{fingerprint}|{dataset}|{backbone}|{weights}|{size}|{pooling}|{','.join(taps)}|{cut}|{rows_hash}|v2"
        return f"{cut}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    def arrays(self, compute: Callable[[], "Bottom"]) -> list:
        """[cut activations, *pooled taps] (one row per row of the key), from the cache or `compute()` once."""
        if not self.was_cached:
            self._store(compute())
        return _read_back(self.folder if self.cacheable else self._scratch)

    def _store(self, bottom: "Bottom") -> None:
        row_bytes = sum(int(np.prod(s)) for s in bottom.shapes) * 4
        dtype = np.float32 if row_bytes * bottom.rows <= float32_max_bytes() else np.float16
        tmp = self.folder.with_name(self.folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            writers = [NpyWriter(tmp / f"out{i}.npy", s, dtype) for i, s in enumerate(bottom.shapes)]
            for outs in bottom.chunks:
                for w, o in zip(writers, outs):
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


def _read_back(folder) -> list:
    """The stored outputs: in RAM when they fit float32_max_bytes, else read by rows from disk (NpyFile)."""
    files = sorted(folder.glob("out*.npy"), key=lambda f: int(f.stem[3:]))
    arrays = [NpyFile(f) for f in files]
    if sum(a.nbytes for a in arrays) <= float32_max_bytes():
        return [np.load(f) for f in files]
    return arrays


@dataclass
class Bottom:
    """The bottom's outputs for some rows, to be stored: their row shapes, how many rows, and the chunks
    ([cut activation, *pooled taps] for consecutive rows), computed as they are read."""
    shapes: list[tuple[int, ...]]
    rows: int
    chunks: Iterator[list[np.ndarray]]
    info: dict


def _flat(bottom):
    """The bottom with one flat output (its outputs flattened and concatenated), so that it converts and runs like
    a feature extractor."""
    from core.tfenv import keras
    flat = [keras.layers.Flatten()(o) for o in bottom.outputs]
    return keras.Model(bottom.input, flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat))


def compute_bottom(sp: Split, images, rows: np.ndarray, backbone: str, weights: str, size: int,
                   pooling: str, taps: tuple[str, ...], engine: str = "auto") -> Bottom:
    """The bottom's outputs for the uint8 images at `rows`, in that order, through the feature path's extractor
    (`core.training.extractor.make_extractor`: TFLite on XNNPACK when a converted bottom is stored or enough images
    make converting pay, checked against Keras when built; Keras otherwise). Images are read and their outputs
    produced a chunk within the memory budget at a time (`core.store.settings.batch_rows`)."""
    from .extractor import make_extractor
    shapes = sp.shapes
    ends = np.cumsum([int(np.prod(s)) for s in shapes])
    ex = make_extractor(lambda: _flat(sp.build_bottom()), backbone, weights, size, pooling, len(rows),
                        images[rows[:32]], engine, taps, part=f"below-{sp.cut}", dim=int(ends[-1]))
    chunk = batch_rows(int(ends[-1]) * 4 + size * size * 3 * 5)      # outputs, and the image as uint8 and float32

    def chunks() -> Iterator[list[np.ndarray]]:
        for i in range(0, len(rows), chunk):
            flat = ex.extract(images[rows[i:i + chunk]])
            yield [flat[:, e - int(np.prod(s)):e].reshape((len(flat),) + s) for s, e in zip(shapes, ends)]
    return Bottom(shapes, len(rows), chunks(),
                  {"engine": ex.engine, "note": ex.note, "build_seconds": round(ex.build_seconds, 2)})


class Batches:
    """Seeded shuffled batches of cached activations and their labels, in the very order the plain way feeds images:
    each epoch's permutation is tf.data's shuffle of the row positions with `seed`, reshuffled each epoch, as
    `core.data.pipeline.image_dataset` shuffles images with the same seed.

    Small activations (up to `float32_max_bytes`) are held as float32 tensors and each batch is gathered from them;
    large ones are read from the memory map batch by batch (sorted reads; the batch holds the same rows)."""

    def __init__(self, arrays: list[np.ndarray], rows: np.ndarray, labels: np.ndarray, batch_size: int,
                 shuffle: bool, seed: int) -> None:
        from core.tfenv import tf
        self.rows, self.batch_size, self.shuffle = np.asarray(rows), batch_size, shuffle
        n = len(self.rows)
        self.specs = (tuple(tf.TensorSpec((None,) + a.shape[1:], tf.float32) for a in arrays),
                      tf.TensorSpec((None,), tf.int64))
        if shuffle:
            orders = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(n)
            self._orders = iter(orders.repeat())
        self.in_memory = sum(a[:1].nbytes for a in arrays) * n <= float32_max_bytes()
        if self.in_memory:
            self.x = tuple(tf.constant(np.asarray(a[self.rows], np.float32)) for a in arrays)
            self.y = tf.constant(np.asarray(labels[self.rows], np.int64))
        else:
            self.arrays, self.labels = arrays, np.asarray(labels, np.int64)

    def epoch(self) -> Iterator[tuple[tuple, object]]:
        """One epoch's batches: (inputs as a tuple of float32 tensors, int64 labels)."""
        from core.tfenv import tf
        order = next(self._orders).numpy() if self.shuffle else np.arange(len(self.rows))
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            if self.in_memory:
                yield tuple(tf.gather(x, idx) for x in self.x), tf.gather(self.y, idx)
            else:
                at = self.rows[np.sort(idx)]                     # sorted reads from the memory map
                yield tuple(tf.constant(a[at].astype(np.float32)) for a in self.arrays), tf.constant(self.labels[at])
