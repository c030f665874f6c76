"""Predictions for the Predict page: decode uploads safely, run each chosen variant, keep errors per image."""
from __future__ import annotations

import streamlit as st


def decode(items: list[tuple[str, object]], size: int) -> tuple[list, list[str | None]]:
    """uint8 (size, size, 3) arrays for every item (bytes are decoded by PIL; nothing is unpickled or executed)."""
    import numpy as np

    from core.errors import LabError
    from core.data.images import load_image, resize_array
    arrays, errors = [], []
    for caption, src in items:
        try:
            if isinstance(src, (bytes, bytearray)):
                arrays.append(load_image(bytes(src), size))
            else:
                a = np.asarray(src)
                arrays.append(a if a.shape[:2] == (size, size) else resize_array(a[None], size)[0])
            errors.append(None)
        except LabError as e:
            arrays.append(None)
            errors.append(f"{caption}: {str(e).split(': ', 1)[-1]}")
    return arrays, errors


@st.cache_resource(show_spinner=False, max_entries=12)
def predictor(run_id: str, variant: str, stamp: float):
    """A loaded model or TFLite interpreter, shared by all sessions (re-loaded when its file changes)."""
    from core.models import load_variant
    return load_variant(run_id, variant, threads=2)


def _model_stamp(run_id: str, variant: str) -> float:
    from core.store.runs import run_dir
    folder = run_dir(run_id)
    if variant == "original":
        return (folder / "model.keras").stat().st_mtime
    files = list((folder / "variants" / variant).glob("model.*")) if (folder / "variants" / variant).is_dir() else []
    return max((f.stat().st_mtime for f in files), default=0.0)


def predict_images(run_id: str, variant: str, images: list, top_k: int) -> list[dict]:
    """Top-k classes, the answer ("A or B" when the top two are close) and the latency of each image (one forward
    pass per image, as a user's request would be); probabilities calibrated with the variant's temperature if any."""
    import time

    import numpy as np

    from core.evaluation.calibration import apply_temperature, recorded_temperature, top_two
    model = predictor(run_id, variant, _model_stamp(run_id, variant))
    temperature = recorded_temperature(run_id, variant)
    names = model.class_names
    if images and not getattr(model, "_lab_warm", False):
        model.predict(np.stack(images[:1]))        # warm-up, once per loaded model: its first call traces or allocates
        model._lab_warm = True
    out = []
    for img in images:
        t = time.perf_counter()
        probs = model.predict(np.asarray(img)[None])[0]
        ms = (time.perf_counter() - t) * 1000
        if temperature:
            probs = apply_temperature(probs, temperature)
        order = np.argsort(-probs, kind="stable")[:top_k]
        out.append({"top_k": [{"class": names[i], "probability": float(probs[i])} for i in order],
                    "label": top_two(probs, names), "temperature": temperature, "latency_ms": ms})
    return out


def predict_many(run_id: str, variants: list[str], items: list[tuple[str, object]], top_k: int):
    """{(image index, variant): result or {"error"}}, plus general error messages."""
    from core.store.runs import read_json, run_dir
    size = int(read_json(run_dir(run_id) / "config.json")["image_size"])
    arrays, bad = decode(items, size)
    results: dict[tuple[int, str], dict] = {}
    errors = [b for b in bad if b]
    good = [i for i, a in enumerate(arrays) if a is not None]
    if not good:
        return results, errors
    for v in variants:
        try:
            outs = predict_images(run_id, v, [arrays[i] for i in good], top_k)
            for i, o in zip(good, outs):
                results[(i, v)] = o
        except Exception as e:  # noqa: BLE001 - one broken variant must not hide the others
            from core.errors import LabError
            msg = str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}"
            for i in good:
                results[(i, v)] = {"error": msg}
    return results, errors


@st.cache_resource(show_spinner=False, max_entries=512)
def topk_figure(top_k: tuple[tuple[str, float], ...]):
    """The top-k bar chart of one answer, shared by every session that gets the same answer (the same photo and
    variant give the same probabilities): a dictionary look-up instead of a new plotly figure per rerun."""
    from . import charts
    return charts.topk_bars([{"class": c, "probability": p} for c, p in top_k])


def topk_key(top_k: list[dict]) -> tuple[tuple[str, float], ...]:
    return tuple((t["class"], round(float(t["probability"]), 4)) for t in top_k)
