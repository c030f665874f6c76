"""Sweeps: every value and combination checked up front; a real 2x2 sweep as grouped background jobs (4 runs),
its Pareto report from the run folders, the Results page's chart of it, its runs in MLflow, cancelling a group."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core import jobs
from core.errors import LabError
from core.evaluation.pareto import dominates
from core.presets.recipes import group_runs
from core.presets.sweep import plan
from core.store.runs import read_json, run_dir
from tests.conftest import REPO, wait_for_job

JOB_TIMEOUT = 240
MEASURE = {"measure": {"latency_runs": 50, "warmup_runs": 2, "throughput_repeats": 1, "eval_repeats": 1}}
AXES = {"dataset": "shapes", "backbone": "mlp", "image_size": "16,24", "head": "16", "compression": "none,float32"}
BASE = {"epochs": 2, "batch_size": 32}


# ---------------------------------------------------------------- the plan (no TensorFlow, nothing queued)


def test_every_bad_value_is_named_at_once_and_nothing_is_queued():
    before = len(jobs.list_jobs(1000, reconcile_first=False))
    with pytest.raises(LabError) as e:
        jobs.submit_sweep({"backbone": "mlp,resnet5", "image_size": "16,big,7", "taps": "deep",
                           "head": "max:abc", "compression": "none,int9", "dataset": "no_such_set"})
    msg = str(e.value)
    for part in ("backbone 'resnet5': unknown backbone", "input size 'big'", "input size '7': input sizes must be "
                 "between 8 and 600", "taps 'deep'", "head 'max:abc'", "'int9'", "unknown dataset 'no_such_set'"):
        assert part in msg, (part, msg)
    assert len(jobs.list_jobs(1000, reconcile_first=False)) == before


def test_impossible_combinations_are_refused_with_the_reason():
    with pytest.raises(LabError, match="MobileNetV2 needs an input of at least 32 px"):
        plan({"backbone": "mlp,mobilenet_v2", "image_size": "16,32"})
    with pytest.raises(LabError, match="several depths .* need avg or max pooling, not flatten"):
        plan({"backbone": "mobilenet_v2", "head": "flatten:linear", "taps": "multi"})
    with pytest.raises(LabError, match="unknown sweep axis colour"):
        plan({"colour": "red"})
    with pytest.raises(LabError, match="sample size must be between 1 and"):
        plan({"image_size": "32,48"}, sample=0)


def test_identical_combinations_are_trained_once():
    p = plan({"backbone": "mobilenet_v2,mlp", "image_size": "32,32,default", "taps": "last,multi",
              "compression": "int8,tflite_int8,none"})
    # the MLP has no depths to tap: its "multi" is its "last"; 32 twice is one size; int8 is tflite_int8
    assert p["grid"] == 2 * 2 * 2 * 2 and p["axes"]["compression"] == ["int8", "none"]
    assert p["distinct"] == len(p["runs"]) == 2 * 2 * 2 + 1 * 2 * 1 * 2
    keys = {json.dumps([r["config"] | {"name": None}, sorted(r["techniques"])], sort_keys=True) for r in p["runs"]}
    assert len(keys) == len(p["runs"])
    mlp_multi = [d for d in p["duplicates"] if d["backbone"] == "mlp"]
    assert mlp_multi and all("identical to" in d["notes"][-1] for d in mlp_multi)
    assert {r["config"]["image_size"] for r in p["runs"] if r["backbone"] == "mobilenet_v2"} == {32, 224}


def test_a_random_sample_is_seeded():
    axes = {"backbone": "mobilenet_v2", "image_size": "32,48,64,96", "head": "linear,128,max:64"}
    a, b, c = plan(axes, sample=5, seed=3), plan(axes, sample=5, seed=3), plan(axes, sample=5, seed=4)
    labels = [[r["label"] for r in p["runs"]] for p in (a, b, c)]
    assert len(labels[0]) == 5 and labels[0] == labels[1] and labels[0] != labels[2]
    assert len(plan(axes, sample=50)["runs"]) == 12                      # more than the grid: the whole grid


# ---------------------------------------------------------------- a real 2x2 sweep


@pytest.fixture(scope="module")
def mlruns(tmp_path_factory):
    return "file:" + str(tmp_path_factory.mktemp("mlflow") / "mlruns")


@pytest.fixture(scope="module")
def sweep(mlruns):
    """A 2x2 sweep (input size 16/24 px x no compression/TFLite float32) of a tiny MLP, run for real as 4 background
    jobs, with MLflow logging on (the workers inherit LAB_MLFLOW_URI)."""
    os.environ["LAB_MLFLOW_URI"] = mlruns
    try:
        out = jobs.submit_sweep(AXES, BASE, options=MEASURE)
        done = [wait_for_job(j, lambda job: job["status"] in jobs.FINISHED, JOB_TIMEOUT, what="finished")
                for j in out["jobs"]]
    finally:
        os.environ.pop("LAB_MLFLOW_URI", None)
    for job in done:
        assert job["status"] == "done", (job["error"], job["log_tail"])
    return out | {"done": done}


def test_a_2x2_sweep_gives_4_grouped_runs(sweep):
    assert len(sweep["jobs"]) == 4
    rows = group_runs(sweep["group"])
    assert sorted(r["id"] for r in rows) == sorted(j["run_id"] for j in sweep["done"])
    combos = set()
    for r in rows:
        cfg = read_json(run_dir(r["id"]) / "config.json")
        s = r["summary"]
        assert r["preset"] == "sweep" and s["preset_group"] == sweep["group"] and cfg["backbone"] == "mlp"
        variants = {v["name"] for v in read_json(run_dir(r["id"]) / "variants.json")} \
            if (run_dir(r["id"]) / "variants.json").exists() else set()
        assert variants == ({"original", "tflite_float32"} if s["sweep"]["compression"] == "float32" else set())
        combos.add((cfg["image_size"], s["sweep"]["compression"]))
    assert combos == {(16, "none"), (16, "float32"), (24, "none"), (24, "float32")}
    listed = jobs.list_sweeps()[0]
    assert listed["group"] == sweep["group"] and jobs.sweep_status(sweep["group"])["counts"] == {"done": 4}


def test_the_report_of_real_runs_has_every_variant_and_the_right_front(sweep):
    from core.jobs.sweeps import sweep_report
    rep = sweep_report(sweep["group"])
    pts = rep["points"]
    assert len(rep["runs"]) == 4 and not rep["missing"]
    assert sorted(p["variant"] for p in pts) == ["original"] * 4 + ["tflite_float32"] * 2
    for p in pts:                                   # the figures are the run folders' own
        stored = read_json(run_dir(p["run_id"]) / "metrics.json")["accuracy"]
        if p["variant"] == "original":
            assert p["test_accuracy"] == pytest.approx(stored, abs=1e-9)
        assert p["size_bytes"] > 0
        assert (p["latency_ms_p50"] is None) == (p["run_label"].endswith("no compression"))
    on = set(rep["front"])
    assert on
    for i, p in enumerate(pts):
        beaten = any(dominates(q, p) for j, q in enumerate(pts) if j != i)
        assert (i in on) == (not beaten), p
    # the CLI reads the same figures back from the run folders
    out = subprocess.run([sys.executable, "-m", "core", "sweep-report", sweep["group"], "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout.strip().splitlines()[-1])
    assert cli["front"] == rep["front"] and len(cli["points"]) == len(pts)


def test_results_shows_the_sweep_on_one_chart_with_the_front(sweep):
    from streamlit.testing.v1 import AppTest

    from core.jobs.sweeps import sweep_report
    os.environ.setdefault("LAB_NO_WARMUP", "1")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    at.session_state["sweep_group"] = sweep["group"]
    at.switch_page("pages/3_Results.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    chart = next(c for c in charts if any(t.get("name") == "front on these axes" for t in c["data"]))
    runs = [t for t in chart["data"] if t.get("mode") == "markers"]
    assert len(runs) == 4 and sum(len(t["x"]) for t in runs) == 6          # 4 runs, 6 variants (all have a size)
    rep = sweep_report(sweep["group"])
    stars = sum(s.startswith("star") for t in runs for s in t["marker"]["symbol"])
    assert stars == len(rep["front"])
    assert "model size" in chart["layout"]["xaxis"]["title"]["text"]
    table = next(d.value for d in at.dataframe if "variant" in d.value.columns and "run id" in d.value.columns)
    assert list(table["run id"]) == [rep["points"][i]["run_id"] for i in rep["front"]]
    at.radio(key="w_sweep_x").set_value("latency").run()                   # the x axis selector
    assert not at.exception
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if "latency" in json.loads(c.proto.spec)["layout"]["xaxis"]["title"]["text"])
    assert sum(len(t["x"]) for t in chart["data"] if t.get("mode") == "markers") == 4   # measured ones only


def test_every_run_and_variant_of_the_sweep_is_in_mlflow(sweep, mlruns):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=mlruns)
    exp = client.get_experiment_by_name("green-transfer-learning-lab")
    parents = client.search_runs([exp.experiment_id], "tags.`lab.kind` = 'run'")
    children = client.search_runs([exp.experiment_id], "tags.`lab.kind` = 'variant'")
    by_run = {p.data.tags["lab.run_id"]: p for p in parents}
    assert sorted(by_run) == sorted(j["run_id"] for j in sweep["done"])
    assert len(children) == 6
    for run_id, p in by_run.items():
        stored = read_json(run_dir(run_id) / "run.json")
        assert p.data.params["backbone"] == "mlp" and int(p.data.params["image_size"]) == stored["image_size"]
        assert p.data.metrics["test_accuracy"] == pytest.approx(stored["test_accuracy"])
        assert p.data.metrics["energy_joules"] == pytest.approx(stored["energy"]["total"]["joules"])
        assert p.data.tags["lab.preset_group"] == sweep["group"]
    f32 = next(c for c in children if c.data.tags["lab.variant"] == "tflite_float32")
    assert f32.data.metrics["size_bytes"] > 0 and f32.data.metrics["latency_ms_p50"] > 0
    files = client.list_artifacts(f32.info.run_id, "variant/variants/tflite_float32")
    assert {a.path.rsplit("/", 1)[-1] for a in files} == {"model.tflite", "metrics.json"}
    assert {a.path for a in client.list_artifacts(by_run[f32.data.tags["lab.run_id"]].info.run_id, "model")} >= \
        {"model/model.keras", "model/config.json", "model/run.json"}
    for job in sweep["done"]:                         # the worker said so in the job's log
        assert f"MLflow: run {job['run_id']} logged to {mlruns}" in jobs.read_log(job["id"])


def test_a_sweep_is_cancelled_as_a_whole(sweep):
    out = jobs.submit_sweep({"backbone": "mlp", "image_size": "16,20,24"}, {"epochs": 50})
    assert len(out["jobs"]) == 3
    res = jobs.cancel_group(out["group"], wait=True)
    assert sorted(res["cancelled"]) == sorted(out["jobs"])
    for j in out["jobs"]:
        job = wait_for_job(j, lambda job: job["status"] in jobs.FINISHED, 60, what="cancelled")
        assert job["status"] == "cancelled", job
    assert jobs.sweep_status(out["group"])["open"] is False


def test_the_train_page_plans_starts_and_cancels_a_sweep(sweep):
    from streamlit.testing.v1 import AppTest
    os.environ.setdefault("LAB_NO_WARMUP", "1")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    at.switch_page("pages/2_Train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="sweep_backbones").set_value(["mlp"])
    at.multiselect(key="sweep_sizes").set_value([16, 24])
    at.text_input(key="sweep_heads").set_value("linear,abc").run()
    assert any("This sweep cannot run" in e.value and "head 'abc'" in e.value for e in at.error)
    assert at.button(key="sweep_start").disabled
    at.text_input(key="sweep_heads").set_value("linear,16").run()
    assert "**Sweep: 4 run(s) over input size, head**" in [m.value for m in at.markdown]
    at.number_input(key="sweep_epochs").set_value(50)
    at.button(key="sweep_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    latest = jobs.list_sweeps()[0]
    assert latest["group"] != sweep["group"] and len(latest["jobs"]) == 4
    assert at.session_state["sweep_group"] == latest["group"]
    at.button(key="sweep_cancel").click().run()                    # the whole sweep, from its own button
    for j in latest["jobs"]:
        assert wait_for_job(j, lambda job: job["status"] in jobs.FINISHED, 60)["status"] == "cancelled"


def test_check_set_scores_join_the_report_where_a_run_has_them(sweep, tmp_path):
    import numpy as np
    from PIL import Image

    from core.data.checksets import attach
    from core.data.synth import shapes
    from core.evaluation.checkset import score_run
    from core.evaluation.pareto import DEFAULT_OBJECTIVES
    from core.jobs.sweeps import sweep_report
    rng = np.random.default_rng([4, 2])
    for k, name in enumerate(shapes.CLASS_NAMES):                    # "photos" the runs never trained on
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(shapes.render(k, 64, rng)).save(tmp_path / "photos" / name / f"{i}.png")
    run_id = next(r["id"] for r in group_runs(sweep["group"]) if r["summary"]["sweep"]["compression"] == "float32")
    attach("shapes", str(tmp_path / "photos"))
    try:
        scored = score_run(run_id)
    finally:
        attach("shapes", None)                                       # other tests see shapes without a check set
    rep = sweep_report(sweep["group"])
    assert rep["has_check_set"]
    for p in rep["points"]:
        want = scored[p["variant"]]["accuracy"] if p["run_id"] == run_id else None
        assert p["check_accuracy"] == want, p
    objs = DEFAULT_OBJECTIVES + ("check_accuracy",)
    pts = sweep_report(sweep["group"], objs)["points"]
    for p in pts:
        assert p["on_front"] == (not any(dominates(q, p, objs) for q in pts if q is not p)), p
    from streamlit.testing.v1 import AppTest                          # Results: accuracy on the check set
    os.environ.setdefault("LAB_NO_WARMUP", "1")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    at.session_state["sweep_group"] = sweep["group"]
    at.switch_page("pages/3_Results.py")
    at.run()
    at.radio(key="w_sweep_y").set_value("check-set accuracy").run()
    assert not at.exception, [e.value for e in at.exception]
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if "check-set" in json.loads(c.proto.spec)["layout"]["yaxis"]["title"]["text"])
    assert sum(len(t["x"]) for t in chart["data"] if t.get("mode") == "markers") == 2   # the scored run's two
