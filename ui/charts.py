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
    fig.update_xaxes(automargin=True)           # tick labels and titles get the room they need, at any width
    fig.update_yaxes(automargin=True)
    return fig


def accuracy_axis(ys: list[float]) -> tuple[list[float], list[float]]:
    """(range, tick values) for an accuracy axis: from a little under the lowest value to 100% at most, with
    ticks that never read more than 100% (the markers at 100% are drawn over the edge, not clipped)."""
    import math
    lo = max(0.0, min(ys) - 0.05) if ys else 0.0
    hi = min(1.0, max(ys) + 0.03) if ys else 1.0
    span = max(hi - lo, 1e-3)
    step = next(s for s in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25) if span / s <= 6)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = [round(first + k * step, 6) for k in range(int((hi - first) / step + 1e-9) + 1)]
    return [lo, hi], [t for t in ticks if t <= 1.0 + 1e-9]


# text positions for a point's label, tried in this order, with the label box's vertical side (1 above, -1 below)
_SPOTS = [("top center", 1.0), ("bottom center", -1.0), ("top right", 1.0), ("top left", 1.0),
          ("bottom right", -1.0), ("bottom left", -1.0), ("middle right", 0.0), ("middle left", 0.0)]


def label_positions(points: list[tuple[float, float, str]], width_px: float = 320, height_px: float = 300,
                    font_px: float = 11) -> list[str]:
    """A text position for each (x, y, label) point, both in 0..1 of the plot area: the first spot whose label box
    stays inside the plot horizontally and overlaps no label placed before (points taken left to right). Plotly
    does not avoid collisions itself; this keeps "tflite_dynamic" from running off the edge or over its neighbour."""
    mw, mh = 16 / width_px, 16 / height_px                        # the other points' markers are obstacles too
    markers = [(x - mw / 2, x + mw / 2, y - mh / 2, y + mh / 2) for x, y, _ in points]
    placed: list[tuple[float, float, float, float]] = []
    out: list[str] = [""] * len(points)
    for i in sorted(range(len(points)), key=lambda k: points[k][0]):
        x, y, text = points[i]
        w = (len(text) * font_px * 0.58 + 4) / width_px
        h = (font_px * 1.3) / height_px
        best = None
        for spot, dy in _SPOTS:
            cx = x + (w / 2 + 0.01 if "right" in spot else -(w / 2 + 0.01) if "left" in spot else 0.0)
            cy = y + dy * (h * 0.5 + mh * 0.5 + 0.004)
            box = (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2)
            inside = box[0] >= -0.01 and box[1] <= 1.01 and box[3] <= 1.08 and box[2] >= -0.05
            others = placed + [m for k, m in enumerate(markers) if k != i]
            clear = not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in others)
            if inside and clear:
                best = (spot, box)
                break
            if best is None and inside:
                best = (spot, box)
        spot, box = best or ("top center", (x - w / 2, x + w / 2, y, y + h))
        placed.append(box)
        out[i] = spot
    return out


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
    last = max(x, default=1)
    if fine_tune_start is not None and epochs:
        for col in (1, 2):
            fig.add_vline(x=fine_tune_start + 0.5, line=dict(color="#d9822b", dash="dot", width=2), row=1, col=col)
        # the label reads away from the nearer edge; with the range fixed below, its text never widens the axis
        fig.add_annotation(x=fine_tune_start + 0.5, y=1.0, yref="y2 domain", xref="x2", text="fine-tuning starts",
                           showarrow=False, xanchor="left" if fine_tune_start < last / 2 else "right",
                           font=dict(color="#d9822b", size=12))
    fig.update_xaxes(title_text="epoch", range=[0, last + 0.5], tick0=0,
                     dtick=max(1, round(len(x) / 6)) if x else 1)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1.0], side="right", row=1, col=2)
    # (the accuracy ticks on the right: on a phone they would otherwise sit on the loss plot)
    _layout(fig, height)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="center", x=0.5),
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


def pareto_scatter(rows: list[dict], x: str, y: str, front: list[int], x_title: str, y_title: str,
                   log_x: bool = False, x_fmt: str = "", title: str = "") -> go.Figure:
    """Variants as points; the Pareto front (better accuracy for less cost) as a line through its points.

    Every point is labelled with its variant, placed so labels neither leave the plot nor overlap where that can
    be helped; the accuracy axis stops at 100%; the legend sits under the plot, so a phone keeps the plot's width."""
    import math
    fig = go.Figure()
    pts = [(i, r) for i, r in enumerate(rows) if r.get(x) is not None and r.get(y) is not None
           and (not log_x or float(r[x]) > 0)]
    on_front = set(front)
    ys = [float(r[y]) for _, r in pts]
    (lo, hi), ticks = accuracy_axis(ys)
    xs = [float(r[x]) for _, r in pts]
    xrange = None
    if xs:
        if log_x:
            a, b = math.log10(min(xs)), math.log10(max(xs))
            pad = max((b - a) * 0.15, 0.1)
        else:
            a, b = min(xs), max(xs)
            pad = max((b - a) * 0.15, abs(b) * 0.1, 1e-6)
        xrange = [a - pad, b + pad]

    def norm_x(v: float) -> float:
        if not xrange:
            return 0.5
        v = math.log10(v) if log_x else v
        return (v - xrange[0]) / (xrange[1] - xrange[0])

    spots = label_positions([(norm_x(float(r[x])), (float(r[y]) - lo) / max(hi - lo, 1e-9), r["name"]) for _, r in pts])
    for (i, r), spot in zip(pts, spots):
        star = i in on_front
        fig.add_scatter(x=[r[x]], y=[r[y]], mode="markers+text", name=r["name"], text=[r["name"]],
                        textposition=spot, showlegend=True, cliponaxis=False,
                        textfont=dict(size=11, color="#1d2b23" if star else "#5f6b64"),
                        marker=dict(size=14 if star else 10, color=PALETTE[i % len(PALETTE)],
                                    symbol="star" if star else "circle", line=dict(color="white", width=1)),
                        hovertemplate=f"<b>{r['name']}</b><br>{x_title}: %{{x{x_fmt}}}<br>{y_title}: %{{y:.2%}}"
                                      f"{'<br>on the Pareto front' if star else ''}<extra></extra>")
    if len(front) >= 1:
        fx = [rows[i][x] for i in front]
        fy = [rows[i][y] for i in front]
        fig.add_scatter(x=fx, y=fy, mode="lines", name="Pareto front", line=dict(color="#d9822b", dash="dash",
                                                                                 width=2, shape="hv"),
                        hoverinfo="skip", cliponaxis=False)
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear", range=xrange)
    fig.update_yaxes(title_text=y_title, tickformat=".0%", range=[lo, hi], tickvals=ticks)
    _layout(fig, 420, title=dict(text=title, x=0, font=dict(size=14)) if title else None)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0, font=dict(size=11)),
                      margin=dict(l=10, r=20, t=50, b=10))
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
    fig.update_xaxes(range=[0, 1], tickformat=".0%", showgrid=True, automargin=True, tickvals=[0, 0.5, 1])
    fig.update_yaxes(automargin=True)
    fig.update_layout(height=height or (60 + 34 * len(classes)), margin=dict(l=10, r=24, t=30 if title else 6, b=6),
                      font=FONT, template="plotly_white", showlegend=False,
                      title=dict(text=title, x=0, font=dict(size=13)) if title else None)
    return fig


def sweep_scatter(points: list[dict], x: str, y: str, front_2d: list[int], x_title: str, y_title: str,
                  x_scale: float = 1.0, x_fmt: str = ":,.3g", title: str = "") -> go.Figure:
    """Every variant of every run of a sweep: one colour per run, stars on the front over all the objectives, and the
    front on the two shown axes as a dashed line. Points without a value on an axis are left out (log axis)."""
    import math
    fig = go.Figure()
    shown = [(i, p) for i, p in enumerate(points) if (p.get(x) or 0) > 0 and p.get(y) is not None]
    runs = list(dict.fromkeys(p["run_id"] for p in points))        # a run keeps its colour on every axis
    seen: set[tuple] = set()

    def symbol(p: dict) -> str:
        """A star on the front; a ring around a point drawn already at the same place (two runs that differ only
        in their compression share their original model), so neither hides the other."""
        spot = (round(float(p[x]), 9), round(float(p[y]), 9))
        again = spot in seen
        seen.add(spot)
        return ("star-open" if again else "star") if p.get("on_front") else ("circle-open" if again else "circle")
    for k, run_id in enumerate(runs):
        pts = [(i, p) for i, p in shown if p["run_id"] == run_id]
        if not pts:
            continue
        symbols = [symbol(p) for _, p in pts]
        order = sorted(range(len(pts)), key=lambda j: symbols[j].endswith("-open"))   # the legend shows the first
        pts, symbols = [pts[j] for j in order], [symbols[j] for j in order]
        fig.add_scatter(
            x=[p[x] * x_scale for _, p in pts], y=[p[y] for _, p in pts], mode="markers", cliponaxis=False,
            name=str(pts[0][1].get("run_label") or run_id), legendgroup=run_id,
            marker=dict(color=PALETTE[k % len(PALETTE)], symbol=symbols,
                        size=[(15 if p.get("on_front") else 10) + (8 if s.endswith("-open") else 0)
                              for (_, p), s in zip(pts, symbols)],
                        line=dict(color=[PALETTE[k % len(PALETTE)] if s.endswith("-open") else "white"
                                         for s in symbols], width=[2.5 if s.endswith("-open") else 1
                                                                   for s in symbols])),
            customdata=[[p["variant"], p.get("run_label") or run_id, "on the front" if p.get("on_front") else ""]
                        for _, p in pts],
            hovertemplate=f"<b>%{{customdata[1]}}</b><br>%{{customdata[0]}}<br>{x_title}: %{{x{x_fmt}}}<br>"
                          f"{y_title}: %{{y:.2%}}<br>%{{customdata[2]}}<extra></extra>")
    line = [i for i in front_2d if (points[i].get(x) or 0) > 0 and points[i].get(y) is not None]
    if line:
        fig.add_scatter(x=[points[i][x] * x_scale for i in line], y=[points[i][y] for i in line], mode="lines",
                        name="front on these axes", line=dict(color="#d9822b", dash="dash", width=2, shape="hv"),
                        hoverinfo="skip", cliponaxis=False)
    (lo, hi), ticks = accuracy_axis([float(p[y]) for _, p in shown])
    xs = [math.log10(p[x] * x_scale) for _, p in shown]
    pad = max((max(xs) - min(xs)) * 0.08, 0.05) if xs else 0.0
    fig.update_xaxes(title_text=x_title, type="log", range=[min(xs) - pad, max(xs) + pad] if xs else None)
    fig.update_yaxes(title_text=y_title, tickformat=".0%", range=[lo, hi], tickvals=ticks)
    _layout(fig, 460, title=dict(text=title, x=0, font=dict(size=14)) if title else None)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0, font=dict(size=11),
                                  itemsizing="constant"), margin=dict(l=10, r=20, t=50, b=10))
    return fig
