"""Sweeps: a grid (or a seeded random sample of it) over dataset, backbone, input size, taps, head and compression
set, planned like a preset: one run per distinct combination, all in one group.

`plan(axes, ...)` checks every value and every combination before anything runs (one LabError listing each
problem), builds one TrainConfig per combination, drops combinations that are identical once normalised (a
repeated value, `int8` and `tflite_int8`, taps on a backbone that has none) and, with `sample`, keeps a seeded
random sample of N. `core.jobs.sweeps.submit_sweep` queues the plan as grouped jobs; the group's summary is kept
beside the presets' (`<lab home>/presets/<group>.json`, with "preset": "sweep").

Axis values are strings as the CLI takes them: image sizes in px (or `default`), taps auto|last|multi, heads as
`[POOLING:]HIDDEN` (`linear` or e.g. `128-64`, with an optional pooling prefix `max:128`), compression sets
none|quick|standard or techniques joined by '+' (core.compression.sets).
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from pathlib import Path

from core.config import TAP_TITLES, HeadConfig, TrainConfig
from core.errors import LabError

SWEEP = "sweep"                     # the `preset` name every sweep's runs carry in the registry
AXES = ("dataset", "backbone", "image_size", "taps", "head", "compression")
AXIS_TITLES = {"dataset": "dataset", "backbone": "backbone", "image_size": "input size", "taps": "taps",
               "head": "head", "compression": "compression"}
DEFAULTS = {"dataset": ["shapes"], "backbone": ["mobilenet_v2"], "image_size": ["96"], "taps": ["auto"],
            "head": ["linear"], "compression": ["none"]}
MAX_RUNS = 200                      # a sweep larger than this is refused (sample it instead)
POOLINGS = ("avg", "max", "flatten")


def split_list(text: str | list | tuple | None) -> list[str]:
    """'96,128' -> ['96', '128'] (a list is taken as it is); empty items are dropped."""
    if text is None:
        return []
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def parse_head(text: str) -> tuple[str | None, list[int]]:
    """'linear' -> (None, []); '128-64' -> (None, [128, 64]); 'max:128' -> ('max', [128])."""
    pooling, sep, hidden = text.strip().lower().rpartition(":")
    if sep and pooling not in POOLINGS:
        raise LabError(f"head '{text}': pooling must be one of {', '.join(POOLINGS)} (as in max:128)")
    if hidden in ("linear", "none", ""):
        return (pooling or None), []
    try:
        dense = [int(u) for u in hidden.split("-")]
    except ValueError:
        raise LabError(f"head '{text}': expected 'linear' or hidden layer sizes joined by '-' (e.g. 128-64), "
                       "optionally after a pooling (max:128)") from None
    if any(u < 1 or u > 65536 for u in dense):
        raise LabError(f"head '{text}': hidden layer sizes must be between 1 and 65536")
    return (pooling or None), dense


def head_label(pooling: str | None, dense: list[int]) -> str:
    return (f"{pooling}:" if pooling else "") + ("-".join(map(str, dense)) or "linear")


def _check_values(axes: dict[str, list[str]]) -> tuple[dict[str, list], list[str]]:
    """Each axis's values parsed and normalised (duplicates dropped), and the problems found."""
    from core.compression.sets import parse_set, set_label
    from core.data.datasets import get_dataset
    from core.models.backbones import BACKBONES
    errors: list[str] = []
    out: dict[str, list] = {}

    def each(axis: str, fn) -> None:
        vals = []
        for v in axes[axis]:
            try:
                vals.append(fn(v))
            except LabError as e:
                errors.append(str(e) if f"'{v}'" in str(e) else f"{AXIS_TITLES[axis]} '{v}': {e}")
        out[axis] = list(dict.fromkeys(vals))

    def dataset(v: str) -> str:
        spec = get_dataset(v)
        ok, why = spec.availability()
        if not ok:
            raise LabError(f"not available here: {why}")
        return spec.name

    def backbone(v: str) -> str:
        if v not in BACKBONES:
            raise LabError(f"unknown backbone; choose from {', '.join(BACKBONES)}")
        return v

    def size(v: str) -> int | None:
        if v.lower() == "default":
            return None
        try:
            px = int(v)
        except ValueError:
            raise LabError("input sizes are whole numbers of pixels (or 'default')") from None
        if not 8 <= px <= 600:
            raise LabError("input sizes must be between 8 and 600 px")
        return px

    def taps(v: str) -> str:
        if v not in TAP_TITLES:
            raise LabError(f"taps must be one of {', '.join(TAP_TITLES)}")
        return v

    def head(v: str) -> str:
        return head_label(*parse_head(v))

    def compression(v: str) -> str:
        return set_label(parse_set(v))

    for axis, fn in (("dataset", dataset), ("backbone", backbone), ("image_size", size), ("taps", taps),
                     ("head", head), ("compression", compression)):
        if not axes[axis]:
            errors.append(f"no value given for the {AXIS_TITLES[axis]}")
            out[axis] = []
        else:
            each(axis, fn)
    return out, errors


def _label(values: dict, varying: list[str]) -> str:
    from core.data.datasets import DATASETS
    from core.models.backbones import BACKBONES
    words = {"dataset": lambda d: DATASETS[d].title if d in DATASETS else Path(d).name,
             "backbone": lambda b: BACKBONES[b].title, "image_size": lambda s: f"{s} px" if s else "default px",
             "taps": lambda t: f"taps {t}", "head": lambda h: f"head {h}", "compression": lambda c: "no compression" if c == "none" else c}
    shown = varying or ["backbone", "image_size"]
    return " · ".join(words[a](values[a]) for a in AXES if a in shown)


def plan(axes: dict[str, list[str] | str] | None = None, base: dict | None = None, sample: int | None = None,
         seed: int = 0, options: dict | None = None) -> dict:
    """The runs a sweep would make here: one per distinct valid combination (see the module docstring).

    `base` holds the TrainConfig fields every run shares (epochs, mode, dropout, ...); `options` the compression
    options (core.compression.options) of every run. LabError lists every bad value or combination."""
    from core.compression.options import resolve as check_options
    from core.compression.sets import parse_set
    from core.models.backbones import BACKBONES, frozen_random_problem, weights_status
    given = {a: split_list((axes or {}).get(a)) for a in AXES}
    unknown = sorted(set(axes or {}) - set(AXES))
    if unknown:
        raise LabError(f"unknown sweep axis {', '.join(unknown)}; the axes are {', '.join(AXES)}")
    given = {a: given[a] or DEFAULTS[a] for a in AXES}
    values, errors = _check_values(given)
    if sample is not None and not 1 <= int(sample) <= MAX_RUNS:
        errors.append(f"the sample size must be between 1 and {MAX_RUNS} (got {sample})")
    base = dict(base or {})
    for k in ("dataset", "backbone", "image_size", "name", "preset"):
        base.pop(k, None)
    try:
        base_cfg = TrainConfig.from_dict(base | {"seed": int(seed) if "seed" not in base else base["seed"]})
        check_options(options)
    except LabError as e:
        errors.append(str(e))
        base_cfg = None
    if errors:
        raise LabError("the sweep cannot run: " + "; ".join(dict.fromkeys(errors)))
    varying = [a for a in AXES if len(values[a]) > 1]
    grid = list(itertools.product(*(values[a] for a in AXES)))
    problems: list[str] = []
    runs: list[dict] = []
    seen: dict[str, str] = {}
    for combo in grid:
        v = dict(zip(AXES, combo))
        spec = BACKBONES[v["backbone"]]
        label = _label(v, varying)
        notes: list[str] = []
        size = v["image_size"] or spec.default_size
        if size < spec.min_size:
            problems.append(f"{spec.title} needs an input of at least {spec.min_size} px (got {size})")
            continue
        taps = v["taps"]
        if not spec.taps and taps != "last":
            if taps == "multi":
                notes.append(f"{spec.title} has no stage ends to tap: features from its last layer")
            taps = "last"
        pooling, dense = parse_head(v["head"])
        try:
            head = HeadConfig(**{**base_cfg.head.to_dict(), "dense": dense, "taps": taps,
                                 "pooling": pooling or base_cfg.head.pooling})
            cfg = replace(base_cfg, dataset=v["dataset"], backbone=v["backbone"], image_size=size, head=head,
                          preset=SWEEP, name=f"Sweep: {label}")
        except LabError as e:
            problems.append(f"{label}: {e}")
            continue
        problem = frozen_random_problem(cfg.backbone, cfg.weights, cfg.mode, cfg.fine_tune_epochs,
                                        cfg.allow_random_frozen)
        if problem:
            problems.append(problem)
            continue
        techniques = parse_set(v["compression"])
        key = json.dumps({"config": {k: x for k, x in cfg.to_dict().items() if k != "name"},
                          "techniques": sorted(techniques)}, sort_keys=True, default=str)
        run = {"label": label, "values": {a: (str(x) if x is not None else "default") for a, x in v.items()},
               "config": cfg.to_dict(), "techniques": techniques, "compression": v["compression"],
               "backbone": v["backbone"], "weights": weights_status(v["backbone"])[0], "image_size": size,
               "notes": notes, "duplicate_of": seen.get(key)}
        if run["duplicate_of"]:
            run["notes"].append(f"identical to '{seen[key]}': trained once, not twice")
        else:
            seen[key] = label
        runs.append(run)
    if problems:
        raise LabError("the sweep cannot run: " + "; ".join(dict.fromkeys(problems)))
    distinct = [r for r in runs if not r["duplicate_of"]]
    chosen = distinct
    if sample is not None and int(sample) < len(distinct):
        picked = set(random.Random(int(seed)).sample(range(len(distinct)), int(sample)))
        chosen = [r for i, r in enumerate(distinct) if i in picked]
    if len(chosen) > MAX_RUNS:
        raise LabError(f"the sweep has {len(chosen)} runs, more than {MAX_RUNS}: sample it (--sample N)")
    messages = [f"{len(grid)} combination(s) of " + ", ".join(f"{len(values[a])} {AXIS_TITLES[a]}" for a in AXES)]
    if len(distinct) < len(grid):
        messages.append(f"{len(grid) - len(distinct)} identical once normalised: {len(distinct)} distinct")
    if len(chosen) < len(distinct):
        messages.append(f"a random sample of {len(chosen)} (seed {seed})")
    messages += [f"run '{r['label']}'" + "".join(f"; note: {n}" for n in r["notes"]) for r in chosen]
    return {"kind": SWEEP, "preset": SWEEP, "title": f"Sweep: {len(chosen)} run(s) over "
                                                     f"{', '.join(AXIS_TITLES[a] for a in varying) or 'one setting'}",
            "axes": {a: [str(x) if x is not None else "default" for x in values[a]] for a in AXES},
            "varying": varying, "grid": len(grid), "distinct": len(distinct), "sample": sample, "seed": seed,
            "options": options or {}, "runs": chosen, "duplicates": [r for r in runs if r["duplicate_of"]],
            "messages": messages, "runnable": True}


def run_info(plan_: dict, run: dict, group: str) -> dict:
    """What a sweep's run records about where it came from (the job's preset entry, the registry summary)."""
    return {"preset": SWEEP, "preset_group": group, "preset_run": run["label"], "sweep": run["values"],
            "notes": run["notes"], "warnings": [], "recommended": False}
