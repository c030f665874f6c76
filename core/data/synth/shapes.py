"""Hand-drawn circles, squares and triangles on paper: a synthetic stand-in for Kaggle "Basic Shapes".

Every image is drawn with its own `np.random.default_rng([seed, index])`, so output is reproducible
and each image could be rendered independently. Size, position, rotation, pen, paper and fill are
sampled independently of the class; only the outline geometry carries the label.
"""
from __future__ import annotations

import functools

import numpy as np

from .batch import render_all
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle")

_SS = 2  # supersampling factor: draw at 2x, downsample for anti-aliasing

# (rgb, probability): dark pens mostly, sometimes coloured ones.
_INKS: tuple[tuple[tuple[int, int, int], float], ...] = (
    ((25, 25, 30), 0.30),     # black pen / marker
    ((70, 70, 75), 0.15),     # graphite pencil
    ((25, 40, 120), 0.20),    # blue ballpoint
    ((170, 30, 35), 0.09),    # red
    ((30, 110, 55), 0.08),    # green
    ((90, 40, 130), 0.06),    # purple
    ((210, 100, 20), 0.06),   # orange marker
    ((20, 110, 150), 0.06),   # teal
)
_PAPERS: tuple[tuple[int, int, int], ...] = (
    (245, 245, 240), (250, 248, 238), (240, 232, 210), (225, 225, 222), (232, 238, 245), (248, 244, 230),
)


def generate(n_per_class: int, size: int = 128, seed: int = 0,
             progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, size, size, 3), labels int64 (N,)) with N = n_per_class * 3.

    Labels are class-interleaved (0, 1, 2, 0, 1, 2, ...). Image i is drawn from
    `np.random.default_rng([seed, i])`; seed must be a non-negative integer.
    """
    return render_all(render, len(CLASS_NAMES), n_per_class, size, seed, progress)


def render(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one shape of class `label` as a (size, size, 3) uint8 array."""
    big = size * _SS
    ink_rgb, opacity, pencil = _sample_pen(rng)
    width = big * rng.uniform(0.007, 0.028) * (0.8 if pencil else 1.0)

    # Geometry: bounding half-extent, centre, rotation (all class-independent).
    half = big * rng.uniform(0.17, 0.40)
    margin = half * 1.15 + width
    centre = rng.uniform(margin, big - margin, size=2) if big - 2 * margin > 0 else np.full(2, big / 2)
    angle = rng.normal(0, 0.2) if rng.random() < 0.65 else rng.uniform(0, 2 * np.pi)
    aspect = np.exp(rng.normal(0, 0.1))
    to_canvas = _placement(centre, half, angle, aspect)

    ink = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(ink)
    wobble = half * rng.uniform(0.01, 0.05)
    if label == 0:
        strokes = [_circle_stroke(rng, wobble / half)]
    else:
        verts = _square_vertices() if label == 1 else _triangle_vertices(rng)
        verts = verts + rng.normal(0, 0.03, verts.shape)
        if rng.random() < 0.5:
            strokes = [_polygon_stroke(verts, rng, wobble / half)]
        else:
            strokes = _edge_strokes(verts, rng, wobble / half)
    strokes = [to_canvas(s) for s in strokes]
    # Nudge the drawing back inside the sheet if rotation pushed a corner off the edge.
    pts = np.vstack(strokes)
    pad = width + big * 0.02
    shift = np.maximum(0, pad - pts.min(0)) - np.maximum(0, pts.max(0) - (big - pad))
    strokes = [s + shift for s in strokes]

    fill = rng.random()
    if fill < 0.15:  # coloured in with dense marker strokes
        _hatch(ink, strokes, rng, width, dense=True)
    elif fill < 0.27:  # hatched
        _hatch(ink, strokes, rng, width, dense=False)
    for s in strokes:
        _pen_line(draw, s, width, rng)
    if rng.random() < 0.2:  # traced over a second time
        for s in strokes:
            retrace = s + rng.normal(0, wobble * 0.6, 2) + _smooth_noise(rng, len(s), wobble * 0.4)
            _pen_line(draw, retrace, width * 0.8, rng)

    small = ink.resize((size, size), Image.BOX)
    if rng.random() < 0.3:  # slightly out of focus
        small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * size / 128))
    alpha = np.asarray(small, dtype=np.float32) * np.float32(opacity / 255.0)
    if pencil:
        alpha *= rng.uniform(0.55, 1.0, alpha.shape).astype(np.float32)
    alpha = np.maximum(alpha, _stray_marks(rng, size))

    paper = _paper(rng, size)
    # Channel-first (3, H, W) float32 keeps the numpy loops contiguous and fast.
    absorb = 1.0 - np.asarray(ink_rgb, np.float32)[:, None, None] / 255.0  # multiplicative ink on paper
    img = paper * (1.0 - alpha * absorb)
    img *= _illumination(rng, size)
    grain = rng.random(img.shape, dtype=np.float32) - 0.5  # uniform sensor/paper grain
    img += grain * np.float32(rng.uniform(5, 20))
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))


# ---------------------------------------------------------------- geometry (unit coordinates, ~[-1, 1])

def _placement(centre: np.ndarray, half: float, angle: float, aspect: float):
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, -s], [s, c]]) @ np.diag([half * aspect ** 0.5, half / aspect ** 0.5])
    return lambda pts: pts @ m.T + centre


def _square_vertices() -> np.ndarray:
    return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)


def _triangle_vertices(rng: np.random.Generator) -> np.ndarray:
    """Upright triangle with base at the bottom: equilateral-ish, isosceles, right-angled or scalene."""
    apex_x = rng.choice([rng.uniform(-0.15, 0.15), rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.0),
                         rng.uniform(-0.7, 0.7)], p=[0.55, 0.15, 0.30])
    return np.array([[apex_x, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * [1.0, 0.9]


def _smooth_noise(rng: np.random.Generator, n: int, amp: float, k: int = 9) -> np.ndarray:
    """(n, 2) smooth tremor: Gaussian noise convolved with a short box kernel."""
    raw = rng.normal(0, 1, (n + k - 1, 2))
    kernel = np.ones(k) / np.sqrt(k)
    return np.stack([np.convolve(raw[:, j], kernel, "valid") for j in range(2)], 1) * amp


def _wobble(rng: np.random.Generator, t: np.ndarray, amp: float) -> np.ndarray:
    """Low-frequency periodic displacement (sum of harmonics) plus a drift, so closure is imperfect."""
    d = np.zeros((len(t), 2))
    for k in range(1, 7):
        a = rng.normal(0, amp / k ** 1.1, 2)
        phase = rng.uniform(0, 2 * np.pi, 2)
        d += a * np.sin(2 * np.pi * k * t[:, None] + phase)
    d += np.outer(t, rng.normal(0, amp * 1.2, 2))
    return d + _smooth_noise(rng, len(t), amp * 0.15)


def _circle_stroke(rng: np.random.Generator, amp: float) -> np.ndarray:
    t = np.linspace(0, 1 + rng.uniform(-0.05, 0.15), 150)
    theta = rng.uniform(0, 2 * np.pi) + rng.choice([-1, 1]) * 2 * np.pi * t
    pts = np.stack([np.cos(theta), np.sin(theta)], 1)
    # Hand-drawn circles are often a little egg-shaped.
    pts *= 1 + rng.normal(0, 0.04) * np.cos(theta - rng.uniform(0, np.pi))[:, None]
    return pts + _wobble(rng, t, amp)


def _polygon_stroke(verts: np.ndarray, rng: np.random.Generator, amp: float) -> np.ndarray:
    """One continuous stroke around the polygon, from a random start, slightly over/under-closed."""
    closed = np.vstack([verts, verts[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)]) / seg.sum()
    t = np.linspace(0, 1 + rng.uniform(-0.04, 0.1), 160)
    u = (t + rng.uniform(0, 1)) % 1.0
    pts = np.stack([np.interp(u, cum, closed[:, j]) for j in range(2)], 1)
    return pts + _wobble(rng, t, amp)


def _edge_strokes(verts: np.ndarray, rng: np.random.Generator, amp: float) -> list[np.ndarray]:
    """One stroke per edge, each slightly bowed and over/under-shooting the corners."""
    strokes = []
    for a, b in zip(verts, np.roll(verts, -1, axis=0)):
        d = b - a
        s = np.linspace(-rng.uniform(-0.03, 0.1), 1 + rng.uniform(-0.03, 0.12), 40)
        normal = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
        bow = rng.normal(0, amp * 1.5) * np.sin(np.pi * np.clip(s, 0, 1))
        strokes.append(a + np.outer(s, d) + np.outer(bow, normal) + _smooth_noise(rng, len(s), amp * 0.2))
    return strokes


def _hull(strokes: list[np.ndarray]) -> list[tuple[float, float]]:
    """Polygon through the mid-points of the edge strokes' corners (for filling separate strokes)."""
    return [tuple((s[0] + p[-1]) / 2) for s, p in zip(strokes, [strokes[-1]] + strokes[:-1])]


# ---------------------------------------------------------------- drawing

def _sample_pen(rng: np.random.Generator) -> tuple[tuple[int, int, int], float, bool]:
    probs = np.array([p for _, p in _INKS])
    i = rng.choice(len(_INKS), p=probs / probs.sum())
    rgb = tuple(int(np.clip(c + rng.normal(0, 12), 0, 255)) for c in _INKS[i][0])
    pencil = i == 1
    opacity = rng.uniform(0.45, 0.8) if pencil else rng.uniform(0.8, 1.0)
    return rgb, opacity, pencil


def _pen_line(draw: ImageDraw.ImageDraw, pts: np.ndarray, width: float, rng: np.random.Generator) -> None:
    """Polyline in chunks whose width follows a smooth pressure curve, with round caps."""
    n_chunks = max(1, len(pts) // 25)
    pressure = 1 + 0.25 * np.sin(np.linspace(0, rng.uniform(2, 8), n_chunks) + rng.uniform(0, 6))
    if n_chunks > 2:  # the pen lands and lifts a little lighter
        pressure[[0, -1]] *= 0.75
    bounds = np.linspace(0, len(pts) - 1, n_chunks + 1).astype(int)
    for (i, j), p in zip(zip(bounds[:-1], bounds[1:]), pressure):
        w = max(1, int(round(width * p)))
        draw.line(pts[i:j + 1].ravel().tolist(), fill=255, width=w, joint="curve")
        r = w / 2
        for q in (pts[i], pts[j]):
            draw.ellipse((q[0] - r, q[1] - r, q[0] + r, q[1] + r), fill=255)


def _hatch(ink: Image.Image, strokes: list[np.ndarray], rng: np.random.Generator, width: float,
           dense: bool) -> None:
    """Parallel hatching clipped to the shape; `dense` overlapping strokes of varying ink read as a fill."""
    big = ink.size[0]
    shape = Image.new("L", ink.size, 0)
    poly = [tuple(p) for p in strokes[0]] if len(strokes) == 1 else _hull(strokes)
    ImageDraw.Draw(shape).polygon(poly, fill=255)
    lines = Image.new("L", ink.size, 0)
    d = ImageDraw.Draw(lines)
    theta = rng.uniform(0, np.pi)
    direction, normal = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    spacing = big * (rng.uniform(0.012, 0.02) if dense else rng.uniform(0.025, 0.05))
    line_w = max(2, int(spacing * 2.2)) if dense else max(1, int(width * 0.7))
    for off in np.arange(-big, big, spacing):
        c = np.array([big / 2, big / 2]) + normal * (off + rng.normal(0, spacing * 0.15))
        value = int(rng.uniform(200, 240)) if dense else 255
        d.line([tuple(c - direction * big), tuple(c + direction * big)], fill=value, width=line_w)
    hatch = np.minimum(np.asarray(lines), np.asarray(shape))
    ink.paste(Image.fromarray(np.maximum(np.asarray(ink), hatch)))


def _stray_marks(rng: np.random.Generator, size: int) -> np.ndarray:
    """Occasional faint short pencil strokes and dots (an alpha map at output size)."""
    layer = Image.new("L", (size, size), 0)
    if rng.random() < 0.35:
        d = ImageDraw.Draw(layer)
        for _ in range(rng.integers(1, 4)):
            p = rng.uniform(0, size, 2)
            if rng.random() < 0.6:
                v = rng.normal(0, size * 0.08, 2)
                s = np.linspace(0, 1, 12)[:, None]
                pts = p + s * v + np.outer(np.sin(np.pi * s[:, 0]), rng.normal(0, size * 0.01, 2))
                d.line([tuple(q) for q in pts], fill=int(rng.uniform(40, 90)), width=1)
            else:
                r = rng.uniform(0.5, 1.5) * size / 128
                d.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=int(rng.uniform(40, 110)))
    return np.asarray(layer, dtype=np.float32) / 255.0


# ---------------------------------------------------------------- paper and camera

def _low_freq(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in ~[-1, 1]: a small random grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    up = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 127.5 - 1.0


def _paper(rng: np.random.Generator, size: int) -> np.ndarray:
    """Paper colour with fibre texture, sometimes ruled or squared, as float32 (3, size, size)."""
    base = (np.asarray(_PAPERS[rng.integers(len(_PAPERS))]) + rng.normal(0, 5, 3)).astype(np.float32)
    texture = 1 + 0.02 * _low_freq(rng, size, 6) + 0.015 * _low_freq(rng, size, 24)
    paper = base[:, None, None] * texture
    kind = rng.random()
    if kind < 0.25:  # ruled (or, a third of the time, squared) paper, slightly rotated in the photo
        yy, xx = _grid(size)
        theta = rng.normal(0, 0.03)
        step = size * rng.uniform(0.06, 0.12)
        colour = np.asarray([[150, 180, 215], [175, 175, 180], [160, 200, 190]][rng.integers(3)], np.float32)
        absorb = (1.0 - colour / 255.0) * np.float32(rng.uniform(0.4, 0.8))
        lines = _rule_lines((np.cos(theta) * yy + np.sin(theta) * xx) * size, step, rng.uniform(0, step))
        if kind < 0.08:
            lines = np.maximum(lines, _rule_lines((np.cos(theta) * xx - np.sin(theta) * yy) * size, step, 0.0))
        paper *= 1.0 - lines * absorb[:, None, None]
    return paper


def _rule_lines(u: np.ndarray, step: float, offset: float) -> np.ndarray:
    """Anti-aliased 1-px lines wherever coordinate `u` (pixels) is a multiple of `step` (plus offset)."""
    d = np.mod(u - offset, step)
    return np.clip(1.0 - np.minimum(d, step - d), 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in [-0.5, 0.5)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    return yy, xx


def _illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uneven lighting of the photographed sheet: exposure, linear gradient, vignette, soft shadow."""
    yy, xx = _grid(size)
    g = rng.normal(0, 0.12, 2)
    light = rng.uniform(0.8, 1.05) * (1 + g[0] * xx + g[1] * yy - rng.uniform(0, 0.35) * (xx ** 2 + yy ** 2))
    if rng.random() < 0.15:  # soft shadow of a hand/phone across one side
        theta = rng.uniform(0, 2 * np.pi)
        edge = np.cos(theta) * xx + np.sin(theta) * yy - rng.uniform(0.15, 0.45)
        light *= 1 - rng.uniform(0.1, 0.25) / (1 + np.exp(-edge * 25))
    return light.astype(np.float32)
