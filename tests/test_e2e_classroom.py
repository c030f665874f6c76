"""Issue 15 in a real browser: a named run on Results and Predict, /Results?run=ID after a reload and in a fresh
browser, a cancelled job's run reads "cancelled" on every page, nothing is fetched from another host, nothing is
cut at 1400 and 400 px (screenshots in $SHOTS15, default /tmp/shots15), quick downloads both arrive.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import COLOURS, make_class_folder, wait_for_job
from tests.test_e2e_browser import ARGS, CHROMIUM, _idle, _lab_home, app, sync_api  # noqa: F401  (app: fixture)

SHOTS = Path(os.environ.get("SHOTS15", "/tmp/shots15"))
NAME = "Year 9 blue team"
PAGES = {"Home": "", "Data": "/Data", "Train": "/Train", "Results": "/Results", "Predict": "/Predict"}


@pytest.fixture(scope="module")
def lab(app, tmp_path_factory):
    """In the app's lab home: a named MobileNetV2 run at 64 px compressed to TFLite float32 and int8, and a job
    cancelled while it compressed (its run had trained)."""
    url, home = app
    with _lab_home(home):
        from core import jobs
        from core.compression import compress
        from core.config import TrainConfig
        from core.training.train import train
        run_id = train(TrainConfig(dataset="shapes", backbone="mobilenet_v2", image_size=64, name=NAME))["run_id"]
        compress(run_id, ["tflite_float32", "tflite_int8"],
                 {"measure": {"latency_runs": 50, "warmup_runs": 2, "throughput_repeats": 1}})
        colours = str(make_class_folder(tmp_path_factory.mktemp("e2e-cancel") / "colours", COLOURS, n=12, size=24))
        job_id = jobs.submit({"kind": "train", "name": "stopped while compressing",
                              "config": {"dataset": colours, "backbone": "mlp", "image_size": 16, "epochs": 1,
                                         "head": {"dense": [8], "dropout": 0.0}},
                              "compress": {"techniques": ["tflite_float32", "tflite_float16", "tflite_dynamic",
                                                         "tflite_int8"]}})
        wait_for_job(job_id, lambda j: str(j["progress"].get("stage", "")).startswith("compress")
                     or j["status"] in jobs.FINISHED, 240, what="to compression")
        jobs.cancel(job_id, grace=3)
        job = wait_for_job(job_id, lambda j: j["status"] in jobs.FINISHED, 60, what="cancelled")
        assert job["status"] == "cancelled"
    return {"url": url, "home": home, "run_id": run_id, "cancelled_run": job["run_id"]}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _page(browser, width: int = 1400, requests: list | None = None):
    ctx = browser.new_context(viewport={"width": width, "height": 1000}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    if requests is not None:
        pg.on("request", lambda r: requests.append(r.url))
    return ctx, pg


def _open(pg, url: str, wait_text: str) -> None:
    pg.goto(url)
    pg.get_by_text(wait_text).first.wait_for(timeout=90_000)
    _idle(pg)
    time.sleep(0.5)


def _selected(pg) -> list[list[str]]:
    """[label, shown value] of every select box on the page (the value sits in the box's input)."""
    return pg.evaluate("() => [...document.querySelectorAll('[data-testid=stSelectbox]')].map(e => "
                       "[e.querySelector('label')?.innerText || '', e.querySelector('input')?.value || ''])")


def _cut(pg) -> list[str]:
    """Charts and tables that do not fit: wider than the window, or a table that must scroll sideways."""
    return pg.evaluate("""() => {
        const out = [];
        const W = document.documentElement.clientWidth;
        for (const el of document.querySelectorAll("[data-testid='stPlotlyChart'], [data-testid='stDataFrame']")) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0) continue;            // in a tab that is not shown
            if (r.left < -1 || r.right > W + 1) out.push(`${el.dataset.testid} at ${Math.round(r.left)}..${Math.round(r.right)} of ${W}`);
            const sc = el.querySelector('.dvn-scroller');
            if (sc && sc.scrollWidth > sc.clientWidth + 2) out.push(`table scrolls sideways: ${sc.scrollWidth} > ${sc.clientWidth} (${el.innerText.slice(0, 60).replace(/\\n/g, ' ')})`);
            const svg = el.querySelector('svg.main-svg');
            if (svg) {
                const box = svg.getBoundingClientRect();
                for (const t of el.querySelectorAll('g.textpoint text, g.xtick text, g.ytick text, g.g-xtitle text, g.g-ytitle text')) {
                    const b = t.getBoundingClientRect();
                    if (b.width && (b.left < box.left - 1 || b.right > box.right + 1 || b.top < box.top - 1 || b.bottom > box.bottom + 1))
                        out.push(`chart text cut: "${t.textContent}"`);
                }
            }
        }
        return out;
    }""")


def _shoot(pg, name: str, width: int) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = pg.evaluate("() => Math.max(...[...document.querySelectorAll('section, [data-testid=stMain], "
                         "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 1000)")
    pg.set_viewport_size({"width": width, "height": min(int(height) + 80, 9000)})
    time.sleep(1.0)
    pg.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    pg.set_viewport_size({"width": width, "height": 1000})


def test_every_page_loads_only_from_the_apps_own_host(lab, browser):
    requests: list[str] = []
    ctx, pg = _page(browser, requests=requests)
    try:
        own = urlparse(lab["url"]).netloc
        for title, path in PAGES.items():
            _open(pg, lab["url"] + path, {"Home": "Recent runs", "Data": "Samples per class", "Train": "New run",
                                          "Results": "Test accuracy", "Predict": "Add an image"}[title])
        foreign = sorted({u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                          and urlparse(u).netloc != own})
        assert not foreign, foreign
        icon = pg.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\")?.href || ''")
        assert not icon.startswith("http") or urlparse(icon).netloc == own, icon
    finally:
        ctx.close()


def test_the_name_and_a_shared_link_open_that_run(lab, browser):
    rid = lab["run_id"]
    ctx, pg = _page(browser)
    try:
        _open(pg, lab["url"] + "/Results", "Test accuracy")
        assert pg.get_by_text(NAME).count() >= 1
        _open(pg, lab["url"] + f"/Results?run={rid}&variant=tflite_int8", "Test accuracy")
        assert pg.get_by_text(NAME).count() >= 1
        pg.reload()
        pg.get_by_text("Test accuracy").first.wait_for()
        _idle(pg)
        assert f"run={rid}" in pg.url and pg.get_by_text(NAME).count() >= 1
        pg.get_by_role("tab", name="Confusion matrix").click()
        time.sleep(0.5)
        assert ["Variant", "tflite_int8"] in _selected(pg)                    # the link's variant
        _open(pg, lab["url"] + f"/Predict?run={rid}", "Add an image")
        assert pg.get_by_text(NAME).count() >= 1
        assert any(label == "Run" and value.startswith(NAME) for label, value in _selected(pg))
    finally:
        ctx.close()
    fresh, pg = _page(browser)                                # a fresh browser: no session, only the link
    try:
        _open(pg, lab["url"] + f"/Results?run={lab['cancelled_run']}", "Test accuracy")
        _open(pg, lab["url"] + f"/Results?run={rid}", "Test accuracy")
        assert pg.get_by_text(NAME).count() >= 1
        assert any(label == "Run" and value.startswith(NAME) for label, value in _selected(pg))
    finally:
        fresh.close()


def test_a_cancelled_jobs_run_reads_cancelled_on_every_page(lab, browser):
    rid = lab["cancelled_run"]
    ctx, pg = _page(browser)
    try:
        _open(pg, lab["url"], "Recent runs")
        assert pg.get_by_text("cancelled").count() >= 1
        _open(pg, lab["url"] + f"/Results?run={rid}", "Test accuracy")
        assert pg.get_by_text("This run's job was cancelled").count() == 1
        _open(pg, lab["url"] + f"/Predict?run={rid}", "Add an image")
        assert pg.get_by_text("cancelled").count() >= 1
        _open(pg, lab["url"] + "/Train", "Queue and recent jobs")
        assert pg.get_by_text("cancelled").count() >= 1
    finally:
        ctx.close()


@pytest.mark.parametrize("width", [1400, 400])
def test_nothing_is_cut_at_1400_and_400_px(lab, browser, width):
    ctx, pg = _page(browser, width)
    problems: dict[str, list[str]] = {}
    try:
        rid = lab["run_id"]
        _open(pg, lab["url"], "Recent runs")
        sidebar = pg.locator("[data-testid='stSidebar']")
        assert sidebar.get_attribute("data-collapsed") == ("false" if width >= 1000 else "true")
        problems["home"] = _cut(pg)
        _shoot(pg, "01-home", width)
        _open(pg, lab["url"] + "/Data", "Samples per class")
        problems["data"] = _cut(pg)
        _shoot(pg, "02-data", width)
        _open(pg, lab["url"] + "/Train", "Queue and recent jobs")
        problems["train"] = _cut(pg)
        _shoot(pg, "03-train", width)
        _open(pg, lab["url"] + f"/Results?run={rid}", "Test accuracy")
        problems["results"] = _cut(pg)
        _shoot(pg, "04-results", width)
        pg.get_by_role("tab", name="Compare variants").click()
        time.sleep(1.5)
        problems["compare"] = _cut(pg)
        _shoot(pg, "05-results-compare", width)
        for group in ("Size", "Speed", "Energy use"):
            pg.get_by_role("tab", name=group, exact=True).click()
            time.sleep(0.5)
            problems[f"compare {group}"] = _cut(pg)
        for tab in ("Learning curves", "Energy", "Per-class report"):
            pg.get_by_role("tab", name=tab, exact=True).click()
            time.sleep(1.0)
            problems[tab] = _cut(pg)
        pg.get_by_role("tab", name="Energy", exact=True).click()
        time.sleep(0.5)
        _shoot(pg, "06-results-energy", width)
        pg.get_by_role("tab", name="Confusion matrix").click()
        time.sleep(1.0)
        problems["confusion"] = _cut(pg)
        _shoot(pg, "07-results-confusion", width)
        pg.get_by_role("tab", name="Downloads").click()
        time.sleep(0.5)
        _shoot(pg, "08-results-downloads", width)
        _open(pg, lab["url"] + f"/Predict?run={rid}", "Add an image")
        pg.get_by_role("radio", name="Samples from the test set").click()
        pg.get_by_text("original →").first.wait_for(timeout=90_000)
        _idle(pg)
        time.sleep(1.0)
        problems["predict"] = _cut(pg)
        _shoot(pg, "09-predict", width)
    finally:
        ctx.close()
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


def test_two_quick_downloads_both_arrive(lab, browser, tmp_path):
    ctx, pg = _page(browser)
    try:
        _open(pg, lab["url"] + f"/Results?run={lab['run_id']}", "Test accuracy")
        pg.get_by_role("tab", name="Downloads").click()
        pg.get_by_text("Model files").wait_for()
        got = []
        for label in ("labels.txt", "Download"):
            with pg.expect_download(timeout=20_000) as d:
                pg.get_by_role("button", name=label, exact=True).click()
            got.append(d.value)
        labels = Path(got[0].path()).read_text().split()
        assert labels == ["circle", "square", "triangle"]
        assert Path(got[1].path()).stat().st_size > 1000
    finally:
        ctx.close()


def test_the_train_form_keeps_its_choices_on_refresh(lab, browser):
    ctx, pg = _page(browser)
    try:
        _open(pg, lab["url"] + "/Train", "New run")
        pg.get_by_role("radio", name="Quick", exact=True).click()
        _idle(pg)
        pg.get_by_text("TFLite dynamic range").first.wait_for()
        pg.reload()
        pg.get_by_text("New run").first.wait_for()
        _idle(pg)
        assert "comp_mode=Quick" in pg.url
        pg.get_by_text("TFLite dynamic range").first.wait_for()
        assert pg.get_by_role("radio", name="Quick", exact=True).get_attribute("aria-checked") == "true"
    finally:
        ctx.close()
