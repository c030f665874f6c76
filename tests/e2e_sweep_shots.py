"""Screenshots of a sweep's trade-off chart on Results, in the real browser, at a laptop's and a phone's width.

    python -m tests.e2e_sweep_shots LAB_HOME OUT_DIR [GROUP]

LAB_HOME must hold a finished sweep (e.g. `LAB_HOME=... python -m core sweep ... --wait`); GROUP defaults to the
newest. Starts `streamlit run` on a free 127.0.0.1 port (stopped at the end) and drives Debian's Chromium with the
browser test's helpers. Not collected by pytest: the figures it shows are tested by tests/test_sweeps.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.test_e2e_browser import ARGS, CHROMIUM, _idle, _lab_home, start_app, stop_app, sync_api


def shots(home: Path, out: Path, group: str | None = None) -> list[Path]:
    with _lab_home(home):
        from core.jobs import list_sweeps
        group = group or list_sweeps()[0]["group"]
    os.environ["LAB_NO_WARMUP"] = "1"
    proc, url = start_app(home)
    saved = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for width in (1400, 400):
                pg = browser.new_page(viewport={"width": width, "height": 2000})   # Streamlit scrolls inside itself
                pg.set_default_timeout(90_000)
                pg.goto(f"{url}/Results?sweep={group}")
                pg.get_by_text("The front").first.wait_for()
                _idle(pg)
                section = pg.locator("[data-testid='stExpander']", has_text="The front").first
                section.scroll_into_view_if_needed()
                time.sleep(1.5)
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"sweep-pareto-{width}.png"
                section.screenshot(path=str(path))
                saved.append(path)
                if width == 1400:                                   # the same sweep against latency
                    section.get_by_text("latency", exact=True).first.click()
                    _idle(pg)
                    time.sleep(1.5)
                    path = out / "sweep-pareto-latency-1400.png"
                    section.screenshot(path=str(path))
                    saved.append(path)
                pg.close()
            browser.close()
    finally:
        stop_app(proc)
    return saved


if __name__ == "__main__":
    print("\n".join(map(str, shots(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))))
