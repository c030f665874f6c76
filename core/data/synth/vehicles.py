"""`vehicle_colors_synthetic`: rear views, and close fronts seen from above, of cars in eight body colours.

The car is a flat, slightly tilted plane (a homography maps car units to pixels): body, cabin and
rear window are painted as shaded fields (lighting gradient, horizon reflection, specular
highlights, sometimes a hard key light), the rest (tail lights, plate, tyres, bumper trim) as flat
shapes. Half the cars are fronts as a parking-garage camera sees them (`FRONT_SHARE`): close, from above, the hood
a tall field of paint, headlamps (often lit), a dark grille, the roof above the frame, mostly over a concrete floor
with a yellow-and-black wheel stop and sometimes a barrier arm in front. Greens reach into lime, and a third of the
reds are dark (maroon, wine). Scenes (street, road, car park, garage with shelves and boxes, plain backdrop, sometimes dimmed,
sometimes with posts in front of the car), the car's size in the frame, lighting and the camera (exposure,
a continuous white-balance cast, noise, JPEG) are sampled independently of the class; only the paint
carries the label. Every image is drawn with its own `np.random.default_rng([seed, index])`.
"""
from __future__ import annotations

import colorsys
import functools
import io
import math
from typing import NamedTuple

import numpy as np

from .batch import render_all
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES: tuple[str, ...] = ("black", "blue", "green", "grey", "orange", "red", "silver", "white")

_SS = 2  # supersampling factor: draw at 2x, downsample for anti-aliasing
FRONT_SHARE = 0.5  # fronts seen from above and close (the real check photos: a parking-garage camera)


class _Paint(NamedTuple):
    """Per-class body paint: HSV ranges (hue in degrees, may wrap), specular strength, darkest shade."""
    hue: tuple[float, float]
    sat: tuple[float, float]
    val: tuple[float, float]
    spec: tuple[float, float]
    shade_min: tuple[float, float]


# Hue ranges follow real paint as photographed: red spans 350-10 deg and is often lit bright (its highlights clip
# towards white, its shadows go deep), orange is 20-35 deg; the gap between them is what tells them apart.
_PAINTS: dict[str, _Paint] = {
    "black": _Paint((0, 360), (0.0, 0.25), (0.05, 0.14), (0.12, 0.25), (0.75, 0.9)),
    "blue": _Paint((203, 232), (0.5, 0.95), (0.35, 0.9), (0.10, 0.25), (0.55, 0.7)),
    "green": _Paint((65, 160), (0.4, 0.95), (0.3, 0.85), (0.10, 0.25), (0.55, 0.7)),
    "grey": _Paint((0, 360), (0.0, 0.07), (0.36, 0.54), (0.12, 0.25), (0.55, 0.7)),
    "orange": _Paint((20, 35), (0.78, 1.0), (0.85, 1.0), (0.08, 0.2), (0.6, 0.72)),
    "red": _Paint((-14, 10), (0.7, 0.98), (0.55, 1.0), (0.10, 0.3), (0.4, 0.7)),
    "silver": _Paint((0, 360), (0.0, 0.05), (0.66, 0.8), (0.25, 0.4), (0.45, 0.6)),
    "white": _Paint((0, 360), (0.0, 0.05), (0.9, 0.98), (0.04, 0.1), (0.78, 0.9)),
}

# Labels in the 2x label map: painted (shaded) regions; everything else is drawn flat in RGB.
_BODY, _CREASE, _GLASS, _INTERIOR, _TYRE, _TREAD = 1, 2, 3, 4, 5, 6


def generate(n_per_class: int, size: int = 128, seed: int = 0,
             progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, size, size, 3), labels int64 (N,)) with N = n_per_class * 8.

    Labels are class-interleaved (0..7, 0..7, ...). Image i is drawn from
    `np.random.default_rng([seed, i])`; seed must be a non-negative integer.
    """
    return render_all(render, len(CLASS_NAMES), n_per_class, size, seed, progress)


def render(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one car of colour class `label` as a (size, size, 3) uint8 array."""
    big = size * _SS
    front = rng.random() < FRONT_SHARE  # a front view from an elevated camera, close, over a garage floor
    scene = _garage_floor(rng, big) if front and rng.random() < 0.6 else _background(rng, big)
    if rng.random() < 0.25:  # dim surroundings (garage, dusk), the car itself lit
        scene = Image.fromarray((np.asarray(scene, np.float32) * rng.uniform(0.25, 0.6)).astype(np.uint8))
    car = _Car(rng, big, front)
    paint = _sample_paint(rng, CLASS_NAMES[label])

    # Tyres, body, creases, window: a label map drawn at 2x, then shaded fields composited in numpy
    # on the crop around the car (which also receives the ground shadow).
    labels = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(labels)
    car.draw_tyres(draw)
    car.draw_labels(draw, rng)
    ys, xs = car.bbox
    lab = np.asarray(labels)[ys, xs]
    u, v = car.uv(ys, xs)
    arr = np.array(scene)
    crop = arr[ys, xs].transpose(2, 0, 1).astype(np.float32, order="C")
    near = int(np.argmax(v.min(axis=1) < car.clear + 0.3))  # first crop row that reaches the ground
    crop[:, near:] *= _ground_shadow(car, u[near:], v[near:], rng)
    # Flat indices: much faster than boolean-mask scatter into a (3, h, w) array.
    flat, labf, uf, vf = crop.reshape(3, -1), lab.ravel(), u.ravel(), v.ravel()
    for part, lo, hi in ((_TYRE, 14, 28), (_TREAD, 32, 48)):
        flat[:, np.flatnonzero(labf == part)] = rng.uniform(lo, hi)
    idx = np.flatnonzero((labf == _BODY) | (labf == _CREASE))
    flat[:, idx] = _body_field(car, paint, uf[idx], vf[idx], rng) * np.where(labf[idx] == _CREASE, 0.55, 1.0)
    idx = np.flatnonzero((labf == _GLASS) | (labf == _INTERIOR))
    flat[:, idx] = _glass_field(car, uf[idx], vf[idx], labf[idx] == _INTERIOR, rng)
    arr[ys, xs] = np.clip(crop, 0, 255).transpose(1, 2, 0)
    scene = Image.fromarray(arr)
    (car.draw_front if front else car.draw_details)(ImageDraw.Draw(scene), rng)
    if front and rng.random() < 0.5:
        _barrier(ImageDraw.Draw(scene), rng, big)
    if rng.random() < 0.3:
        _foreground(ImageDraw.Draw(scene), rng, big)
    small = scene.reduce(_SS)
    if rng.random() < 0.25:
        small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7) * size / 128))
    return _camera(np.asarray(small, dtype=np.float32).transpose(2, 0, 1), rng)


# ---------------------------------------------------------------- paint and lighting

# Dark reds (maroon, wine): a third of the red cars, darker and a little bluer than the bright ones.
_DARK_RED = _Paint((-20, 2), (0.7, 0.95), (0.3, 0.55), (0.15, 0.3), (0.45, 0.7))


def _sample_paint(rng: np.random.Generator, name: str) -> dict:
    p = _DARK_RED if name == "red" and rng.random() < 0.35 else _PAINTS[name]
    h = (rng.uniform(*p.hue) % 360) / 360
    rgb = colorsys.hsv_to_rgb(h, rng.uniform(*p.sat), rng.uniform(*p.val))
    return {"rgb": np.asarray(rgb, np.float32) * 255, "spec": rng.uniform(*p.spec),
            "shade_min": rng.uniform(*p.shade_min), "metallic": name in ("silver", "grey") or rng.random() < 0.3}


def _body_field(car: "_Car", paint: dict, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Body colour (3, n) at car coordinates u, v (n,): paint x lighting (occlusion, side light,
    reflected horizon) + specular."""
    lo = paint["shade_min"]
    t = np.clip((v - car.clear) / (car.belt - car.clear), 0, 1)
    shade = np.where(v < car.belt, lo + (1.02 - lo) * t * (2 - t), rng.uniform(0.88, 1.02))
    shade = shade * (1 + rng.uniform(-0.15, 0.15) * u)
    if rng.random() < 0.4:  # hard key light from one side: deep shade on the far panels, bright on the near ones
        shade = shade * np.clip(1 + rng.uniform(0.2, 0.45) * rng.choice([-1, 1]) * u, 0.45, 1.4)
    horizon = car.clear + (car.belt - car.clear) * rng.uniform(0.3, 0.6)  # ground reflected below this
    shade = shade * np.where(v < horizon, rng.uniform(0.82, 0.95), 1.0)
    if paint["metallic"]:  # brushed-looking gradient across the panels
        shade = shade * (1 + 0.08 * np.sin(u * rng.uniform(1.5, 3.0) + rng.uniform(0, 6)))
    # Specular: a sharp band on the rear deck just below the window, and a soft blob on one side.
    deck = np.exp(-(((v - car.belt + 0.04) / 0.035) ** 2)) * (np.abs(u) < 0.95)
    su, sv = rng.uniform(-0.7, 0.7), rng.uniform(car.clear + 0.3, car.belt - 0.1)
    blob = np.exp(-(((u - su) / 0.3) ** 2 + ((v - sv) / 0.15) ** 2))
    spec = paint["spec"] * 255 * (deck + 0.6 * blob)
    return (paint["rgb"][:, None] * shade + spec).astype(np.float32)


def _glass_field(car: "_Car", u: np.ndarray, v: np.ndarray, interior: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Rear window colour (3, n): dark tinted glass, sky reflection gradient, a diagonal glare band."""
    tint = np.asarray([rng.uniform(14, 30), rng.uniform(18, 34), rng.uniform(20, 40)], np.float32)
    top = (v - car.belt) / (car.roof - car.belt)
    refl = rng.uniform(20, 60) * np.clip(top, 0, 1) ** 1.5
    a = rng.uniform(0.4, 1.2)
    across = u * np.cos(a) + (v - car.belt) * np.sin(a) - rng.uniform(-0.5, 0.5)
    band = rng.uniform(15, 45) * np.exp(-((across / 0.12) ** 2))
    return (tint[:, None] * np.where(interior, 0.6, 1.0) + refl + band).astype(np.float32)


def _ground_shadow(car: "_Car", u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative (h, w) shadow: a soft ellipse on the ground and the dark gap under the body."""
    uu = (u / 1.12) ** 2
    soft = np.exp(-(uu * uu * uu + (v / 0.09) ** 2))
    under = 1 / (1 + np.exp((np.abs(u) - 0.95) * 40)) * (v > -0.02) * (v < car.clear + 0.05)
    dark = 1 - rng.uniform(0.4, 0.65) * soft - rng.uniform(0.3, 0.5) * under
    return np.clip(dark, 0.15, 1).astype(np.float32)


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure (bright scenes clip), white balance (a continuous warm/cool and green/magenta cast), vignetting,
    sensor noise, then sometimes JPEG compression; (3, h, w) float -> (h, w, 3) uint8."""
    temp, tint = np.clip(rng.normal(0, 0.07), -0.18, 0.18), np.clip(rng.normal(0, 0.025), -0.06, 0.06)
    gains = rng.uniform(0.75, 1.3) * np.asarray([1 + temp, 1 + tint, 1 - temp]) * (1 + rng.normal(0, 0.02, 3))
    img *= gains.astype(np.float32)[:, None, None]
    yy, xx = _grid(img.shape[1])
    img *= 1 - rng.uniform(0, 0.3) * (xx * xx + yy * yy)
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * np.float32(rng.uniform(4, 20))
    out = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    return _jpeg(out, int(rng.integers(40, 95))) if rng.random() < 0.6 else out


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG (4:2:0 chroma subsampling blurs colour edges, as in most camera files)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@functools.lru_cache(maxsize=8)
def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in pixels, float32 (size, size) each."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return yy, xx


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in [-0.5, 0.5)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    return yy, xx


# ---------------------------------------------------------------- car geometry

_CURVE = [((1 - t) ** 2, 2 * t * (1 - t), t * t) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]  # quadratic Bezier weights
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 16)), np.sin(np.linspace(0, 2 * np.pi, 16))], axis=1)


def _rounded(pts, r: float) -> list[tuple[float, float]]:
    """Closed polygon with each corner replaced by a quadratic curve of 'radius' r (same units)."""
    pts = [(float(x), float(y)) for x, y in pts]
    out = []
    for i, (cx, cy) in enumerate(pts):
        (px, py), (nx, ny) = pts[i - 1], pts[(i + 1) % len(pts)]
        fp = min(r / (math.hypot(px - cx, py - cy) + 1e-9), 0.5)
        fn = min(r / (math.hypot(nx - cx, ny - cy) + 1e-9), 0.5)
        ax, ay, bx, by = cx + (px - cx) * fp, cy + (py - cy) * fp, cx + (nx - cx) * fn, cy + (ny - cy) * fn
        out.extend((wa * ax + wc * cx + wb * bx, wa * ay + wc * cy + wb * by) for wa, wc, wb in _CURVE)
    return out


def _mirror(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Reflect car-unit points about the car's vertical centre line."""
    return [(-x, y) for x, y in pts]


def _grey(rng: np.random.Generator, lo: float, hi: float) -> tuple[int, int, int]:
    g = int(rng.uniform(lo, hi))
    return (g, g, g)


class _Car:
    """Rear-view car geometry in car units (u: -1..1 across the body, v: height above ground) + its homography."""

    def __init__(self, rng: np.random.Generator, big: int, front: bool = False) -> None:
        self.big, self.front = big, front
        kind = int(rng.choice(3, p=[0.4, 0.3, 0.3]))  # sedan, hatchback, SUV
        self.clear = rng.uniform(0.17, 0.22) if kind < 2 else rng.uniform(0.24, 0.3)
        self.belt = self.clear + (rng.uniform(0.8, 0.92) if kind < 2 else rng.uniform(0.88, 1.0))
        if front:  # seen from above, the hood shows as a tall field of paint between the lamps and the windscreen
            self.belt += rng.uniform(0.2, 0.6)
        self.roof = self.belt + (rng.uniform(0.42, 0.5), rng.uniform(0.48, 0.58), rng.uniform(0.5, 0.6))[kind]
        self.cab_lo = rng.uniform(0.84, 0.92)
        self.cab_hi = rng.uniform(0.6, 0.7) if kind < 2 else rng.uniform(0.68, 0.78)
        self.tyre_u, self.tyre_w = rng.uniform(0.7, 0.78), rng.uniform(0.22, 0.3)
        self.bumper_top = self.clear + rng.uniform(0.26, 0.34)
        self.window_top = self.roof - rng.uniform(0.06, 0.1)
        self.window_inset = rng.uniform(0.08, 0.14)

        # Placement: half-width in pixels (from a distant car, paint ~10% of the frame, to a close one, ~40%),
        # centre, ground line (the body's middle stays near the frame's centre); then a slight roll / yaw / pitch.
        if front:  # close: the car fills the width, its roof (often its windscreen) above the frame, floor below
            hw = big * rng.uniform(0.33, 0.5)
            cx = big * (0.5 + rng.uniform(-0.15, 0.15))
            ground = big * rng.uniform(0.45, 0.8)
        else:
            hw = big * rng.uniform(0.19, 0.42)
            hw = min(hw, big * 0.9 / (self.roof + 0.1))
            cx = big * (0.5 + rng.uniform(-0.1, 0.1))
            ground = max(min(big * rng.uniform(0.58, 0.72) + 0.6 * hw, big * 0.97), (self.roof + 0.05) * hw)
        vc = self.roof / 2
        c, s = np.cos(rng.normal(0, 0.025)), np.sin(rng.normal(0, 0.025))
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        pitch = rng.uniform(0.05, 0.15) if front else rng.uniform(-0.05, 0.05)  # from above: the far end narrower
        proj = np.array([[1, 0, 0], [0, 1, 0], [rng.uniform(-0.07, 0.07), pitch, 1]])
        shift = np.array([[1, 0, 0], [0, 1, -vc], [0, 0, 1]])
        scale = np.array([[hw, 0, cx], [0, -hw, ground - vc * hw], [0, 0, 1]])
        self.h = scale @ proj @ rot @ shift
        self.h_inv = np.linalg.inv(self.h)
        corners = self.px([(-1.35, -0.25), (1.35, -0.25), (1.35, self.roof + 0.05), (-1.35, self.roof + 0.05)])
        lo = np.clip(np.floor(corners.min(0)).astype(int), 0, big)
        hi = np.clip(np.ceil(corners.max(0)).astype(int), 0, big)
        self.bbox = (slice(lo[1], max(hi[1], lo[1] + 1)), slice(lo[0], max(hi[0], lo[0] + 1)))

    def px(self, pts) -> np.ndarray:
        """Car units -> pixel coordinates, (n, 2)."""
        p = np.asarray(pts, dtype=np.float64)
        q = p @ self.h[:, :2].T + self.h[:, 2]
        return q[:, :2] / q[:, 2:]

    def poly(self, pts) -> list[float]:
        return self.px(pts).ravel().tolist()

    def uv(self, ys: slice, xs: slice) -> tuple[np.ndarray, np.ndarray]:
        """Car coordinates of the pixel centres in a crop, float32 (h, w) each."""
        y, x = _pixel_centres(self.big)
        y, x = y[ys, xs], x[ys, xs]
        m = self.h_inv.astype(np.float32)
        w = m[2, 0] * x + m[2, 1] * y + m[2, 2]
        return (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / w, (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / w

    def draw_tyres(self, d: ImageDraw.ImageDraw) -> None:
        """Two tyres into the label map: near-black rounded blocks with a slightly lighter tread face."""
        for side in (-1, 1):
            x0, x1 = sorted((side * self.tyre_u - self.tyre_w / 2, side * self.tyre_u + self.tyre_w / 2))
            top = self.clear + 0.2
            d.polygon(self.poly(_rounded([(x0, -0.01), (x1, -0.01), (x1, top), (x0, top)], 0.07)), fill=_TYRE)
            m = (x1 - x0) * 0.22
            d.polygon(self.poly(_rounded([(x0 + m, 0.02), (x1 - m, 0.02), (x1 - m, top), (x0 + m, top)], 0.04)),
                      fill=_TREAD)

    def draw_labels(self, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        """Body, panel creases, rear window and headrests into the label map."""
        c, b, r = self.clear, self.belt, self.roof
        # Cabin (pillars and roof) first, then the lower body over its base.
        cab = [(-self.cab_lo, b - 0.05), (-self.cab_hi, r), (self.cab_hi, r), (self.cab_lo, b - 0.05)]
        d.polygon(self.poly(_rounded(cab, 0.12)), fill=_BODY)
        flare = rng.uniform(0.0, 0.03)
        lower = [(-0.96, c), (-1.0, c + 0.12), (-1.0 - flare, b - 0.2), (-0.97, b), (0.97, b), (1.0 + flare, b - 0.2),
                 (1.0, c + 0.12), (0.96, c)]
        d.polygon(self.poly(_rounded(lower, 0.1)), fill=_BODY)
        for side in (-1, 1):  # door mirrors peeking out at the sides
            arm = [(self.cab_lo - 0.05, b + 0.02), (1.02, b + 0.04), (1.02, b + 0.08), (self.cab_lo - 0.05, b + 0.07)]
            cap = [(0.99, b + 0.01), (1.11, b + 0.02), (1.12, b + 0.15), (0.99, b + 0.14)]
            for m in (arm, cap):
                d.polygon(self.poly(_rounded([(side * x, y) for x, y in m], 0.04)), fill=_BODY)
        # Creases: top of the bumper and the trunk-lid gap.
        d.line(self.poly([(-0.98, self.bumper_top), (0.98, self.bumper_top)]), fill=_CREASE, width=2)
        lid = [(-0.55, b - 0.02), (-0.58, self.bumper_top + 0.05), (0.58, self.bumper_top + 0.05), (0.55, b - 0.02)]
        if rng.random() < 0.7:
            d.line(self.poly(lid), fill=_CREASE, width=1)
        # Rear window (inset in the cabin) and headrests seen through it.
        inset, top = self.window_inset, self.window_top
        win = [(-self.cab_lo + inset, b + 0.03), (-self.cab_hi + inset * 0.7, top),
               (self.cab_hi - inset * 0.7, top), (self.cab_lo - inset, b + 0.03)]
        d.polygon(self.poly(_rounded(win, 0.06)), fill=_GLASS)
        if not self.front and rng.random() < 0.6:
            for hu in ((-0.38, 0.38), (-0.4, 0.0, 0.4))[int(rng.integers(2))]:
                hr = [(hu - 0.13, b + 0.03), (hu - 0.12, b + 0.22), (hu + 0.12, b + 0.22), (hu + 0.13, b + 0.03)]
                d.polygon(self.poly(_rounded(hr, 0.06)), fill=_INTERIOR)

    def draw_details(self, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        """Flat-coloured parts: tail lights, plate, bumper trim, exhaust, badge, brake light."""
        c, b = self.clear, self.belt
        red = (int(rng.uniform(170, 230)), int(rng.uniform(15, 45)), int(rng.uniform(20, 50)))
        dark_red = tuple(int(x * 0.55) for x in red)
        inner = (235, int(rng.uniform(130, 170)), 30) if rng.random() < 0.5 else _grey(rng, 200, 235)
        lt, lb = b - rng.uniform(0.04, 0.08), b - rng.uniform(0.24, 0.34)
        inw = rng.uniform(0.58, 0.72)
        style = rng.integers(3)
        if style == 0:  # rectangle
            lamp = [(-0.99, lt), (-inw, lt), (-inw, lb), (-0.99, lb)]
        elif style == 1:  # wedge tapering inwards
            lamp = [(-0.99, lt), (-inw, lt), (-inw - 0.04, lt - (lt - lb) * 0.5), (-0.99, lb)]
        else:  # tall lamp in the corner
            lamp = [(-0.99, lt), (-0.8, lt), (-0.8, lb - 0.12), (-0.99, lb - 0.12)]
        x_in = 0.85 if style < 2 else 0.9
        strip = [(-0.97, lb + 0.04), (-x_in, lb + 0.04), (-x_in, lb + 0.1), (-0.97, lb + 0.1)]
        for flip in (False, True):  # left lamp, then its mirror image
            d.polygon(self.poly(_rounded(_mirror(lamp) if flip else lamp, 0.04)), fill=red, outline=dark_red, width=2)
            d.polygon(self.poly(_mirror(strip) if flip else strip), fill=inner)
        if style < 2 and rng.random() < 0.25:  # light bar joining the lamps
            bar = [(-inw, lt - 0.02), (inw, lt - 0.02), (inw, lt - 0.07), (-inw, lt - 0.07)]
            d.polygon(self.poly(bar), fill=dark_red)
        if rng.random() < 0.5:  # high-mounted brake light
            y = self.window_top + 0.01
            d.polygon(self.poly([(-0.15, y), (0.15, y), (0.15, y + 0.025), (-0.15, y + 0.025)]), fill=red)

        # Lower bumper trim (black plastic) with reflectors and exhaust.
        if rng.random() < 0.6:
            trim = [(-0.95, c), (0.95, c), (0.95, c + 0.08), (-0.95, c + 0.08)]
            d.polygon(self.poly(_rounded(trim, 0.03)), fill=_grey(rng, 30, 60))
        if rng.random() < 0.5:
            for side in (-1, 1):
                d.polygon(self.poly([(side * 0.9, c + 0.12), (side * 0.72, c + 0.12), (side * 0.72, c + 0.16),
                                     (side * 0.9, c + 0.16)]), fill=dark_red)
        if rng.random() < 0.6:
            exhaust = _CIRCLE * [0.07, 0.035] + [rng.choice([-0.55, 0.55]), c + 0.01]
            d.polygon(self.poly(exhaust), fill=_grey(rng, 10, 30))

        # Licence plate with glyph-like marks.
        us = rng.random() < 0.35
        pw = rng.uniform(0.34, 0.4) if us else rng.uniform(0.48, 0.56)
        ph = pw * (0.5 if us else rng.uniform(0.21, 0.24))
        pv = c + rng.uniform(0.1, 0.16) if rng.random() < 0.5 else self.bumper_top + rng.uniform(0.1, 0.18)
        plate_rgb = (int(rng.uniform(225, 245)), int(rng.uniform(200, 240)), int(rng.uniform(40, 90))) \
            if rng.random() < 0.15 else _grey(rng, 215, 245)
        d.polygon(self.poly(_rounded([(-pw / 2, pv), (pw / 2, pv), (pw / 2, pv + ph), (-pw / 2, pv + ph)], 0.015)),
                  fill=plate_rgb, outline=_grey(rng, 20, 60), width=1)
        n = int(rng.integers(5, 8))
        cw = pw * 0.85 / n
        ink = (20, 20, 30) if rng.random() < 0.8 else (20, 40, 120)
        segs = np.concatenate([_SEGMENTS[rng.choice(7, size=rng.integers(3, 7), replace=False)] * [0.65, 1] + [k, 0]
                               for k in range(n)])  # (m, 2, 2) in character cells
        segs = segs * [cw, ph * 0.56] + [-pw * 0.425 + cw * 0.15, pv + ph * 0.22]
        for a, b_ in self.px(segs.reshape(-1, 2)).reshape(-1, 2, 2):
            d.line([tuple(a), tuple(b_)], fill=ink, width=1)
        if rng.random() < 0.7:  # badge
            badge = _CIRCLE * [0.07, 0.04] + [0.0, (b + self.bumper_top) / 2 + 0.08]
            d.polygon(self.poly(badge), fill=_grey(rng, 170, 230))


    def draw_front(self, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        """Flat-coloured parts of a front: headlamps (often lit), grille (dark, often chrome-framed), plate, intake."""
        c, bt = self.clear, self.bumper_top
        lit = rng.random() < 0.6
        lamp_col = _grey(rng, 225, 255) if lit else _grey(rng, 120, 200)
        lb = bt + rng.uniform(0.0, 0.12)          # lamps just above the bumper, the hood rising behind them
        lt = lb + rng.uniform(0.14, 0.26)
        inw = rng.uniform(0.5, 0.68)
        lamp = [(-0.98, lt), (-inw, lt - 0.02), (-inw - 0.03, lb + 0.03), (-0.95, lb)]
        for flip in (False, True):
            pts = _mirror(lamp) if flip else lamp
            if lit:  # glow around a lit lamp
                g = [(x * 1.06, y + (0.04 if y > lb + 0.05 else -0.04)) for x, y in pts]
                d.polygon(self.poly(_rounded(g, 0.05)), fill=_grey(rng, 170, 215))
            d.polygon(self.poly(_rounded(pts, 0.04)), fill=lamp_col, outline=_grey(rng, 40, 110), width=2)
        # Grille between the lamps: dark mesh, often with a chrome frame or bars, a badge in the middle.
        gw = inw - rng.uniform(0.03, 0.12)
        gt, gb = lt + rng.uniform(-0.04, 0.02), max(c + 0.2, lb - rng.uniform(0.05, 0.15))
        chrome = rng.random() < 0.5
        grille = [(-gw, gt), (gw, gt), (gw * 0.85, gb), (-gw * 0.85, gb)]
        d.polygon(self.poly(_rounded(grille, 0.05)), fill=_grey(rng, 10, 45),
                  outline=_grey(rng, 150, 220) if chrome else _grey(rng, 10, 45), width=3)
        if chrome and rng.random() < 0.6:
            for y in np.linspace(gb, gt, int(rng.integers(2, 5)) + 2)[1:-1]:
                d.line(self.poly([(-gw * 0.9, y), (gw * 0.9, y)]), fill=_grey(rng, 140, 210), width=2)
        badge = _CIRCLE * [0.08, 0.05] + [0.0, (gt + gb) / 2]
        d.polygon(self.poly(badge), fill=_grey(rng, 160, 230))
        # Lower intake, fog lamps and the plate on the bumper.
        intake = [(-0.6, c + 0.05), (0.6, c + 0.05), (0.66, c + 0.17), (-0.66, c + 0.17)]
        d.polygon(self.poly(_rounded(intake, 0.04)), fill=_grey(rng, 10, 40))
        if rng.random() < 0.4:
            for side in (-1, 1):
                fog = _CIRCLE * [0.06, 0.04] + [side * 0.78, c + 0.12]
                d.polygon(self.poly(fog), fill=_grey(rng, 180, 255) if lit else _grey(rng, 60, 120))
        pw, ph = rng.uniform(0.4, 0.5), rng.uniform(0.1, 0.16)
        pv = max(c + 0.04, gb - ph - rng.uniform(0.0, 0.06))
        d.polygon(self.poly(_rounded([(-pw / 2, pv), (pw / 2, pv), (pw / 2, pv + ph), (-pw / 2, pv + ph)], 0.015)),
                  fill=_grey(rng, 205, 245), outline=_grey(rng, 20, 60), width=1)
        n = int(rng.integers(5, 9))
        cw = pw * 0.85 / n
        segs = np.concatenate([_SEGMENTS[rng.choice(7, size=rng.integers(3, 7), replace=False)] * [0.65, 1] + [k, 0]
                               for k in range(n)])
        segs = segs * [cw, ph * 0.56] + [-pw * 0.425 + cw * 0.15, pv + ph * 0.22]
        for a, b_ in self.px(segs.reshape(-1, 2)).reshape(-1, 2, 2):
            d.line([tuple(a), tuple(b_)], fill=(20, 20, 30), width=1)


def _barrier(d: ImageDraw.ImageDraw, rng: np.random.Generator, big: int) -> None:
    """A parking barrier arm in front of the car: a white bar with a red band, entering from one side."""
    side = rng.choice([-1, 1])
    x0 = 0 if side < 0 else big
    x1 = big * (rng.uniform(0.3, 0.8) if side < 0 else rng.uniform(0.2, 0.7))
    y0 = big * rng.uniform(0.1, 0.85)
    y1 = y0 - big * rng.uniform(0.0, 0.08)
    w = max(int(big * rng.uniform(0.03, 0.06)), 2)
    d.line([(x0, y0), (x1, y1)], fill=_grey(rng, 215, 250), width=w)
    f = rng.uniform(0.15, 0.35)
    d.line([(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f), (x0 + (x1 - x0) * (f + 0.08), y0 + (y1 - y0) * (f + 0.08))],
           fill=(int(rng.uniform(180, 230)), 30, 35), width=w)


def _garage_floor(rng: np.random.Generator, big: int) -> Image.Image:
    """Looking down in a parking garage: a concrete floor filling most of the frame (lighter far away, stains),
    a sliver of wall, and a yellow-and-black wheel stop or kerb across it."""
    horizon = big * rng.uniform(0.0, 0.3)
    base = rng.uniform(90, 175)
    warm = rng.uniform(0.0, 0.08)
    yy = np.linspace(0, 1, big, dtype=np.float32)[:, None]
    g = base * (1.05 - rng.uniform(0.0, 0.25) * yy) + rng.normal(0, 3, (big, 1)).astype(np.float32)
    field = np.stack([g * (1 + warm), g, g * (1 - warm)], -1) * np.ones((1, big, 1), np.float32)
    img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, big, horizon], fill=_grey(rng, 60, 170))
    for _ in range(rng.integers(0, 4)):  # stains and wet patches
        x, y, r = rng.uniform(0, big), rng.uniform(horizon, big), big * rng.uniform(0.03, 0.12)
        d.ellipse([x - r, y - r * 0.5, x + r, y + r * 0.5], fill=_grey(rng, base * 0.6, base * 0.95))
    for _ in range(rng.integers(1, 3)):  # wheel stop / kerb: yellow and black blocks along a line
        y0 = rng.uniform(horizon, big)
        y1 = y0 + big * rng.uniform(-0.15, 0.15)
        h = big * rng.uniform(0.02, 0.05)
        k = int(rng.integers(6, 14))
        for j in range(k):
            xa, xb = big * j / k, big * (j + 1) / k
            ya, yb = y0 + (y1 - y0) * j / k, y0 + (y1 - y0) * (j + 1) / k
            col = (int(rng.uniform(190, 235)), int(rng.uniform(150, 190)), int(rng.uniform(20, 60))) if j % 2 \
                else _grey(rng, 20, 50)
            d.polygon([(xa, ya), (xb, yb), (xb, yb + h), (xa, ya + h)], fill=col)
    if rng.random() < 0.5:  # a wall or pillar at one side
        x = big * rng.uniform(0.8, 0.95)
        d.rectangle([x, 0, big, big], fill=_grey(rng, 50, 170))
    return img


# Seven-segment character strokes in a unit cell (x right, y up): plate "glyphs" use 3-6 of them.
_SEGMENTS = np.array([[[0, 1], [1, 1]], [[0, 0.5], [1, 0.5]], [[0, 0], [1, 0]], [[0, 0], [0, 0.5]],
                      [[0, 0.5], [0, 1]], [[1, 0], [1, 0.5]], [[1, 0.5], [1, 1]]], dtype=np.float64)


def _foreground(d: ImageDraw.ImageDraw, rng: np.random.Generator, big: int) -> None:
    """Posts or a railing between the camera and the car, so the paint is seen in pieces."""
    col = _grey(rng, 10, 60) if rng.random() < 0.5 else _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 0.9))
    for _ in range(rng.integers(1, 4)):
        if rng.random() < 0.6:  # vertical post
            x, w = rng.uniform(0, big), big * rng.uniform(0.015, 0.06)
            d.rectangle([x, 0, x + w, big], fill=col)
        else:  # slanted bar or rail across the frame
            y0, y1, w = rng.uniform(0.3, 0.9) * big, rng.uniform(0.3, 0.9) * big, int(big * rng.uniform(0.01, 0.04))
            d.line([(0, y0), (big, y1)], fill=col, width=max(w, 1))


# ---------------------------------------------------------------- backgrounds

def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _background(rng: np.random.Generator, big: int) -> Image.Image:
    """Street, open road, car park, garage interior or plain backdrop; never depends on the car's colour."""
    horizon = int(big * rng.uniform(0.3, 0.62))
    kind = rng.choice(5, p=[0.3, 0.2, 0.2, 0.1, 0.2])
    yy = np.linspace(0, 1, big, dtype=np.float32)[:, None, None]
    if kind == 3:  # plain photographic backdrop
        top = np.asarray(_hsv(rng.random(), rng.uniform(0, 0.4), rng.uniform(0.3, 0.95)), np.float32)
        bottom = top * rng.uniform(0.6, 1.1)
        field = np.clip(top + (bottom - top) * yy, 0, 255).astype(np.uint8)
        return Image.fromarray(field).resize((big, big), Image.NEAREST)
    if kind == 4:
        return _garage(rng, big, horizon)

    sky = rng.choice(3, p=[0.55, 0.3, 0.15])
    top, low = [((70, 120, 200), (170, 200, 235)), ((150, 155, 165), (205, 208, 212)),
                ((70, 80, 140), (240, 170, 120))][sky]
    top = np.asarray(top, np.float32) * rng.uniform(0.85, 1.1)
    low = np.asarray(low, np.float32) * rng.uniform(0.85, 1.1)
    field = np.clip(top + (low - top) * np.clip(yy * big / max(horizon, 1), 0, 1), 0, 255).astype(np.uint8)
    img = Image.fromarray(field).resize((big, big), Image.NEAREST)
    d = ImageDraw.Draw(img)

    if kind == 0:  # buildings with windows
        x = -rng.uniform(0, big * 0.2)
        while x < big:
            w = big * rng.uniform(0.15, 0.4)
            h = big * rng.uniform(0.15, 0.55)
            col = _hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.35, 0.9))
            d.rectangle([x, horizon - h, x + w, horizon], fill=col)
            win = tuple(int(c * rng.uniform(0.4, 0.7)) for c in col)
            step = big * rng.uniform(0.04, 0.07)
            for wy in np.arange(horizon - h + step * 0.5, horizon - step, step):
                for wx in np.arange(x + step * 0.4, x + w - step * 0.6, step):
                    d.rectangle([wx, wy, wx + step * 0.5, wy + step * 0.55], fill=win)
            x += w + big * rng.uniform(-0.02, 0.05)
    elif kind == 1:  # hills and trees
        col = _hsv(rng.uniform(0.18, 0.35), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6))
        xs = np.linspace(0, big, 12)
        hill = horizon - big * (0.05 + 0.08 * np.abs(np.sin(xs / big * rng.uniform(2, 6) + rng.uniform(0, 6))))
        d.polygon([(0, horizon)] + list(zip(xs, hill)) + [(big, horizon)], fill=col)
        for _ in range(rng.integers(0, 6)):
            tx, r = rng.uniform(0, big), big * rng.uniform(0.03, 0.08)
            tcol = _hsv(rng.uniform(0.2, 0.38), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5))
            d.ellipse([tx - r, horizon - 2.6 * r, tx + r, horizon - 0.6 * r], fill=tcol)
            d.rectangle([tx - r * 0.15, horizon - r, tx + r * 0.15, horizon], fill=(70, 50, 35))
    else:  # car park / garage wall
        col = _hsv(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.4, 0.9))
        top_wall = horizon - big * rng.uniform(0.2, 0.6)
        d.rectangle([0, top_wall, big, horizon], fill=col)
        if rng.random() < 0.5:
            stripe = _hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.4, 0.9))
            sy = horizon - big * rng.uniform(0.05, 0.15)
            d.rectangle([0, sy, big, sy + big * 0.03], fill=stripe)

    # Ground: asphalt or concrete with markings towards a vanishing point.
    ground = _grey(rng, 60, 140) if rng.random() < 0.8 else _hsv(rng.uniform(0.05, 0.12), 0.2, rng.uniform(0.4, 0.6))
    d.rectangle([0, horizon, big, big], fill=ground)
    vx = big * rng.uniform(0.2, 0.8)
    mark = (230, 230, 225) if rng.random() < 0.7 else (225, 185, 50)
    for lane in rng.uniform(-1.5, 1.5, size=rng.integers(0, 3)):
        bx = vx + lane * big
        d.polygon([(vx, horizon), (bx - big * 0.02, big), (bx + big * 0.02, big)], fill=mark)
        if rng.random() < 0.3:  # double line
            d.polygon([(vx, horizon), (bx - big * 0.012, big), (bx + big * 0.012, big)], fill=ground)
    _clutter(d, rng, big, horizon, int(rng.integers(0, 5)), 0.05)
    return img


def _garage(rng: np.random.Generator, big: int, horizon: int) -> Image.Image:
    """Indoor: a wall (often warm wood or plaster under warm light), shelving with boxes, a concrete floor."""
    wall = (_hsv(rng.uniform(0.03, 0.13), rng.uniform(0.1, 0.45), rng.uniform(0.3, 0.75)), _grey(rng, 90, 200),
            _grey(rng, 15, 60))[rng.choice(3, p=[0.5, 0.3, 0.2])]
    img = Image.new("RGB", (big, big), wall)
    d = ImageDraw.Draw(img)
    for _ in range(rng.integers(0, 4)):  # planks, posts or shelf uprights
        x, w = rng.uniform(0, big), big * rng.uniform(0.01, 0.04)
        d.rectangle([x, 0, x + w, horizon], fill=tuple(int(c * rng.uniform(0.5, 1.2)) for c in wall))
    for sy in np.sort(rng.uniform(0.05, 0.9, size=rng.integers(1, 4))) * horizon:  # shelves
        d.rectangle([0, sy, big, sy + big * 0.015], fill=_grey(rng, 40, 200))
    _clutter(d, rng, big, horizon, int(rng.integers(3, 10)), 0.8)
    d.rectangle([0, horizon, big, big], fill=_grey(rng, 110, 190))
    return img


def _clutter(d: ImageDraw.ImageDraw, rng: np.random.Generator, big: int, horizon: int, n: int,
             spread: float) -> None:
    """n boxes, bins or signs of any colour (cardboard, red and orange included), standing up to
    `spread` x horizon above the horizon line."""
    for _ in range(n):
        w, h = big * rng.uniform(0.04, 0.16), big * rng.uniform(0.04, 0.14)
        x, y = rng.uniform(-w, big), horizon - rng.uniform(0, spread) * horizon
        kind = rng.choice(3, p=[0.3, 0.25, 0.45])  # cardboard, dark (tyres, bins, machinery), any colour
        col = (_hsv(rng.uniform(0.06, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.5, 0.85)), _grey(rng, 8, 50),
               _hsv(rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.25, 0.95)))[kind]
        d.rectangle([x, y - h, x + w, y], fill=col)
