"""The Results page's figures and tables of one finished run, built once per run and shared by every session.

Everything here is keyed by (run id, stamp): the stamp (ui.common.run_stamp) changes whenever the run's folder or
registry row changes, so an entry is never stale, and a rerun (a tab click, a widget change, a page switch by any
of thirty students) costs a dictionary look-up instead of rebuilding plotly figures and pandas tables.
Figures are kept with st.cache_resource: one shared, read-only object (Streamlit only serialises it; a pickled
copy per rerun, as st.cache_data makes, would cost about as much as building it). Tables are small and are kept
with st.cache_data.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from . import charts, common


def _rep(run_id: str, stamp: str):
    return common.run_report(run_id, stamp)


@st.cache_data(show_spinner=False, max_entries=64)
def table_rows(run_id: str, stamp: str, region: str) -> list[dict]:
    """The variant comparison rows (RunReport.table) for a carbon region."""
    return _rep(run_id, stamp).table(region)


@st.cache_resource(show_spinner=False, max_entries=32)
def curves_figure(run_id: str, stamp: str, height: int = 360):
    rep = _rep(run_id, stamp)
    epochs = rep.history.get("epochs") or []
    return charts.learning_curves(epochs, rep.history.get("fine_tune_start_epoch"), height=height) if epochs else None


@st.cache_data(show_spinner=False, max_entries=64)
def compare_table(run_id: str, stamp: str, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the comparison as shown, its cell styles): formatted values, stars and green cells on each column's best."""
    from core.evaluation.compare import COLUMNS, RANKED, best_per_column
    rows = table_rows(run_id, stamp, region)
    best = best_per_column(rows)
    labels = {c.key: c.label for c in COLUMNS}
    shown_cols = [c for c in COLUMNS if c.key != "technique"                 # the variant's name says it
                  and (c.key != "check_accuracy" or any(r.get(c.key) is not None for r in rows))]
    df = pd.DataFrame(rows)[[c.key for c in shown_cols]]
    shown = pd.DataFrame(index=df.index)
    for c in shown_cols:
        vals = df[c.key]
        if c.kind == "pct":
            col = vals.map(lambda v: common.fmt_pct(v, 2))
        elif c.kind == "bytes":
            col = vals.map(common.fmt_bytes)
        elif c.kind == "ms":
            col = vals.map(lambda v: "–" if v is None or pd.isna(v) else f"{v:.2f} ms")
        elif c.kind == "joules":
            unit = common.energy_unit(vals)
            col = vals.map(lambda v, u=unit: common.fmt_energy(v, u))
        elif c.kind == "grams":
            unit = common.co2_unit(vals)
            col = vals.map(lambda v, u=unit: common.fmt_co2(v, u))
        elif c.kind == "float":
            col = vals.map(lambda v: "–" if v is None or pd.isna(v) else f"{v:.3f}" if v < 100 else f"{v:,.0f}")
        else:
            col = vals.fillna("")
        if c.better:
            col = pd.Series([f"★ {v}" if i in best[c.key] and len(rows) > 1 else v for i, v in col.items()],
                            index=df.index)
        shown[labels[c.key]] = col
    css = pd.DataFrame("", index=shown.index, columns=shown.columns)
    if len(rows) > 1:
        for c in RANKED:
            if labels[c.key] not in css.columns:
                continue
            for i in best[c.key]:
                css.loc[i, labels[c.key]] = "background-color: #dcefe2; font-weight: 600"
    return shown, css


@st.cache_resource(show_spinner=False, max_entries=64)
def pareto_figures(run_id: str, stamp: str, region: str) -> tuple:
    """(accuracy against size, accuracy against latency or None)."""
    from core.evaluation.compare import pareto_front
    rows = table_rows(run_id, stamp, region)
    front = pareto_front(rows, "size_bytes", "test_accuracy")
    pts = [dict(r, size_kb=r["size_bytes"] / 1024 if r.get("size_bytes") else None) for r in rows]
    size = charts.pareto_scatter(pts, "size_kb", "test_accuracy", front, "model size (KB)", "test accuracy",
                                 log_x=True, x_fmt=":,.0f", title="Accuracy against size")
    latency = None
    if any(r.get("latency_ms_p50") is not None for r in rows):
        front = pareto_front(rows, "latency_ms_p50", "test_accuracy")
        latency = charts.pareto_scatter(rows, "latency_ms_p50", "test_accuracy", front, "latency p50 (ms per image)",
                                        "test accuracy", x_fmt=":.2f", title="Accuracy against latency")
    return size, latency


@st.cache_resource(show_spinner=False, max_entries=64)
def energy_figure(run_id: str, stamp: str, region: str, key: str, axis: str):
    """Accuracy against one energy axis, or None if no variant has it."""
    from core.evaluation.compare import pareto_front
    rep = _rep(run_id, stamp)
    rows = table_rows(run_id, stamp, region)
    pts = [dict(r, **{key: r.get(key, v.get(key))}) for r, v in zip(rows, rep.variants)]
    if not any(r.get(key) is not None for r in pts):
        return None
    return charts.pareto_scatter(pts, key, "test_accuracy", pareto_front(pts, key, "test_accuracy"),
                                 f"energy {axis} (J)", "test accuracy", x_fmt=":,.3g",
                                 title=f"Accuracy against energy {axis}")


@st.cache_resource(show_spinner=False, max_entries=64)
def confusion_figure(run_id: str, stamp: str, variant: str, normalised: bool):
    from core.evaluation.compare import normalise_rows
    rep = _rep(run_id, stamp)
    cm = rep.variant(variant)["confusion_matrix"]
    return charts.confusion_heatmap(cm, rep.class_names, normalised, normalise_rows(cm))


@st.cache_data(show_spinner=False, max_entries=32)
def per_class_frame(run_id: str, stamp: str) -> pd.DataFrame:
    return pd.DataFrame(_rep(run_id, stamp).per_class_rows())


@st.cache_data(show_spinner=False, max_entries=32)
def download_texts(run_id: str, stamp: str, region: str) -> dict[str, str]:
    """The Downloads tab's files (built only when the run changes)."""
    import json

    from core.evaluation.compare import to_csv
    rep = _rep(run_id, stamp)
    full = {"run_id": run_id, "config": rep.config, "run": rep.run, "metrics": rep.metrics, "variants": rep.variants}
    return {"variants": to_csv(table_rows(run_id, stamp, region)), "per_class": to_csv(rep.per_class_rows()),
            "json": json.dumps(full, indent=1, default=float), "history": to_csv(rep.history.get("epochs") or [])}

