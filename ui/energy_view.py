"""The Results page's energy tab: where the figures come from, the carbon region, the per-stage breakdown."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.evaluation import energy
from core.store import settings
from ui import common

STAGE_LABELS = {"data": "loading data", "backbone": "building the backbone", "features": "backbone features (once)",
                "head": "training the head", "train": "training", "fine_tune": "fine-tuning",
                "evaluate": "evaluating on the test split"}

EXPLANATION = """
**What these numbers are.** Every stage of training, every compression step and the inference of every variant is
metered while it runs.

* **Measured** figures come from the processor's own energy counters (Intel/AMD RAPL). They count the whole
  processor package, so anything else running on the machine at that moment is counted too.
* **Estimated** figures, the usual case on laptops without readable counters, virtual machines and cloud boxes, are
  *CPU-seconds used by the lab × watts per busy core* (default {watts:g} W). CPU-seconds already account for how
  busy the cores were: two cores busy for 10 s make 20 CPU-seconds. Idle power, memory, disks, fans and the
  screen are left out, and the watts per core are an assumption. Treat an estimate as a figure for comparing runs
  and variants on this machine, not as a meter reading: the absolute value can be off by a factor of two or more.
* **CO2e** (grams of CO2-equivalent) is kWh × the average carbon intensity of the chosen grid, from a built-in
  table (yearly averages, rounded). The same run costs about ten times more CO2e on a coal-heavy grid than on a
  hydro or nuclear one. Nothing is looked up online.
* **Energy to make** a variant is the run's training energy plus its compression step. **Energy per 1,000
  predictions** is metered while the variant classifies the test split in batches; *one at a time* is metered
  over its batch-1 latency loop, as when a phone classifies one photo at a time.

**For a class discussion.** Caching the backbone's features means the frozen backbone runs once instead of once
per epoch: that is where most of the training energy goes. Inference is paid again for every image, so for a
model that serves millions of predictions a cheaper variant can save far more than the training cost.
For scale: 1 Wh is about what a phone draws while charging for five minutes.
"""


def region_picker(key: str = "carbon_region") -> str:
    """A select box for the grid region, saved in the lab settings; returns the chosen region code."""
    codes = list(energy.CARBON_INTENSITY)
    current = energy.region()
    fixed = settings.overridden("carbon_region")
    choice = st.selectbox("Carbon intensity of the grid", codes, index=codes.index(current), key=key,
                          format_func=lambda c: f"{energy.CARBON_INTENSITY[c][0]} ({energy.CARBON_INTENSITY[c][1]:g} "
                                                f"g CO2e/kWh)",
                          disabled=fixed, help="Kept in the lab settings (LAB_HOME/settings.json); the environment "
                                               "variable LAB_CARBON_REGION overrides it.")
    if fixed:
        st.caption("Fixed by the LAB_CARBON_REGION environment variable.")
    elif choice != current:
        settings.save(carbon_region=choice)
    return choice


def stages_table(run: dict, region: str) -> pd.DataFrame | None:
    """One row per training stage: time, energy, CO2e in `region` (four narrow columns: a phone's width; the
    method is said once under the table, the CPU-seconds in all beside it)."""
    stages = (run.get("energy") or {}).get("stages") or {}
    if not stages:
        return None
    rows = [{"stage": STAGE_LABELS.get(k, k), "time": common.fmt_secs(e.get("wall_seconds")),
             "energy": common.fmt_energy(e.get("joules")),
             "CO2e": common.fmt_co2(energy.co2e_g(e.get("kwh", 0.0), region))}
            for k, e in stages.items()]
    return pd.DataFrame(rows)


def methods(records: list[dict]) -> str:
    """How the energy figures of `records` were obtained, in one line (said once, under the table, not per row)."""
    import re
    found = list(dict.fromkeys(re.sub(r"\b\d+(\.\d+)?\s+(?=CPU-seconds)", "", r.get("method", ""))
                               for r in records if r and r.get("method")))     # "estimated: CPU-seconds x 10 W ..."
    return "; ".join(found) or "not metered"


def explain() -> None:
    st.markdown(EXPLANATION.format(watts=energy.watts_per_core()))
