"""Class-folder datasets (the `image_dataset_from_directory` layout) and ZIP archives of one."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import LabError
from ..images import IMAGE_SUFFIXES
from ..paths import cache_dir
from .base import Samples

ZIP_MAX_ENTRIES = 100_000
ZIP_MAX_BYTES = 4 << 30           # total uncompressed
ZIP_MAX_RATIO = 200               # uncompressed / compressed, per entry (bomb guard)
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


def printable(name: str) -> str:
    """A file name as valid text: bytes that are not UTF-8 (surrogate-escaped by the OS layer) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".") or p.name.startswith("__MACOSX")


def _class_dirs(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not _is_hidden(d)), key=lambda d: d.name)


def _unwrap(root: Path) -> Path:
    """A ZIP often holds one top folder around the class folders: step into it."""
    while True:
        dirs = _class_dirs(root)
        files = [f for f in root.iterdir() if f.is_file() and not _is_hidden(f)]
        inner_files = dirs and any(f.is_file() and not _is_hidden(f) for f in dirs[0].iterdir())
        if len(dirs) == 1 and not files and not inner_files and dirs[0].name.lower() not in SPLIT_NAMES:
            root = dirs[0]
        else:
            return root


def _scan_classes(root: Path, rel_to: Path) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    classes: dict[str, list[Path]] = {}
    skipped: list[tuple[str, str]] = []
    for d in _class_dirs(root):
        files = []
        for f in sorted(d.rglob("*")):
            if f.is_dir() or any(part.startswith((".", "__MACOSX")) for part in f.relative_to(root).parts):
                continue
            if f.is_symlink():
                skipped.append((printable(str(f.relative_to(rel_to))), "symbolic link, not followed"))
            elif f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
            else:
                skipped.append((printable(str(f.relative_to(rel_to))), f"not an image file ({f.suffix or 'no extension'})"))
        classes[d.name] = files
    return classes, skipped


def _check_class_names(names: list[str], where: Path) -> None:
    if not names:
        raise LabError(f"{where}: no class folders found; expected one sub-folder per class "
                       "(e.g. data/circle/*.png, data/square/*.png)")
    for n in names:
        try:
            n.encode("utf-8")
        except UnicodeEncodeError:
            raise LabError(f"{where}: class folder name {printable(n)!r} is not valid UTF-8; rename it") from None
    folded: dict[str, str] = {}
    for n in names:
        key = unicodedata.normalize("NFC", n).casefold()
        if key in folded:
            raise LabError(f"{where}: class folders '{folded[key]}' and '{n}' differ only in case; merge or rename one")
        folded[key] = n


def load_folder(path: str | Path) -> Samples:
    """Load a class-folder dataset; `train/` and `test/` (and `val/`) sub-folders are kept as given splits."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise LabError(f"{path}: not a folder; give a folder with one sub-folder per class, or a .zip of one")
    root = _unwrap(root)
    tops = {d.name.lower(): d for d in _class_dirs(root)}
    split_dirs = {SPLIT_NAMES[k]: d for k, d in tops.items() if k in SPLIT_NAMES}
    if "train" in split_dirs and "test" in split_dirs:
        parts = {s: _scan_classes(d, root) for s, d in split_dirs.items()}
        names = sorted({c for classes, _ in parts.values() for c in classes})
    else:
        parts = {"": _scan_classes(root, root)}
        names = sorted(parts[""][0])
    _check_class_names(names, root)
    paths, labels, split, skipped = [], [], [], []
    for s, (classes, skip) in parts.items():
        skipped += skip
        for c, files in classes.items():
            paths += [str(f) for f in files]
            labels += [names.index(c)] * len(files)
            split += [s] * len(files)
    h = hashlib.sha256(str(root).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Samples(class_names=names, labels=np.array(labels, np.int64), paths=paths,
                   ids=[printable(str(Path(p).relative_to(root))) for p in paths],
                   split=np.array(split) if split_dirs.keys() >= {"train", "test"} else None,
                   source=f"folder {root}", fingerprint=h.hexdigest()[:16], skipped=skipped)


def safe_extract(zip_path: str | Path, dest: Path) -> Path:
    """Extract a ZIP into `dest`, refusing entries that escape it, symlinks, and bombs. Nothing is written on refusal."""
    zip_path = Path(zip_path)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise LabError(f"{zip_path.name}: not a readable ZIP archive ({e})") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > ZIP_MAX_ENTRIES:
            raise LabError(f"{zip_path.name}: {len(infos):,} entries, more than the limit of {ZIP_MAX_ENTRIES:,}")
        total = 0
        for i in infos:
            name = i.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
                raise LabError(f"{zip_path.name}: entry '{name}' would be written outside the dataset folder; refused")
            if stat.S_ISLNK(i.external_attr >> 16):
                raise LabError(f"{zip_path.name}: entry '{name}' is a symbolic link; refused")
            if i.file_size > ZIP_MAX_RATIO * max(i.compress_size, 1) and i.file_size > (1 << 20):
                raise LabError(f"{zip_path.name}: entry '{name}' expands {i.file_size / max(i.compress_size, 1):.0f}x; "
                               "refused as a possible ZIP bomb")
            total += i.file_size
        if total > ZIP_MAX_BYTES:
            raise LabError(f"{zip_path.name}: expands to {total / 2**30:.1f} GiB, more than the limit of "
                           f"{ZIP_MAX_BYTES / 2**30:.0f} GiB")
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for i in infos:
                target = (tmp / i.filename).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise LabError(f"{zip_path.name}: entry '{i.filename}' escapes the dataset folder; refused")
                if i.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(i) as src, open(target, "wb") as out:
                    written = 0
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > i.file_size:
                            raise LabError(f"{zip_path.name}: entry '{i.filename}' is larger than it declares; refused")
                        out.write(chunk)
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def load_zip(path: str | Path) -> Samples:
    """Extract a ZIP of class folders once (keyed by its content hash) and load it as a folder."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise LabError(f"{path}: no such file")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    dest = cache_dir() / "zips" / h.hexdigest()[:16]
    if not dest.is_dir():
        safe_extract(p, dest)
    s = load_folder(dest)
    s.source = f"zip {p.name}"
    return s
