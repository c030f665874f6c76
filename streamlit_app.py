"""Green Transfer Learning Lab: the dashboard. Run with `bin/run` (streamlit run streamlit_app.py).

This file is the app's frame (navigation, sidebar) and its Home page; the other pages live in pages/.
"""
from __future__ import annotations

import os

import streamlit as st

from ui import common
from ui.jobs_view import sidebar_status


def home() -> None:
    common.page("Green Transfer Learning Lab", ":material/eco:",
                "Reuse a network pretrained on ImageNet for your own images, make it small and fast, "
                "and see what each step costs in accuracy: all on a CPU, in minutes.")

    steps = [("pages/1_Data.py", "1 · Data", ":material/dataset:",
              "Pick a built-in dataset, upload a ZIP of class folders or point to a folder."),
             ("pages/2_Train.py", "2 · Train", ":material/model_training:",
              "Choose a backbone and head, train in the background, watch the curves live."),
             ("pages/3_Results.py", "3 · Results", ":material/insights:",
              "Learning curves, the compressed variants side by side, confusion matrices."),
             ("pages/4_Predict.py", "4 · Predict", ":material/image_search:",
              "Upload a photo or take a snapshot and compare the variants' answers.")]
    cols = st.columns(4)
    for col, (path, label, icon, text) in zip(cols, steps):
        with col.container(border=True, height="stretch"):
            st.page_link(path, label=f"**{label}**", icon=icon)
            st.caption(text)

    st.markdown("#### Quick start")
    st.markdown("The defaults train **MobileNetV2** (ImageNet weights) on the generated **shapes** dataset at "
                "96 px in well under a minute, then compress it. Press **Start training** on the Train page, "
                "open the results when it finishes, and try a prediction.")

    _presets()

    st.markdown("#### Recent runs")
    runs = common.runs(8)
    if runs:
        # a list, not a table: each run by its name, wrapping on a phone; a link opens it (?run=ID, shareable)
        for r in runs:
            st.page_link("pages/3_Results.py", label=f"**{r['label']}**", icon=common.STATUS_ICONS.get(r["status"]),
                         query_params={"run": r["id"]}, help=f"Open run {r['id']} on the Results page")
            st.caption(common.run_facts(r))
    else:
        st.caption("No runs yet.")

    st.markdown("#### On this machine")
    left, right = st.columns(2)
    with left:
        st.markdown("**Datasets**")
        st.markdown("\n".join(
            f"- {':green[:material/check:]' if d['available'] else ':orange[:material/block:]'} **{d['title']}** "
            f"(`{d['name']}`{', ' + str(len(d['classes'])) + ' classes' if d['classes'] else ''}): "
            + (d["availability"] if d["available"] else "not on this machine; the Data page says how to add it")
            for d in common.datasets_info()))
    with right:
        st.markdown("**Backbones**")
        st.markdown("\n".join(
            f"- {':green[:material/check:]' if b['pretrained'] or b['weights'] == 'none' else ':orange[:material/block:]'}"
            f" **{b['title']}**: " + (f"ImageNet weights from {b['weights_source'].replace('ImageNet weights carried by ', '')}"
                                     if b["pretrained"] else "needs no weights" if b["weights"] == "none" else
                                     "no ImageNet weights here (frozen, it would learn nothing; train it fully)")
            for b in common.backbones_info()))
    from core import jobs
    from core.store.paths import lab_home
    st.caption(f"{os.cpu_count()} CPU cores · at most {jobs.max_concurrent()} training job(s) at once · "
               f"lab files in `{lab_home()}`")


def _presets() -> None:
    """The presets, one per report: start one here, it runs as background jobs (watch it on the Train page)."""
    from ui import presets_view
    st.markdown("#### Redo a report")
    st.caption("Each preset redoes one report's recipe as well as this machine allows, as background jobs; the "
               "Train page shows them running and Results compares their variants.")
    if presets_view.starter("home"):
        st.switch_page("pages/2_Train.py")


# The favicon is an emoji (drawn by the browser from a data: URL): a Material icon here would be fetched from a
# web font host, and offline nothing the page loads may come from outside this server. "auto": the sidebar starts
# open on wide screens and closed on phones.
st.set_page_config(page_title="Green Transfer Learning Lab", page_icon="🌿", layout="wide",
                   initial_sidebar_state="auto")
nav = st.navigation([
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Data.py", title="Data", icon=":material/dataset:"),
    st.Page("pages/2_Train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/3_Results.py", title="Results", icon=":material/insights:"),
    st.Page("pages/4_Predict.py", title="Predict", icon=":material/image_search:"),
])
with st.sidebar:
    st.markdown("**Background jobs**")
    sidebar_status()
nav.run()
