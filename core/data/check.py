"""Check a dataset before training: classes, usable counts, skipped files with reasons, and problems.

`python -m core check-dataset PATH --json` prints `check_dataset(PATH)`; the Data page shows the same report
(`report_from_prepared` for data that loaded, `check_dataset` for data that did not).
"""
from __future__ import annotations

import numpy as np

from .prepare import decode_files, count_problems
from .datasets import get_dataset
from .images import CHECK_SIZE
from core.errors import LabError


def _report(path: str, class_names: list[str], labels: np.ndarray, skipped: list, source: str) -> dict:
    counts = np.bincount(labels, minlength=len(class_names)) if len(class_names) else np.zeros(0, int)
    problems = count_problems(class_names, labels)
    return {"dataset": path, "usable": not problems, "classes": list(class_names),
            "counts": dict(zip(class_names, counts.tolist())),
            "skipped": [{"file": f, "reason": r} for f, r in skipped], "problems": problems, "source": source,
            "num_images": int(counts.sum())}


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
        _, keep, bad = decode_files(s.paths, CHECK_SIZE, s.ids)
        labels, skipped = labels[np.asarray(keep, np.int64)], skipped + bad
    return _report(path, s.class_names, labels, skipped, s.source)


def report_from_prepared(path: str, data) -> dict:
    """The check report of data that `core.data.prepare` loaded (the same keys and values as check_dataset)."""
    return _report(path, data.class_names, data.labels, [tuple(x) for x in data.skipped], data.source)
