"""Run folders under artifacts/runs/<id>/ and atomic writes into them."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LabError
from .paths import runs_dir

RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise LabError(f"'{run_id}' is not a run id (expected e.g. 20261123-101500-a1b2c3); see `python -m core runs`")
    return run_id


def run_dir(run_id: str, create: bool = False) -> Path:
    """The folder of a run; ids are validated so they cannot traverse paths."""
    d = runs_dir() / check_run_id(run_id)
    if create:
        d.mkdir(parents=True, exist_ok=False)
    elif not d.is_dir():
        raise LabError(f"no run '{run_id}' in {runs_dir()}; see `python -m core runs`")
    return d


def _default(o: Any):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any, **kw) -> str:
    return json.dumps(obj, default=_default, **kw)


def _tmp_name(path: Path, prefix: str = ".") -> Path:
    """A sibling temporary name unique to this process and thread (sessions of one server share a process)."""
    return path.with_name(f"{prefix}{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers (and a crash at any moment) see the old content or the new, never a mix.

    The data goes to a temporary sibling, is flushed to disk, then renamed over `path`; on any error (full
    disk, permission) the temporary file is removed, the old file is left as it was, and the error propagates.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps(obj, indent=1).encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def save_keras(model, path: Path) -> None:
    """Save a model as .keras without optimizer state, atomically."""
    from core.tfenv import keras
    tmp = path.with_name(f".tmp{os.getpid()}-{secrets.token_hex(4)}-{path.name}")   # ends in .keras: native format
    bare = keras.Model(model.inputs, model.outputs, name=model.name)  # same layers, no optimizer attached
    try:
        bare.save(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def load_keras(path: Path):
    """Load one of the lab's own .keras files, in safe mode, without compiling.

    Only a regular `.keras` file (a ZIP, the native format) inside the lab home is loaded: tf_keras would load
    anything else (HDF5, SavedModel) with its legacy loader, which ignores safe mode and can run code stored in a
    Lambda layer. Safe mode refuses such code in .keras files too.
    """
    import zipfile

    from .paths import lab_home
    from core.tfenv import keras
    p = Path(path)
    real = p.resolve()
    if not real.is_relative_to(lab_home()):
        raise LabError(f"{p}: models are loaded only from the lab's own runs in {lab_home()}")
    if p.suffix != ".keras" or not real.is_file():
        raise LabError(f"{p}: not a .keras model file")
    if not zipfile.is_zipfile(real):
        raise LabError(f"{p}: not a native .keras model file (refusing to load another format)")
    try:
        return keras.models.load_model(str(real), compile=False, safe_mode=True)
    except ValueError as e:
        if "safe_mode" in str(e) or "arbitrary code" in str(e):
            raise LabError(f"{p}: refused in safe mode: the model holds Python code (a Lambda layer)") from e
        raise


NAME_MAX = 80


def clean_name(name: str | None) -> str | None:
    """A run name as stored: one printable line of at most NAME_MAX characters; empty means no name."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise LabError("a run name must be text")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    if len(text) > NAME_MAX:
        raise LabError(f"a run name has at most {NAME_MAX} characters (got {len(text)})")
    return text or None


def rename_run(run_id: str, name: str | None) -> str | None:
    """Give a run a name (or clear it with None/""): in its config.json and run.json and in the registry."""
    from . import registry
    folder = run_dir(run_id)
    name = clean_name(name)
    for file in ("config.json", "run.json"):
        p = folder / file
        if p.is_file():
            data = read_json(p)
            if isinstance(data, dict):
                data["name"] = name
                write_json(p, data)
    if registry.get_run(run_id) is not None:
        registry.upsert_run(run_id, {"name": name})
    return name


def delete_run(run_id: str) -> None:
    """Remove a run for good: its folder and its registry rows (the run and its variants)."""
    from . import registry
    check_run_id(run_id)
    folder = runs_dir() / run_id
    if folder.is_dir():
        # move it aside first, so a half-deleted folder is never seen as a run
        trash = folder.with_name(f".deleting-{run_id}-{secrets.token_hex(3)}")
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    elif registry.get_run(run_id) is None:
        raise LabError(f"no run '{run_id}'; see `python -m core runs`")
    registry.delete_run_rows(run_id)
