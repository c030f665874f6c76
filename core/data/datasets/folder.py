"""Class-folder datasets (the `image_dataset_from_directory` layout) and ZIP archives of one."""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
import unicodedata
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from core.errors import LabError
from core.data.images import IMAGE_SUFFIXES
from core.store.paths import cache_dir
from .base import Samples

ZIP_MAX_ENTRIES = 100_000
ZIP_MAX_BYTES = 4 << 30           # total uncompressed
ZIP_MAX_RATIO = 200               # uncompressed / compressed, per entry and for the whole archive (bomb guard)
ZIP_RATIO_MIN_BYTES = 64 << 20    # the whole-archive ratio is checked once it unpacks to more than this
FOLDER_MAX_FILES = 200_000        # files and folders walked in a dataset folder given by path
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


def _scan_classes(root: Path, rel_to: Path, seen: list[int] | None = None
                  ) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    classes: dict[str, list[Path]] = {}
    skipped: list[tuple[str, str]] = []
    seen = seen if seen is not None else [0]
    for d in _class_dirs(root):
        files, entries = [], []
        for f in d.rglob("*"):                 # counted as it is walked: a folder like / is refused quickly
            seen[0] += 1
            if seen[0] > FOLDER_MAX_FILES:
                raise LabError(f"{rel_to}: more than {FOLDER_MAX_FILES:,} files and folders; refused (is this "
                               "really a dataset folder?)")
            entries.append(f)
        for f in sorted(entries):
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
        seen = [0]
        parts = {s: _scan_classes(d, root, seen) for s, d in split_dirs.items()}
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
    h = hashlib.sha256(os.fsencode(root))         # names are bytes to the OS: non-UTF-8 ones hash fine
    for p in paths:
        st = os.stat(p)
        h.update(os.fsencode(p) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Samples(class_names=names, labels=np.array(labels, np.int64), paths=paths,
                   ids=[printable(str(Path(p).relative_to(root))) for p in paths],
                   split=np.array(split) if split_dirs.keys() >= {"train", "test"} else None,
                   source=f"folder {root}", fingerprint=h.hexdigest()[:16], skipped=skipped)


def _entry_name(i: zipfile.ZipInfo) -> str:
    """An entry's name as the bytes the archive holds, exactly as `unzip` writes them on Linux.

    Without the UTF-8 flag, Python decodes names as cp437; re-encoding gives the stored bytes back. Bytes that are
    UTF-8 become that text; others are kept byte for byte (surrogate-escaped, as the OS layer does), so a
    non-UTF-8 class folder name inside a ZIP gets the same clear message as one in a folder.
    """
    if i.flag_bits & 0x800:
        return i.filename
    try:
        raw = i.filename.encode("cp437")
    except UnicodeEncodeError:
        return i.filename
    return raw.decode("utf-8", "surrogateescape")


def zip_limits() -> str:
    """The limits every ZIP is checked against, for messages and the Data page."""
    return (f"at most {ZIP_MAX_ENTRIES:,} entries and {ZIP_MAX_BYTES / 2**30:g} GiB unpacked, no entry (and not the "
            f"whole archive) expanding more than {ZIP_MAX_RATIO}x, no links, no paths outside the folder")


def safe_extract(zip_path: str | Path, dest: Path, replace: bool = True) -> Path:
    """Extract a ZIP into `dest`, refusing entries that escape it, symlinks, encrypted entries and bombs.

    Every entry is checked before anything is written; on any refusal or error nothing is left behind (the
    archive is unpacked into a temporary sibling folder that is renamed to `dest` only when complete). An existing
    `dest` is replaced, unless `replace` is False: then a `dest` that appears meanwhile (another session unpacking
    the same archive into the same content-keyed folder) is kept and used.
    """
    zip_path = Path(zip_path)
    try:
        zf = zipfile.ZipFile(zip_path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise LabError(f"{zip_path.name}: not a readable ZIP archive ({e})") from e
    with zf:
        if len(infos) > ZIP_MAX_ENTRIES:
            raise LabError(f"{zip_path.name}: {len(infos):,} entries, more than the limit of {ZIP_MAX_ENTRIES:,}; "
                           "refused")
        total = 0
        names = []
        for i in infos:
            name = _entry_name(i)
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts or "\0" in name:
                raise LabError(f"{zip_path.name}: entry '{printable(name)}' would be written outside the dataset "
                               "folder; refused")
            if stat.S_ISLNK(i.external_attr >> 16):
                raise LabError(f"{zip_path.name}: entry '{printable(name)}' is a symbolic link; refused")
            if i.flag_bits & 0x1:
                raise LabError(f"{zip_path.name}: entry '{printable(name)}' is encrypted; password-protected ZIPs are "
                               "not supported")
            if i.file_size > ZIP_MAX_RATIO * max(i.compress_size, 1) and i.file_size > (1 << 20):
                raise LabError(f"{zip_path.name}: entry '{printable(name)}' expands "
                               f"{i.file_size / max(i.compress_size, 1):.0f}x; refused as a possible ZIP bomb")
            total += i.file_size
            names.append(name)
        if total > ZIP_MAX_BYTES:
            raise LabError(f"{zip_path.name}: expands to {total / 2**30:.1f} GiB, more than the limit of "
                           f"{ZIP_MAX_BYTES / 2**30:g} GiB; refused")
        archive = max(zip_path.stat().st_size, 1)
        if total > ZIP_RATIO_MIN_BYTES and total > ZIP_MAX_RATIO * archive:
            raise LabError(f"{zip_path.name}: {archive:,} bytes expand to {total:,} ({total / archive:.0f}x); "
                           "refused as a possible ZIP bomb")
        tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")
        tmp.mkdir(parents=True)
        try:
            root = tmp.resolve()
            for i, name in zip(infos, names):
                target = (tmp / name).resolve()
                if not target.is_relative_to(root):
                    raise LabError(f"{zip_path.name}: entry '{printable(name)}' escapes the dataset folder; refused")
                try:
                    if i.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(i) as src, open(target, "wb") as out:
                        written = 0
                        while chunk := src.read(1 << 20):
                            written += len(chunk)
                            if written > i.file_size:
                                raise LabError(f"{zip_path.name}: entry '{printable(name)}' is larger than it "
                                               "declares; refused")
                            out.write(chunk)
                except LabError:
                    raise
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise LabError(f"{zip_path.name}: the disk is full while unpacking '{printable(name)}'; "
                                       "free some space and try again") from e
                    raise LabError(f"{zip_path.name}: cannot unpack entry '{printable(name)}' "
                                   f"({e.strerror or e})") from e
                except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError, ValueError,
                        zlib.error) as e:
                    raise LabError(f"{zip_path.name}: entry '{printable(name)}' is corrupt or uses an unsupported "
                                   f"compression ({e}); refused") from e
            old = None
            if replace and dest.exists():
                old = dest.with_name(f"{dest.name}.old{os.getpid()}-{secrets.token_hex(4)}")
                os.replace(dest, old)
            try:
                os.replace(tmp, dest)       # dest only ever appears whole (a folder rename is atomic)
            except OSError:
                if not dest.is_dir():
                    raise
                # another session unpacked the same archive at the same moment (dest is keyed by content): keep its
                # copy, which readers may already be using, and drop ours
                shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
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
        safe_extract(p, dest, replace=False)
    s = load_folder(dest)
    s.source = f"zip {p.name}"
    return s
