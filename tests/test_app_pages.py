"""One AppTest per page, through the app's own navigation: widgets render, a finished run appears, a prediction renders."""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from tests.conftest import COLOURS, REPO, make_class_folder

APP = str(REPO / "streamlit_app.py")

TIMEOUT = 180        # the first script run may import TensorFlow (Predict) or generate a dataset (Data)
os.environ.setdefault("LAB_NO_WARMUP", "1")


@pytest.fixture(scope="module")
def finished_run():
    """A real, quickly trained run on the default dataset (an MLP at 16 px errs often enough to have misclassified
    images to show), with one compressed variant."""
    from core.compression import compress
    from core.config import TrainConfig
    from core.config import HeadConfig
    from core.training.train import train
    cfg = TrainConfig(dataset="shapes", backbone="mlp", image_size=16, epochs=2, head=HeadConfig(dense=[16]))
    run_id = train(cfg)["run_id"]
    compress(run_id, ["tflite_float32"], {"measure": {"latency_runs": 50, "warmup_runs": 2, "throughput_repeats": 1}})
    return run_id


def open_page(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [str(e.value) for e in at.error] + [str(i.value) for i in at.info] + [str(s.value) for s in at.success]
    return "\n".join(parts)


def plotly_charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_home_shows_steps_runs_and_what_is_here(finished_run):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    body = texts(at)
    assert "Green Transfer Learning Lab" in body and "Recent runs" in body and "On this machine" in body
    assert len(at.get("page_link")) >= 4
    assert "(`shapes`" in body                                                 # the datasets here
    assert "**MobileNetV2**: ImageNet weights" in body                          # backbones with weights
    links = [p.proto for p in at.get("page_link")]                              # recent runs: links to each
    assert any(p.query_string == f"run={finished_run}" for p in links), [p.query_string for p in links]


def test_data_page_shows_classes_counts_and_samples():
    at = open_page("pages/1_Data.py")
    assert at.selectbox(key="w_builtin_dataset").value == "shapes"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "3" and metrics["Images"] == "1,500"
    assert sum(int(metrics[k].replace(",", "")) for k in ("Train", "Validation", "Test")) == 1500
    assert len(plotly_charts(at)) == 1                       # counts per class and split
    assert len(at.get("image")) == 3                          # one row of samples per class
    assert "circle" in texts(at) and "triangle" in texts(at)
    assert at.session_state["dataset"] == "shapes"           # remembered for the Train page


def test_data_page_explains_unusable_data(tmp_path):
    one = make_class_folder(tmp_path / "one-class", {"red": COLOURS["red"]}, n=12)
    at = open_page("pages/1_Data.py", data_source="Folder on this machine", folder_path=str(one))
    assert at.text_input(key="w_folder_path").value == str(one)
    assert at.error and "only one class" in at.error[0].value and "red" in at.error[0].value
    at = open_page("pages/1_Data.py", data_source="Folder on this machine", folder_path=str(tmp_path / "nope"))
    assert at.error and "no such folder" in at.error[0].value
    few = make_class_folder(tmp_path / "few", {"red": COLOURS["red"], "blue": COLOURS["blue"]}, n=4)
    at = open_page("pages/1_Data.py", data_source="Folder on this machine", folder_path=str(few))
    assert at.error and "too few usable images" in at.error[0].value and "'red' has 4" in at.error[0].value


def test_home_starts_a_preset_as_grouped_jobs():
    """A report's preset starts from Home: one job per distinct run, all in one group, then the Train page opens."""
    from core.presets.recipes import list_groups, resolve
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="w_home_preset").set_value("animals").run()
    plan = resolve("animals", quick=True)
    assert all(m in texts(at) for m in plan["messages"][:2])                 # what it will do here, with reasons
    [b for b in at.button if b.label == "Start preset"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    group = list_groups("animals")[0]
    try:
        assert group["status"] == "queued"
        assert len(group["jobs"]) == len([r for r in plan["runs"] if not r["duplicate_of"]]) >= 1
        specs = [jobs.get_job(j)["spec"] for j in group["jobs"]]
        assert {s["preset"]["preset_group"] for s in specs} == {group["group"]}
        assert [s["config"] for s in specs] == [r["config"] for r in plan["runs"] if not r["duplicate_of"]]
        assert all(s["compress"]["techniques"] == plan["compression"]["techniques"] for s in specs)
        assert at.session_state["job_id"] == group["jobs"][0]
    finally:
        for j in group["jobs"]:
            jobs.cancel(j, grace=2)


def test_train_page_widgets_and_start_a_job(tmp_path):
    at = open_page("pages/2_Train.py")
    compression = pytest.importorskip("core.compression")
    body = texts(at)
    assert "Compression after training" in body
    assert all(compression.TECHNIQUES[t].title in body for t in compression.DEFAULT_TECHNIQUES)   # the standard set
    at.session_state["train_comp_mode"] = "None"
    try:
        from core.presets.recipes import PRESETS
    except ImportError:
        PRESETS = {}
    if PRESETS:                                              # a report's preset can be started from here too
        from core.presets.recipes import resolve                         # titles name what runs here
        assert set(at.selectbox(key="w_train_preset").options) == {resolve(n)["title"] for n in PRESETS}
        assert any(b.label == "Start preset" for b in at.button)
    bb = at.selectbox(key="w_train_backbone")
    assert bb.value == "mobilenet_v2" and len(bb.options) >= 2
    assert "ImageNet weights available" in texts(at)
    assert at.select_slider(key="w_train_size").value == 96
    assert at.number_input(key="w_train_epochs").value == 10
    assert at.radio(key="w_train_mode").value == "feature-extraction"
    start = [b for b in at.button if b.label == "Start training"]
    assert start
    # a small job: choose the MLP at 16 px, 2 epochs, no compression
    colours = make_class_folder(tmp_path / "colours", COLOURS, n=12, size=24)
    at.session_state["dataset"] = str(colours)
    at.run()
    at.selectbox(key="w_train_dataset").set_value(str(colours)).run()
    at.selectbox(key="w_train_backbone").set_value("mlp").run()
    at.select_slider(key="w_train_size").set_value(16).run()
    at.number_input(key="w_train_epochs").set_value(2).run()
    [b for b in at.button if b.label == "Start training"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    job_id = at.session_state["job_id"]
    job = jobs.get_job(job_id)
    assert job["spec"]["config"]["backbone"] == "mlp" and job["spec"]["config"]["image_size"] == 16
    assert job["spec"]["config"]["dataset"] == str(colours) and job["spec"]["config"]["epochs"] == 2
    assert job["spec"]["compress"] is None
    try:
        body = texts(at)
        assert job_id in body
        assert any(b.label == "Yes, cancel this job" for b in at.button) or \
            jobs.get_job(job_id)["status"] in jobs.FINISHED
        assert at.get("progress")
    finally:
        jobs.cancel(job_id, grace=2)
    assert jobs.get_job(job_id)["status"] in ("cancelled", "done")


def _column(at: AppTest, label: str) -> list:
    """The values of a column of the first table on the page that has it."""
    for df in at.dataframe:
        if label in df.value.columns:
            return list(df.value[label])
    raise AssertionError(f"no table with a '{label}' column")


def test_results_page_shows_a_finished_run(finished_run):
    at = open_page("pages/3_Results.py", run_id=finished_run)
    assert at.selectbox(key="w_run_id").value == finished_run
    top = ["Learning curves", "Compare variants", "Energy", "Confusion matrix", "Per-class report", "Downloads"]
    labels = [t.label for t in at.tabs]
    assert [t for t in labels if t in top] == top                 # (the variant table has tabs of its own)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"].endswith("%") and metrics["Epochs"] == "2"
    assert metrics["Training energy"].endswith((" J", " Wh"))
    assert len(plotly_charts(at)) >= 5          # curves, size and latency scatters, energy scatter, confusion matrix
    assert "What these numbers are" in texts(at) and "Training, stage by stage" in texts(at)
    for axis in ("per 1,000 predictions one at a time", "to make the variant"):
        at.radio(key="w_energy_axis").set_value(axis).run()
        assert not at.exception and len(plotly_charts(at)) >= 5, axis
    # The carbon region is a lab setting: switching it recomputes every CO2e figure from the same energy.
    assert os.environ.get("LAB_CARBON_REGION") is None
    before = _column(at, "CO2e to make")
    at.selectbox(key="carbon_region").set_value("PL").run()
    assert not at.exception
    after = _column(at, "CO2e to make")
    from core.evaluation import energy
    from core.store import settings
    try:
        assert energy.region() == "PL" and before != after and len(after) == 2
    finally:
        settings.save(carbon_region="WORLD")
    # every variant's ECE before and after temperature scaling (fitted on the validation images), explained
    for label in ("ECE", "ECE calibrated"):
        assert [float(str(v).lstrip("★ ")) >= 0 for v in _column(at, label)] == [True, True], label
    assert "ECE (expected calibration error)" in texts(at)
    assert "Misclassified test images" in texts(at)
    pair = at.selectbox(key="w_cm_pair")
    assert "→" in pair.value
    assert at.get("image"), "the misclassified images of the selected cell are shown"
    at.radio(key="w_cm_norm").set_value("row-normalised").run()
    assert not at.exception
    downloads = [d.proto.label for d in at.get("download_button")]
    assert "Comparison (CSV)" in downloads and "Everything (JSON)" in downloads and "Download" in downloads
    assert at.dataframe, "variant table and per-class report"


def test_results_page_shows_the_check_set_and_why_it_did_not_run(finished_run):
    """A run whose dataset has no check set: the check says so, is stored with the run, and the page shows it."""
    from core.evaluation.checkset import score_run
    out = score_run(finished_run)
    assert "has no check set" in out["error"] and "check-set --attach" in out["error"]
    at = open_page("pages/3_Results.py", run_id=finished_run)
    assert "Check set" in texts(at)
    assert "has no check set" in _column(at, "check set")[0]


def test_predict_page_renders_a_prediction(finished_run):
    at = open_page("pages/4_Predict.py", predict_run=finished_run, predict_source="Samples from the test set")
    assert at.selectbox(key="w_predict_run").value == finished_run
    assert at.multiselect[0].value == ["original", "tflite_float32"]
    body = texts(at)
    assert "**original** → **" in body and "**tflite_float32** → **" in body, body
    assert "latency" in body
    assert body.count("calibrated probabilities (T = ") == 8, body       # both variants have a temperature
    assert len(plotly_charts(at)) == 8                       # 4 samples x 2 variants: top-k bars
    assert len(at.get("image")) == 4


def test_reruns_are_cheap_for_a_classroom(finished_run, monkeypatch):
    """No full GC after each rerun; one job-list snapshot per process; a run's figures built once; test images
    picked by index from the shared data, not copied."""
    import tomllib

    import numpy as np
    from streamlit import config as st_config

    import core.jobs
    from core.store import registry
    from ui import charts, common, run_views
    conf = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert conf["runner"]["postScriptGC"] is False
    assert "runner.postScriptGC" in st_config.get_config_options()     # the option exists in this Streamlit

    reads = []
    real_list = core.jobs.list_jobs
    monkeypatch.setattr(core.jobs, "list_jobs", lambda *a, **k: reads.append(1) or real_list(*a, **k))
    common._jobs_snapshot.clear()
    first = common.jobs_snapshot()
    assert common.jobs_snapshot() == first and common.jobs_snapshot() == first
    assert len(reads) == 1                                              # shared: one read for every poll
    registry.upsert_run(finished_run, {"touched": True})                # any commit is seen at once
    common.jobs_snapshot()
    assert len(reads) == 2

    built = []
    real_curves = charts.learning_curves
    monkeypatch.setattr(charts, "learning_curves", lambda *a, **k: built.append(1) or real_curves(*a, **k))
    run_views.curves_figure.clear()
    for _ in range(2):
        at = open_page("pages/3_Results.py", run_id=finished_run)
        assert any("Loss" in str(c.proto.spec) for c in plotly_charts(at))
    assert len(built) == 1                                              # the second rerun reused the figure
    stamp = common.run_stamp(finished_run)
    assert run_views.curves_figure(finished_run, stamp) is run_views.curves_figure(finished_run, stamp)

    images, ids = common.test_images(common.run_report(finished_run))
    assert len(images) == len(ids) > 0
    assert np.shares_memory(images[0], images._data.images)             # a view into the shared array
    assert ids[0] == images._data.ids[images.indices[0]]


def test_predict_live_camera_falls_back_when_the_component_cannot_start(finished_run):
    """AppTest has no real server for streamlit-webrtc to attach to: the component fails, as it would on a server
    that cannot serve it, and the page says so and offers snapshots in its place."""
    at = open_page("pages/4_Predict.py", predict_run=finished_run, predict_source="Live camera")
    assert "Live camera" in [o.content for o in at.get("button_group")[0].proto.options]
    warning = "\n".join(w.value for w in at.warning)
    assert "Snapshots instead of live video:** the live video component did not start" in warning, warning
    assert len(at.get("camera_input")) == 1
    live = at.session_state["live_classifier"][1]          # the models were loaded for the chosen variants
    assert live.variants == ["original", "tflite_float32"] and live.run_id == finished_run


@pytest.mark.parametrize("why", ["package", "setting"])
def test_predict_live_camera_falls_back_to_snapshots(finished_run, monkeypatch, why):
    import sys
    if why == "package":
        monkeypatch.setitem(sys.modules, "streamlit_webrtc", None)          # import fails as if not installed
    else:
        monkeypatch.setenv("LAB_LIVE_VIDEO", "off")
    at = open_page("pages/4_Predict.py", predict_run=finished_run, predict_source="Live camera")
    warning = "\n".join(w.value for w in at.warning)
    assert "Snapshots instead of live video" in warning
    assert ("streamlit-webrtc package is not installed" if why == "package" else "switched off") in warning
    assert len(at.get("camera_input")) == 1 and "live_classifier" not in at.session_state
