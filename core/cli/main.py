"""`python -m core`: the lab from the command line. With --json the last line printed is one JSON object."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from core.errors import LabError

COMMANDS: dict[str, tuple[Callable, str, Callable | None]] = {}   # name -> (run, help, add_arguments)


def command(help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register `fn(args)` as a sub-command named after it (underscores become dashes)."""
    def deco(fn: Callable) -> Callable:
        COMMANDS[fn.__name__.rstrip("_").replace("_", "-")] = (fn, help, arguments)
        return fn
    return deco


def emit(obj, as_json: bool, text: Callable[[object], str]) -> None:
    from core.store.runs import dumps
    print(dumps(obj) if as_json else text(obj), flush=True)


def _print_progress(ev) -> None:
    parts = [f"[{time.strftime('%H:%M:%S')}] {ev.message or ev.stage}"]
    if ev.metrics:
        parts.append(" ".join(f"{k}={v:.4f}" for k, v in ev.metrics.items()))
    if ev.eta_seconds:
        parts.append(f"eta {ev.eta_seconds:.0f}s")
    print("  ".join(parts), file=sys.stderr, flush=True)


@command("list datasets and whether they are available here")
def datasets(args) -> None:
    from core.data.datasets import all_datasets
    rows = [s.info() for s in all_datasets().values()]
    emit(rows, args.json, lambda r: "\n".join(
        f"{d['name']:26s} {'yes' if d['available'] else 'no ':3s}  {d['title']}  ({d['availability']})" for d in r))


@command("list backbones and where their weights come from")
def backbones(args) -> None:
    from core.models.backbones import BACKBONES
    rows = [s.info() for s in BACKBONES.values()]
    emit(rows, args.json, lambda r: "\n".join(f"{d['name']:22s} {d['default_size']:4d}px  {d['weights']}" for d in r))


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--carbon-region", help="grid region for CO2e (a code from the list this command prints)")
    p.add_argument("--cpu-watts-per-core", type=float, help="watts per busy CPU core for energy estimates")
    p.add_argument("--live-video", choices=("on", "off"), help="offer the Predict page's live camera (WebRTC)")
    p.add_argument("--ice-servers", help="STUN/TURN servers for live video: URLs separated by commas, or a JSON "
                                         "list of {urls, username, credential}; '' for none (the default)")
    p.add_argument("--job-backend", choices=["local", "ray"], help="where jobs train: this machine (local) or a "
                   "Ray cluster (ray; see README \"Scaling out\")")
    p.add_argument("--ray-address", help="the Ray cluster for the ray backend: HOST:PORT, or auto (the cluster on "
                   "this machine, else a private one per job)")
    p.add_argument("--memory-budget-mb", type=int,
                   help="memory budget for a dataset's images, features and activations (LAB_MEMORY_BUDGET_MB)")


@command("show or change the lab settings (carbon region, watts per busy core, live video, job backend, memory budget)",
         _settings_args)
def settings(args) -> None:
    from core.evaluation import energy
    from core.store import settings as lab_settings
    changes = {}
    if args.carbon_region is not None:
        code = args.carbon_region.upper()
        if code not in energy.CARBON_INTENSITY:
            raise LabError(f"unknown carbon region '{args.carbon_region}'; one of {', '.join(energy.CARBON_INTENSITY)}")
        changes["carbon_region"] = code
    if args.cpu_watts_per_core is not None:
        if not 0 < args.cpu_watts_per_core < 1000:
            raise LabError("cpu-watts-per-core must be between 0 and 1000")
        changes["cpu_watts_per_core"] = args.cpu_watts_per_core
    if args.live_video is not None:
        changes["live_video"] = args.live_video == "on"
    if args.ice_servers is not None:
        changes["ice_servers"] = args.ice_servers
        lab_settings.ice_servers_from(args.ice_servers)          # refuse a bad value before saving it
    for key in ("job_backend", "ray_address"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key).strip()
    if args.memory_budget_mb is not None:
        if args.memory_budget_mb < lab_settings.MIN_MEMORY_BUDGET_MB:
            raise LabError(f"memory-budget-mb must be at least {lab_settings.MIN_MEMORY_BUDGET_MB}")
        changes["memory_budget_mb"] = args.memory_budget_mb
    if changes:
        lab_settings.save(**changes)
    from core.jobs.backends import backend_name, ray_address
    out = {"carbon_region": energy.region(), "carbon_intensity_g_per_kwh": energy.CARBON_INTENSITY[energy.region()][1],
           "cpu_watts_per_core": energy.watts_per_core(), "live_video": lab_settings.live_video(),
           "ice_servers": lab_settings.ice_servers(), "job_backend": backend_name(),
           "ray_address": ray_address(),
           "memory_budget_mb": lab_settings.memory_budget() >> 20,
           "overridden_by_environment": [k for k in lab_settings.ENV if lab_settings.overridden(k)],
           "regions": {k: {"name": n, "g_per_kwh": g} for k, (n, g) in energy.CARBON_INTENSITY.items()}}
    emit(out, args.json, lambda o: f"carbon region {o['carbon_region']} ({o['carbon_intensity_g_per_kwh']:g} g CO2e/kWh), "
                                   f"{o['cpu_watts_per_core']:g} W per busy core, memory budget "
                                   f"{o['memory_budget_mb']} MB\n"
                                   f"live video {'on' if o['live_video'] else 'off'}, ICE servers: "
                                   f"{', '.join(u for s in o['ice_servers'] for u in s['urls']) or 'none'}\n"
                                   f"job backend {o['job_backend']}"
                                   + (f" (Ray cluster {o['ray_address']})" if o['job_backend'] == "ray" else "")
                                   + "\nregions: "
                                   + ", ".join(f"{k} {v['name']}" for k, v in o["regions"].items()))


def config_from_args(args):
    from core.config import Augment, EarlyStopping, TrainConfig
    from core.config import HeadConfig
    es = None
    if args.early_stopping:
        es = EarlyStopping(args.es_monitor, args.es_patience, args.es_min_delta, args.es_start_epoch,
                           not args.es_no_restore)
    return TrainConfig(
        dataset=args.dataset, backbone=args.backbone, image_size=args.image_size, weights=args.weights,
        head=HeadConfig(args.pooling, args.dense, args.dropout, batch_norm=not args.no_head_norm, taps=args.taps),
        mode=args.mode, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr, lr_decay=args.lr_decay,
        early_stopping=es, fine_tune_at=args.fine_tune_at, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_lr=args.fine_tune_lr, fine_tune_cache=not args.no_fine_tune_cache, augment=Augment(args.flip, args.rotation, args.zoom), seed=args.seed,
        feature_engine=args.feature_engine,
        split=tuple(args.split) if args.split else None, name=args.name,
        allow_random_frozen=bool(getattr(args, "i_understand_random_weights", False)))


@command("train and evaluate a run", lambda p: add_train_args(p))
def train(args) -> None:
    from core.training.train import train as run_training
    cfg = config_from_args(args)
    summary = run_training(cfg, progress=_print_progress if not args.quiet else (lambda e: None), run_id=args.run_id)
    from core.export.mlflow_log import after_run
    after_run(summary["run_id"])                   # MLflow, when LAB_MLFLOW_URI is set; never raises
    keys = ("run_id", "status", "test_accuracy", "macro_f1", "weights", "train_seconds", "num_train", "num_val",
            "num_test", "dataset", "backbone", "image_size", "mode", "features_cached", "taps", "head_fit", "warnings")
    out = {k: summary[k] for k in keys}
    emit(out, args.json, lambda s: "\n".join(f"{k:16s} {v}" for k, v in s.items()))


@command("check a dataset (by name), class folder or .zip: classes, counts, skipped files, problems (exit 2 if unusable)",
         lambda p: p.add_argument("path"))
def check_dataset(args) -> int:
    from core.data.check import check_dataset as check
    r = check(args.path)
    emit(r, args.json, lambda r: "\n".join(
        [f"{'usable' if r['usable'] else 'NOT USABLE'}: {r['dataset']}"]
        + [f"  {c}: {n} images" for c, n in r["counts"].items()]
        + [f"  skipped {s['file']}: {s['reason']}" for s in r["skipped"]]
        + [f"  problem: {p}" for p in r["problems"]]))
    return 0 if r["usable"] else 2


@command("list runs (a run made by a job has its job's status)")
def runs(args) -> None:
    from core.jobs import list_runs
    rows = [{k: r[k] for k in ("id", "name", "label", "status", "dataset", "backbone", "mode", "weights",
                               "test_accuracy", "train_seconds", "preset")}
            | {"created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))} for r in list_runs()]
    emit(rows, args.json, lambda r: "\n".join(
        f"{d['id']}  {d['status']:11s} {'' if d['test_accuracy'] is None else format(d['test_accuracy'], '.4f'):6s}  "
        f"{d['label']}" for d in r) or "no runs yet")


def _rename_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("name", help='the new name ("" clears it: the run is then called by dataset, backbone, size, time)')


@command("give a run a name (shown everywhere instead of its id)", _rename_args)
def rename(args) -> None:
    from core.jobs import get_run, rename_run
    from core.store.runs import check_run_id
    check_run_id(args.run_id)
    name = rename_run(args.run_id, args.name)
    row = get_run(args.run_id)
    emit({"id": args.run_id, "name": name, "label": row["label"] if row else name}, args.json,
         lambda o: f"{o['id']}  {o['label']}")


def _delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")


@command("delete a run: its folder, its registry rows and its finished job (refused while its job runs)",
         _delete_args)
def delete(args) -> None:
    from core.jobs import delete_run
    delete_run(args.run_id)
    emit({"id": args.run_id, "deleted": True}, args.json, lambda o: f"deleted {o['id']}")


@command("show one run", lambda p: p.add_argument("run_id"))
def show(args) -> None:
    from core.store import registry
    from core.store.runs import check_run_id, read_json, run_dir
    check_run_id(args.run_id)
    row = registry.get_run(args.run_id)
    folder = run_dir(args.run_id)
    from core.jobs import get_run
    shown = get_run(args.run_id)
    out = {"run": (read_json(folder / "run.json") if (folder / "run.json").exists() else row and row["summary"]),
           "status": shown["status"] if shown else "unknown", "name": shown and shown["name"],
           "label": shown and shown["label"], "variants": registry.list_variants(args.run_id)}
    for name in ("metrics", "config"):
        if (folder / f"{name}.json").exists():
            out[name] = read_json(folder / f"{name}.json")
    if out.get("metrics"):
        out["metrics"] = {k: v for k, v in out["metrics"].items() if k != "misclassified"} | {
            "num_misclassified": len(out["metrics"]["misclassified"])}
    emit(out, args.json, lambda o: "\n".join(f"{k}: {v}" for k, v in (o["run"] or {}).items()))


def add_train_args(p: argparse.ArgumentParser) -> None:
    from core.models.backbones import BACKBONES, DEFAULT_BACKBONE
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="shapes", help="registry name (see `datasets`), a class folder, or a .zip")
    g.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="fractions (default 0.7 0.15 0.15)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("model")
    g.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=list(BACKBONES))
    g.add_argument("--image-size", type=int, help="input size in px (default: the backbone's)")
    g.add_argument("--weights", default="auto", choices=["auto", "imagenet", "random"])
    g.add_argument("--pooling", default="avg", choices=["avg", "max", "flatten"])
    g.add_argument("--dense", type=int, nargs="*", default=[], help="hidden layer sizes, e.g. --dense 128 64 32")
    g.add_argument("--dropout", type=float, default=0.2)
    g.add_argument("--no-head-norm", action="store_true", help="no BatchNormalization of the pooled features")
    g.add_argument("--taps", default="auto", choices=["auto", "last", "multi"],
                   help="features from the last layer, from several depths (pooled stage ends, concatenated), or "
                        "auto: whichever classifies the validation split better")
    g = p.add_argument_group("training")
    g.add_argument("--mode", default="feature-extraction", choices=["feature-extraction", "full"])
    g.add_argument("--i-understand-random-weights", action="store_true",
                   help="train a FROZEN backbone that has no ImageNet weights here anyway (it learns only from "
                        "random projections; refused without this flag)")
    g.add_argument("--epochs", type=int, default=10,
                   help="maximum epochs (on cached features a deeper head stops when validation loss stalls; "
                        "the default linear head is fitted to convergence)")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "rmsprop"])
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    g.add_argument("--lr-decay", type=float, help="exponential decay factor per epoch, e.g. 0.9")
    g.add_argument("--fine-tune-at", type=int, help="unfreeze backbone layers from this index (negative: top K)")
    g.add_argument("--fine-tune-epochs", type=int, default=0)
    g.add_argument("--fine-tune-lr", type=float, help="default: lr / 10")
    g.add_argument("--no-fine-tune-cache", action="store_true",
                   help="fine-tune the plain way: every epoch through the frozen layers too (for comparison)")
    g.add_argument("--early-stopping", action="store_true")
    g.add_argument("--es-monitor", default="val_loss")
    g.add_argument("--es-patience", type=int, default=3)
    g.add_argument("--es-min-delta", type=float, default=0.0)
    g.add_argument("--es-start-epoch", type=int, default=0)
    g.add_argument("--es-no-restore", action="store_true", help="keep the last weights, not the best")
    g.add_argument("--flip", action="store_true", help="augment: random horizontal flips (disables feature caching)")
    g.add_argument("--rotation", type=float, default=0.0, help="augment: max rotation, fraction of a turn")
    g.add_argument("--zoom", type=float, default=0.0, help="augment: max zoom fraction")
    g.add_argument("--feature-engine", default="auto", choices=["auto", "keras", "tflite"],
                   help="runtime for frozen features (auto: TFLite float32 when stored or worth building)")
    p.add_argument("--name", help="a label for the run")
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core", description="Green Transfer Learning Lab")
    sp = ap.add_subparsers(dest="command", required=True)
    for name, (_, help_, arguments) in COMMANDS.items():
        p = sp.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        if arguments:
            arguments(p)
    return ap


def _load_command_modules() -> None:
    """Modules that register more sub-commands when imported."""
    import importlib
    for mod in COMMAND_MODULES:
        importlib.import_module(mod)


COMMAND_MODULES: tuple[str, ...] = ("core.cli.jobs", "core.cli.presets", "core.cli.compression",
                                       "core.cli.checkset", "core.cli.export", "core.cli.sweeps",
                                       "core.cli.tracking")


def main(argv: list[str] | None = None) -> int:
    _load_command_modules()
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][0](args) or 0
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
