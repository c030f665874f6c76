"""The trade-off across runs: every variant of every run as a point (accuracy, size, latency, energy, and the
check-set score where a run has one), and the non-dominated front over them.

Figures come from each run's folder (run.json, variants.json, check_set.json through compare.load_run), so a
sweep's report can be rebuilt at any time (`python -m core sweep-report GROUP`). Pure data: no Streamlit.

A point is on the front when no other point is at least as good on every objective and better on one.
A figure that was not measured (a run without compression has no latency) counts as the worst value.
"""
from __future__ import annotations

import math

from core.errors import LabError

from .compare import _num, load_run

# objective key -> (better, title, unit)
OBJECTIVES: dict[str, tuple[str, str, str]] = {
    "test_accuracy": ("max", "test accuracy", "%"),
    "size_bytes": ("min", "model size", "bytes"),
    "latency_ms_p50": ("min", "latency p50", "ms per image"),
    "energy_per_1000_j": ("min", "energy per 1,000 predictions", "J"),
    "check_accuracy": ("max", "check-set accuracy", "%"),
    "energy_to_make_j": ("min", "energy to make", "J"),
}
DEFAULT_OBJECTIVES = ("test_accuracy", "size_bytes", "latency_ms_p50", "energy_per_1000_j")
POINT_KEYS = ("test_accuracy", "check_accuracy", "macro_f1", "size_bytes", "gzip_bytes", "latency_ms_p50",
              "latency_ms_p95", "energy_per_1000_j", "energy_to_make_j", "co2e_per_1000_g", "agreement")


def check_objectives(objectives: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    objs = tuple(dict.fromkeys(objectives or DEFAULT_OBJECTIVES))
    unknown = [o for o in objs if o not in OBJECTIVES]
    if unknown:
        raise LabError(f"unknown objective {', '.join(unknown)}; choose from {', '.join(OBJECTIVES)}")
    return objs


def _cost(point: dict, key: str) -> float:
    """The objective as a cost (smaller is better); an unmeasured figure is the worst."""
    v = _num(point.get(key))
    if v is None:
        return math.inf
    return -v if OBJECTIVES[key][0] == "max" else v


def dominates(p: dict, q: dict, objectives: tuple[str, ...] = DEFAULT_OBJECTIVES) -> bool:
    """Whether p is at least as good as q on every objective and strictly better on one."""
    a = [_cost(p, k) for k in objectives]
    b = [_cost(q, k) for k in objectives]
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front(points: list[dict], objectives: list[str] | tuple[str, ...] | None = None) -> list[int]:
    """Indices of the non-dominated points (ties kept), best test accuracy first."""
    objs = check_objectives(objectives)
    keep = [i for i, p in enumerate(points) if not any(dominates(q, p, objs) for j, q in enumerate(points) if j != i)]
    return sorted(keep, key=lambda i: (_cost(points[i], objs[0]), *(_cost(points[i], k) for k in objs[1:])))


def run_points(run_id: str, region: str | None = None, extra: dict | None = None) -> list[dict]:
    """One point per variant of a finished run (none for a run without results)."""
    rep = load_run(run_id)
    if not rep.finished:
        return []
    cfg, head = rep.config, rep.config.get("head") or {}
    info = {"run_id": run_id, "dataset": cfg.get("dataset"), "backbone": cfg.get("backbone"),
            "image_size": cfg.get("image_size"), "taps": (rep.run.get("taps") or {}).get("used") or head.get("taps"),
            "head": "-".join(map(str, head.get("dense") or [])) or "linear", "mode": cfg.get("mode"),
            "run_label": cfg.get("name") or run_id} | (extra or {})
    return [info | {"variant": r["name"], "technique": r.get("technique")} | {k: r.get(k) for k in POINT_KEYS}
            for r in rep.table(region)]


def report(run_ids: list[str], objectives: list[str] | tuple[str, ...] | None = None,
           region: str | None = None, labels: dict[str, str] | None = None) -> dict:
    """{points, front (indices), objectives, runs, missing}: every variant of the runs and their common front.
    `labels` names runs (run id -> label); runs without results are listed under `missing`."""
    objs = check_objectives(objectives)
    points: list[dict] = []
    missing: list[str] = []
    for run_id in run_ids:
        try:
            pts = run_points(run_id, region, {"run_label": labels[run_id]} if labels and run_id in labels else None)
        except LabError:
            pts = []
        if not pts:
            missing.append(run_id)
        points += pts
    idx = front(points, objs)
    for i, p in enumerate(points):
        p["on_front"] = i in idx
    return {"objectives": list(objs), "points": points, "front": idx,
            "runs": [r for r in run_ids if r not in missing], "missing": missing,
            "has_check_set": any(p.get("check_accuracy") is not None for p in points)}
