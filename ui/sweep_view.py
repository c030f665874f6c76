"""Sweeps in the dashboard: starting one (Train page) and its trade-off chart across runs (Results page).

Thin: the plan, the jobs and the figures come from core (core.presets.sweep, core.jobs.sweeps,
core.evaluation.pareto), the same as `python -m core sweep` and `python -m core sweep-report GROUP`.
"""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from . import charts, common

X_AXES = {"model size": ("size_bytes", "model size (KB)", 1 / 1024, ":,.0f"),
          "latency": ("latency_ms_p50", "latency p50 (ms per image)", 1.0, ":.3f"),
          "energy": ("energy_per_1000_j", "energy per 1,000 predictions (J)", 1.0, ":,.3g")}
Y_AXES = {"test accuracy": "test_accuracy", "check-set accuracy": "check_accuracy"}
SIZES = [16, 24, 32, 48, 64, 96, 128, 160, 192, 224]


def _sweeps() -> list[dict]:
    from core.jobs import list_sweeps
    return list_sweeps()


def _when(s: dict) -> str:
    return time.strftime("%d %b %H:%M", time.localtime(s.get("started") or 0))


@st.cache_data(ttl=30, show_spinner=False, max_entries=16)
def _report(group: str, stamp: tuple, region: str) -> dict:
    from core.jobs.sweeps import sweep_report
    return sweep_report(group, region=region)


# ------------------------------------------------------------------ Train: start a sweep


def train_section(techniques: list[dict]) -> None:
    """The Train page's Sweep section: the axes, the plan for this machine, Start, and the latest sweep's progress
    with a Cancel for the whole sweep."""
    from core.compression.sets import SET_WORDS
    infos = [d for d in common.datasets_info() if d["available"]]
    backbones = {b["name"]: b for b in common.backbones_info()}
    st.caption("Every combination of the values you pick becomes one background job (or a seeded random sample of "
               "them); all run on the active job backend, in one group, and Results compares every run and variant "
               "on one chart. The same as `python -m core sweep`.")
    a, b, c = st.columns(3)
    ds_names = [d["name"] for d in infos]
    datasets = a.multiselect("Datasets", ds_names, default=ds_names[:1], key="sweep_datasets")
    bb_ok = [n for n, x in backbones.items() if x["pretrained"] or x["weights"] == "none"]
    default_bb = [n for n, x in backbones.items() if x["default"]][:1]
    chosen_bb = b.multiselect("Backbones", bb_ok, default=default_bb, key="sweep_backbones",
                              format_func=lambda n: backbones[n]["title"])
    sizes = c.multiselect("Input sizes (px)", SIZES, default=[96], key="sweep_sizes")
    a, b, c = st.columns(3)
    taps = a.multiselect("Taps (features from)", ["auto", "last", "multi"], default=["auto"], key="sweep_taps",
                         format_func={"auto": "auto", "last": "last layer", "multi": "several depths"}.get)
    heads = b.text_input("Heads", "linear", key="sweep_heads",
                         help="Comma-separated: 'linear', or hidden sizes joined by '-' (128-64); a pooling may "
                              "lead (max:128).")
    sets = list(SET_WORDS) + [t["name"] for t in techniques]
    comp = c.multiselect("Compression sets", sets, default=["none"], key="sweep_compression",
                         format_func=lambda s: f"{s} ({SET_WORDS[s]})" if s in SET_WORDS else s)
    a, b, c, d = st.columns(4)
    epochs = a.number_input("Max epochs of each run", 1, 500, 10, key="sweep_epochs")
    sample_on = b.toggle("Random sample", key="sweep_sample_on", help="Train N of the combinations, chosen by the seed.")
    n = c.number_input("Sample size N", 1, 200, 4, key="sweep_sample", disabled=not sample_on)
    seed = d.number_input("Sweep seed", 0, 10_000, 0, key="sweep_seed",
                          help="Seeds the sample and every run's split and training.")
    axes = {"dataset": datasets, "backbone": chosen_bb, "image_size": [str(s) for s in sizes], "taps": taps,
            "head": heads, "compression": comp}
    from core.errors import LabError
    from core.presets.sweep import plan
    try:
        p = plan(axes, {"epochs": int(epochs)}, int(n) if sample_on else None, int(seed))
    except LabError as e:
        st.error(f"**This sweep cannot run:** {e}", icon=":material/block:")
        p = None
    if p is not None:
        st.markdown(f"**{p['title']}**")
        with st.expander("The runs", icon=":material/list:"):
            st.caption("  \n".join(f"• {m}" for m in p["messages"]))
    if st.button("Start the sweep", icon=":material/play_arrow:", disabled=p is None, key="sweep_start"):
        from core.jobs import submit_sweep
        try:
            out = submit_sweep(axes, {"epochs": int(epochs)}, int(n) if sample_on else None, int(seed))
        except LabError as e:
            st.error(f"**Cannot start this sweep:** {e}")
        else:
            st.session_state["job_id"] = out["jobs"][0]
            st.session_state["sweep_group"] = out["group"]
            st.session_state["train_flash"] = f"Queued {len(out['jobs'])} job(s) for sweep {out['group']}."
            st.rerun()
    _latest()


def _latest() -> None:
    from core.jobs import sweep_status
    found = _sweeps()
    if not found:
        return
    s = found[0]
    status = sweep_status(s["group"])
    counts = ", ".join(f"{k} {n}" for k, n in status["counts"].items())
    a, b = st.columns([3, 1], vertical_alignment="center")
    a.markdown(f"Latest sweep **{s['group']}** ({_when(s)}): {s['plan']['title']} · {counts}")
    if status["open"]:
        b.button("Cancel the sweep", icon=":material/stop_circle:", key="sweep_cancel", on_click=_cancel,
                 args=(s["group"],), help="Cancels every job of this sweep that has not finished.")
    else:
        b.page_link("pages/3_Results.py", label="Compare on Results", icon=":material/insights:",
                    query_params={"sweep": s["group"]})


def _cancel(group: str) -> None:
    from core.jobs import cancel_group
    out = cancel_group(group)
    st.toast(f"Cancelled {len(out['cancelled'])} job(s) of sweep {group}.", icon=":material/stop_circle:")


# ------------------------------------------------------------------ Results: the trade-off across a sweep's runs


def results_section(region: str) -> None:
    """A sweep's runs and all their variants on one chart, the front marked, and the table of the front."""
    found = _sweeps()
    if not found:
        return
    groups = [s["group"] for s in found]
    titles = {s["group"]: f"{s['plan']['title']} · {_when(s)}" for s in found}
    wanted = "sweep" in st.query_params or bool(st.session_state.get("sweep_group"))
    with st.expander(f"Sweeps ({len(groups)}): every run and variant on one trade-off chart",
                     icon=":material/scatter_plot:", expanded=wanted):
        group = st.selectbox("Sweep", groups, format_func=titles.get,
                             key=common.remember("sweep_group", groups[0], groups, url="sweep"),
                             on_change=common.save, args=("sweep_group",))
        rep = _report(group, common.db_stamp(), region)
        if not rep["points"]:
            st.info("No run of this sweep has results yet: they appear here as its jobs finish.")
            return
        if rep["missing"]:
            st.caption(f"{len(rep['missing'])} run(s) of this sweep have no results yet.")
        a, b = st.columns(2)
        x_name = a.radio("Against", list(X_AXES), horizontal=True,
                         key=common.remember("sweep_x", "model size", list(X_AXES)),
                         on_change=common.save, args=("sweep_x",))
        ys = list(Y_AXES) if rep["has_check_set"] else ["test accuracy"]
        y_name = b.radio("Accuracy", ys, horizontal=True, key=common.remember("sweep_y", ys[0], ys),
                         on_change=common.save, args=("sweep_y",))
        from core.evaluation.compare import pareto_front
        x, x_title, scale, fmt = X_AXES[x_name]
        y = Y_AXES[y_name]
        pts = rep["points"]
        fig = charts.sweep_scatter(pts, x, y, pareto_front(pts, x, y), x_title, y_name, scale, fmt,
                                   title=f"{y_name.capitalize()} against {x_name}: {len(pts)} variants of "
                                         f"{len(rep['runs'])} runs")
        st.plotly_chart(fig, config={"displayModeBar": False}, key="sweep-pareto")
        hidden = sum(1 for p in pts if not (p.get(x) or 0) > 0)
        st.caption("Stars: the front, the variants no other beats on every objective at once (higher accuracy; "
                   "smaller size, latency and energy per prediction; an unmeasured figure counts as the worst). "
                   "Dashed: the front on the two axes shown."
                   + (f" {hidden} variant(s) without a measured {x_name} are not drawn (a run without compression "
                      "is measured for size only)." if hidden else ""))
        st.markdown(f"**The front** ({len(rep['front'])} of {len(pts)} variants)")
        st.dataframe(front_table(rep), hide_index=True, width="stretch",
                     column_config={"run": st.column_config.TextColumn(pinned=True)})
        st.caption(f"The same figures: `python -m core sweep-report {group}` (add --json).")


def front_table(rep: dict) -> pd.DataFrame:
    rows = []
    for i in rep["front"]:
        p = rep["points"][i]
        rows.append({"run": p.get("run_label"), "variant": p["variant"],
                     "accuracy": common.fmt_pct(p.get("test_accuracy"), 2),
                     **({"check set": common.fmt_pct(p.get("check_accuracy"), 1)} if rep["has_check_set"] else {}),
                     "size": common.fmt_bytes(p.get("size_bytes")),
                     "latency": "–" if p.get("latency_ms_p50") is None else f"{p['latency_ms_p50']:.3f} ms",
                     "energy / 1k": common.fmt_energy(p.get("energy_per_1000_j")), "run id": p["run_id"]})
    return pd.DataFrame(rows)
