"""Sub-commands `check-set` (score a run on its dataset's real photos, or attach a folder of them) and `real-cars`."""
from __future__ import annotations

import argparse

from core.errors import LabError

from .main import command, emit


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", help="the run to score on its dataset's check set")
    p.add_argument("--variant", default="original", help="a stored variant of the run (default: original)")
    p.add_argument("--attach", nargs=2, metavar=("DATASET", "PATH"),
                   help="attach a class folder or .zip of labelled real photos to a dataset as its check set")
    p.add_argument("--detach", metavar="DATASET", help="forget the check set attached to a dataset")


def _text(r: dict) -> str:
    head = f"{r['run_id']} ({r['variant']}) on {r['check_set']}: {r['right']}/{r['total']} right"
    if "clear_total" in r:
        head += f"; clear colours {r['clear_right']}/{r['clear_total']}, grey/silver {r['shade_right']}/{r['shade_total']}"
    lines = [head + f"  ({r['note']})"]
    lines += [f"  {'ok ' if x['right'] else 'NO '} {x['label']:10s} -> {x['predicted']:10s} {x['p_predicted']:.2f}  {x['id']}"
              for x in r["photos"]]
    return "\n".join(lines)


@command("score a run on real photos it never trained on (its dataset's check set), or attach a check set", _args)
def check_set(args) -> None:
    from core.data.checksets import attach
    from core.evaluation.checkset import score
    if args.attach or args.detach:
        out = attach(*args.attach) if args.attach else attach(args.detach, None)
        emit(out, args.json, lambda o: f"{o['dataset']}: check set {o['check_set'] or 'none'}"
             + (f" ({o['photos']} photos)" if o["photos"] else ""))
        return
    if not args.run_id:
        raise LabError("give a RUN_ID to score, or --attach DATASET PATH")
    emit(score(args.run_id, args.variant), args.json, _text)


def _real_cars_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("--variant", default="original", help="a stored variant of the run (default: original)")


@command("name the colour of the real car photos (from registry packages) with a car-colour run", _real_cars_args)
def real_cars(args) -> None:
    from core.data.checksets import BUILT_IN
    from core.evaluation.checkset import score
    emit(score(args.run_id, args.variant, BUILT_IN["car_photos"]()), args.json, _text)
