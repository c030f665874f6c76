"""How fast and how small, against the naive way, measured side by side in one process.

1. Feature-extraction training: the lab (cached features + head) against a plain frozen `fit` of the same
   model for the same epochs on the same data and seed, and the floor (one backbone pass over train + val).
2. Scaling: training wall time as the dataset grows and as the input grows.
3. Inference and 4. evaluation speed: every variant of one run, through the lab's one evaluator.
Writes bench/results/latest.json and bench/results/latest.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from .backbones import bench_backbones

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_PROBE = ("shapes", "digits", "cats_dogs_silhouettes", "vehicle_colors_synthetic")
REPO = RESULTS.parent.parent


def _isolated_home() -> Path:
    """A throw-away LAB_HOME sharing only the downloaded packages and converted weights (caches start cold)."""
    home = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    for name in ("packages", "weights"):
        shared = REPO / "artifacts" / name
        shared.mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(shared, target_is_directory=True)
    os.environ["LAB_HOME"] = str(home)
    return home


def _clear_feature_cache() -> None:
    from core.store.paths import cache_dir
    shutil.rmtree(cache_dir() / "features", ignore_errors=True)


def bench_feature_extraction(size: int, epochs: int, repeats: int) -> dict:
    """Lab vs plain frozen fit vs one-pass floor, medians over `repeats`."""
    from core.models.backbones import build_backbone
    from core.config import TrainConfig
    from core.data.prepare import prepare
    from core.evaluation.energy import meter
    from core.training.extractor import make_extractor
    from core.evaluation.metrics import classification_metrics
    from core.config import HeadConfig
    from core.models.backbones import get_backbone
    from core.models.heads import assemble, feature_extractor, head_layers, set_trainable_from
    from core.data.pipeline import image_dataset, predict_images
    from core.tfenv import keras
    from core.training.train import train

    cfg = TrainConfig(dataset="shapes", image_size=size, epochs=epochs, seed=0)
    data = prepare(cfg.dataset, size, cfg.seed)  # decoding is shared by all three; not timed
    tr, va = data.index["train"], data.index["val"]
    # The lab's TFLite extractor is built once per machine and backbone/size/pooling (like the converted weights);
    # its build is timed here and reported apart from the per-run figures.
    backbone, weights = build_backbone(cfg.backbone, size)
    taps = get_backbone(cfg.backbone).taps          # the default (auto) extracts several depths, once
    keras_extractor = feature_extractor(backbone, HeadConfig(), taps)
    built = make_extractor(keras_extractor, cfg.backbone, weights, size, HeadConfig().pooling, len(data.images),
                           data.images[tr[:32]], engine="tflite", taps=taps)
    lab_t, plain_t, floor_t, tfl_floor_t, lab_acc, plain_acc, lab_j, plain_j, floor_j = ([] for _ in range(9))
    for _ in range(repeats):
        _clear_feature_cache()
        t = time.perf_counter()
        s = train(cfg)
        lab_t.append(s["timings"].get("features", 0) + s["timings"]["head"])
        lab_j.append(sum(s["energy"]["stages"][k]["joules"] for k in ("features", "head")))
        lab_acc.append(s["test_accuracy"])

        keras.utils.set_random_seed(cfg.seed)
        backbone, _ = build_backbone(cfg.backbone, size)
        head = HeadConfig()
        model = assemble(backbone, head, head_layers(head, len(data.class_names)))      # the last layer, as usual
        set_trainable_from(model, len(backbone.layers), None)
        model.compile(keras.optimizers.Adam(cfg.learning_rate), "sparse_categorical_crossentropy", ["accuracy"])
        with meter() as m:
            t = time.perf_counter()
            model.fit(image_dataset(cfg.backbone, data.images[tr], data.labels[tr], cfg.batch_size, True, cfg.seed),
                      validation_data=image_dataset(cfg.backbone, data.images[va], data.labels[va], 64),
                      epochs=epochs, verbose=0)
            plain_t.append(time.perf_counter() - t)
        plain_j.append(m["energy"].joules)
        probs = predict_images(model, cfg.backbone, data.x("test"))
        plain_acc.append(classification_metrics(data.y("test"), probs, data.class_names)["accuracy"])

        extractor = feature_extractor(backbone, head, taps)
        predict_images(extractor, cfg.backbone, data.images[:64])  # trace once, as the lab's first batch does
        with meter() as m:
            t = time.perf_counter()
            predict_images(extractor, cfg.backbone, data.images[tr])
            predict_images(extractor, cfg.backbone, data.images[va])
            floor_t.append(time.perf_counter() - t)
        floor_j.append(m["energy"].joules)
        stored = make_extractor(extractor, cfg.backbone, weights, size, head.pooling, 0, data.images[:0], taps=taps)
        stored.extract(data.images[:64])
        t = time.perf_counter()
        stored.extract(data.images[tr])
        stored.extract(data.images[va])
        tfl_floor_t.append(time.perf_counter() - t)
    med = statistics.median
    return {"fe_images": int(len(data.index["train"]) + len(data.index["val"])), "fe_image_size": size,
            "fe_epochs": epochs, "fe_repeats": repeats,
            "fe_lab_seconds": med(lab_t), "fe_plain_seconds": med(plain_t), "fe_floor_seconds": med(floor_t),
            "fe_speedup": med(plain_t) / med(lab_t), "fe_floor_multiple": med(lab_t) / med(floor_t),
            "fe_floor_tflite_seconds": med(tfl_floor_t), "fe_floor_multiple_tflite": med(lab_t) / med(tfl_floor_t),
            "fe_engine": s["feature_extractor"]["engine"], "fe_extractor_build_seconds": round(built.build_seconds, 2),
            "fe_speedup_with_build": med(plain_t) / (med(lab_t) + built.build_seconds),
            "fe_accuracy_lab": med(lab_acc), "fe_accuracy_plain": med(plain_acc),
            "fe_lab_joules": med(lab_j), "fe_plain_joules": med(plain_j), "fe_floor_joules": med(floor_j),
            "fe_energy_saving": med(plain_j) / med(lab_j), "energy_method": m["energy"].method.split(":")[0]}


def bench_scaling(counts: list[int], sizes: list[int], epochs: int) -> dict:
    """Wall time of a whole cold `train` (features computed from scratch) as data and input grow."""
    from core.config import TrainConfig
    from core.data.datasets import DatasetSpec, register
    from core.data.datasets.builtin import load_shapes
    from core.training.train import train

    def timed(dataset: str, size: int) -> dict:
        _clear_feature_cache()
        t = time.perf_counter()
        s = train(TrainConfig(dataset=dataset, image_size=size, epochs=epochs))
        return {"seconds": round(time.perf_counter() - t, 2), "test_accuracy": s["test_accuracy"],
                "timings": s["timings"], "peak_rss_mb": s["memory"]["peak_rss_mb"],
                "feature_extractor": s["feature_extractor"]}

    by_count = []
    for n in counts:
        name = f"shapes_{n}"
        register(DatasetSpec(name=name, title=name, description="bench", class_names=("circle", "square", "triangle"),
                             load=lambda n=n: load_shapes(n_per_class=n // 3)))
        by_count.append({"images": n, **timed(name, 96)})
    by_size = [{"image_size": s, **timed("shapes", s)} for s in sizes]
    return {"scaling_images": by_count, "scaling_size": by_size}


def bench_variants(size: int, techniques: list[str] | None) -> dict:
    from core.compression import compress
    from core.config import TrainConfig
    from core.training.train import train
    run = train(TrainConfig(dataset="shapes", image_size=size, epochs=10))
    t = time.perf_counter()
    out = compress(run["run_id"], techniques)
    keys = ("name", "technique", "test_accuracy", "size_bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p95",
            "throughput_ips", "eval_images_per_s", "agreement", "sparsity", "compress_energy_j", "energy_per_1000_j",
            "energy_per_1000_single_j")
    return {"variants_run_id": run["run_id"], "compress_seconds": round(time.perf_counter() - t, 1),
            "variants": [{k: v.get(k) for k in keys} for v in out["variants"]]}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            **{p: version(p) for p in ("tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert")}}


def markdown(r: dict) -> str:
    f = lambda x, d=2: "-" if x is None else (f"{x:.{d}f}" if isinstance(x, float) else str(x))  # noqa: E731
    lines = [f"Benchmark ({r['mode']}, {r['machine']['cpus']} CPUs, TF {r['machine']['tensorflow']}, "
             f"{r['date']}, total {r['total_seconds']:.0f} s)", "",
             f"**Feature-extraction training**, shapes, {r['fe_images']} train+val images at {r['fe_image_size']} px, "
             f"{r['fe_epochs']} epochs, median of {r['fe_repeats']}:", "",
             f"| | seconds | energy J ({r.get('energy_method', '-')}) | test accuracy |", "|---|---|---|---|",
             f"| plain frozen `fit` | {f(r['fe_plain_seconds'])} | {f(r.get('fe_plain_joules'), 0)} | "
             f"{f(r['fe_accuracy_plain'], 4)} |",
             f"| lab (cached features + head) | {f(r['fe_lab_seconds'])} | {f(r.get('fe_lab_joules'), 0)} | "
             f"{f(r['fe_accuracy_lab'], 4)} |",
             f"| floor: one Keras backbone pass (`tf.function`) | {f(r['fe_floor_seconds'])} | "
             f"{f(r.get('fe_floor_joules'), 0)} | |",
             f"| floor: one TFLite float32 backbone pass | {f(r.get('fe_floor_tflite_seconds'))} | | |", "",
             f"Speed-up **{r['fe_speedup']:.1f}x**; lab time = **{r['fe_floor_multiple']:.2f}x** the Keras one-pass "
             f"floor ({f(r.get('fe_floor_multiple_tflite'))}x the TFLite one); "
             f"energy **{r.get('fe_energy_saving', 0):.1f}x** less than the plain fit. The lab extracts features with "
             f"{r.get('fe_engine', 'keras')}; its TFLite extractor is built once per backbone, size and pooling "
             f"({f(r.get('fe_extractor_build_seconds'))} s here, then stored): counting that build in a single run, "
             f"the speed-up is {f(r.get('fe_speedup_with_build'), 1)}x.", "",
             "**Scaling** (whole cold `train`, 10 epochs): " + ", ".join(
                 f"{x['images']} images {x['seconds']} s" for x in r["scaling_images"]) + "; " + ", ".join(
                 f"{x['image_size']} px {x['seconds']} s" for x in r["scaling_size"]), ""]
    if r.get("variants"):
        lines += [f"**Variants** of one shapes run at 96 px (compression took {r['compress_seconds']} s):", "",
                  "| variant | accuracy | size KB | gzip KB | p50 ms | p95 ms | batch img/s | eval img/s (median of 3) | agreement | "
                  "sparsity | J to compress | J/1k batched | J/1k single |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in r["variants"]:
            lines.append(f"| {v['name']} | {f(v['test_accuracy'], 4)} | {f(v['size_bytes'] / 1024, 0)} | "
                         f"{f(v['gzip_bytes'] / 1024, 0)} | {f(v['latency_ms_p50'])} | {f(v['latency_ms_p95'])} | "
                         f"{f(v.get('throughput_ips'), 0)} | {f(v.get('eval_images_per_s'), 0)} | "
                         f"{f(v.get('agreement'), 3)} | {f(v.get('sparsity'), 3)} | {f(v.get('compress_energy_j'), 0)} | "
                         f"{f(v.get('energy_per_1000_j'), 1)} | {f(v.get('energy_per_1000_single_j'), 1)} |")
    if r.get("fine_tune"):
        load = r.get("ft_load_average") or {}
        lines += ["", "**Fine-tuning** (shapes, 96 px): the lab (frozen layers below the cut computed once, only the "
                  "top trains) against the plain `model.fit` on images with the bottom frozen; medians over alternating "
                  f"runs after a warm-up (load average {load.get('before')} before, {load.get('after')} after):", "",
                  "| from layer | epochs | runs | cut | lab s | plain s | speed-up | CPU s lab / plain | "
                  "accuracy lab / plain | energy J lab / plain |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {x['fine_tune_at']} | {x['epochs']} | {x.get('repeats', 1)} | {x.get('cut')} | {x['lab_s']} | "
                  f"{x['plain_s']} | **{x['speedup']}x** | {x.get('lab_cpu_s')} / {x.get('plain_cpu_s')} "
                  f"({x.get('cpu_speedup')}x) | {x['acc_lab']} / {x['acc_plain']} | {x['energy_lab_j']} / "
                  f"{x['energy_plain_j']} |" for x in r["fine_tune"]]
        head = r["fine_tune"][0]
        builds = ", ".join(f"{x['cut']} {x['bottom_build_s']} s" for x in r["fine_tune"] if x.get("bottom_build_s"))
        if builds:
            lines += ["", f"The converted (TFLite) bottoms were built once per cut before timing ({builds}), as the "
                      "feature extractor is."]
        if head.get("lab_cached_s") is not None:
            lines += ["", f"With its activations already cached (a rerun), the lab's top-20 run takes "
                      f"{head['lab_cached_s']} s."]
    if r.get("head_vs_probe"):
        lines += ["", "**The head against the probe floor** (test accuracy of a default run, and of a tuned L2 "
                  "logistic regression on the same features):", "",
                  "| dataset | train images | lab | probe | features | lab C / probe C |", "|---|---|---|---|---|---|"]
        lines += [f"| {x['dataset']} | {x['num_train']} | {x['lab']:.4f} | {x['probe']:.4f} | {x['taps']} | "
                  f"{x['lab_C']} / {x['probe_C']:g} |" for x in r["head_vs_probe"]]
    if r.get("scaling_memory"):
        from .memory import table
        lines += ["", f"**Memory** (`python -m bench scaling`, {r.get('scaling_memory_date', '-')}): Fashion-MNIST, "
                  "a whole cold `python -m core train` per row in a fresh process, peak RSS of that process:", "",
                  table(r["scaling_memory"])]
    if r.get("backbones"):
        lines += ["", "**Backbones** at 96 px, feature extraction with the default head (size and batch-1 latency: the "
                  "animals model, Keras file and full-int8 TFLite):", "",
                  "| backbone | params | size KB | int8 KB | shapes accuracy | animals accuracy | p50 ms Keras | "
                  "p50 ms int8 |",
                  "|---|---|---|---|---|---|---|---|"] + [
            f"| {b['name']} | {b['params']:,} | {b['size_bytes'] / 1024:.0f} | {b['int8_bytes'] / 1024:.0f} | "
            f"{b['acc_shapes']:.4f} | {b['acc_animals']:.4f} | {b['p50_ms_keras']:.2f} | {b['p50_ms_int8']:.2f} |"
            for b in r["backbones"]]
    return "\n".join(lines) + "\n"


KEPT = ("scaling_memory", "scaling_memory_date")   # measured by `python -m bench scaling` (about an hour), not here


def _kept_from_before(path: Path) -> dict:
    """The figures of separate bench entries (KEPT) from the previous latest.json, so a rerun keeps them."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: old[k] for k in KEPT if k in old}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes (under 10 minutes on 2 cores)")
    ap.add_argument("--skip-variants", action="store_true", help="skip compression and variant measurement")
    args = ap.parse_args(argv)
    _isolated_home()
    t0 = time.perf_counter()
    quick = args.quick
    r: dict = {"mode": "quick" if quick else "full", "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()}
    r |= bench_feature_extraction(96, 10, 3 if quick else 5)
    r |= bench_scaling([300, 1000] if quick else [300, 1000, 3000, 10000],
                       [96, 128] if quick else [96, 128, 160, 224], 10)
    if not args.skip_variants:
        r |= bench_variants(96, None)
    from .finetune import bench_fine_tune
    from .probe import bench_head_vs_probe
    r |= bench_fine_tune(96, repeats=(5, 1, 1) if quick else (5, 3, 3))     # the headline: medians of 5
    r |= bench_head_vs_probe(QUICK_PROBE if quick else QUICK_PROBE + ("fashion_mnist_12k", "animals"))
    r["backbones"] = bench_backbones()
    r["total_seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    from core.store.runs import dumps
    r |= _kept_from_before(RESULTS / "latest.json")
    (RESULTS / "latest.json").write_text(dumps(r, indent=1))
    (RESULTS / "latest.md").write_text(markdown(r))
    print(markdown(r))
    shutil.rmtree(os.environ["LAB_HOME"], ignore_errors=True)
    return 0
