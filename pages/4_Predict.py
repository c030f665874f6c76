"""Predict: upload images, take a snapshot or classify the live camera; pick a run and variants, compare top-k
answers and latency."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import common
from core.data.images import thumbnail
from core.evaluation.calibration import MARGIN
from ui.predicting import predict_many, topk_figure, topk_key

common.page("Predict", ":material/image_search:", "Give the trained models new images and compare what each variant answers, and how fast.")

S = st.session_state
SOURCES = ["Upload images", "Camera snapshot", "Live camera", "Samples from the test set"]
MAX_IMAGES = 12

runs = common.trained_runs()
if not runs:
    st.info("No finished run yet: train one on the Train page first.")
    st.page_link("pages/2_Train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

by_id = {r["id"]: r for r in runs}
ids = list(by_id)
labels = common.run_labels(runs)
default = S.get("run_id") if S.get("run_id") in by_id else common.default_run(runs)
c1, c2, c3 = st.columns([3, 3, 1.2])
run_id = c1.selectbox("Run", ids, format_func=labels.get,
                      key=common.remember("predict_run", default, ids, url="run", url_always=True),
                      on_change=common.save, args=("predict_run",))
row = by_id[run_id]
rep = common.run_report(run_id)
vnames = [v["name"] for v in rep.variants if v.get("files") or v["name"] == "original"]
key = f"predict_variants_{run_id}"
sizes = {v["name"]: v.get("size_bytes") or float("inf") for v in rep.variants}
default_v = ["original"] + sorted((n for n in vnames if n != "original"), key=lambda n: sizes.get(n, float("inf")))[:2]
default_v = [n for n in default_v if n in vnames] or vnames[:1]
if key not in S and "variant" in st.query_params:          # a shared link names the variants (?variant=a&variant=b)
    wanted = [v for part in st.query_params.get_all("variant") for v in part.split(",") if v in vnames]
    if wanted:
        S[key] = wanted
variants = c2.multiselect("Variants", vnames, key=common.remember(key, default_v, vnames), on_change=common.save,
                          args=(key,), help="Each chosen variant answers every image; latency is measured per image.")
if list(st.query_params.get_all("variant")) != list(variants):      # the chosen variants go in the URL too
    if variants:
        st.query_params["variant"] = list(variants)
    elif "variant" in st.query_params:
        del st.query_params["variant"]
if row["status"] not in ("done", "cancelling"):
    st.warning(f"This run's job **{row['status']}** after training ({row.get('error') or row['status']}): its trained "
               "model answers, and the compressed variants built before it stopped.", icon=":material/cancel:")
if (note := ((rep.run.get("head_fit") or {}).get("small_data_note"))):
    st.info(f"**Small data:** {note}; expect its answers to be less sure and less often right.")
k_max = max(1, len(rep.class_names))
top_k = c3.number_input("Top-k", 1, k_max, key=common.remember("predict_topk", min(3, k_max), url="k"),
                        on_change=common.save, args=("predict_topk",))
st.caption(f"{common.status_badge(row['status'])} **{row['label']}** · classes: {', '.join(rep.class_names)} · input {rep.config.get('image_size')} px · probabilities are "
           f"calibrated by each variant's temperature (fitted on the validation images) where one is recorded; "
           f"\"A or B\" when the top two are within {MARGIN:.0%} of each other")

source = st.segmented_control("Images", SOURCES, key=common.remember("predict_source", SOURCES[0], SOURCES,
                                                                  url="images"),
                              on_change=common.save, args=("predict_source",), label_visibility="collapsed")
source = source or SOURCES[0]

items: list[tuple[str, object]] = []          # (caption, bytes or uint8 array)
if source == SOURCES[0]:
    from core.data.images import MAX_PIXELS
    from ui import uploads
    limit_mb = uploads.upload_limit_mb()
    ups = st.file_uploader("Images (any format PIL reads)", accept_multiple_files=True, key="predict_uploads",
                           type=None, max_upload_size=limit_mb,
                           help="JPEG, PNG, WebP, BMP, TIFF, GIF… any mode (grey, 16-bit, CMYK, with alpha); each is "
                                "resized to the model's input size.")
    st.caption(f"Up to {limit_mb} MB and {MAX_PIXELS / 1e6:g} megapixels per image; the first frame of an animation "
               "is used. Anything that is not an image gets a message; nothing uploaded is stored, unpickled or run.")
    for up in (ups or [])[:MAX_IMAGES]:
        refused = uploads.too_large(up, limit_mb)
        if refused:
            st.error(refused)
            continue
        items.append((up.name, up.getvalue()))
    if ups and len(ups) > MAX_IMAGES:
        st.caption(f"Only the first {MAX_IMAGES} images are used.")
elif source == SOURCES[1]:
    shot = st.camera_input("Take a snapshot", key="predict_camera")
    if shot is not None:
        items.append(("camera snapshot", shot.getvalue()))
elif source == SOURCES[2]:
    from ui import live
    reason = live.unavailable()
    if reason is None:
        reason = live.stream(run_id, variants, int(top_k))      # None: the live stream is on the page
        if reason is None:
            st.stop()
    shot = live.snapshot_fallback(reason)
    if shot is not None:
        items.append(("camera snapshot", shot.getvalue()))
else:
    n = st.slider("How many", 1, MAX_IMAGES, 4, key="predict_n_samples")
    if st.button("Draw new samples", icon=":material/shuffle:"):
        S["predict_sample_seed"] = int(S.get("predict_sample_seed", 0)) + 1
    try:
        images, img_ids = common.test_images(rep)
        y_true = rep.predictions.get("y_true") or []
        rng = np.random.default_rng(int(S.get("predict_sample_seed", 0)))
        pick = rng.choice(len(images), size=min(n, len(images)), replace=False)
        for i in pick:
            truth = rep.class_names[y_true[i]] if i < len(y_true) else "?"
            items.append((f"{img_ids[i]} (true: {truth})", images[i]))
    except Exception as e:  # noqa: BLE001
        st.warning(f"The test images of this run cannot be loaded here: {e}")

if not variants:
    st.info("Choose at least one variant.")
    st.stop()
if not items:
    st.info("Add an image to get a prediction.")
    st.stop()

with st.spinner("Predicting…"):
    results, errors = predict_many(run_id, variants, items, int(top_k))

for msg in errors:
    st.error(msg)

if len(variants) > 1:
    import statistics
    summary = []
    for vname in variants:
        got = [results.get((i, vname)) for i in range(len(items))]
        ok = [g for g in got if g and "error" not in g]
        if not ok:
            continue
        ref = [results.get((i, "original")) for i in range(len(items))] if "original" in variants else None
        same = (sum(1 for g, r in zip(got, ref) if g and r and "error" not in g and "error" not in r
                    and g["top_k"][0]["class"] == r["top_k"][0]["class"]) / len(ok)) if ref else None
        summary.append({"variant": vname, "ms": round(statistics.median(g["latency_ms"] for g in ok), 2),
                        "same": same})
    if summary:                 # three narrow columns (a phone's width); each image's answers are in its card below
        st.dataframe(summary, hide_index=True, width="stretch",
                     column_config={"variant": st.column_config.TextColumn("variant", pinned=True),
                                    "ms": st.column_config.NumberColumn("median ms", format="%.2f",
                                                                        help="median latency per image"),
                                    "same": st.column_config.NumberColumn("as original", format="percent",
                                                                          help="share of the images where its top "
                                                                               "answer is the original's")})

per_row = min(len(variants), 3)
for n_img, (caption, src) in enumerate(items):
    with st.container(border=True):
        cols = st.columns([1.3] + [2] * per_row, vertical_alignment="top", gap="medium")
        with cols[0]:
            if isinstance(src, (bytes, bytearray)):
                try:                       # a checked, decoded preview: the raw upload is never passed on
                    st.image(thumbnail(bytes(src)), caption=caption, width="stretch")
                except Exception:  # noqa: BLE001
                    st.caption(caption)
            else:
                st.image(src, caption=caption, width="stretch")
        for j, vname in enumerate(variants):
            col = cols[1 + j % per_row]
            with col:
                res = results.get((n_img, vname))
                if res is None:
                    continue
                if "error" in res:
                    st.markdown(f"**{vname}**")
                    st.error(res["error"])
                    continue
                best = res["top_k"][0] if res["top_k"] else {"class": "?", "probability": 0}
                st.markdown(f"**{vname}** → **{res.get('label', best['class'])}** ({best['probability']:.1%})")
                st.plotly_chart(topk_figure(topk_key(res["top_k"])), config={"displayModeBar": False},
                                key=f"topk-{n_img}-{vname}")
                t = res.get("temperature")
                st.caption(f"latency {res.get('latency_ms', float('nan')):.1f} ms · "
                           + (f"calibrated probabilities (T = {t:.2f})" if t else "probabilities not calibrated"))
