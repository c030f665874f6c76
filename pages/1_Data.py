"""Data: choose a built-in dataset, upload a ZIP of class folders, give a folder path, or make a dataset here (upload
images, take camera snapshots); see what is in it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from ui import builder, charts, common, uploads

common.page("Data", ":material/dataset:", "The images the lab learns from: one folder per class. Pick one here; the Train page uses it.")

SOURCES = ["Built-in dataset", "Upload a ZIP", "Folder on this machine", builder.SOURCE]
PREVIEW_SIZE = common.DEFAULT_IMAGE_SIZE
SAMPLES_PER_CLASS = 8
from core.data.datasets import MIN_IMAGES_PER_CLASS as MIN_PER_CLASS  # noqa: E402
ZIP_CACHE = re.compile(r"/\S*/zips/[0-9a-f]{16}/")


def _short(text: str, root: str | None) -> str:
    """A skipped file's path (or a reason quoting it) relative to the dataset, not to the lab's cache; an upload
    named by the user's own file name, not the stored (hashed) one."""
    text = ZIP_CACHE.sub("", str(text))
    if dataset and "/" in dataset and common.dataset_label(dataset) != Path(dataset).name:
        text = text.replace(dataset, common.dataset_label(dataset)).replace(Path(dataset).name,
                                                                            common.dataset_label(dataset))
    return text.replace(root.rstrip("/") + "/", "") if root else text


infos = {d["name"]: d for d in common.datasets_info()}
source = st.segmented_control("Source", SOURCES, key=common.remember("data_source", SOURCES[0], SOURCES, url="source"),
                              on_change=common.save, args=("data_source",), label_visibility="collapsed")
source = source or SOURCES[0]
dataset: str | None = None

if source == SOURCES[0]:
    names = [n for n, d in infos.items() if not d.get("editable")]
    current = st.session_state.get("dataset")
    key = common.remember("builtin_dataset", current if current in infos else names[0], names, url="dataset")
    name = st.selectbox("Dataset", names, key=key, on_change=common.save, args=("builtin_dataset",),
                        format_func=lambda n: f"{infos[n]['title']}  ({n})" + ("" if infos[n]["available"]
                                                                              else " · not on this machine"))
    info = infos[name]
    st.caption(f"{info['description']}  \nAvailability: {info['availability']}"
               + (f" · stands in for {info['stands_in_for']}" if info.get("stands_in_for") else ""))
    if not info["available"]:
        st.warning(f"**{info['title']} is not on this machine**, so it cannot be shown or trained on here. "
                   f"{info['availability'][:1].upper()}{info['availability'][1:]}.", icon=":material/block:")
        st.stop()
    dataset = name
elif source == SOURCES[1]:
    st.caption("A ZIP holding one folder per class (e.g. `red/…jpg`, `blue/…jpg`), optionally inside `train/` and "
               "`test/` folders. Entries that would escape the folder, links, encrypted entries and ZIP bombs are "
               "refused; files that are not images, and corrupt, truncated or oversized images, are skipped and "
               "listed.  \n" + uploads.dataset_limits())
    limit_mb = uploads.upload_limit_mb()
    up = st.file_uploader("ZIP of class folders", type=["zip"], key="data_zip", max_upload_size=limit_mb)
    if up is not None:
        refused = uploads.too_large(up, limit_mb)
        if refused:
            st.error(f"**Upload refused.** {refused}.", icon=":material/error:")
            st.stop()
        dataset = uploads.save_upload(up.name, up.getvalue())
        st.session_state["uploaded_dataset"] = dataset
    elif st.session_state.get("uploaded_dataset"):
        dataset = st.session_state["uploaded_dataset"]
        st.caption(f"Using the last upload: `{common.dataset_label(dataset)}`")
elif source == builder.SOURCE:
    dataset = builder.section()             # None until the dataset made here can be trained on
    if dataset is None:
        st.stop()
    st.markdown("#### As the lab splits it")
else:
    key = common.remember("folder_path", "")
    path = st.text_input("Folder path", key=key, on_change=common.save, args=("folder_path",),
                         placeholder="/path/to/images  (one sub-folder per class)")
    dataset = path.strip() or None

if not dataset:
    st.info("Choose a dataset to see its classes and images.")
    st.stop()

from core.errors import LabError  # noqa: E402

try:
    from core.data.datasets import DATASETS
    spec = DATASETS.get(dataset)
    if spec is not None and spec.first_use is not None and spec.first_use_pending():
        # generated on first use (the synthetic cars take about 15 s): a progress bar, not a bare spinner
        bar = st.progress(0.0, text=f"Generating {spec.title} (first use only; cached for every later visit)…")
        spec.first_use(lambda f: bar.progress(min(max(float(f), 0.0), 1.0),
                                              text=f"Generating {spec.title}: {f:.0%} (first use only)…"))
        bar.empty()
    with st.spinner(f"Reading {common.dataset_label(dataset)}…"):
        data = common.prepared(dataset, PREVIEW_SIZE)
except LabError as e:
    message = str(e)
    st.error(f"**This data cannot be used.** {_short(message, None)}", icon=":material/error:")
    st.caption(f"Expected: one sub-folder per class (at least two classes), each with at least {MIN_PER_CLASS} "
               "readable images; optionally split into train/ and test/ folders.")
    with st.spinner("Checking every file…"):
        report = common.check_report(dataset)
    st.session_state["data_check"] = report
    st.markdown("#### Check report")
    src = report.get("source") or ""
    root = src[len("folder "):] if src.startswith("folder ") else None
    # the problem just shown is not shown again; the report adds any others, and the skipped files
    uploads.render_report(report, lambda t: _short(t, root), skip={message})
    st.stop()
except Exception as e:  # noqa: BLE001 - anything unexpected is shown, not raised
    st.error(f"**Could not read the data:** {type(e).__name__}: {e}", icon=":material/error:")
    st.stop()

from core.data.check import report_from_prepared  # noqa: E402

report = report_from_prepared(dataset, data)
st.session_state["data_check"] = report
st.session_state["dataset"] = dataset
counts = data.counts()
totals = np.bincount(data.labels, minlength=len(data.class_names))

with st.container(border=True):
    m = st.columns([1, 1, 1, 1, 1, 1.6], vertical_alignment="center")
    m[0].metric("Classes", len(data.class_names))
    m[1].metric("Images", f"{len(data.labels):,}")
    m[2].metric("Train", f"{len(data.index['train']):,}")
    m[3].metric("Validation", f"{len(data.index['val']):,}")
    m[4].metric("Test", f"{len(data.index['test']):,}")
    with m[5]:
        st.page_link("pages/2_Train.py", label="**Train on this dataset**", icon=":material/arrow_forward:")
        st.caption(f"Selected: `{common.dataset_label(dataset)}`")

if data.skipped:
    st.warning(f"{len(data.skipped)} file(s) were skipped and are listed below; the rest is usable.",
               icon=":material/warning:")
small = [c for c, n in zip(data.class_names, totals) if n < 30]
if small:
    st.info(f"Few images in {', '.join(small)}: accuracy figures on so small a test split are noisy.")

left, right = st.columns([3, 2])
with left:
    st.plotly_chart(charts.counts_bar(data.class_names, counts), config={"displayModeBar": False})
with right:
    table = pd.DataFrame({"class": data.class_names, "train": counts["train"], "val": counts["val"],
                          "test": counts["test"], "total": totals.tolist()})
    st.markdown("**Counts per class**")
    st.dataframe(table, hide_index=True, width="stretch", height="auto")
    st.caption(f"Source: {_short(data.source or dataset, None)} · split {', '.join(f'{len(data.index[s])} {s}' for s in ('train', 'val', 'test'))} "
               f"(stratified, seed 0) · shown at {PREVIEW_SIZE} px")

st.markdown("#### Samples per class")
rng = np.random.default_rng(0)
for k, cls in enumerate(data.class_names):
    idx = np.flatnonzero(data.labels == k)
    pick = rng.choice(idx, size=min(SAMPLES_PER_CLASS, len(idx)), replace=False) if len(idx) else []
    c1, c2 = st.columns([1, 7], vertical_alignment="center")
    c1.markdown(f"**{cls}**  \n{len(idx)} images")
    with c2:
        if len(pick):
            st.image([data.images[i] for i in pick], width=84)

st.markdown("#### Check report")
st.caption("The same report as `python -m core check-dataset PATH --json`: classes, usable images per class, "
           "skipped files with the reason, and problems.")
root = data.source[len("folder "):] if data.source.startswith("folder ") else None
uploads.render_report(report, lambda t: _short(t, root), counts=False)   # counts: the table above

st.markdown("#### Check set: real photos never trained on")
from core.data.checksets import attach, attached_to, check_set_for  # noqa: E402

try:
    check = check_set_for(dataset)
except LabError as e:
    check = None
    st.warning(f"The attached check set cannot be read: {e}")
if check is not None:
    labels = pd.Series(check.labels).value_counts().rename_axis("label").reset_index(name="photos")
    st.caption(f"**{check.title}**: {len(check.labels)} photos. {check.note}. Every run of this dataset is scored "
               "on them, each variant too, beside its test accuracy (Results).")
    st.dataframe(labels, hide_index=True, width="content")
else:
    st.caption("None yet. A check set is a ZIP of class folders with photos taken the way the model will be used; "
               "the lab never trains on them, and the drop from the test split shows the domain shift.")
name_for = common.dataset_label(dataset)
up = st.file_uploader(f"Attach a check set to {name_for} (ZIP of class folders)", type=["zip"], key="check_zip",
                      max_upload_size=uploads.upload_limit_mb())
c1, c2 = st.columns(2)
if up is not None and c1.button("Attach", icon=":material/fact_check:"):
    try:
        out = attach(dataset, uploads.save_upload(up.name, up.getvalue()))
        st.success(f"Attached: {out['photos']} photos.")
        st.rerun()
    except LabError as e:
        st.error(f"**This check set cannot be used.** {e}")
if attached_to(dataset):
    if c2.button("Detach the check set", icon=":material/link_off:"):
        attach(dataset, None)
        st.rerun()
