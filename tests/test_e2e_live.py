"""Predict's "Live camera" in a real browser: Chromium's fake camera streams over WebRTC (no STUN/TURN server) to
`streamlit run`; two variants answer side by side and their answers update without a click. The fallback to
snapshots, chosen by the user or forced by the lab setting, classifies a snapshot. Screenshots of both at 1400 and
400 px go to $LIVE_SHOTS (default /tmp/shots-live).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.test_e2e_browser import ARGS, CHROMIUM, _idle, _lab_home, app, sync_api  # noqa: F401  (app: fixture)

pytest.importorskip("streamlit_webrtc", reason="streamlit-webrtc is not installed (requirements.txt)")
SHOTS = Path(os.environ.get("LIVE_SHOTS", "/tmp/shots-live"))
CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
COUNTS = re.compile(r"frames received (\d+) · classified (\d+) · dropped (\d+)")


@pytest.fixture(scope="module")
def lab(app):
    """In the app's lab home: a quickly trained run (an MLP at 16 px) and its TFLite float32 variant."""
    url, home = app
    with _lab_home(home):
        from core.compression import compress
        from core.config import HeadConfig, TrainConfig
        from core.training.train import train
        run_id = train(TrainConfig(dataset="shapes", backbone="mlp", image_size=16, epochs=2,
                                   head=HeadConfig(dense=[16]), name="live camera"))["run_id"]
        compress(run_id, ["tflite_float32"], {"measure": {"latency_runs": 50, "warmup_runs": 2,
                                                          "throughput_repeats": 1}})
    return {"url": url, "home": home, "run_id": run_id}


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + CAMERA)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _shots(pg, name: str) -> None:
    """Screenshots at 1400 and 400 px wide (the page, as tall as it is)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1400, 400):
        pg.set_viewport_size({"width": width, "height": 1800 if width > 1000 else 2800})
        time.sleep(1.5)
        pg.screenshot(path=str(SHOTS / f"live-{name}-{width}.png"), full_page=True)
    pg.set_viewport_size({"width": 1400, "height": 1000})


def _counts(pg) -> tuple[int, int, int]:
    m = COUNTS.search(pg.get_by_text(COUNTS).first.inner_text())
    return int(m[1]), int(m[2]), int(m[3])


def _open_live(pg, lab) -> None:
    pg.goto(f"{lab['url']}/Predict?run={lab['run_id']}")
    pg.get_by_text("Add an image to get a prediction").wait_for(timeout=90_000)
    pg.locator("[data-testid='stButtonGroup']").get_by_text("Live camera", exact=True).click()
    _idle(pg)


def _take_photo(pg) -> None:
    """A snapshot from Chromium's fake camera (a click before its video plays takes nothing: try again)."""
    take = pg.get_by_role("button", name="Take Photo")
    take.wait_for(timeout=60_000)
    for _ in range(3):
        time.sleep(2)
        take.click()
        try:
            pg.get_by_role("button", name="Clear photo").wait_for(timeout=15_000)
            return
        except sync_api.TimeoutError:
            pass
    pytest.fail("the snapshot camera took no photo")


def test_live_camera_updates_without_a_click_for_two_variants(lab, page):
    pg = page
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    _open_live(pg, lab)
    pg.get_by_text("Press Start live camera").wait_for(timeout=90_000)
    chosen = pg.locator("[data-testid='stMultiSelect']").first.inner_text()
    assert "original" in chosen and "tflite_float32" in chosen, chosen
    pg.get_by_text("no STUN/TURN server is used").wait_for()
    frame = pg.frame_locator("iframe[title*='streamlit_webrtc']")
    frame.get_by_role("button", name="Start live camera").click()
    t0 = time.time()
    pg.get_by_text(COUNTS).first.wait_for(timeout=30_000)
    first = _counts(pg)
    while time.time() - t0 < 30 and _counts(pg)[1] < first[1] + 3:       # nothing clicked since Start
        time.sleep(0.5)
    later = _counts(pg)
    took = time.time() - t0
    print(f"live: first answers {first}, then {later} after {took:.1f} s from Start")
    assert later[1] >= first[1] + 3 and later[0] > first[0], (first, later)
    assert took < 30, took
    for v in ("original", "tflite_float32"):                              # side by side, each with its bars
        box = pg.locator("[data-testid='stVerticalBlockBorderWrapper'], [data-testid='stVerticalBlock']").filter(
            has=pg.get_by_text(v, exact=True)).filter(has=pg.locator("[data-testid='stProgress']")).last
        box.wait_for()
        assert box.locator("[data-testid='stProgress']").count() == 3         # top-3 of three classes
        ms = re.search(r"latency ([\d.]+) ms \(median of (\d+)", box.inner_text())
        assert ms and float(ms[1]) > 0 and int(ms[2]) >= 1, box.inner_text()
    fps = re.search(r"([\d.]+)\s*frames classified per second · camera ([\d.]+) fps",
                    pg.get_by_text("frames classified per second").first.inner_text())
    assert fps and float(fps[1]) > 0 and float(fps[2]) > 0, fps
    before = pg.locator("[data-testid='stProgress']").first.inner_text()
    _shots(pg, "stream")
    assert _counts(pg)[1] > later[1]                                      # still updating while we looked
    frame.get_by_role("button", name="Stop").click()
    assert before and not errors, errors


def test_live_camera_falls_back_to_snapshots(lab, page):
    pg = page
    _open_live(pg, lab)
    pg.get_by_role("button", name="Use snapshots instead").click()
    pg.get_by_text("Snapshots instead of live video: you chose snapshots").wait_for()
    _take_photo(pg)
    pg.get_by_text("original →").first.wait_for(timeout=60_000)
    pg.get_by_text("tflite_float32 →").first.wait_for()
    _shots(pg, "fallback")
    pg.get_by_role("button", name="Try live video again").click()
    pg.get_by_text("Press Start live camera").wait_for()
    settings = lab["home"] / "settings.json"                             # the lab setting turns live video off
    settings.write_text(json.dumps({"live_video": False}))
    try:
        pg.reload()
        pg.get_by_text("live video is switched off in the lab settings").wait_for(timeout=60_000)
        pg.get_by_role("button", name="Take Photo").wait_for(timeout=30_000)      # the snapshot camera instead
        assert pg.locator("iframe[title*='streamlit_webrtc']").count() == 0
        assert pg.get_by_role("button", name="Use snapshots instead").count() == 0
    finally:
        settings.unlink()
