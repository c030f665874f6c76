"""Sub-commands `sweep`, `sweeps`, `sweep-report GROUP`, `cancel-group GROUP`: sweeps as grouped background jobs."""
from __future__ import annotations

import argparse
import time

from core.errors import LabError

from .main import command, emit


def _sweep_args(p: argparse.ArgumentParser) -> None:
    from core.compression.sets import SETS
    g = p.add_argument_group("axes (comma-separated values; the grid is every combination)")
    g.add_argument("--dataset", default="shapes", help="dataset names or class folders (default shapes)")
    g.add_argument("--backbone", default="mobilenet_v2", help="backbones (see `backbones`; default mobilenet_v2)")
    g.add_argument("--image-size", default="96", help="input sizes in px, or 'default' (default 96)")
    g.add_argument("--taps", default="auto", help="auto, last, multi (default auto)")
    g.add_argument("--head", default="linear",
                   help="heads: 'linear' or hidden sizes joined by '-' (128-64), optionally after a pooling "
                        "(max:128); default linear")
    g.add_argument("--compression", default="none",
                   help=f"compression sets: {', '.join(SETS)}, or techniques joined by '+' (int8+float16); "
                        "default none")
    g = p.add_argument_group("the sweep")
    g.add_argument("--sample", type=int, help="train a seeded random sample of N of the combinations")
    g.add_argument("--seed", type=int, default=0, help="seed of the sample and of every run (default 0)")
    g.add_argument("--plan", action="store_true", help="print the runs the sweep would make and stop")
    g.add_argument("--wait", action="store_true", help="wait for every job to finish, then print the outcome")
    g = p.add_argument_group("shared by every run")
    g.add_argument("--mode", default="feature-extraction", choices=["feature-extraction", "full"])
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    g.add_argument("--dropout", type=float, default=0.2)
    g.add_argument("--pooling", default="avg", choices=["avg", "max", "flatten"],
                   help="the heads' pooling unless a head names its own")
    g.add_argument("--set", action="append", metavar="GROUP.KEY=VALUE", dest="options",
                   help="a compression option for every run, e.g. --set measure.latency_runs=50")
    g.add_argument("--i-understand-random-weights", action="store_true",
                   help="allow frozen backbones without ImageNet weights here")


def _axes(args) -> dict:
    return {"dataset": args.dataset, "backbone": args.backbone, "image_size": args.image_size, "taps": args.taps,
            "head": args.head, "compression": args.compression}


def _base(args) -> dict:
    return {"mode": args.mode, "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
            "head": {"pooling": args.pooling, "dropout": args.dropout},
            "allow_random_frozen": bool(args.i_understand_random_weights)}


@command("queue a sweep: one background job per combination of the axes (a grid or a seeded sample), in one group",
         _sweep_args)
def sweep(args) -> None:
    from core.compression.options import parse_assignments
    from core.presets.sweep import plan
    options = parse_assignments(args.options)
    if args.plan:
        out = plan(_axes(args), _base(args), args.sample, args.seed, options)
        emit(out, args.json, lambda p: "\n".join([p["title"]] + p["messages"]))
        return
    from core.jobs import OPEN, get_job, reconcile, submit_sweep
    out = submit_sweep(_axes(args), _base(args), args.sample, args.seed, options)
    if args.wait:
        while any(j["status"] in OPEN for j in (get_job(i) for i in out["jobs"]) if j):
            time.sleep(1.0)
            reconcile()
    jobs = [get_job(i) for i in out["jobs"]]
    res = {"group": out["group"], "title": out["plan"]["title"], "messages": out["plan"]["messages"],
           "jobs": [{"id": j["id"], "run_id": j["run_id"], "status": j["status"], "name": j["name"],
                     "error": j["error"]} for j in jobs if j]}
    emit(res, args.json, lambda o: "\n".join([f"sweep {o['group']}: {o['title']}"] + [
        f"  {j['id']}  {j['status']:10s} run {j['run_id']}  {j['name']}" for j in o["jobs"]]
        + [f"report: python -m core sweep-report {o['group']}"]))


@command("list the sweeps, newest first, with how far each is")
def sweeps(args) -> None:
    from core.jobs import list_sweeps, sweep_status
    rows = []
    for s in list_sweeps():
        st = sweep_status(s["group"])
        rows.append({"group": s["group"], "title": s["plan"]["title"], "jobs": st["jobs"], "counts": st["counts"],
                     "open": st["open"]})
    emit(rows, args.json, lambda r: "\n".join(
        f"{d['group']}  {d['title']}  " + ", ".join(f"{n} {k}" for k, n in d["counts"].items()) for d in r)
        or "no sweeps yet")


def resolve_group(group: str) -> str:
    """A group id, or 'latest' for the newest sweep."""
    if group != "latest":
        return group
    from core.jobs import list_sweeps
    found = list_sweeps()
    if not found:
        raise LabError("no sweeps yet: start one with `python -m core sweep ...`")
    return found[0]["group"]


def _report_args(p: argparse.ArgumentParser) -> None:
    from core.evaluation.pareto import DEFAULT_OBJECTIVES, OBJECTIVES
    p.add_argument("group", help="a sweep's (or a preset's) group id, or 'latest'")
    p.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES),
                   help=f"comma-separated, from {', '.join(OBJECTIVES)} (default: {','.join(DEFAULT_OBJECTIVES)})")
    p.add_argument("--region", help="carbon region of the CO2e figures (default: the lab setting)")


@command("the Pareto front of a sweep: every variant of its runs (accuracy, size, latency, energy, check set)",
         _report_args)
def sweep_report(args) -> None:
    group = resolve_group(args.group)
    from core.jobs.sweeps import sweep_report as report
    out = report(group, [o.strip() for o in args.objectives.split(",") if o.strip()], args.region)

    def fmt(v, spec: str) -> str:
        return "-".rjust(int(spec.split(".")[0])) if v is None else format(v, spec)

    def text(o: dict) -> str:
        lines = [f"sweep {o['group']}: {len(o['points'])} point(s) from {len(o['runs'])} run(s); front "
                 f"({', '.join(o['objectives'])}): {len(o['front'])}"]
        if o["missing"]:
            lines.append(f"  no results yet: {', '.join(o['missing'])}")
        lines.append(f"  {'':2s}{'run':44s} {'variant':18s} {'acc':>7s} {'KB':>9s} {'p50 ms':>7s} {'J/1k':>8s} "
                     f"{'check':>6s}")
        for p in o["points"]:
            lines.append(f"  {'*' if p['on_front'] else ' '} {str(p['run_label'])[:44]:44s} {p['variant']:18s} "
                         f"{fmt(p['test_accuracy'], '7.4f')} {fmt(p['size_bytes'] and p['size_bytes'] / 1024, '9.1f')} "
                         f"{fmt(p['latency_ms_p50'], '7.2f')} {fmt(p['energy_per_1000_j'], '8.3f')} "
                         f"{fmt(p['check_accuracy'], '6.3f')}")
        return "\n".join(lines + ["  (*: on the front)"])
    emit(out, args.json, text)


@command("cancel every unfinished job of a sweep's or a preset's group",
         lambda p: p.add_argument("group", help="the group id, or 'latest' for the newest sweep"))
def cancel_group(args) -> None:
    from core.jobs import cancel_group as cancel
    out = cancel(resolve_group(args.group), wait=True)
    emit(out, args.json, lambda o: f"group {o['group']}: cancelled {len(o['cancelled'])} job(s)\n" + "\n".join(
        f"  {j}  {s}" for j, s in o["jobs"].items()))
