"""Sub-commands `presets`, `preset NAME`, `import-vehicle-rear` (registered when core.cli imports this module)."""
from __future__ import annotations

import argparse

from .main import _print_progress, command, emit


def _preset_row(plan: dict) -> dict:
    ds = plan["dataset"]
    return {"name": plan["preset"], "title": plan["title"], "description": plan["description"],
            "report": plan["report"], "runnable": plan["runnable"],
            "dataset": ds["used"], "dataset_requested": ds["requested"], "dataset_is_real": ds["real"],
            "dataset_synthetic": ds["synthetic"], "dataset_message": ds["message"],
            "runs": [{k: r[k] for k in ("label", "backbone_requested", "backbone", "substituted", "weights",
                                        "image_size", "notes", "warnings", "duplicate_of")} for r in plan["runs"]],
            "compression": plan["compression"]["techniques"], "compression_available": plan["compression"]["available"],
            "compression_message": plan["compression"]["message"], "messages": plan["messages"]}


def _presets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="show the quick-mode plans")
    p.add_argument("--no-substitute", action="store_true", help="keep backbones without ImageNet weights")


@command("list the presets (one per report) with the dataset and backbones each will use here", _presets_args)
def presets(args) -> None:
    from core.presets.recipes import PRESETS, resolve
    rows = [_preset_row(resolve(n, args.quick, not args.no_substitute)) for n in PRESETS]

    def text(rs):
        out = []
        for r in rs:
            out.append(f"{r['name']}: {r['title']}{'' if r['runnable'] else '  [cannot run here]'}")
            out += [f"    {m}" for m in r["messages"]]
        return "\n".join(out)
    emit(rows, args.json, text)


def _preset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="preset name (see `presets`)")
    p.add_argument("--quick", action="store_true", help="small input sizes and 1 fine-tuning epoch (a quick check)")
    p.add_argument("--no-substitute", action="store_true",
                   help="keep a backbone without ImageNet weights (a frozen random backbone learns nothing useful)")
    p.add_argument("--no-compress", action="store_true", help="train only")
    p.add_argument("--seed", type=int, default=0, help="seed of every run's split and training (default 0)")
    p.add_argument("--plan", action="store_true", help="print the plan for this machine and stop")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


@command("run one preset: train its run(s), then compress each with the preset's techniques", _preset_args)
def preset(args) -> None:
    from core.presets.recipes import resolve, run_preset
    if args.plan:
        plan = resolve(args.name, args.quick, not args.no_substitute, args.seed)
        emit(plan, args.json, lambda p: "\n".join(p["messages"]))
        return
    out = run_preset(args.name, progress=(lambda e: None) if args.quiet else _print_progress, quick=args.quick,
                     substitute=not args.no_substitute, compress=not args.no_compress, seed=args.seed)
    from core.export.mlflow_log import after_run
    for r in out["runs"]:
        after_run(r["run_id"])                      # MLflow, when LAB_MLFLOW_URI is set; never raises

    def text(s):
        lines = [f"preset {s['preset']}  group {s['group']}  {s['status']} in {s.get('seconds', 0):.0f} s"]
        lines += [f"  {m}" for m in s["plan"]["messages"]]
        for r in s["runs"]:
            lines.append(f"  {r['label']}: run {r['run_id']}  test accuracy {r['test_accuracy']:.4f}")
            lines += [f"    {v.get('name')}: accuracy {v.get('test_accuracy')}  size {v.get('size_bytes')}"
                      for v in r["variants"]]
        return "\n".join(lines)
    emit(out, args.json, text)


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", help="the folder holding dataset2/ (default: artifacts/datasets/vehicle-rear "
                                             "or $LAB_VEHICLE_REAR)")
    p.add_argument("--dest", help="output class folder (default: artifacts/datasets/vehicle_rear)")
    p.add_argument("--all-colours", action="store_true",
                   help="keep every colour with enough vehicles, not only the report's eight")


@command("import UFPR Vehicle-Rear into colour class folders (one image per plate)", _import_args)
def import_vehicle_rear(args) -> None:
    from core.data.datasets.vehicle_rear import REPORT_COLOURS, import_vehicle_rear as do_import
    m = do_import(args.source, args.dest, colours=None if args.all_colours else REPORT_COLOURS)
    out = {k: m[k] for k in ("source", "vehicles", "classes", "min_per_class", "colours")} | {
        "num_skipped": len(m["skipped"]), "skipped": m["skipped"][:200]}
    emit(out, args.json, lambda o: f"{o['vehicles']} vehicles: " + ", ".join(f"{c} {n}" for c, n in o["classes"].items())
         + f"; {o['num_skipped']} skipped")
