"""The one evaluator: every variant, the original included, Keras or TFLite, is measured by `evaluate`.

It reads the stored model file through a Predictor (so the exported file is what gets measured), predicts the
test split in batches through the run's preprocessing, and scores with core.metrics.
Latency is the model call alone at batch 1 on an already preprocessed (and, for int8 input, quantized) image:
Keras through a compiled tf.function, TFLite through ai_edge_litert with XNNPACK.
Energy per 1,000 predictions (core.energy) is metered around the batched test-split pass ("batched") and around
the batch-1 latency loop ("single", as when serving one image at a time).
Calibration (core.evaluation.calibration): the variant also predicts the validation split, untimed, to fit its
temperature; its ECE is measured on the test split before and after scaling.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from .calibration import calibration_record
from .energy import meter, per_1000
from .metrics import agreement, classification_metrics
from core.models.measure import file_sizes, latency, throughput
from core.models.predictor import Predictor, default_batch


@dataclass
class TestSplit:
    x: np.ndarray            # uint8 (N, S, S, 3)
    y: np.ndarray
    ids: list[str]
    class_names: list[str]


IDENTICAL_MAX_PROB_DIFF = 1e-4


def evaluate(predictor: Predictor, test: TestSplit, reference: np.ndarray | None, measure: dict,
             expect_identical: bool = False, val: TestSplit | None = None,
             val_seen: bool = False) -> tuple[dict, np.ndarray]:
    """Measure one variant; return (its row, its test probabilities). `reference` is the original's probabilities;
    `val` the validation split its temperature is fitted on (`val_seen`: the head was fitted on it too)."""
    batch = default_batch(predictor.image_size)
    rest = len(test.x) % batch                                   # warm-up: tracing, allocation, and kernels for
    predictor.predict(test.x[:batch], batch)                     # both batch shapes the timed pass will see
    if rest and len(test.x) > batch:
        predictor.predict(test.x[:rest], batch)
    with meter() as batched:
        t = time.perf_counter()
        probs = predictor.predict(test.x, batch)
        passes = [time.perf_counter() - t]
    for _ in range(measure.get("eval_repeats", 1) - 1):      # more timed passes: the median is what this VM can do
        t = time.perf_counter()
        predictor.predict(test.x, batch)
        passes.append(time.perf_counter() - t)
    eval_seconds = statistics.median(passes)
    m = classification_metrics(test.y, probs, test.class_names, test.ids)
    agree = agreement(probs if reference is None else reference, probs)
    with meter() as single:
        lat = latency(predictor.runner(test.x[:1]), measure["latency_runs"], measure["warmup_runs"])
    e_batched = per_1000(batched["energy"], len(test.x))
    e_single = per_1000(single["energy"], measure["latency_runs"] + measure["warmup_runs"])
    tb = min(measure["throughput_batch"], len(test.x))
    tput = throughput(predictor.runner(test.x[:tb]), tb, measure["throughput_repeats"])
    val_probs = predictor.predict(val.x, batch) if val is not None and len(val.x) else None
    calibration = calibration_record(val_probs, None if val is None else val.y, probs, test.y, val_seen)
    row = {
        "format": predictor.kind, "test_accuracy": m["accuracy"], "loss": m["loss"], "macro_f1": m["macro_f1"],
        **calibration,
        **agree, **file_sizes(predictor.path), **predictor.weight_stats().summary(), **lat,
        "throughput_ips": tput, "throughput_batch": tb, "eval_images_per_s": round(len(test.x) / eval_seconds, 1),
        "eval_seconds": round(eval_seconds, 3), "num_test": m["num"],
        "energy_per_1000_j": round(e_batched["joules"], 4), "energy_per_1000_single_j": round(e_single["joules"], 4),
        "co2e_per_1000_g": e_batched["co2e_g"],
        "inference_energy": {"batched": e_batched, "single": e_single},
        "per_class": m["per_class"], "confusion_matrix": m["confusion_matrix"], "misclassified": m["misclassified"],
    }
    if predictor.kind == "tflite":
        row["threads"] = getattr(predictor, "threads", None)
        row["quantization"] = predictor.quantization()
        row["batched_eval"] = predictor.resizable
    if expect_identical:
        ok = agree["agreement"] == 1.0 and agree["max_prob_diff"] <= IDENTICAL_MAX_PROB_DIFF
        row["checks"] = {"matches_original": ok}
        row.setdefault("notes", []).append(
            f"{'OK' if ok else 'MISMATCH'}: agrees {agree['agreement']:.2%} with the Keras model, "
            f"largest probability difference {agree['max_prob_diff']:.2e} "
            f"(must be 100% and <= {IDENTICAL_MAX_PROB_DIFF:g})")
    return row, probs
