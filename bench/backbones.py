"""The pretrained backbones side by side: feature extraction with the lab's default head at 96 px on shapes and
animals, then the animals model's Keras file against its full-int8 TFLite model (size, batch-1 latency).

Most of its time is the animals head: the default head chooses between the last layer and several depths by
fitting logistic regressions over a grid of C on 7,000 images (1 to 4 minutes per backbone on 2 shared cores)."""
from __future__ import annotations

BACKBONES = ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite2")
MEASURE = {"measure": {"latency_runs": 50, "warmup_runs": 5, "throughput_repeats": 1, "eval_repeats": 1}}


def bench_backbones(size: int = 96, names: tuple[str, ...] = BACKBONES) -> list[dict]:
    """One row per backbone: {name, params, size_bytes, int8_bytes, acc_shapes, acc_animals, p50_ms_keras,
    p50_ms_int8}; sizes and latencies are the animals run's (Keras model file, full-int8 TFLite, batch 1)."""
    from core.compression import compress
    from core.config import TrainConfig
    from core.training.train import train
    rows = []
    for name in names:
        shapes = train(TrainConfig(dataset="shapes", backbone=name, image_size=size))
        animals = train(TrainConfig(dataset="animals", backbone=name, image_size=size))
        v = {r["name"]: r for r in compress(animals["run_id"], ["tflite_int8"], MEASURE)["variants"]}
        keras, int8 = v["original"], v["tflite_int8"]
        rows.append({"name": name, "params": animals["params"], "size_bytes": keras["size_bytes"],
                     "int8_bytes": int8["size_bytes"], "acc_shapes": shapes["test_accuracy"],
                     "acc_animals": animals["test_accuracy"], "p50_ms_keras": keras["latency_ms_p50"],
                     "p50_ms_int8": int8["latency_ms_p50"]})
    return rows
