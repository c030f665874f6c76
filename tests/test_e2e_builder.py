"""Issue 16, part 1, in a real browser: make a 2-class dataset on the Data page from uploaded images (one class) and
Chromium's fake camera (the other, one snapshot after another), find it on disk, train it through the Train page,
restart the server and find it still listed; `python -m core check-dataset` passes.

Screenshots of the builder at 1400 and 400 px go to $SHOTS16 (default /tmp/shots16).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_home_with_shared_caches
from tests.test_e2e_browser import ARGS, CHROMIUM, JOB_TIMEOUT, _idle, start_app, stop_app, sync_api

SHOTS = Path(os.environ.get("SHOTS16", "/tmp/shots16"))
CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
N = 12                                        # images per class: above the lab's minimum of 10


def _images(folder: Path) -> list[str]:
    """N pale, noisy 'drawings' (the fake camera's frames are green with a moving pie: easy to tell apart)."""
    import numpy as np
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(N):
        a = np.clip(235 + rng.integers(-20, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
        a[20:44, 10 + i:30 + i] = (200, 30, 160)
        Image.fromarray(a).save(folder / f"drawing {i:02d}.png")
        out.append(str(folder / f"drawing {i:02d}.png"))
    return out


def _count(folder: Path) -> int:
    return sum(1 for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")) if folder.is_dir() else 0


def _dataset_chosen(pg) -> str:
    """The Train page's dataset choice as shown (the value sits in the select box's input)."""
    box = pg.locator("[data-testid='stSelectbox']").filter(has=pg.get_by_text("Dataset", exact=True)).first
    return box.locator("input").input_value()


def _shot(pg, name: str, width: int) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.set_viewport_size({"width": width, "height": 2400})          # Streamlit scrolls inside its main block
    time.sleep(1.0)
    pg.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    time.sleep(0.5)
    pg.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    pg.set_viewport_size({"width": 1400, "height": 1000})
    time.sleep(0.5)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return lab_home_with_shared_caches(tmp_path_factory.mktemp("e2e-builder"))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + CAMERA)
        yield b
        b.close()


def test_make_a_dataset_in_the_browser_train_it_and_keep_it(home, browser, tmp_path):
    proc, url = start_app(home)
    try:
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url + "/Data")
        pg.get_by_role("radio", name="Make a dataset", exact=True).click()
        _idle(pg)
        pg.get_by_role("textbox", name="Name", exact=True).fill("gestures")
        pg.get_by_role("button", name="Make the dataset").click()
        pg.get_by_text("Made gestures").wait_for()
        for cls in ("drawn", "camera"):
            pg.get_by_role("textbox", name="New class", exact=True).fill(cls)
            pg.get_by_role("button", name="Add class").click()
            pg.get_by_text(f"{cls} · 0 images").wait_for()
        root = home / "datasets" / "made" / "gestures"
        assert sorted(p.name for p in root.iterdir()) == ["camera", "drawn"]

        # one class from a multi-file upload
        pg.get_by_role("radio", name="drawn (0)").click()
        _idle(pg)
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")               # refused, with the reason; the rest added
        pg.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
            _images(tmp_path / "up") + [str(broken)])
        pg.get_by_text(f"Added {N} image(s) to drawn. Refused: broken.png: not a readable image").wait_for()
        assert _count(root / "drawn") == N

        # the other from camera snapshots, one after another: each is added exactly once
        pg.get_by_role("radio", name="camera (0)").click()
        _idle(pg)
        pg.get_by_role("radio", name="Camera", exact=True).click()
        t0 = time.time()
        have, shots = 0, 0
        while have < N and shots < 2 * N:
            take = pg.get_by_role("button", name="Take Photo")
            take.wait_for()
            # Chromium's fake camera restarts its clip whenever the stream opens, so a photo taken as long after the
            # start as an earlier one is that frame again, byte for byte: refused as the same image, and said so
            end = time.time() + 20
            while time.time() < end and not pg.evaluate(
                    f"() => {{ const v = document.querySelector('[data-testid=stCameraInput] video');"
                    f" return !!v && v.readyState >= 2 && v.currentTime >= {0.3 + 0.2 * (shots % 10)}; }}"):
                time.sleep(0.05)
            take.click()
            shots += 1
            same = pg.get_by_text(f"Refused: snapshot-{shots}.jpg: the same image is in the dataset already")
            end = time.time() + 30
            while _count(root / "camera") == have and not same.count() and time.time() < end:
                time.sleep(0.2)
            n = _count(root / "camera")
            assert n in (have, have + 1), f"snapshot {shots}: {n} files after {have}"     # each added at most once
            assert n == have + 1 or same.count(), (f"snapshot {shots} lost: "
                                                    f"{pg.locator('[data-testid=stAlert]').all_inner_texts()}")
            have = n
            pg.get_by_text(f"camera · {have} image").first.wait_for()
        _idle(pg)
        time.sleep(2)
        assert _count(root / "camera") == N and _count(root / "drawn") == N       # no double adds on reruns
        print(f"{N} snapshots in {time.time() - t0:.1f} s ({shots - N} refused as a repeated frame)")
        assert all(f.suffix == ".jpg" and f.name.startswith("snapshot-") for f in (root / "camera").iterdir())
        pg.get_by_text("Ready to train: 2 classes").wait_for()
        _shot(pg, "builder", 1400)
        _shot(pg, "builder", 400)

        # train it through the Train page, where it is chosen
        pg.get_by_role("button", name="Train on it").click()
        pg.get_by_role("button", name="Start training").first.wait_for()
        assert _dataset_chosen(pg) == "gestures (gestures)"
        pg.goto(url + "/Train?dataset=gestures&size=48&comp_mode=None")        # small and quick
        pg.get_by_role("button", name="Start training").first.wait_for()
        _idle(pg)
        assert _dataset_chosen(pg) == "gestures (gestures)"
        pg.get_by_role("button", name="Start training").first.click()
        open_results = pg.get_by_role("button", name="Open the results")
        t0 = time.time()
        while time.time() - t0 < JOB_TIMEOUT and not open_results.count():
            for bad in ("The job failed", "The job interrupted", "The job was cancelled"):
                assert not pg.get_by_text(bad).count(), pg.get_by_text(bad).first.inner_text()
            time.sleep(1)
        assert open_results.count(), "the training job did not finish"
        print(f"trained in {time.time() - t0:.0f} s")
        env = dict(os.environ, LAB_HOME=str(home))
        runs = json.loads(subprocess.run([sys.executable, "-m", "core", "runs", "--json"], cwd=REPO, env=env,
                                         capture_output=True, text=True, timeout=120).stdout)
        run = next(r for r in runs if r.get("dataset") == "gestures")
        assert run["test_accuracy"] >= 0.9, run                 # camera frames vs drawings: easy to tell apart
        assert not errors, errors
    finally:
        stop_app(proc)

    # a restart keeps it: listed on the Data page, and check-dataset passes
    proc, url = start_app(home)
    try:
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(url + "/Data?source=Make+a+dataset")
        pg.get_by_text(f"camera · {N} images").wait_for()
        pg.get_by_text(f"drawn · {N} images").wait_for()
    finally:
        stop_app(proc)
    out = subprocess.run([sys.executable, "-m", "core", "check-dataset", "gestures", "--json"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["usable"] and report["counts"] == {"camera": N, "drawn": N}, report
