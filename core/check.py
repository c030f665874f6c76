"""Check a dataset before training: classes, usable counts, skipped files with reasons, and problems."""
from __future__ import annotations

import numpy as np

from .data import _decode_files, check_counts
from .datasets import get_dataset
from .errors import LabError

CHECK_SIZE = 32  # decoding at a small size is enough to prove a file is a usable image


def check_dataset(path: str) -> dict:
    """A report that never raises for bad data: `usable` is False and `problems` says why."""
    report: dict = {"dataset": path, "usable": False, "classes": [], "counts": {}, "skipped": [], "problems": []}
    try:
        spec = get_dataset(path)
        ok, why = spec.availability()
        if not ok:
            raise LabError(f"not available here: {why}")
        s = spec.load()
    except LabError as e:
        report["problems"].append(str(e))
        return report
    labels = s.labels
    skipped = list(s.skipped)
    if s.paths is not None:
        _, keep, bad = _decode_files(s.paths, CHECK_SIZE, s.ids)
        labels, skipped = labels[np.asarray(keep, np.int64)], skipped + bad
    counts = np.bincount(labels, minlength=len(s.class_names)) if len(s.class_names) else np.zeros(0, int)
    report.update(classes=s.class_names, counts=dict(zip(s.class_names, counts.tolist())),
                  skipped=[{"file": f, "reason": r} for f, r in skipped], source=s.source,
                  num_images=int(counts.sum()))
    try:
        check_counts(s.class_names, labels)
    except LabError as e:
        report["problems"].append(str(e))
    report["usable"] = not report["problems"]
    return report
