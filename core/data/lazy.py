"""Arrays of rows that are not held in memory: indexing reads just the rows asked for.

A dataset too large for the memory budget is one of these instead of a numpy array:
- `NpyFile`: a .npy on disk (uint8 images, float activations), read with positioned reads. A memory map would do
  the same reads, but every page it touches counts as the process's resident memory until the kernel reclaims it,
  so one pass over a 10 GB map shows 10 GB of RSS; reads through the page cache do not.
- `Resized`: a source array smaller than its resized self (28 x 28 grey Fashion-MNIST at 224 px is 64x smaller),
  resized row by row when read, by the same function as an in-memory resize: the same pixels.
- `Rows`: a selection of another array's rows (a split), read through it.
Each behaves like a read-only numpy array for `len`, `shape`, `dtype`, `a[i]`, `a[i:j]`, `a[index_array]`,
`a[rows, ...]`, iteration and `np.asarray(a)`; every read returns a new numpy array.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .images import resize_array

READ_CHUNK_ROWS = 256        # rows per read when a whole lazy array is iterated or converted


class LazyRows:
    """Base class: subclasses set `shape`, `dtype` and implement `_read(sorted unique rows) -> array`."""
    shape: tuple[int, ...]
    dtype: np.dtype

    def _read(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def take(self, idx) -> np.ndarray:
        """Rows at `idx` (any order, repeats allowed, negative from the end), as a new array."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        if len(idx) == 0:
            return np.empty((0,) + self.shape[1:], self.dtype)
        if np.all(idx[1:] > idx[:-1]):
            return self._read(idx)
        unique, inverse = np.unique(idx, return_inverse=True)
        return self._read(unique)[inverse]

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            out = self.take([key])[0]
        elif isinstance(key, slice):
            out = self.take(np.arange(*key.indices(len(self))))
        else:
            idx = np.asarray(key)
            out = self.take(np.flatnonzero(idx) if idx.dtype == bool else idx)
        if not rest:
            return out
        return np.ascontiguousarray(out[(slice(None),) * (not isinstance(key, (int, np.integer))) + rest])

    def chunks(self, rows: int = READ_CHUNK_ROWS) -> Iterator[np.ndarray]:
        for i in range(0, len(self), rows):
            yield self[i:i + rows]

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks():
            yield from chunk

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        for i in range(0, len(self), READ_CHUNK_ROWS):
            out[i:i + READ_CHUNK_ROWS] = self[i:i + READ_CHUNK_ROWS]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class NpyFile(LazyRows):
    """A C-ordered .npy file, its rows read on demand (contiguous runs of rows in one read each)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if fortran or dtype.hasobject or not shape:
            raise ValueError(f"{self.path.name}: not a C-ordered numeric array")
        self.shape, self.dtype = tuple(shape), dtype
        if self.path.stat().st_size < self.offset + self.nbytes:
            raise ValueError(f"{self.path.name}: shorter than its header says ({shape})")

    def _transfer(self, rows: np.ndarray, flat: np.ndarray, writing: bool) -> None:
        """Read (or write) the bytes of sorted `rows` into (from) `flat`, one positioned call per contiguous run."""
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)           # the first row of each contiguous run
        ends = np.append(starts[1:], len(rows))
        call = os.pwritev if writing else os.preadv
        fd = os.open(self.path, os.O_WRONLY if writing else os.O_RDONLY)
        try:
            for a, b in zip(starts.tolist(), ends.tolist()):
                view, pos = memoryview(flat[a:b].reshape(-1)), self.offset + int(rows[a]) * self.row_bytes
                while len(view):
                    done = call(fd, [view], pos)
                    if done <= 0:
                        raise OSError(f"{self.path.name}: unexpected end of file")
                    view, pos = view[done:], pos + done
        finally:
            os.close(fd)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        if out.nbytes:
            self._transfer(rows, out.reshape(len(rows), -1).view(np.uint8), writing=False)
        return out

    def write(self, rows, values: np.ndarray) -> None:
        """Write `values[k]` to row `rows[k]` of the file, in place (positioned writes; nothing else is read)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(self)):
            raise IndexError(f"row out of range for {len(self)} rows")
        flat = np.ascontiguousarray(np.asarray(values, self.dtype)[order]).reshape(len(rows), -1).view(np.uint8)
        if flat.nbytes:
            self._transfer(rows, flat, writing=True)


def create_npy(path: str | Path, shape: tuple[int, ...], dtype) -> "NpyFile":
    """A new .npy of zeros at `path` (sparse on disk, atomically created), to be filled with `NpyFile.write`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}-{id(shape)}.npy")
    try:
        with open(tmp, "wb") as f:
            f.write(_header(shape, dtype))
            f.truncate(HEADER_BYTES + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return NpyFile(path)


class Resized(LazyRows):
    """uint8 source images (N, H, W[, C]) seen as (N, size, size, 3) RGB, resized when read (core.data.images)."""

    def __init__(self, source: np.ndarray, size: int) -> None:
        self.source, self.size = source, int(size)
        self.shape, self.dtype = (len(source), self.size, self.size, 3), np.dtype(np.uint8)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return resize_array(self.source[rows], self.size)


class Rows(LazyRows):
    """The rows `index` of `base` (a numpy or lazy array), in that order."""

    def __init__(self, base, index) -> None:
        self.base, self.index = base, np.asarray(index, dtype=np.int64)
        self.shape, self.dtype = (len(self.index),) + tuple(base.shape[1:]), np.dtype(base.dtype)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return self.base[self.index[rows]]


def take(array, idx):
    """`array[idx]`: a new numpy array for a numpy array, a lazy `Rows` view for a lazy one (nothing read yet)."""
    return Rows(array, idx) if isinstance(array, LazyRows) else array[idx]


HEADER_BYTES = 128           # a fixed .npy header length, so the row count can be written last


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(int(s) for s in shape)})
    room = HEADER_BYTES - 10 - 1
    if len(text) > room:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte .npy header")
    body = (text + " " * (room - len(text)) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class NpyWriter:
    """A .npy at `path` written row batch by row batch and atomically: it appears complete (on `close`) or not at
    all (on `abort`, or an error inside `with`). Only the batch being written is held in memory."""

    def __init__(self, path: str | Path, row_shape: tuple[int, ...], dtype) -> None:
        self.path, self.row_shape, self.dtype, self.rows = Path(path), tuple(row_shape), np.dtype(dtype), 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f"{self.path.stem}.tmp{os.getpid()}-{id(self)}.npy")
        self.file = open(self.tmp, "wb")
        self.file.write(_header((0,) + self.row_shape, self.dtype))

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        if chunk.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {chunk.shape[1:]} written to a .npy of rows {self.row_shape}")
        self.file.write(memoryview(chunk.reshape(-1).view(np.uint8)))
        self.rows += len(chunk)

    def close(self) -> None:
        self.file.seek(0)
        self.file.write(_header((self.rows,) + self.row_shape, self.dtype))
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, kind, *_) -> None:
        self.abort() if kind else self.close()


def write_npy(path: str | Path, chunks: Iterable[np.ndarray], row_shape: tuple[int, ...], dtype) -> int:
    """Write the rows of `chunks` (in order) as one .npy at `path`, atomically; return the number of rows."""
    with NpyWriter(path, row_shape, dtype) as w:
        for chunk in chunks:
            w.append(chunk)
    return w.rows
