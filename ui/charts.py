"""Plotly figures for the dashboard (pure functions of data; no Streamlit calls)."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ["#2f7d4f", "#3b6fb6", "#d9822b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b", "#2c3e50",
           "#e84393"]
SPLIT_COLORS = {"train": "#2f7d4f", "val": "#8fbf9f", "test": "#3b6fb6"}
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13)


def _layout(fig: go.Figure, height: int = 340, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), font=FONT, template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1), **kw)
    return fig


def counts_bar(class_names: list[str], counts: dict[str, list[int]]) -> go.Figure:
    fig = go.Figure()
    for split in ("train", "val", "test"):
        if split in counts:
            fig.add_bar(name=split, x=class_names, y=counts[split], marker_color=SPLIT_COLORS[split],
                        hovertemplate="%{x}<br>" + split + ": %{y} images<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title=None, yaxis_title="images")
    return _layout(fig, 320, title=dict(text="Images per class and split", x=0, font=dict(size=14)))


def learning_curves(epochs: list[dict], fine_tune_start: int | None = None, height: int = 320) -> go.Figure:
    """Loss and accuracy per epoch (train solid, validation dashed), with the fine-tuning start marked."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    x = [e.get("epoch", i + 1) for i, e in enumerate(epochs)]
    for col, metric in ((1, "loss"), (2, "accuracy")):
        for key, name, dash, color in ((metric, "train", "solid", "#2f7d4f"), (f"val_{metric}", "validation", "dash",
                                                                                "#3b6fb6")):
            ys = [e.get(key) for e in epochs]
            if any(v is not None for v in ys):
                fig.add_scatter(x=x, y=ys, mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                                line=dict(dash=dash, color=color, width=2), marker=dict(size=5), row=1, col=col,
                                hovertemplate=f"epoch %{{x}}<br>{name} {metric}: %{{y:.4f}}<extra></extra>")
    if fine_tune_start is not None and epochs:
        for col in (1, 2):
            fig.add_vline(x=fine_tune_start + 0.5, line=dict(color="#d9822b", dash="dot", width=2), row=1, col=col)
        fig.add_annotation(x=fine_tune_start + 0.5, y=1.0, yref="y2 domain", xref="x2", text="fine-tuning starts",
                           showarrow=False, xanchor="left", font=dict(color="#d9822b", size=12))
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    _layout(fig, height)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="center", x=0.5),
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


def pareto_scatter(rows: list[dict], x: str, y: str, front: list[int], x_title: str, y_title: str,
                   log_x: bool = False, x_fmt: str = "", title: str = "") -> go.Figure:
    """Variants as points; the Pareto front (better accuracy for less cost) as a line through its points."""
    fig = go.Figure()
    pts = [(i, r) for i, r in enumerate(rows) if r.get(x) is not None and r.get(y) is not None]
    on_front = set(front)
    for i, r in pts:
        star = i in on_front
        fig.add_scatter(x=[r[x]], y=[r[y]], mode="markers+text" if star else "markers", name=r["name"],
                        text=[r["name"]] if star else None, textposition="top center", showlegend=True,
                        textfont=dict(size=11),
                        marker=dict(size=14 if star else 10, color=PALETTE[i % len(PALETTE)],
                                    symbol="star" if star else "circle", line=dict(color="white", width=1)),
                        hovertemplate=f"<b>{r['name']}</b><br>{x_title}: %{{x{x_fmt}}}<br>{y_title}: %{{y:.2%}}"
                                      f"{'<br>on the Pareto front' if star else ''}<extra></extra>")
    if len(front) >= 1:
        fx = [rows[i][x] for i in front]
        fy = [rows[i][y] for i in front]
        fig.add_scatter(x=fx, y=fy, mode="lines", name="Pareto front", line=dict(color="#d9822b", dash="dash",
                                                                                 width=2, shape="hv"),
                        hoverinfo="skip")
    ys = [float(r[y]) for _, r in pts]
    lo = max(0.0, min(ys) - 0.05) if ys else 0.0
    hi = min(1.01, max(ys) + 0.03) if ys else 1.01     # an accuracy axis never shows more than 100%
    xs = [float(r[x]) for _, r in pts if float(r[x]) > 0 or not log_x]
    xrange = None
    if xs:
        import math
        if log_x:
            a, b = math.log10(min(xs)), math.log10(max(xs))
            pad = max((b - a) * 0.12, 0.08)
        else:
            a, b = min(xs), max(xs)
            pad = max((b - a) * 0.12, abs(b) * 0.1, 1e-6)
        xrange = [a - pad, b + pad]
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear", range=xrange)
    fig.update_yaxes(title_text=y_title, tickformat=".0%", range=[lo, hi])
    _layout(fig, 400, title=dict(text=title, x=0, font=dict(size=14)) if title else None)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02, font=dict(size=11)),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def confusion_heatmap(cm: list[list[int]], class_names: list[str], normalised: bool,
                      norm: list[list[float]] | None = None) -> go.Figure:
    z = norm if normalised else cm
    n = len(class_names)
    text = [[(f"{norm[i][j]:.0%}" if normalised else str(cm[i][j])) for j in range(n)] for i in range(n)]
    custom = [[[cm[i][j], (norm[i][j] if norm else 0.0)] for j in range(n)] for i in range(n)]
    fig = go.Figure(go.Heatmap(
        z=z, x=class_names, y=class_names, text=text, texttemplate="%{text}" if n <= 20 else None,
        colorscale=[[0, "#f4f8f5"], [0.5, "#8fbf9f"], [1, "#1f5e3a"]], showscale=True, hoverinfo="skip",
        zmin=0, zmax=1 if normalised else None, xgap=1, ygap=1))
    size = max(320, min(720, 60 * n + 140))
    # Plotly reports no selection for heatmap cells: invisible square markers on the cells carry the hover text
    # and make a click select a cell (st.plotly_chart(on_select=...) then returns its true/predicted classes).
    fig.add_scatter(
        x=[class_names[j] for i in range(n) for j in range(n)], y=[class_names[i] for i in range(n) for j in range(n)],
        customdata=[custom[i][j] for i in range(n) for j in range(n)], mode="markers", showlegend=False,
        marker=dict(symbol="square", size=max(8, 0.9 * (size - 110) / max(n, 1)), opacity=0.0),
        hovertemplate="true: <b>%{y}</b><br>predicted: <b>%{x}</b><br>count: %{customdata[0]}"
                      "<br>share of the true class: %{customdata[1]:.1%}<extra></extra>")
    fig.update_xaxes(title_text="predicted class", side="bottom", tickangle=-30 if n > 6 else 0, showgrid=False,
                     range=[-0.5, n - 0.5], zeroline=False)
    fig.update_yaxes(title_text="true class", range=[n - 0.5, -0.5], showgrid=False, zeroline=False)
    _layout(fig, size)
    fig.update_layout(clickmode="event+select", dragmode=False)
    return fig


def topk_bars(top_k: list[dict], title: str = "", height: int | None = None) -> go.Figure:
    classes = [t["class"] for t in top_k][::-1]
    probs = [float(t["probability"]) for t in top_k][::-1]
    colors = ["#c7dccd"] * (len(probs) - 1) + ["#2f7d4f"] if probs else []
    fig = go.Figure(go.Bar(x=probs, y=classes, orientation="h", marker_color=colors,
                           text=[f"{p:.1%}" for p in probs], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", showgrid=True)
    fig.update_layout(height=height or (60 + 34 * len(classes)), margin=dict(l=10, r=10, t=30 if title else 6, b=6),
                      font=FONT, template="plotly_white", showlegend=False,
                      title=dict(text=title, x=0, font=dict(size=13)) if title else None)
    return fig
