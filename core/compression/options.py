"""Compression options: one group per technique family, each with defaults and a validity check.

`options` passed to compress() is {group: {key: value}}, e.g. {"pruning": {"sparsity": 0.8}}; chains read the
group of the step they build on (pruning_int8 and pqat use "pruning"; clustering_int8 uses "clustering").
"""
from __future__ import annotations

from typing import Any, Callable

from core.errors import LabError

SCOPES = ("whole", "head")

DEFAULTS: dict[str, dict[str, Any]] = {
    "pruning": {"sparsity": 0.5, "schedule": "polynomial", "epochs": 3, "lr": 1e-4, "scope": "whole", "ramp": 0.3},
    "clustering": {"clusters": 16, "epochs": 2, "lr": 3e-5, "scope": "whole", "init": "kmeans++"},
    "qat": {"epochs": 2, "lr": 1e-5},
    "pqat": {"epochs": 2, "lr": 1e-5},
    "tflite": {"representative_images": 200},
    "fine_tune": {"max_images": 0, "cache": True},
    "measure": {"latency_runs": 100, "warmup_runs": 10, "throughput_batch": 32, "throughput_repeats": 5,
                "eval_repeats": 3},
}

HELP: dict[str, str] = {
    "pruning": "sparsity (0-1), schedule polynomial|constant, epochs, lr, scope whole|head, "
               "ramp (share of fine-tuning steps spent reaching the target)",
    "clustering": "clusters (2-256), epochs, lr, scope whole|head, init kmeans++|linear|density",
    "qat": "epochs, lr",
    "pqat": "epochs, lr (of the QAT phase; the pruning phase uses the pruning options)",
    "tflite": "representative_images (training images used to calibrate int8, 100-500 recommended)",
    "fine_tune": "max_images (training images that pruning, clustering and QAT fine-tune on, a seeded sample of "
                 "each class in proportion; 0 = all), cache true|false (a head scope trains the head on its inputs "
                 "computed once, not on images every epoch)",
    "measure": "latency_runs (>= 50), warmup_runs, throughput_batch, throughput_repeats, eval_repeats (timed passes "
               "over the test split; the median is reported)",
}


def _between(lo: float, hi: float, integer: bool = False) -> Callable[[Any], bool]:
    return lambda v: (not integer or isinstance(v, int)) and not isinstance(v, bool) and \
        isinstance(v, (int, float)) and lo <= v <= hi


CHECKS: dict[str, Callable[[Any], bool]] = {
    "sparsity": _between(0.01, 0.99), "ramp": _between(0.05, 1.0), "lr": _between(1e-9, 1.0),
    "epochs": _between(0, 100, True), "clusters": _between(2, 256, True),
    "schedule": lambda v: v in ("polynomial", "constant"), "scope": lambda v: v in SCOPES,
    "init": lambda v: v in ("kmeans++", "linear", "density"),
    "representative_images": _between(1, 5000, True), "latency_runs": _between(50, 100000, True),
    "warmup_runs": _between(1, 10000, True), "throughput_batch": _between(1, 1024, True),
    "throughput_repeats": _between(1, 1000, True), "eval_repeats": _between(1, 100, True), "max_images": _between(0, 10_000_000, True),
    "cache": lambda v: isinstance(v, bool),
}


def resolve(options: dict | None) -> dict[str, dict[str, Any]]:
    """Defaults overlaid with `options`; LabError naming any unknown group, key or invalid value."""
    out = {g: dict(v) for g, v in DEFAULTS.items()}
    for group, values in (options or {}).items():
        if group not in DEFAULTS:
            raise LabError(f"unknown option group '{group}'; choose from {', '.join(DEFAULTS)}")
        if not isinstance(values, dict):
            raise LabError(f"options for '{group}' must be a mapping of key to value")
        for key, value in values.items():
            if key not in DEFAULTS[group]:
                raise LabError(f"unknown option '{group}.{key}'; {group} takes {', '.join(DEFAULTS[group])}")
            if isinstance(DEFAULTS[group][key], float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not CHECKS[key](value):
                raise LabError(f"invalid value {value!r} for '{group}.{key}' ({HELP[group]})")
            out[group][key] = value
    if out["pruning"]["epochs"] < 1:
        raise LabError("pruning.epochs must be at least 1: masks are applied during fine-tuning")
    if out["qat"]["epochs"] < 1 or out["pqat"]["epochs"] < 1:
        raise LabError("QAT needs at least one epoch: its activation ranges are learnt while training")
    return out


def parse_assignments(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """CLI `--set group.key=value` items to an options dict (values parsed as JSON when possible)."""
    import json
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        group, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise LabError(f"--set expects GROUP.KEY=VALUE (e.g. pruning.sparsity=0.8), got '{item}'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(group, {})[name] = value
    return out
