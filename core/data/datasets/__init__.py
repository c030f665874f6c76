"""The dataset registry: built-in entries by name, the datasets made in the lab by name (read from disk, see
`labmade`), plus any class folder or .zip given by path."""
from __future__ import annotations

from pathlib import Path

from core.errors import LabError
from .base import MIN_IMAGES_PER_CLASS, DatasetSpec, Samples
from .builtin import ANIMAL_CLASSES, animals_availability, load_animals, load_shapes, shapes_pending
from .folder import load_folder, load_zip
from .labmade import LabDataset, is_made, list_made

DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


register(DatasetSpec(
    name="shapes", title="Hand-drawn shapes (generated)",
    description="Circles, squares and triangles drawn with a wobbly pen on noisy paper; 500 per class, 128 px.",
    load=load_shapes, class_names=("circle", "square", "triangle"), native_size=128, synthetic=True,
    stands_in_for='Kaggle "Basic Shapes"', first_use_pending=shapes_pending,
    first_use=lambda progress: load_shapes(progress=progress) and None))
register(DatasetSpec(
    name="animals", title="Animal silhouettes (animal-mnist)",
    description="10 animal classes x 1000 grey 28x28 silhouettes from the PyPI package animal-mnist 0.4.",
    load=load_animals, availability=animals_availability, class_names=ANIMAL_CLASSES, native_size=28,
    stands_in_for="Animals-10"))

from .importers import register_all as _register_reports_datasets  # noqa: E402  (the reports' datasets)

_register_reports_datasets(register)

DEFAULT_DATASET = "shapes"


def all_datasets() -> dict[str, DatasetSpec]:
    """Every dataset known by name: the built-in entries, then the ones made in the lab (as they are on disk now)."""
    return DATASETS | {n: LabDataset(n).spec() for n in list_made()}


def get_dataset(name_or_path: str) -> DatasetSpec:
    """A registry entry by name (built in, or made in the lab), or an ad-hoc entry for a class folder or a .zip."""
    if name_or_path in DATASETS:
        return DATASETS[name_or_path]
    if is_made(name_or_path):
        return LabDataset(name_or_path).spec()
    p = Path(name_or_path).expanduser()
    if p.is_dir() or (p.is_file() and p.suffix.lower() == ".zip"):
        loader = load_folder if p.is_dir() else load_zip
        return DatasetSpec(name=str(p.resolve()), title=p.name, description=f"user data at {p.resolve()}",
                           load=lambda: loader(p))
    if p.suffix.lower() == ".zip" or "/" in name_or_path or p.exists():
        raise LabError(f"{name_or_path}: no such folder or .zip file")
    raise LabError(f"unknown dataset '{name_or_path}'; choose one of {', '.join(all_datasets())} "
                   "or give a class folder or a .zip of one")


__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetSpec", "LabDataset", "MIN_IMAGES_PER_CLASS", "Samples", "all_datasets",
           "get_dataset", "is_made", "register"]
