"""Microsoft's Cats vs Dogs (the Kaggle "Dogs vs. Cats" photos): `kagglecatsanddogs_*.zip` or its `PetImages/`.

The archive holds `PetImages/Cat/*.jpg` and `PetImages/Dog/*.jpg` (12,500 each) plus a licence and a
readme. A few files are known to be broken (empty, or not images at all); they are skipped by name, and
every other file that fails to decode is skipped too and listed with the reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import LabError
from .base import Samples
from .folder import load_folder, safe_extract
from .sources import datasets_dir, display, env_path, glob_first

ENV = "LAB_CATS_VS_DOGS"
ZIP_GLOB = "kagglecatsanddogs*.zip"
URL = "https://www.microsoft.com/en-us/download/details.aspx?id=54765"
SPLIT = (0.8, 0.1, 0.1)
# Files of the Microsoft archive widely reported as broken (0 bytes). Any other file that fails to decode
# is skipped when the images are decoded, with PIL's reason.
KNOWN_CORRUPT = frozenset({"Cat/666.jpg", "Dog/11702.jpg"})
CLASS_NAMES = ("cat", "dog")


def _pet_root(p: Path) -> Path | None:
    """The folder holding Cat/ and Dog/: p itself, p/PetImages, or one level further down."""
    for c in (p, p / "PetImages", *(sorted(p.glob("*/PetImages")) if p.is_dir() else [])):
        if c.is_dir() and (c / "Cat").is_dir() and (c / "Dog").is_dir():
            return c
    return None


def extracted_dir() -> Path:
    return datasets_dir() / "cats_vs_dogs"


def find() -> tuple[str, Path] | None:
    """('folder', PetImages) or ('zip', archive), looking at the env var, then artifacts/datasets/."""
    env = env_path(ENV)
    for c in ([env] if env else []) + [extracted_dir(), datasets_dir() / "PetImages"]:
        if c.is_file() and c.suffix.lower() == ".zip":
            return "zip", c
        if c.is_dir() and (root := _pet_root(c)):
            return "folder", root
    z = glob_first(datasets_dir(), ZIP_GLOB) or glob_first(extracted_dir(), ZIP_GLOB)
    return ("zip", z) if z else None


def how_to_get() -> str:
    return (f"download kagglecatsanddogs_5340.zip (787 MB) from {URL} and put it in {display(datasets_dir())}/ "
            f"(or put its extracted PetImages/ folder at {display(extracted_dir() / 'PetImages')}, "
            f"or set {ENV}=path to the zip or the folder)")


def availability() -> tuple[bool, str]:
    found = find()
    if found is None:
        return False, f"not on this machine (it is not in any package): {how_to_get()}"
    kind, p = found
    return True, (f"folder {display(p)}" if kind == "folder"
                  else f"archive {display(p)} (extracted to {display(extracted_dir())} on first use)")


def load_pet_folder(root: Path) -> Samples:
    """Load Cat/ and Dog/ as classes cat and dog, without the known-broken files (listed as skipped)."""
    s = load_folder(root)
    if [c.lower() for c in s.class_names] != list(CLASS_NAMES):
        raise LabError(f"{root}: expected the class folders Cat and Dog, found {', '.join(s.class_names)}")
    keep, skipped = [], list(s.skipped)
    for i, (rel, p) in enumerate(zip(s.ids, s.paths)):
        rel = rel.replace("\\", "/")
        if rel in KNOWN_CORRUPT:
            skipped.append((rel, "known broken file of the Microsoft archive"))
        elif Path(p).stat().st_size == 0:
            skipped.append((rel, "empty file"))
        else:
            keep.append(i)
    skipped = [(r, why) for r, why in skipped if not r.endswith("Thumbs.db")] + \
              [(r, "Windows thumbnail cache, not an image") for r, _ in skipped if r.endswith("Thumbs.db")]
    k = np.array(keep, np.int64)
    return Samples(class_names=list(CLASS_NAMES), labels=s.labels[k], paths=[s.paths[i] for i in keep],
                   ids=[s.ids[i] for i in keep], source=f"Microsoft Cats vs Dogs, {display(root)}",
                   fingerprint=f"catsdogs-{s.fingerprint}", skipped=skipped)


def load() -> Samples:
    found = find()
    if found is None:
        raise LabError(f"Cats vs Dogs is not available: {how_to_get()}")
    kind, p = found
    if kind == "zip":
        dest = extracted_dir() / "extracted"
        root = _pet_root(dest) if dest.is_dir() else None
        if root is None:
            safe_extract(p, dest)
            root = _pet_root(dest)
        if root is None:
            raise LabError(f"{p.name}: no PetImages/Cat and PetImages/Dog folders inside")
        p = root
    return load_pet_folder(p)
