"""Where downloaded datasets are looked for, and small helpers shared by the importers.

A dataset the user downloads goes under `artifacts/datasets/` (the lab home's `datasets/` folder), or
anywhere an environment variable points to. Nothing here creates folders or touches the network.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

from core.store.paths import lab_home
from .builtin import _NumpyOnlyUnpickler


def datasets_dir() -> Path:
    """`<lab home>/datasets`: where the lab looks for (and imports into) downloaded datasets."""
    return lab_home() / "datasets"


def display(p: Path) -> str:
    """A path as the user should type it: relative to the working directory when inside it."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def env_path(var: str) -> Path | None:
    v = os.environ.get(var, "").strip()
    return Path(v).expanduser() if v else None


def first_existing(candidates: list[Path | None]) -> Path | None:
    for c in candidates:
        if c is not None and c.exists():
            return c
    return None


def glob_first(folder: Path, pattern: str) -> Path | None:
    """The newest-named match of `pattern` in `folder` (e.g. the highest kagglecatsanddogs_*.zip)."""
    if not folder.is_dir():
        return None
    hits = sorted(folder.glob(pattern))
    return hits[-1] if hits else None


def stat_fingerprint(*paths: Path, extra: str = "") -> str:
    """Changes whenever one of the files changes (path, size, modification time)."""
    h = hashlib.sha256(extra.encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class DataPickleUnpickler(_NumpyOnlyUnpickler):
    """Numpy arrays, dicts, lists, bytes, str and numbers only; refuses every other global.

    Python 2 pickles (CIFAR's) need `encoding="bytes"`; `fix_imports` maps their module names.
    """


def load_data_pickle(fh, encoding: str = "bytes"):
    """Unpickle a data file (e.g. a CIFAR batch) without letting it run code; check the result's types."""
    obj = DataPickleUnpickler(fh, encoding=encoding).load()
    _check_plain(obj)
    return obj


def _check_plain(obj, depth: int = 0) -> None:
    if depth > 4:
        raise pickle.UnpicklingError("data pickle nested too deeply")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (bytes, str, int)):
                raise pickle.UnpicklingError(f"unexpected key type {type(k).__name__} in a data pickle")
            _check_plain(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        if obj and not all(isinstance(x, (bytes, str, int, float)) for x in obj):
            for x in obj:
                _check_plain(x, depth + 1)
    elif not isinstance(obj, (np.ndarray, bytes, str, int, float, type(None))):
        raise pickle.UnpicklingError(f"unexpected object {type(obj).__name__} in a data pickle")
