"""What a dataset is to the lab: a registry entry that can say whether it is here, and load its samples."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

MIN_IMAGES_PER_CLASS = 10  # fewer cannot be split 70/15/15 with every class in every split


@dataclass
class Samples:
    """Labelled images, either decoded in memory (`images`) or as files on disk (`paths`)."""
    class_names: list[str]
    labels: np.ndarray                      # int64 (N,)
    images: np.ndarray | None = None        # uint8 (N, H, W) or (N, H, W, C)
    paths: list[str] | None = None          # absolute file paths, one per sample
    ids: list[str] | None = None            # human-readable id per sample (relative path, "index 17")
    split: np.ndarray | None = None         # predefined "train"/"val"/"test" per sample, or None
    source: str = ""                        # where the data came from, e.g. "animal-mnist==0.4"
    fingerprint: str = ""                   # changes whenever the data changes; keys the caches
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.ids is None:
            self.ids = list(self.paths) if self.paths is not None else [f"#{i}" for i in range(len(self.labels))]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry. `availability()` returns (available, message); `load(**options)` returns Samples."""
    name: str
    title: str
    description: str
    load: Callable[..., Samples]
    availability: Callable[[], tuple[bool, str]] = lambda: (True, "built in")
    class_names: tuple[str, ...] = ()
    native_size: int | None = None          # pixel size of the stored images, if fixed
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    synthetic: bool = False
    stands_in_for: str = ""
    check_set: str | None = None            # a built-in check set of real photos (core.data.checksets.BUILT_IN)
    # A dataset generated on first use: `first_use_pending()` says whether it still has to be, and
    # `first_use(progress)` generates and caches it, calling progress(fraction) as it goes (a progress bar).
    first_use_pending: Callable[[], bool] = lambda: False
    first_use: Callable[[Callable[[float], None]], None] | None = None
    editable: bool = False                  # made in the lab (core.data.datasets.labmade): its images can be edited

    def info(self) -> dict:
        ok, msg = self.availability()
        return {"name": self.name, "title": self.title, "description": self.description,
                "available": ok, "availability": msg, "classes": list(self.class_names),
                "native_size": self.native_size, "synthetic": self.synthetic,
                "stands_in_for": self.stands_in_for, "split": list(self.split), "check_set": self.check_set,
                "editable": self.editable}
