"""Uploaded files: stored under <lab home>/uploads as <safe stem>-<content hash><suffix>, with the user's own file
name kept beside it (<stored name>.name), so every page can show "colours.zip", not "colours-92ad52506f06fbf7.zip".

Nothing uploaded is unpickled or executed here; a stored upload is only ever read as bytes (ZIPs are unpacked by
core.data.datasets.folder.safe_extract).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from .paths import lab_home, sub

HASHED = re.compile(r"^(?P<stem>.+)-[0-9a-f]{16}(?P<suffix>\.[A-Za-z0-9]+)?$")
MAX_NAME = 120


def safe_name(text: str, limit: int = 40) -> str:
    """Text reduced to a harmless file or folder name: only [A-Za-z0-9._-], nothing hidden in front, at most `limit`
    characters ('' when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text or "").lstrip("._-")[:limit]


def safe_stem(filename: str) -> str:
    """A file name reduced to a harmless stem: no folders, no dots in front, only [A-Za-z0-9._-]."""
    base = re.split(r"[\\/]", filename or "")[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return safe_name(stem) or "upload"


def _display(filename: str) -> str:
    """The user's file name as a single printable line (no folders, no control characters), for showing only."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(ch if ch.isprintable() else "_" for ch in base).strip()
    return base[:MAX_NAME] or "upload"


def save_upload(filename: str, data: bytes, suffix: str = ".zip") -> str:
    """Store an upload under <lab home>/uploads as <safe stem>-<content hash><suffix>; return its path.

    The user's own file name is written beside it (for display); the stored name never comes from it unsanitised."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = sub("uploads")
    path = folder / f"{safe_stem(filename)}-{digest}{suffix}"
    if not path.exists():
        tmp = folder / f".{path.name}.part{os.getpid()}-{secrets.token_hex(4)}"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    name_file = path.with_name(path.name + ".name")
    try:
        name_file.write_text(_display(filename), encoding="utf-8")
    except OSError:
        pass                        # the name is for display only
    return str(path)


def is_upload(path: str | Path) -> bool:
    try:
        return Path(path).resolve().parent == (lab_home() / "uploads").resolve()
    except (OSError, ValueError):
        return False


def display_name(dataset: str | None) -> str:
    """A short label for a dataset: a registry name as it is; an upload by the user's own file name; a folder or
    file given by path by its last component."""
    if not dataset:
        return "–"
    if "/" not in dataset and "\\" not in dataset:
        return dataset
    p = Path(dataset)
    if is_upload(p):
        try:
            return p.with_name(p.name + ".name").read_text(encoding="utf-8").strip() or p.name
        except OSError:
            m = HASHED.match(p.name)
            return f"{m['stem']}{m['suffix'] or ''}" if m else p.name
    return p.name or dataset
