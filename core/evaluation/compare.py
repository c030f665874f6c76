"""Comparing a run's model variants: the table, the best value of each column, Pareto fronts, confusion views.

Pure data (no Streamlit, no TensorFlow): the dashboard's Results page and the tests use it alike.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from core.store import registry
from .energy import co2e_g
from core.errors import LabError
from core.store.runs import read_json, run_dir


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    better: str | None      # "max", "min" or None (not ranked)
    kind: str = "float"     # float | pct | bytes | ms | joules | grams | int | text


COLUMNS: tuple[Column, ...] = (
    Column("name", "Variant", None, "text"),
    Column("technique", "Technique", None, "text"),
    Column("test_accuracy", "Accuracy", "max", "pct"),
    Column("check_accuracy", "Check set", "max", "pct"),     # real photos never trained on (check_set.json)
    Column("macro_f1", "Macro-F1", "max", "float"),
    Column("size_bytes", "Size", "min", "bytes"),
    Column("gzip_bytes", "Gzipped", "min", "bytes"),
    Column("latency_ms_p50", "Latency p50", "min", "ms"),
    Column("latency_ms_p95", "Latency p95", "min", "ms"),
    Column("throughput_ips", "Images/s", "max", "float"),
    Column("sparsity", "Sparsity", "max", "pct"),
    Column("agreement", "Agreement", "max", "pct"),
    Column("ece", "ECE", "min", "float"),
    Column("ece_calibrated", "ECE calibrated", "min", "float"),
    Column("energy_to_make_j", "Energy to make", "min", "joules"),
    Column("co2e_to_make_g", "CO2e to make", "min", "grams"),
    Column("energy_per_1000_j", "Energy / 1k predictions", "min", "joules"),
    Column("co2e_per_1000_g", "CO2e / 1k predictions", "min", "grams"),
)
RANKED = tuple(c for c in COLUMNS if c.better)


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def best_per_column(rows: list[dict], columns: tuple[Column, ...] = RANKED, rel_tol: float = 1e-9) -> dict[str, set[int]]:
    """For each ranked column, the indices of the rows holding its best value (ties all count; None is ignored)."""
    out: dict[str, set[int]] = {}
    for c in columns:
        vals = [(i, _num(r.get(c.key))) for i, r in enumerate(rows)]
        vals = [(i, v) for i, v in vals if v is not None]
        if not vals:
            out[c.key] = set()
            continue
        best = max(v for _, v in vals) if c.better == "max" else min(v for _, v in vals)
        out[c.key] = {i for i, v in vals if math.isclose(v, best, rel_tol=rel_tol, abs_tol=1e-12)}
    return out


def pareto_front(rows: list[dict], x: str, y: str, x_better: str = "min", y_better: str = "max") -> list[int]:
    """Indices of the rows no other row beats on both x and y (ties kept), ordered by x from best to worst."""
    pts = [(i, _num(r.get(x)), _num(r.get(y))) for i, r in enumerate(rows)]
    pts = [(i, a, b) for i, a, b in pts if a is not None and b is not None]
    sx = 1 if x_better == "min" else -1      # map both to "smaller is better"
    sy = 1 if y_better == "min" else -1

    def dominates(p, q) -> bool:
        return (sx * p[1] <= sx * q[1] and sy * p[2] <= sy * q[2]) and (sx * p[1] < sx * q[1] or sy * p[2] < sy * q[2])

    front = [p for p in pts if not any(dominates(q, p) for q in pts if q is not p)]
    return [i for i, _, _ in sorted(front, key=lambda p: (sx * p[1], sy * p[2]))]


def normalise_rows(cm: list[list[float]]) -> list[list[float]]:
    """Row-normalised confusion matrix (each true class sums to 1; empty rows stay 0)."""
    out = []
    for row in cm:
        s = float(sum(row))
        out.append([v / s if s else 0.0 for v in row])
    return out


def confusion_pairs(cm: list[list[int]], class_names: list[str]) -> list[tuple[str, str, int]]:
    """Off-diagonal (true, predicted, count) cells with count > 0, largest first."""
    pairs = [(class_names[i], class_names[j], int(v)) for i, row in enumerate(cm) for j, v in enumerate(row)
             if i != j and v > 0]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def cell_note(cm: list[list[int]], class_names: list[str], true: str, pred: str) -> str | None:
    """Why a clicked confusion-matrix cell has no misclassified images to show (None when it has some): it is on
    the diagonal (those images were named right), or no test image of `true` was predicted as `pred`."""
    if true not in class_names or pred not in class_names:
        return f"that cell ({true} → {pred}) is not in this confusion matrix"
    n = int(cm[class_names.index(true)][class_names.index(pred)])
    if true == pred:
        return (f"that cell is on the diagonal: the {n} test image{'s' if n != 1 else ''} of **{true}** named right. "
                "Click a cell off the diagonal to see mistakes")
    if n == 0:
        return f"no test image of **{true}** was predicted as **{pred}**"
    return None


def misclassified_for(misclassified: list[dict], true: str | None = None, pred: str | None = None) -> list[dict]:
    return [m for m in misclassified if (true is None or m.get("true") == true) and (pred is None or m.get("pred") == pred)]


def _file_size(p: Path) -> int | None:
    try:
        return p.stat().st_size
    except OSError:
        return None


def original_variant(folder: Path, metrics: dict, run: dict) -> dict:
    """The trained Keras model as a variant row, from the run's own files (before any compression)."""
    return {"name": "original", "technique": "none (Keras model)", "test_accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"), "size_bytes": _file_size(folder / "model.keras"),
            "gzip_bytes": None, "latency_ms_p50": None, "latency_ms_p95": None, "throughput_ips": None,
            "sparsity": None, "agreement": 1.0, "per_class": metrics.get("per_class"),
            "confusion_matrix": metrics.get("confusion_matrix"), "misclassified": metrics.get("misclassified", []),
            "files": ["model.keras"], "params": run.get("params"), **(run.get("calibration") or {})}


@dataclass
class RunReport:
    run_id: str
    folder: Path
    status: str
    row: dict | None
    config: dict
    run: dict
    class_names: list[str]
    history: dict
    metrics: dict
    predictions: dict
    variants: list[dict]
    error: str | None = None

    @property
    def finished(self) -> bool:
        return bool(self.metrics)

    def variant(self, name: str) -> dict:
        for v in self.variants:
            if v.get("name") == name:
                return v
        raise LabError(f"run {self.run_id} has no variant '{name}' (has {', '.join(v['name'] for v in self.variants)})")

    @property
    def train_energy(self) -> dict:
        """The run's measured or estimated training energy (all stages), {} for runs from before it was metered."""
        return (self.run.get("energy") or {}).get("total") or {}

    def table(self, region: str | None = None) -> list[dict]:
        """One row per variant with the comparison columns only; CO2e for `region` (default: the chosen one).

        Energy to make a variant = the run's training energy + the energy of its compression step."""
        train_j = _num(self.train_energy.get("joules"))
        rows = []
        for v in self.variants:
            build_j = 0.0 if v.get("name") == "original" else _num(v.get("compress_energy_j"))
            make_j = None if train_j is None or build_j is None else train_j + build_j
            per_k = _num(v.get("energy_per_1000_j"))
            v = {**v, "energy_to_make_j": make_j,
                 "co2e_to_make_g": None if make_j is None else co2e_g(make_j / 3.6e6, region),
                 "co2e_per_1000_g": None if per_k is None else co2e_g(per_k / 3.6e6, region)}
            rows.append({c.key: v.get(c.key) for c in COLUMNS})
        return rows

    def per_class_rows(self) -> list[dict]:
        rows = []
        for v in self.variants:
            for cls, m in (v.get("per_class") or {}).items():
                rows.append({"variant": v["name"], "class": cls, "precision": m.get("precision"),
                             "recall": m.get("recall"), "f1": m.get("f1-score", m.get("f1")),
                             "support": m.get("support")})
        return rows

    def files(self) -> list[Path]:
        """Model files of the run and its variants that exist (for downloads), no duplicates."""
        seen, out = set(), []
        for v in self.variants:
            for f in v.get("files") or []:
                p = Path(f)
                p = p if p.is_absolute() else self.folder / p
                try:
                    p = p.resolve()
                    p.relative_to(self.folder.resolve())     # never offer anything outside the run folder
                except (OSError, ValueError):
                    continue
                if p.is_file() and p not in seen:
                    seen.add(p)
                    out.append(p)
        return out


def _read(folder: Path, name: str, default):
    p = folder / name
    try:
        return read_json(p) if p.exists() else default
    except (OSError, ValueError):
        return default


def load_run(run_id: str) -> RunReport:
    """Everything the Results page shows about one run, read from its folder and the registry."""
    folder = run_dir(run_id)
    row = registry.get_run(run_id)
    metrics = _read(folder, "metrics.json", {})
    run = _read(folder, "run.json", {}) or (row or {}).get("summary", {})
    variants_rows = registry.list_variants(run_id)
    variants = [{**r.get("data", {}), "name": r["name"]} for r in variants_rows]
    if not variants:
        stored = _read(folder, "variants.json", None)
        if isinstance(stored, dict):
            stored = stored.get("variants")
        variants = [v for v in (stored or []) if isinstance(v, dict) and v.get("name")]
    if metrics and not any(v.get("name") == "original" for v in variants):
        variants = [original_variant(folder, metrics, run)] + variants
    check = _read(folder, "check_set.json", {})
    variants = [v | {"check_accuracy": check[v["name"]].get("accuracy")} if isinstance(check.get(v["name"]), dict)
                else v for v in variants]
    err = _read(folder, "error.json", {}).get("error") or (row or {}).get("error")
    return RunReport(run_id=run_id, folder=folder, status=(row or {}).get("status", "done" if metrics else "unknown"),
                     row=row, config=_read(folder, "config.json", {}), run=run,
                     class_names=_read(folder, "class_names.json", []), history=_read(folder, "history.json", {}),
                     metrics=metrics, predictions=_read(folder, "predictions.json", {}), variants=variants, error=err)


def compressed_count(variants: list[dict]) -> int:
    """How many compressed variants a run has (the original is not one)."""
    return sum(1 for v in variants if v.get("name") != "original")


def variant_notes(rows: list[dict]) -> dict[str, str]:
    """One line per variant whose figures go against intuition, saying why (variant name -> note).

    * a pruned or clustered Keras model is as big on disk as the original: the file stores every weight as a
      float32, zero or shared or not; only compression (the gzip column) sees the zeros or the shared values;
    * dynamic-range TFLite is slower than float32 on a CPU: its weights are int8, but activations are quantised
      and dequantised on the fly at every layer, while float32 runs on XNNPACK's fast float kernels;
    * the original is the reference for agreement and is not a compressed variant."""
    by = {r.get("name"): r for r in rows}
    orig = by.get("original") or {}
    o_size, o_gzip = _num(orig.get("size_bytes")), _num(orig.get("gzip_bytes"))
    f32 = next((r for r in rows if r.get("technique") == "tflite_float32"), None)
    notes: dict[str, str] = {}
    for r in rows:
        name, tech = r.get("name"), str(r.get("technique") or "")
        size, gz = _num(r.get("size_bytes")), _num(r.get("gzip_bytes"))
        if name == "original":
            notes[name] = "the trained Keras model: the reference the others are measured against, not a compressed variant"
        elif tech in ("pruning", "clustering") and size and o_size and size >= 0.9 * o_size:
            what = (f"pruning set {100 * (_num(r.get('sparsity')) or 0):.0f}% of the weights to zero" if tech == "pruning"
                    else "clustering made the weights share a few values")
            shrink = f" ({gz / 1024:,.0f} KB against the original's {o_gzip / 1024:,.0f} KB)" if gz and o_gzip else ""
            notes[name] = (f"same size on disk as the original: {what}, but a .keras file still stores every weight "
                           f"as a 32-bit float; the saving shows once the file is compressed (Gzipped column{shrink}), "
                           "or when converted to TFLite")
        elif tech == "tflite_dynamic" and f32 is not None:
            lat, f32_lat = _num(r.get("latency_ms_p50")), _num(f32.get("latency_ms_p50"))
            if lat and f32_lat and lat > f32_lat:
                notes[name] = (f"smaller but slower than float32 here ({lat:.2f} against {f32_lat:.2f} ms): its weights "
                               "are int8, but every layer converts activations to int8 and back on the fly, while "
                               "float32 runs on the CPU's fast float kernels (XNNPACK on x86); full int8 is both small "
                               "and fast")
        elif tech == "tflite_float16" and f32 is not None:
            lat, f32_lat = _num(r.get("latency_ms_p50")), _num(f32.get("latency_ms_p50"))
            if lat and f32_lat and lat > 1.1 * f32_lat:
                notes[name] = ("half the size of float32 but not faster: a CPU turns the float16 weights back into "
                               "float32 to compute")
    return notes


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    keys = list(rows[0])
    for r in rows[1:]:
        keys += [k for k in r if k not in keys]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
