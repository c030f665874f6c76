"""`python -m bench scaling`: wall time, peak memory and accuracy of a whole `python -m core train` on Fashion-MNIST as
the data grows (1k, 10k, 70k images) and as the input grows (96, 224 px), each run in a fresh process with cold
caches; the table (`scaling_memory`) is merged into bench/results/latest.json.

Peak RSS is the child's own, from wait4(2)'s resource usage; the per-stage peaks come from the run (run.json
`memory`). The 70k runs are exactly `python -m core train --dataset fashion_mnist --image-size S --json`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent
FULL = 70_000
TRAIN_SHARE = 6 / 7                       # Fashion-MNIST's own 60k / 10k train / test split


def subset_name(n: int) -> str:
    return "fashion_mnist" if n >= FULL else f"fashion_mnist_{n}"


def register_subset(n: int) -> None:
    """`fashion_mnist_<n>`: n images, stratified, keeping Fashion-MNIST's predefined train/test proportion."""
    from core.data.datasets import DatasetSpec, get_dataset, register
    from core.data.datasets.mnistlike import load_fashion, subset
    per_class = {"train": round(n * TRAIN_SHARE / 10), "test": n // 10 - round(n * TRAIN_SHARE / 10)}
    base = get_dataset("fashion_mnist")
    register(DatasetSpec(name=subset_name(n), title=f"Fashion-MNIST {n}", description="bench subset",
                         load=lambda: subset(load_fashion(), per_class, 0, f"{n} images"),
                         availability=base.availability, class_names=base.class_names, native_size=28))


def _home() -> Path:
    """A fresh lab home: shared weights, packages and converted extractors; every other cache cold."""
    home = Path(tempfile.mkdtemp(prefix="lab-scaling-"))
    for name in ("packages", "weights"):
        (home / name).symlink_to((REPO / "artifacts" / name).resolve(), target_is_directory=True)
    (home / "cache").mkdir()
    (REPO / "artifacts" / "cache" / "extractors").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "extractors").symlink_to((REPO / "artifacts" / "cache" / "extractors").resolve())
    return home


def measure(n: int, size: int, extra: list[str] | None = None) -> dict:
    """One cold training run in a fresh process: {images, size, seconds, peak_rss_mb, accuracy, ...}."""
    home = _home()
    if n >= FULL:
        cmd = [sys.executable, "-m", "core", "train", "--dataset", "fashion_mnist", "--image-size", str(size),
               "--json", "--quiet", *(extra or [])]
    else:
        cmd = [sys.executable, "-m", "bench", "scaling", "--one", str(n), str(size), *(extra or [])]
    env = {**os.environ, "LAB_HOME": str(home)}
    try:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {out[-2000:]}")
        s = json.loads(out.strip().splitlines()[-1])
        run = json.loads((home / "runs" / s["run_id"] / "run.json").read_text())
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"images": run["num_train"] + run["num_val"] + run["num_test"], "size": size, "seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "accuracy": round(run["test_accuracy"], 4),
            "budget_mb": run["memory"]["budget_mb"], "images_in_memory": run["memory"]["images_in_memory"],
            "peak_rss_mb_by_stage": run["memory"]["peak_rss_mb"], "timings": run["timings"],
            "feature_extractor": run.get("feature_extractor"), "fine_tune": run.get("fine_tune")}


def one(n: int, size: int, extra: list[str]) -> int:
    """The child of `measure` for a subset: train and print the summary as the CLI does."""
    register_subset(n)
    from core.cli.main import main as cli
    return cli(["train", "--dataset", subset_name(n), "--image-size", str(size), "--json", "--quiet", *extra])


def merge(rows: list[dict], key: str = "scaling_memory") -> None:
    """Put `rows` under `key` in bench/results/latest.json (and rewrite latest.md), keeping every other figure: a
    row replaces the stored one of the same images and size, so the table can be measured in parts."""
    from .run import markdown
    path = RESULTS / "latest.json"
    r = json.loads(path.read_text()) if path.exists() else {}
    new = {(x["images"], x["size"]) for x in rows}
    r[key] = sorted([x for x in r.get(key, []) if (x["images"], x["size"]) not in new] + rows,
                    key=lambda x: (x["size"], x["images"]))
    r[f"{key}_date"] = time.strftime("%Y-%m-%d %H:%M")
    from core.store.runs import dumps
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(r, indent=1))
    if "fe_images" in r:
        (RESULTS / "latest.md").write_text(markdown(r))


def table(rows: list[dict]) -> str:
    lines = ["| images | px | seconds | peak RSS MB | test accuracy | images held | features s | peak MB by stage |",
             "|---|---|---|---|---|---|---|---|"]
    for x in rows:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in x.get("peak_rss_mb_by_stage", {}).items())
        lines.append(f"| {x['images']:,} | {x['size']} | {x['seconds']} | {x['peak_rss_mb']:.0f} | {x['accuracy']:.4f} | "
                     f"{'in RAM' if x.get('images_in_memory') else 'streamed'} | "
                     f"{x.get('timings', {}).get('features', '-')} | {stages} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="+", default=[1000, 10_000, FULL])
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    ap.add_argument("--one", type=int, nargs=2, metavar=("IMAGES", "SIZE"), help=argparse.SUPPRESS)
    args, extra = ap.parse_known_args(argv)
    if args.one:
        return one(*args.one, extra)
    rows = []
    for size in args.sizes:
        for n in args.images:
            rows.append(measure(n, size, extra))
            print(json.dumps({k: rows[-1][k] for k in ("images", "size", "seconds", "peak_rss_mb", "accuracy")}),
                  flush=True)
            merge(rows)
    print(table(rows))
    return 0
