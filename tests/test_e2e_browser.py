"""End to end in a real browser: Playwright drives Debian's Chromium against `streamlit run` on a free port.

Pick the default dataset, start training (with the default compression), wait for the job, open the results,
see the confusion matrix, upload an image and get a prediction. Set E2E_SHOTS=/some/dir to keep screenshots.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_home_with_shared_caches  # noqa: E402
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT = float(os.environ.get("E2E_JOB_TIMEOUT", "420"))

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


@contextlib.contextmanager
def _lab_home(home: Path):
    """Read the app's lab home from this process (core reads LAB_HOME on every call)."""
    old = os.environ.get("LAB_HOME")
    os.environ["LAB_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LAB_HOME", None)
        else:
            os.environ["LAB_HOME"] = old


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(home: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`streamlit run` of the app on `home` (a free port unless given); returns the process and its URL."""
    port = port or _free_port()
    env = dict(os.environ, LAB_HOME=str(home), LAB_MAX_CONCURRENT_JOBS="1", PYTHONUNBUFFERED="1")
    log = open(home / "streamlit.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()                     # the child has its own copy
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + (home / "streamlit.log").read_text()[-3000:])
    return proc, f"http://127.0.0.1:{port}"


def stop_app(proc: subprocess.Popen) -> None:
    """Stop a server started in its own session: SIGTERM to its group, SIGKILL after 10 s."""
    os.killpg(proc.pid, 15)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A real `streamlit run` with its own, empty lab home (download/feature caches shared to stay fast)."""
    home = lab_home_with_shared_caches(tmp_path_factory.mktemp("e2e-home"))
    proc, url = start_app(home)
    yield url, home
    stop_app(proc)
    with _lab_home(home):          # stop any job the app started that is still running (none should be)
        from core import jobs
        for j in jobs.list_jobs(50, jobs.OPEN, reconcile_first=False):
            jobs.cancel(j["id"], grace=2)


@pytest.fixture(scope="module")
def page(app):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _shot(pg, name: str) -> None:
    out = os.environ.get("E2E_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        pg.set_viewport_size({"width": 1400, "height": 2400})      # Streamlit scrolls inside its main block
        time.sleep(0.8)
        pg.screenshot(path=str(Path(out) / f"{name}.png"), full_page=True)
        pg.set_viewport_size({"width": 1400, "height": 1000})


def _idle(pg, timeout: float = 60) -> None:
    """Wait until Streamlit shows no spinner (a script run finished)."""
    end = time.time() + timeout
    time.sleep(0.5)
    while time.time() < end:
        if pg.locator("[data-testid='stSpinner']").count() == 0:
            return
        time.sleep(0.3)


def _nav(pg, title: str) -> None:
    pg.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    _idle(pg)


def compress_quick_used(home: Path) -> bool:
    with _lab_home(home):
        from core import jobs
        done = [j for j in jobs.list_jobs(10, ("done",), reconcile_first=False) if j["spec"].get("compress")]
        return bool(done)


def _test_image(path: Path) -> Path:
    """A hand-drawn-style circle, as the default dataset draws them, saved as a JPEG 'photo'."""
    import numpy as np
    from PIL import Image

    from core.data.synth import shapes
    a = shapes.render(shapes.CLASS_NAMES.index("circle"), 160, np.random.default_rng([12345, 7]))
    Image.fromarray(a).save(path, quality=92)
    return path


def test_train_compare_predict_in_browser(app, page, tmp_path):
    url, home = app
    pg = page
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))

    pg.goto(url)
    pg.get_by_text("Green Transfer Learning Lab").first.wait_for()
    _idle(pg)
    _shot(pg, "01-home")

    # Data: the default dataset is selected and shown
    _nav(pg, "Data")
    pg.get_by_text("Samples per class").wait_for(timeout=90_000)
    pg.get_by_text("circle").first.wait_for()
    _shot(pg, "02-data")

    # Train: defaults, start, wait for the background job
    _nav(pg, "Train")
    pg.get_by_role("button", name="Start training").first.wait_for()
    compress_quick = pg.get_by_role("radio", name="Quick", exact=True)
    if compress_quick.count():            # the TFLite conversions: the whole flow stays within minutes
        compress_quick.click()
        _idle(pg)
        pg.get_by_text("TFLite dynamic range").first.wait_for()
    _shot(pg, "03-train-form")
    t0 = time.time()
    pg.get_by_role("button", name="Start training").first.click()
    pg.get_by_text("Job log").first.wait_for(timeout=30_000)
    pg.get_by_role("button", name=re.compile(r"^Cancel .* 96 px")).first.wait_for(timeout=30_000)   # labelled
    shot_mid = False
    open_results = pg.get_by_role("button", name="Open the results")
    while time.time() - t0 < JOB_TIMEOUT:
        if open_results.count():
            break
        if not shot_mid and pg.get_by_text("Val accuracy").count():
            _shot(pg, "04-train-running")
            shot_mid = True
            # a browser refresh loses nothing: the page finds the running job again
            pg.reload()
            pg.get_by_text("Job log").first.wait_for(timeout=30_000)
            pg.get_by_text("Queue and recent jobs").wait_for()
        for bad in ("The job failed", "The job interrupted", "The job was cancelled"):
            if pg.get_by_text(bad).count():
                log = next(iter((home / "jobs").glob("*.log")), None)
                pytest.fail(f"{bad}: {pg.get_by_text(bad).first.inner_text()}\n"
                            f"{log.read_text()[-3000:] if log else ''}")
        time.sleep(1)
    else:
        pytest.fail(f"the job did not finish within {JOB_TIMEOUT:.0f} s")
    job_seconds = time.time() - t0
    print(f"job finished in the browser after {job_seconds:.0f} s")
    _shot(pg, "05-train-done")

    # Results: the confusion matrix of the run
    open_results.click()
    _idle(pg)
    pg.get_by_text("Test accuracy").first.wait_for()
    _shot(pg, "06-results")
    pg.get_by_role("tab", name="Compare variants").click()
    time.sleep(1)
    _shot(pg, "07-compare")
    pg.get_by_role("tab", name="Confusion matrix").click()
    pg.get_by_text("Misclassified test images").wait_for()
    heatmap = pg.locator("[data-testid='stPlotlyChart'] .js-plotly-plot .heatmaplayer")
    heatmap.first.wait_for(state="attached")
    assert pg.locator("[data-testid='stPlotlyChart']").filter(has=pg.locator(".heatmaplayer")).count() >= 1
    _shot(pg, "08-confusion")

    # Predict: upload an image, get a prediction from every default variant
    _nav(pg, "Predict")
    pg.get_by_text("Add an image to get a prediction").wait_for()
    pg.locator("input[type='file']").first.set_input_files(str(_test_image(tmp_path / "my-circle.jpg")))
    pg.get_by_text("my-circle.jpg").first.wait_for()
    pred = pg.get_by_text("original →").first
    pred.wait_for(timeout=90_000)
    _idle(pg)
    text = pred.inner_text()
    assert "circle" in text, text
    if compress_quick_used(home):
        assert pg.get_by_text("tflite_").count() >= 1          # compressed variants answer too
    assert pg.get_by_text("latency").count() >= 1
    _shot(pg, "09-predict")
    assert not errors, errors


def test_cancel_in_browser_leaves_the_app_usable(app, page):
    url, home = app
    pg = page
    pg.goto(url + "/Train")
    pg.get_by_role("button", name="Start training").first.wait_for()
    _idle(pg)
    epochs = pg.get_by_label("Max epochs", exact=True)
    epochs.fill("400")
    epochs.press("Enter")
    _idle(pg)
    pg.get_by_text("Full training (all layers)").click()
    _idle(pg)
    pg.get_by_role("radio", name="None", exact=True).click()
    _idle(pg)
    pg.get_by_role("button", name="Start training").first.click()
    cancel = pg.get_by_role("button", name=re.compile(r"^Cancel .* 96 px")).first      # the job panel's own
    cancel.wait_for(timeout=30_000)
    pg.get_by_text("400 epochs").first.wait_for()
    time.sleep(3)                                  # let the worker get going
    t0 = time.time()
    cancel.click()                                 # asks first: nothing stops until it is confirmed
    confirm = pg.get_by_role("button", name="Yes, cancel this job")
    confirm.first.wait_for(timeout=10_000)
    with _lab_home(home):
        from core import jobs
        assert jobs.list_jobs(1, reconcile_first=False)[0]["status"] == "running"
    confirm.first.click()
    pg.get_by_text("The job was cancelled").wait_for(timeout=30_000)
    took = time.time() - t0
    assert took < 15, took
    _shot(pg, "10-cancelled")
    with _lab_home(home):
        from core import jobs
        rows = jobs.list_jobs(10, reconcile_first=False)
        assert rows[0]["status"] == "cancelled" and rows[0]["spec"]["config"]["epochs"] == 400
        assert not jobs.process_alive(rows[0]["pid"], rows[0]["id"])
    # the app still works: the earlier finished run is still there
    _nav(pg, "Results")
    pg.get_by_text("Test accuracy").first.wait_for()
    assert pg.locator("[data-testid='stException']").count() == 0


def test_zip_upload_in_browser(app, page, tmp_path):
    """A ZIP of class folders with a text file and a broken image in it: usable, the two files listed as skipped."""
    import zipfile

    from tests.conftest import COLOURS, make_class_folder
    root = make_class_folder(tmp_path / "colours", COLOURS, n=12, size=32)
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "blue" / "broken.png").write_bytes(b"\x89PNG truncated")
    archive = tmp_path / "my-colours.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(root.rglob("*")):
            z.write(p, p.relative_to(root.parent))
    url, _ = app
    pg = page
    pg.goto(url + "/Data")
    pg.get_by_text("Samples per class").wait_for(timeout=90_000)
    pg.get_by_role("radio", name="Upload a ZIP", exact=True).click()
    _idle(pg)
    pg.locator("input[type='file']").first.set_input_files(str(archive))
    pg.get_by_text("2 file(s) were skipped").wait_for(timeout=60_000)
    pg.get_by_text("Samples per class").wait_for()
    pg.get_by_text("Skipped files (2)").wait_for()          # the table itself is drawn on a canvas
    _idle(pg)
    assert pg.get_by_text("green", exact=True).count() >= 1
    _shot(pg, "11-data-zip")
