"""compress(): build the requested variants of a run and measure each, the original included, with one evaluator.

Output, per variant: runs/<id>/variants/<name>/ (model file + metrics.json); runs/<id>/variants.json (all variants
of the run, merged with earlier calls); and one registry row per variant (registry.replace_variants).
Each technique's build is metered (core.energy): `compress_energy` (the original's is 0: it is the trained model).
Each variant's temperature is fitted on the run's validation split (`temperature`, `ece`, `ece_calibrated`).
"""
from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

from core.store import registry
from core.evaluation.energy import meter
from core.errors import LabError
from core.progress import Progress, ProgressEvent, silent
from core.store.runs import read_json, write_json
from core.data.checksets import check_set_for
from core.evaluation.checkset import score_run
from .checks import result_checks
from .context import Workbench
from core.evaluation.evaluator import TestSplit, evaluate
from .options import resolve
from core.models.predictor import RunInfo, open_model, run_info
from .techniques import DEFAULT_TECHNIQUES, TECHNIQUES, Built, Technique

SUMMARY_KEYS = ("name", "technique", "test_accuracy", "size_bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p95",
                "agreement", "sparsity")


def check_techniques(techniques: list[str] | None) -> list[str]:
    names = list(DEFAULT_TECHNIQUES if techniques is None else techniques)
    unknown = [t for t in names if t not in TECHNIQUES]
    if unknown:
        raise LabError(f"unknown technique{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                       f"choose from {', '.join(TECHNIQUES)}")
    return list(dict.fromkeys(names))


def _relative(info: RunInfo, *paths: Path) -> list[str]:
    return [str(p.relative_to(info.folder)) for p in paths]


def _measure(wb: Workbench, test: TestSplit, file: Path, reference, expect_identical: bool = False):
    return evaluate(open_model(file, wb.info, wb.threads), test, reference, wb.options["measure"], expect_identical,
                    wb.split("val"), wb.head_saw_val)


def _original(wb: Workbench, test: TestSplit):
    row, probs = _measure(wb, test, wb.info.folder / "model.keras", None)
    notes = ["the trained model: the reference for agreement"]
    stored = wb.info.folder / "metrics.json"
    if stored.is_file() and abs(read_json(stored)["accuracy"] - row["test_accuracy"]) > 1e-9:
        notes.append(f"differs from the accuracy recorded at training ({read_json(stored)['accuracy']:.4f})")
    folder = wb.info.folder / "variants" / "original"
    folder.mkdir(parents=True, exist_ok=True)
    row = {"name": "original", "technique": "original", "title": "Original Keras model", **row, "notes": notes,
           "files": ["model.keras", "variants/original/metrics.json"], "build_seconds": 0.0, "compress_energy_j": 0.0,
           "options": {}, "info": {}}
    return row, probs


def _variant(wb: Workbench, test: TestSplit, tech: Technique, reference) -> dict:
    name = tech.variant(wb.options)
    folder = wb.info.folder / "variants" / name
    folder.mkdir(parents=True, exist_ok=True)
    wb.fine_tune_note = None
    with meter() as m:
        t = time.perf_counter()
        built: Built = tech.build(wb, folder)
        build_seconds = time.perf_counter() - t
    if wb.fine_tune_note:
        built.notes.append(wb.fine_tune_note)
    wb.say(f"compress:{tech.name}", f"evaluating {name}")
    row, _ = _measure(wb, test, built.file, reference, tech.expect_identical)
    return {"name": name, "technique": tech.name, "title": tech.title, **row,
            "notes": built.notes + row.pop("notes", []),
            "files": _relative(wb.info, built.file, folder / "metrics.json"),
            "build_seconds": round(build_seconds, 2), "compress_energy_j": round(m["energy"].joules, 3),
            "compress_energy": m["energy"].to_dict(), "options": {g: wb.options[g] for g in tech.groups},
            "info": built.info}


def _store(info: RunInfo, rows: list[dict]) -> list[dict]:
    """Write each variant's metrics.json, merge into variants.json and the registry; return the merged list."""
    for r in rows:
        write_json(info.folder / "variants" / r["name"] / "metrics.json", r)
    path = info.folder / "variants.json"
    merged = {r["name"]: r for r in (read_json(path) if path.is_file() else [])
              if all((info.folder / f).is_file() for f in r.get("files", [])[:1])}
    merged.update({r["name"]: r for r in rows})
    ordered = [merged.pop("original")] + list(merged.values()) if "original" in merged else list(merged.values())
    write_json(path, ordered)
    registry.replace_variants(info.run_id, ordered)
    return ordered


def compress(run_id: str, techniques: list[str] | None = None, options: dict | None = None,
             progress: Progress = silent, threads: int = 2) -> dict:
    """Build and measure variants of a trained run (default: DEFAULT_TECHNIQUES); see the module docstring.

    Returns {"run_id", "variants": [rows of this call, original first], "failed": [...], "seconds", "checks"}.
    A technique that fails is reported in "failed" and the others still run.
    """
    t0 = time.perf_counter()
    info = run_info(run_id)
    names = check_techniques(techniques)
    opts = resolve(options)
    if not 1 <= int(threads) <= 64:
        raise LabError(f"threads must be between 1 and 64 (got {threads})")
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="lab-compress-") as tmp:
        progress(ProgressEvent("compress", f"loading the data of run {run_id}"))
        wb = Workbench(info, opts, progress, int(threads), Path(tmp))
        test = wb.split("test")
        progress(ProgressEvent("compress:original", f"measuring the original model on {len(test.y)} test images"))
        t = time.perf_counter()
        original, reference = _original(wb, test)
        original["seconds"] = round(time.perf_counter() - t, 2)
        rows.append(original)
        for i, name in enumerate(names):
            tech = TECHNIQUES[name]
            progress(ProgressEvent(f"compress:{name}", f"{tech.title} ({i + 1}/{len(names)})", i + 1, len(names)))
            t = time.perf_counter()
            try:
                row = _variant(wb, test, tech, reference)
            except Exception as e:  # noqa: BLE001 - one failing technique must not lose the others
                msg = str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}"
                failed.append({"technique": name, "error": msg.splitlines()[0][:500],
                               "traceback": traceback.format_exc()})
                progress(ProgressEvent(f"compress:{name}", f"{name} failed: {msg.splitlines()[0][:200]}"))
                continue
            row["seconds"] = round(time.perf_counter() - t, 2)
            rows.append(row)
            progress(ProgressEvent(f"compress:{name}", f"{row['name']}: accuracy {row['test_accuracy']:.4f}, "
                                   f"{row['size_bytes'] / 1e6:.2f} MB, p50 {row['latency_ms_p50']:.2f} ms",
                                   metrics={"test_accuracy": row["test_accuracy"]}))
    _store(info, rows)
    check = None
    if check_set_for(info.config["dataset"]) is not None:
        progress(ProgressEvent("compress", "scoring every variant on the check set (real photos never trained on)"))
        check = score_run(run_id)
    seconds = round(time.perf_counter() - t0, 2)
    return {"run_id": run_id, "techniques": names, "variants": rows, "failed": failed, "seconds": seconds,
            "check_set": check,
            "checks": result_checks(rows, seconds, default_set=techniques is None)}
