"""Energy and carbon of a piece of work, measured where the machine allows it, estimated otherwise.

Measured: Intel/AMD RAPL package counters (/sys/class/powercap/intel-rapl:*/energy_uj) when readable (they
cover the whole processor package, so other work on the machine is counted too).
Estimated: CPU time of this process (all its threads: utilisation x wall time) x watts per busy core
(setting `cpu_watts_per_core` / LAB_CPU_WATTS_PER_CORE, default 10 W, a typical server core at load; idle power
and memory are left out). Carbon: kWh x the grid intensity of a region from a built-in table (setting
`carbon_region` / LAB_CARBON_REGION); nothing is looked up on the network. Every figure carries its method.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from core.store import settings

# Grid carbon intensity, g CO2e per kWh, yearly averages (Ember / IEA, 2023, rounded). Rough by nature.
CARBON_INTENSITY: dict[str, tuple[str, float]] = {
    "WORLD": ("World average", 480), "EU": ("European Union", 250), "US": ("United States", 370),
    "CN": ("China", 560), "IN": ("India", 710), "GB": ("United Kingdom", 210), "DE": ("Germany", 380),
    "FR": ("France", 55), "ES": ("Spain", 150), "IT": ("Italy", 330), "PL": ("Poland", 660),
    "NL": ("Netherlands", 270), "SE": ("Sweden", 40), "NO": ("Norway", 30), "CH": ("Switzerland", 45),
    "BR": ("Brazil", 100), "CA": ("Canada", 130), "AU": ("Australia", 550), "JP": ("Japan", 480),
    "KR": ("South Korea", 430), "ZA": ("South Africa", 710), "MX": ("Mexico", 420), "ID": ("Indonesia", 680),
    "TR": ("Turkey", 400), "PT": ("Portugal", 130), "BE": ("Belgium", 150), "AT": ("Austria", 110),
    "DK": ("Denmark", 150), "FI": ("Finland", 80), "IE": ("Ireland", 290), "VN": ("Vietnam", 470),
}
DEFAULT_REGION = "WORLD"
RAPL = Path("/sys/class/powercap")


DEFAULT_WATTS_PER_CORE = 10.0


def region() -> str:
    """The carbon region chosen by the user (environment, then lab settings), WORLD when unknown."""
    r = str(settings.get("carbon_region", DEFAULT_REGION)).upper()
    return r if r in CARBON_INTENSITY else DEFAULT_REGION


def watts_per_core() -> float:
    try:
        w = float(settings.get("cpu_watts_per_core", DEFAULT_WATTS_PER_CORE))
    except (TypeError, ValueError):
        return DEFAULT_WATTS_PER_CORE
    return w if 0 < w < 1000 else DEFAULT_WATTS_PER_CORE


def co2e_g(kwh: float, where: str | None = None) -> float:
    """Grams of CO2e for `kwh` in a region (the chosen one by default)."""
    return kwh * CARBON_INTENSITY.get((where or region()).upper(), CARBON_INTENSITY[DEFAULT_REGION])[1]


def _rapl_joules() -> float | None:
    """Sum of the package energy counters in joules, or None where they cannot be read."""
    try:
        files = sorted(RAPL.glob("intel-rapl:[0-9]*/energy_uj"))
        return sum(int(f.read_text()) for f in files) / 1e6 if files else None
    except OSError:
        return None


@dataclass
class Energy:
    wall_seconds: float
    cpu_seconds: float
    joules: float
    method: str                      # "measured: RAPL" or "estimated: ..."
    region: str = DEFAULT_REGION

    @property
    def kwh(self) -> float:
        return self.joules / 3.6e6

    @property
    def co2e_g(self) -> float:
        return self.kwh * CARBON_INTENSITY[self.region][1]

    def to_dict(self) -> dict:
        return {**asdict(self), "kwh": self.kwh, "co2e_g": self.co2e_g,
                "carbon_intensity_g_per_kwh": CARBON_INTENSITY[self.region][1]}


def estimate(cpu_seconds: float, wall_seconds: float = 0.0) -> Energy:
    w = watts_per_core()
    return Energy(wall_seconds, cpu_seconds, cpu_seconds * w,
                  f"estimated: {cpu_seconds:.1f} CPU-seconds x {w:g} W per busy core", region())


@contextmanager
def meter() -> Iterator[dict]:
    """Measure the work inside the block; the yielded dict receives an Energy under 'energy' at exit."""
    out: dict = {}
    e0, c0, t0 = _rapl_joules(), time.process_time(), time.perf_counter()
    try:
        yield out
    finally:
        cpu, wall, e1 = time.process_time() - c0, time.perf_counter() - t0, _rapl_joules()
        if e0 is not None and e1 is not None and e1 >= e0:
            out["energy"] = Energy(wall, cpu, e1 - e0, "measured: RAPL package counters (whole machine)", region())
        else:
            out["energy"] = estimate(cpu, wall)


def total(parts: list[Energy]) -> Energy:
    if not parts:
        return estimate(0.0)
    methods = sorted({p.method.split(":")[0] for p in parts})
    return Energy(sum(p.wall_seconds for p in parts), sum(p.cpu_seconds for p in parts),
                  sum(p.joules for p in parts), " + ".join(methods), parts[0].region)


def per_1000(e: Energy, images: int) -> dict:
    """Energy of `e` spread over `images` predictions, scaled to 1,000 predictions."""
    k = 1000.0 / images if images else 0.0
    return {"joules": e.joules * k, "kwh": e.kwh * k, "co2e_g": e.co2e_g * k, "cpu_seconds": e.cpu_seconds * k,
            "images": images, "method": e.method, "region": e.region}
