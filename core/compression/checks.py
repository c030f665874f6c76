"""Sanity checks over one compress() result, the figures the compression lab promises (shown, never asserted)."""
from __future__ import annotations


def _check(name: str, passed: bool, value, limit: str) -> dict:
    return {"check": name, "passed": bool(passed), "value": value, "limit": limit}


def result_checks(rows: list[dict], seconds: float, default_set: bool) -> list[dict]:
    """Checks for the variants present: agreement, int8 size/accuracy, pruning sparsity/gzip, clustering gzip, speed."""
    by = {r["name"]: r for r in rows}
    orig = by.get("original")
    out: list[dict] = []
    if not orig:
        return out
    f32 = by.get("tflite_float32")
    if f32:
        out.append(_check("float32 TFLite agrees 100% with Keras", f32["agreement"] == 1.0, f32["agreement"], "== 1.0"))
    for name in ("tflite_int8", "tflite_int8_io"):
        r = by.get(name)
        if r:
            drop = orig["test_accuracy"] - r["test_accuracy"]
            out.append(_check(f"{name} loses at most 1 accuracy point", drop <= 0.01, round(drop, 4), "<= 0.01"))
            if f32:
                ratio = r["size_bytes"] / f32["size_bytes"]
                out.append(_check(f"{name} at most 1/3 of the float32 .tflite", ratio <= 1 / 3, round(ratio, 3),
                                  "<= 0.333"))
    for r in rows:
        if r["technique"] == "pruning":
            target = r["options"]["pruning"]["sparsity"]
            drop = orig["test_accuracy"] - r["test_accuracy"]
            gz = r["gzip_bytes"] / orig["gzip_bytes"]
            close = r["sparsity"] is not None and abs(r["sparsity"] - target) <= 0.02
            out += [_check(f"{r['name']} prunable-kernel sparsity within 0.02 of {target}", close, r["sparsity"],
                           f"{target} +- 0.02"),
                    _check(f"{r['name']} gzipped at most 70% of the original's", gz <= 0.70, round(gz, 3), "<= 0.70"),
                    _check(f"{r['name']} loses at most 2 accuracy points", drop <= 0.02, round(drop, 4), "<= 0.02")]
        if r["technique"] == "clustering" and r["options"]["clustering"]["clusters"] <= 16:
            gz = r["gzip_bytes"] / orig["gzip_bytes"]
            out.append(_check(f"{r['name']} gzipped at most 40% of the original's", gz <= 0.40, round(gz, 3),
                              "<= 0.40"))
    i8 = by.get("tflite_int8")
    if i8:
        out.append(_check("full-int8 TFLite batch-1 latency below Keras tf.function",
                          i8["latency_ms_p50"] < orig["latency_ms_p50"],
                          [i8["latency_ms_p50"], orig["latency_ms_p50"]], "int8 p50 < Keras p50"))
    tfl = [r["eval_images_per_s"] for r in rows if r["format"] == "tflite" and r["name"] != "tflite_dynamic"]
    if tfl:
        out.append(_check("TFLite test-split evaluation at least 300 images/s (dynamic range excluded)",
                          min(tfl) >= 300, min(tfl), ">= 300 (at 96 px)"))
    if default_set:
        out.append(_check("default set within 5 minutes", seconds <= 300, round(seconds, 1), "<= 300 s"))
    return out
