"""The lab's head against the linear-probe floor: for each dataset, the test accuracy of a default run and of a tuned
L2 logistic regression (core.evaluation.probe) on the very features that run used."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def tiny_squares(root: Path, n: int = 15, seed: int = 1) -> str:
    """Red, green and blue squares on light backgrounds, n a class: colour-only, tiny."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for name, rgb in {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 200)}.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.ones((96, 96, 3)) * rng.integers(150, 255, 3)
            s = int(rng.integers(20, 50))
            x0, y0 = rng.integers(0, 96 - s, 2)
            a[y0:y0 + s, x0:x0 + s] = np.clip(np.array(rgb) + rng.integers(-30, 30, 3), 0, 255)
            Image.fromarray(np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return str(root)


def _tiny_shapes(root: Path, n: int = 20) -> str:
    """The first n generated shapes of each class as a class folder: shape-only, tiny."""
    from PIL import Image

    from core.data.synth import shapes
    x, y = shapes.generate(n, 128, seed=5)
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / shapes.CLASS_NAMES[label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    return str(root)


def _run_features(summary: dict, cfg) -> np.ndarray:
    """The cached features the run's head read (every row is known after training), restricted to its taps."""
    from core.data.prepare import prepare
    from core.models.backbones import get_backbone
    from core.models.heads import tap_widths
    from core.training.features import FeatureStore
    data = prepare(cfg.dataset, cfg.image_size, cfg.seed, cfg.split)
    spec = get_backbone(cfg.backbone)
    taps = spec.taps if summary["taps"]["candidates"][0] == "multi" else ()
    store = FeatureStore(lambda n: None, 0, data, cfg.backbone, summary["weights"], cfg.head.pooling, taps)
    values = store.values
    if summary["taps"]["used"] == "last" and taps:
        from core.models.backbones import build_backbone
        last = tap_widths(build_backbone(cfg.backbone, cfg.image_size)[0], taps)[-1]
        values = values[:, -last:]
    return data, values


def bench_head_vs_probe(datasets: list[str], size: int = 96) -> dict:
    """{'head_vs_probe': [{dataset, lab, probe, taps, seconds}], ...}: a default run of each, and the probe."""
    from core.config import TrainConfig
    from core.evaluation.probe import probe_accuracy
    from core.training.train import train
    tmp = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    named = {"tiny_squares (15 a class)": tiny_squares(tmp / "squares"),
             "tiny_shapes (20 a class)": _tiny_shapes(tmp / "shapes")}
    rows = []
    for label, dataset in [(d, d) for d in datasets] + list(named.items()):
        cfg = TrainConfig(dataset=dataset, image_size=size, seed=0)
        t = time.perf_counter()
        s = train(cfg)
        seconds = time.perf_counter() - t
        data, feats = _run_features(s, cfg)
        p = probe_accuracy(feats, data.labels, data.index)
        rows.append({"dataset": label, "lab": round(s["test_accuracy"], 4), "probe": p["accuracy"],
                     "probe_C": p["C"], "taps": s["taps"]["used"], "lab_C": s["head_fit"].get("C"),
                     "chosen_by": s["head_fit"].get("chosen_by"), "train_seconds": round(seconds, 1),
                     "num_train": s["num_train"]})
        print(f"head vs probe: {label}: lab {rows[-1]['lab']:.4f} probe {p['accuracy']:.4f} ({rows[-1]['taps']}, "
              f"{seconds:.0f} s)", flush=True)
    return {"head_vs_probe": rows, "head_vs_probe_ok": all(r["lab"] >= r["probe"] - 0.01 for r in rows)}
