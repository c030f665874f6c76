"""Datasets made in the lab (the Data page's builder): `<lab home>/datasets/made/<name>/<class>/<image>`.

Each one is a normal class-folder dataset: `folder.load_folder` reads it, its fingerprint follows its files (so the
image and feature caches notice every change), and the registry finds it by name (`get_dataset`, `all_datasets`).
Every image added gets the checks an uploaded ZIP's images get: an image file suffix, a real image that PIL decodes
within the pixel limit (`images.load_image`), and the whole dataset within the ZIP limits (entries and bytes).
Names are sanitised (`core.store.uploads.safe_name`); images are written atomically (a hidden temporary file, then
a rename), and classes and datasets are deleted by first renaming them out of sight.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import LabError
from core.data.images import CHECK_SIZE, IMAGE_SUFFIXES, load_image
from core.store.runs import atomic_write_bytes
from core.store.uploads import HASHED, safe_name, safe_stem
from .base import DatasetSpec
from .folder import SPLIT_NAMES, ZIP_MAX_BYTES, ZIP_MAX_ENTRIES, load_folder, printable
from .sources import datasets_dir

MADE = "made"  # the sub-folder of <lab home>/datasets that holds them


def made_root() -> Path:
    """`<lab home>/datasets/made`, created on demand."""
    p = datasets_dir() / MADE
    p.mkdir(parents=True, exist_ok=True)
    return p


def clean_name(text: str, what: str = "name") -> str:
    """A dataset or class name as stored: only [A-Za-z0-9._-] (other runs become '_'), nothing hidden; LabError if
    nothing is left."""
    name = safe_name(str(text or "").strip()).rstrip("._-")
    if not name:
        raise LabError(f"{what} {printable(str(text or ''))!r} has no letters or digits; use letters, digits, "
                       "'.', '_' or '-'")
    return name


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def list_made() -> list[str]:
    """The names of the datasets made in the lab, sorted."""
    root = datasets_dir() / MADE
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and _visible(d) and not d.is_symlink())


def is_made(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name in list_made()


@dataclass
class Added:
    """What `add_images` did: the stored file names, and each refused file with the reason."""
    added: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


class LabDataset:
    """One dataset made in the lab. `LabDataset(name)` opens it; `LabDataset.create(name, classes)` makes it.

    Classes and images are named as they are on disk (`classes()`, `images(cls)`); every method that changes the
    dataset raises LabError, changing nothing, when an argument is not valid.
    """

    def __init__(self, name: str):
        if not is_made(name):
            raise LabError(f"no dataset named '{printable(str(name))}' was made in the lab; made so far: "
                           f"{', '.join(list_made()) or 'none'}")
        self.name = name
        self.path = made_root() / name

    # ------------------------------------------------------------------ the dataset

    @classmethod
    def create(cls, name: str, classes: Iterable[str] = ()) -> LabDataset:
        """Make an empty dataset (optionally with classes); its name must not be taken by any dataset."""
        from . import DATASETS
        clean = clean_name(name, "dataset name")
        taken = {_key(n): n for n in [*DATASETS, *list_made()]}
        if _key(clean) in taken:
            other = taken[_key(clean)]
            kind = "a built-in dataset" if other in DATASETS else "a dataset made here"
            raise LabError(f"'{clean}' is taken by {kind} ('{other}'); choose another name")
        try:
            (made_root() / clean).mkdir()
        except FileExistsError:
            raise LabError(f"'{clean}' exists already; choose another name") from None
        ds = cls(clean)
        try:
            for c in classes:
                ds.add_class(c)
        except LabError:
            ds.delete()
            raise
        return ds

    def delete(self) -> None:
        """Delete the dataset and its images (renamed out of sight first, so it never shows half-deleted)."""
        _discard(self.path)

    def spec(self) -> DatasetSpec:
        """Its registry entry: a class folder, by name."""
        counts = self.counts()
        path = self.path
        return DatasetSpec(
            name=self.name, title=self.name, editable=True,
            description=f"Made in the lab: {sum(counts.values())} images in {len(counts)} classes "
                        f"({', '.join(counts) or 'none yet'}), stored at {path}.",
            load=lambda: load_folder(path), availability=lambda: (True, "made in the lab"),
            class_names=tuple(counts))

    def problems(self) -> list[str]:
        """Every reason it cannot be trained on yet (too few classes or images), as the lab's split rule says."""
        import numpy as np

        from core.data.prepare import count_problems
        counts = self.counts()
        return count_problems(list(counts), np.repeat(np.arange(len(counts)), list(counts.values())))

    # ------------------------------------------------------------------ classes

    def classes(self) -> list[str]:
        return sorted(d.name for d in self.path.iterdir() if d.is_dir() and _visible(d) and not d.is_symlink())

    def counts(self) -> dict[str, int]:
        """{class: number of images}, in class order."""
        return {c: len(self.images(c)) for c in self.classes()}

    def add_class(self, name: str) -> str:
        """Add an empty class; returns its stored name."""
        clean = self._new_class_name(name)
        (self.path / clean).mkdir()
        return clean

    def rename_class(self, cls: str, new: str) -> str:
        """Rename a class (its images keep their files); returns the new name."""
        old = self._class_dir(cls)
        clean = self._new_class_name(new, renaming=cls)
        if clean != cls:
            os.rename(old, self.path / clean)
        return clean

    def delete_class(self, cls: str) -> None:
        """Delete a class and its images."""
        _discard(self._class_dir(cls))

    # ------------------------------------------------------------------ images

    def images(self, cls: str) -> list[str]:
        """The image files of a class, oldest first."""
        files = [f for f in self._class_dir(cls).iterdir()
                 if f.is_file() and _visible(f) and not f.is_symlink() and f.suffix.lower() in IMAGE_SUFFIXES]
        return [f.name for f in sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name))]

    def image_path(self, cls: str, file: str) -> Path:
        """The path of an image of this dataset (LabError if there is no such image)."""
        if file not in self.images(cls):
            raise LabError(f"{self.name}: no image '{printable(str(file))}' in class '{cls}'")
        return self._class_dir(cls) / file

    def locate(self, image_id: str) -> tuple[str, str] | None:
        """(class, file) of an image named as a run names it ('class/file'), or None if it is not there (now)."""
        cls, _, file = str(image_id).replace("\\", "/").partition("/")
        if cls in self.classes() and file in self.images(cls):
            return cls, file
        return None

    def add_images(self, cls: str, files: Iterable[tuple[str, bytes]]) -> Added:
        """Check and store images (pairs of the user's file name and its bytes: uploads, camera snapshots).

        Each good image is stored whole as `<safe stem>-<content hash><suffix>`; each refused one (not an image
        file, not decodable, too many pixels, already in the dataset, over the dataset limits) is listed with the
        reason and nothing of it is written.
        """
        folder = self._class_dir(cls)
        out = Added()
        have = self._hashes()
        n_files = sum(self.counts().values())
        n_bytes = sum(f.stat().st_size for c in self.classes() for f in (self.path / c).iterdir() if f.is_file())
        for filename, data in files:
            shown = printable(str(filename or "upload"))
            why = self._refusal(shown, data, have, n_files, n_bytes)
            if why:
                out.refused.append((shown, why))
                continue
            digest = hashlib.sha256(data).hexdigest()[:16]
            name = f"{safe_stem(shown)}-{digest}{Path(shown).suffix.lower()}"
            atomic_write_bytes(folder / name, bytes(data))
            have[digest] = f"{cls}/{name}"
            n_files, n_bytes = n_files + 1, n_bytes + len(data)
            out.added.append(name)
        return out

    def remove_image(self, cls: str, file: str) -> None:
        self.image_path(cls, file).unlink()

    def move_image(self, cls: str, file: str, to: str) -> None:
        """Move an image to another class (to fix its label)."""
        src = self.image_path(cls, file)
        dest = self._class_dir(to) / file
        if dest.exists():
            raise LabError(f"{self.name}: class '{to}' has a file named '{file}' already")
        os.rename(src, dest)

    # ------------------------------------------------------------------ checks

    def _class_dir(self, cls: str) -> Path:
        if cls not in self.classes():
            raise LabError(f"{self.name}: no class '{printable(str(cls))}'; classes: "
                           f"{', '.join(self.classes()) or 'none yet'}")
        return self.path / cls

    def _new_class_name(self, name: str, renaming: str | None = None) -> str:
        clean = clean_name(name, "class name")
        if clean.lower() in SPLIT_NAMES:
            raise LabError(f"'{clean}' cannot name a class: a folder of that name is read as a train/validation/test "
                           "split; choose another name")
        for c in self.classes():
            if c != renaming and _key(c) == _key(clean):
                raise LabError(f"{self.name}: there is a class '{c}' already; choose another name")
        return clean

    def _hashes(self) -> dict[str, str]:
        out = {}
        for c in self.classes():
            for f in self.images(c):
                m = HASHED.match(f)
                if m:
                    out[f.rsplit("-", 1)[-1].split(".")[0]] = f"{c}/{f}"
        return out

    @staticmethod
    def _refusal(shown: str, data: bytes, have: dict[str, str], n_files: int, n_bytes: int) -> str | None:
        suffix = Path(shown).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            return f"not an image file ({suffix or 'no extension'})"
        if n_files + 1 > ZIP_MAX_ENTRIES or n_bytes + len(data) > ZIP_MAX_BYTES:
            return (f"the dataset would exceed the limits of an uploaded ZIP ({ZIP_MAX_ENTRIES:,} images, "
                    f"{ZIP_MAX_BYTES / 2**30:g} GiB)")
        try:
            load_image(bytes(data), CHECK_SIZE)
        except LabError as e:
            return str(e).split(": ", 1)[-1]
        digest = hashlib.sha256(data).hexdigest()[:16]
        if digest in have:
            return f"the same image is in the dataset already ({have[digest]})"
        return None


def _discard(path: Path) -> None:
    """Remove a folder: renamed to a hidden sibling first (atomic), so readers see it whole or not at all."""
    gone = path.with_name(f".deleted-{path.name}-{secrets.token_hex(4)}")
    os.rename(path, gone)
    shutil.rmtree(gone, ignore_errors=True)
