"""Issue 15, runs a classroom can tell apart, share and trust: one AppTest (or core test) per rough edge.

Names everywhere, rename and delete; a run's status is its job's; labelled, confirmed cancels and a page that follows
its own job; the selection in the URL; what cannot work is marked and refused; plain preset texts; compression
figures explained and counted right; chart axes; reliable downloads with a labels file; upload names, one bad-ZIP
message, progress on first use, the confusion-matrix click; the small-data note.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.errors import LabError
from core.store import registry
from tests.conftest import COLOURS, REPO, make_class_folder, wait_for_job

APP = str(REPO / "streamlit_app.py")
TIMEOUT = 180
os.environ.setdefault("LAB_NO_WARMUP", "1")
NAME = "Year 9 · blue team"


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [str(e.value) for e in at.error] + [str(i.value) for i in at.info] + [str(s.value) for s in at.success]
    parts += [str(w.value) for w in at.warning]
    return "\n".join(parts)


def open_page(page: str, query: dict | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A named run compressed two ways, and two unnamed runs of 3 classes x 15 images (small data) made within
    the same minute, so their generated labels are alike."""
    from core.compression import compress
    from core.config import HeadConfig, TrainConfig
    from core.training.train import train
    named = train(TrainConfig(dataset="shapes", backbone="mlp", image_size=16, epochs=2, head=HeadConfig(dense=[16]),
                              name=NAME))["run_id"]
    compress(named, ["tflite_float32", "tflite_dynamic"],
             {"measure": {"latency_runs": 50, "warmup_runs": 2, "throughput_repeats": 1}})
    tiny = str(make_class_folder(tmp_path_factory.mktemp("tiny") / "squares", COLOURS, n=15, size=24))
    small = [train(TrainConfig(dataset=tiny, backbone="mlp", image_size=16, head=HeadConfig(dense=[])))["run_id"]
             for _ in range(2)]
    return {"named": named, "small": small, "tiny": tiny}


@pytest.fixture
def no_scheduling(monkeypatch):
    """Jobs stay queued (no worker process starts): the pages are tested against the queue alone."""
    from core.jobs import queue
    monkeypatch.setattr(queue, "schedule", lambda: [])
    yield
    for j in jobs.list_jobs(100, jobs.OPEN, reconcile_first=False):
        jobs.cancel(j["id"], grace=1)


def link_label(at: AppTest, run_id: str) -> str:
    """The label of the page link that opens `run_id` (Home's recent runs, Results' all runs)."""
    return next(p.proto.label for p in at.get("page_link") if p.proto.query_string == f"run={run_id}")


def quick_spec(dataset: str = "shapes", **cfg) -> dict:
    return {"kind": "train", "config": {"dataset": dataset, "backbone": "mlp", "image_size": 16, "epochs": 1,
                                        "head": {"dense": [8], "dropout": 0.0}} | cfg}


# ================================================================ 1. names, rename, delete


def test_a_named_run_is_called_by_its_name_on_every_page(runs):
    rid = runs["named"]
    at = open_page("pages/3_Results.py", run_id=rid)
    picker = at.selectbox(key="w_run_id")
    assert picker.value == rid and NAME in picker.format_func(rid)
    assert f"**{NAME}**" in texts(at)                                     # the heading of the run
    assert link_label(at, rid) == f"**{NAME}**"                            # "All runs": by its name
    assert all(len(p.proto.label) > 8 for p in at.get("page_link") if p.proto.query_string.startswith("run="))
    at = open_page("pages/4_Predict.py", predict_run=rid)
    assert NAME in at.selectbox(key="w_predict_run").format_func(rid)
    home = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert link_label(home, rid) == f"**{NAME}**"                          # Recent runs


def test_unnamed_runs_get_readable_labels_that_differ(runs):
    a, b = runs["small"]
    at = open_page("pages/3_Results.py", run_id=a)
    labels = {i: at.selectbox(key="w_run_id").format_func(i) for i in (a, b)}
    assert labels[a] != labels[b]                                          # same minute, same data: still different
    for rid, label in labels.items():
        assert "squares" in label and "mlp" in label and "16 px" in label and not label.startswith(rid), label


def test_rename_and_delete_from_results(runs, tmp_path):
    from core.config import HeadConfig, TrainConfig
    from core.store.runs import read_json, run_dir
    from core.training.train import train
    rid = train(TrainConfig(dataset=runs["tiny"], backbone="mlp", image_size=16, head=HeadConfig(dense=[])))["run_id"]
    at = open_page("pages/3_Results.py", run_id=rid)
    at.text_input(key=f"rename_{rid}").set_value("renamed in class")
    next(b for b in at.button if b.key == f"rename-btn-{rid}").click().run()
    assert not at.exception
    assert read_json(run_dir(rid) / "config.json")["name"] == "renamed in class"
    assert registry.run_label(registry.get_run(rid)) == "renamed in class"
    assert "renamed in class" in at.selectbox(key="w_run_id").format_func(rid)
    folder = run_dir(rid)
    # deleting asks first: the popover holds the confirmation; nothing is gone until it is clicked
    assert folder.is_dir()
    next(b for b in at.button if b.key == f"delete-btn-{rid}").click().run()
    assert not at.exception
    assert not folder.exists() and registry.get_run(rid) is None and registry.list_variants(rid) == []
    assert rid not in at.selectbox(key="w_run_id").options
    assert any("Deleted" in s.value for s in at.success)


def test_rename_and_delete_from_the_command_line(runs):
    from core.config import HeadConfig, TrainConfig
    from core.store.runs import run_dir
    from core.training.train import train
    rid = train(TrainConfig(dataset=runs["tiny"], backbone="mlp", image_size=16, head=HeadConfig(dense=[])))["run_id"]
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "core", "rename", rid, "from the CLI", "--json"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["label"] == "from the CLI"
    runs_out = subprocess.run([sys.executable, "-m", "core", "runs", "--json"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    row = next(r for r in json.loads(runs_out.stdout.strip().splitlines()[-1]) if r["id"] == rid)
    assert row["name"] == row["label"] == "from the CLI"
    out = subprocess.run([sys.executable, "-m", "core", "delete", rid], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with pytest.raises(LabError, match="no run"):
        run_dir(rid)
    out = subprocess.run([sys.executable, "-m", "core", "delete", rid], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_run_whose_job_is_open_cannot_be_deleted(no_scheduling):
    job_id = jobs.submit(quick_spec(), start=False)
    run_id = jobs.get_job(job_id)["run_id"]
    registry.upsert_run(run_id, status="running", dataset="shapes", backbone="mlp")
    with pytest.raises(LabError, match="cancel the job first"):
        jobs.delete_run(run_id)
    jobs.cancel(job_id)
    jobs.delete_run(run_id)
    assert jobs.get_job(job_id) is None and registry.get_run(run_id) is None


# ================================================================ 2. a cancelled job's run reads "cancelled"


@pytest.fixture(scope="module")
def cancelled_after_training(tmp_path_factory):
    """A real job cancelled while it compresses: its run had finished training (the run row said "done")."""
    colours = str(make_class_folder(tmp_path_factory.mktemp("cancel") / "colours", COLOURS, n=12, size=24))
    job_id = jobs.submit(quick_spec(colours, name="cancelled in compression")
                         | {"compress": {"techniques": ["tflite_float32", "tflite_float16", "tflite_dynamic",
                                                        "tflite_int8"]}})
    wait_for_job(job_id, lambda j: str(j["progress"].get("stage", "")).startswith("compress")
                 or j["status"] in jobs.FINISHED, 240, what="to compression")
    jobs.cancel(job_id, grace=3)
    job = wait_for_job(job_id, lambda j: j["status"] in jobs.FINISHED, 60, what="cancelled")
    assert job["status"] == "cancelled", job
    return job


def test_a_cancelled_jobs_run_reads_cancelled_everywhere(cancelled_after_training):
    job = cancelled_after_training
    rid = job["run_id"]
    assert registry.get_run(rid)["status"] == "cancelled"                 # the registry follows the job
    assert jobs.get_run(rid)["status"] == "cancelled"
    home = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert any(c.value.startswith("cancelled") for c in home.caption)       # under the run's link
    at = open_page("pages/3_Results.py", run_id=rid)
    assert "cancelled" in at.selectbox(key="w_run_id").format_func(rid)
    assert "cancelled" in texts(at) and "done" not in at.selectbox(key="w_run_id").format_func(rid)
    assert registry.get_run(rid)["test_accuracy"] is not None              # it had trained before the cancel
    assert any("This run's job was cancelled" in w.value for w in at.warning)
    at = open_page("pages/4_Predict.py", predict_run=rid)                  # its model still answers, said so
    assert "cancelled" in at.selectbox(key="w_predict_run").format_func(rid)
    assert any("cancelled" in w.value for w in at.warning)
    out = subprocess.run([sys.executable, "-m", "core", "runs", "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert next(r for r in json.loads(out.stdout.strip().splitlines()[-1]) if r["id"] == rid)["status"] == "cancelled"


def test_a_run_shows_its_jobs_status_even_when_its_own_row_says_done(runs):
    """A run from before this fix: trained ("done" in its row), its job cancelled afterwards."""
    from core.jobs.queue import _connect
    rid = runs["small"][1]
    now = time.time()
    with _connect() as con:
        con.execute("INSERT INTO jobs (id, kind, run_id, name, status, created, updated, spec, error) "
                    "VALUES (?,?,?,?,?,?,?,?,?)", ("job-00000c0de1", "train", rid, None, "cancelled", now, now,
                                                   json.dumps(quick_spec()), "cancelled by the user"))
    try:
        assert registry.get_run(rid)["status"] == "done" and jobs.get_run(rid)["status"] == "cancelled"
        at = open_page("pages/3_Results.py", run_id=rid)
        assert "cancelled" in texts(at)
    finally:
        with _connect() as con:
            con.execute("DELETE FROM jobs WHERE id='job-00000c0de1'")


# ================================================================ 3. cancel: labelled, confirmed, the right job


def test_cancel_asks_first_names_its_job_and_a_tab_follows_its_own_job(no_scheduling):
    other = jobs.submit(quick_spec(name="the preset's run"), start=False)     # another tab's job, older
    at = open_page("pages/2_Train.py")
    at.selectbox(key="w_train_backbone").set_value("mlp").run()
    at.select_slider(key="w_train_size").set_value(16).run()
    at.session_state["train_comp_mode"] = "None"
    at.text_input(key="w_train_name").set_value("my own run").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    mine = at.session_state["job_id"]
    assert mine != other and at.query_params.get("job") in (mine, [mine])
    assert "**my own run**" in texts(at)                                   # the panel watches this tab's job
    popovers = [p.proto.popover.label for p in at.get("popover")]
    assert "Cancel my own run" in popovers and "Cancel the preset's run" in popovers   # each job its own cancel
    assert jobs.get_job(mine)["status"] == "queued"                        # showing the cancel stops nothing
    # a refresh (a new session, the same URL) still watches this tab's job, not the other one
    again = open_page("pages/2_Train.py", query={"job": mine})
    assert "**my own run**" in texts(again)
    assert again.selectbox(key="w_job_id").value == mine
    next(b for b in again.button if b.key == f"cancel-panel-{mine}").click().run()     # the confirmation
    assert jobs.get_job(mine)["status"] == "cancelled"
    assert jobs.get_job(other)["status"] == "queued"                       # the other tab's job goes on


# ================================================================ 4. the selection in the URL, the form kept


def test_results_and_predict_open_the_run_and_variant_of_a_link(runs):
    rid = runs["named"]
    newest = jobs.list_runs(1)[0]["id"]
    assert newest != rid
    at = open_page("pages/3_Results.py", query={"run": rid, "variant": "tflite_dynamic"})   # a fresh browser
    assert at.selectbox(key="w_run_id").value == rid
    assert at.selectbox(key="w_cm_variant").value == "tflite_dynamic"
    assert at.query_params["run"] in (rid, [rid])
    at.selectbox(key="w_run_id").set_value(runs["small"][0]).run()
    assert at.query_params["run"] in (runs["small"][0], [runs["small"][0]])   # the URL follows the choice
    at = open_page("pages/4_Predict.py", query={"run": rid, "variant": ["original", "tflite_dynamic"]})
    assert at.selectbox(key="w_predict_run").value == rid
    assert at.multiselect[0].value == ["original", "tflite_dynamic"]


def test_train_form_choices_survive_a_refresh():
    at = open_page("pages/2_Train.py")
    at.segmented_control(key="w_train_comp_mode").set_value("Quick").run()
    at.select_slider(key="w_train_size").set_value(64).run()
    at.number_input(key="w_train_epochs").set_value(7).run()
    query = {k: at.query_params[k] for k in at.query_params}
    assert query.get("comp_mode") in ("Quick", ["Quick"]) and query.get("size") in ("64", ["64"])
    fresh = open_page("pages/2_Train.py", query={k: (v[0] if isinstance(v, list) else v) for k, v in query.items()})
    assert fresh.segmented_control(key="w_train_comp_mode").value == "Quick"
    assert fresh.select_slider(key="w_train_size").value == 64
    assert fresh.number_input(key="w_train_epochs").value == 7


# ================================================================ 5. what cannot work is marked and refused


def test_unavailable_datasets_are_marked_and_refused():
    from core.data.datasets import DATASETS
    missing = [n for n, s in DATASETS.items() if not s.availability()[0]]
    assert "cifar10" in missing
    at = open_page("pages/2_Train.py")
    box = at.selectbox(key="w_train_dataset")
    for n in missing:
        assert "not on this machine" in box.format_func(n)
    assert "not on this machine" not in box.format_func("shapes")
    box.set_value("cifar10").run()
    assert any("not on this machine" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Start training").disabled
    with pytest.raises(LabError, match="not available here"):
        jobs.submit(quick_spec("cifar10"), start=False)
    data = open_page("pages/1_Data.py", builtin_dataset="cifar10")
    assert any("not on this machine" in w.value for w in data.warning)
    assert "not on this machine" in data.selectbox(key="w_builtin_dataset").format_func("cifar10")


def test_submit_of_an_unavailable_dataset_exits_2_with_one_line():
    before = len(jobs.list_jobs(1000, reconcile_first=False))
    out = subprocess.run([sys.executable, "-m", "core", "submit", "--dataset", "cifar10", "--backbone", "mlp"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset 'cifar10' is not available here"), out.stderr
    assert len(jobs.list_jobs(1000, reconcile_first=False)) == before          # nothing was queued


def test_a_frozen_random_backbone_needs_an_i_understand(no_scheduling):
    from core.models.backbones import weights_status
    if weights_status("resnet50")[0] != "random":
        pytest.skip("ResNet50 has ImageNet weights here")
    with pytest.raises(LabError, match="RANDOM weights"):
        jobs.submit(quick_spec(backbone="resnet50", image_size=32), start=False)
    jobs.submit(quick_spec(backbone="resnet50", image_size=32, mode="full"), start=False)          # trained: fine
    jobs.submit(quick_spec(backbone="resnet50", image_size=32, allow_random_frozen=True), start=False)
    out = subprocess.run([sys.executable, "-m", "core", "submit", "--backbone", "resnet50"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--i-understand-random-weights" in out.stderr
    at = open_page("pages/2_Train.py")
    at.selectbox(key="w_train_backbone").set_value("resnet50").run()
    assert any("weights are random" in w.value for w in at.warning)
    start = lambda: next(b for b in at.button if b.label == "Start training")      # noqa: E731
    assert start().disabled
    at.checkbox(key="train_ack_random").check().run()
    assert not start().disabled
    at.checkbox(key="train_ack_random").uncheck().run()
    at.radio(key="w_train_mode").set_value("full").run()
    assert not start().disabled and not any("weights are random" in w.value for w in at.warning)


# ================================================================ 6. preset texts


def test_presets_say_in_one_plain_sentence_what_runs_here():
    from core.presets.recipes import PRESETS, resolve
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    box = at.selectbox(key="w_home_preset")
    for name in PRESETS:
        plan = resolve(name, quick=True)
        title = box.format_func(name)
        used = {r["backbone"] for r in plan["runs"] if not r["duplicate_of"]}
        from core.models.backbones import BACKBONES
        assert all(BACKBONES[b].title.split(" ")[0] in title for b in used), (title, used)
        for r in plan["runs"]:
            if r["substituted"]:                                     # the title names what runs, not the report's
                assert not re.search(rf"\b{re.escape(BACKBONES[r['backbone_requested']].title)}\b", title), title
        s = plan["summary"]
        assert s.count(". ") == 0 and s.endswith("."), s                  # one sentence
        for jargon in ("artifacts/", "LAB_", "python -m", "[substituted", "http", ".h5", "`"):
            assert jargon not in s, (jargon, s)
    at.selectbox(key="w_home_preset").set_value("vehicle_colour").run()
    plan = resolve("vehicle_colour", quick=True)
    body = texts(at)
    assert plan["summary"] in body and "MobileNetV2" in box.format_func("vehicle_colour")
    assert "Details: what exactly runs here, and why" in [e.label for e in at.expander]
    assert all(m in body for m in plan["messages"][:2])                    # the details are still there


# ================================================================ 7. compression figures explained, counted right


def test_compression_notes_say_why():
    from core.evaluation.compare import compressed_count, variant_notes
    rows = [{"name": "original", "technique": "original", "size_bytes": 9_000_000, "gzip_bytes": 8_000_000,
             "latency_ms_p50": 9.0},
            {"name": "pruned_50", "technique": "pruning", "size_bytes": 9_000_000, "gzip_bytes": 5_000_000,
             "sparsity": 0.5, "latency_ms_p50": 9.0},
            {"name": "tflite_float32", "technique": "tflite_float32", "size_bytes": 8_600_000, "latency_ms_p50": 1.4},
            {"name": "tflite_dynamic", "technique": "tflite_dynamic", "size_bytes": 2_400_000, "latency_ms_p50": 2.6},
            {"name": "tflite_int8", "technique": "tflite_int8", "size_bytes": 2_600_000, "latency_ms_p50": 1.3}]
    notes = variant_notes(rows)
    assert "same size on disk" in notes["pruned_50"] and "Gzipped" in notes["pruned_50"]
    assert "slower than float32" in notes["tflite_dynamic"] and "x86" in notes["tflite_dynamic"]
    assert "not a compressed variant" in notes["original"]
    assert "tflite_int8" not in notes and "tflite_float32" not in notes
    assert compressed_count(rows) == 4


def test_results_and_train_count_compressed_variants_without_the_original(runs, no_scheduling):
    at = open_page("pages/3_Results.py", run_id=runs["named"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Compressed variants"] == "2"
    assert "original**: the trained Keras model" in texts(at)
    from core.jobs.queue import _connect
    job_id = jobs.submit(quick_spec(name="counted"), start=False)
    result = {"test_accuracy": 0.9, "variants": [{"name": n} for n in ("original", "tflite_float32", "tflite_int8",
                                                                       "tflite_dynamic")]}
    with _connect() as con:
        con.execute("UPDATE jobs SET status='done', started=?, finished=?, result=? WHERE id=?",
                    (time.time() - 5, time.time(), json.dumps(result), job_id))
    at = open_page("pages/2_Train.py", job_id=job_id)
    body = "\n".join(s.value for s in at.success)
    assert "3 compressed variant(s)" in body and "4 compressed" not in body


# ================================================================ 8. charts: accuracy never past 100%, labels placed


def test_accuracy_axes_stop_at_100_percent_and_labels_stay_inside():
    from ui import charts
    rows = [{"name": n, "size_kb": s, "test_accuracy": a} for n, s, a in
            (("original", 9000, 1.0), ("tflite_float32", 8600, 1.0), ("tflite_dynamic", 2400, 0.995),
             ("tflite_int8", 2600, 0.99), ("tflite_int8_io", 2650, 0.99))]
    fig = charts.pareto_scatter(rows, "size_kb", "test_accuracy", [3, 2, 0], "size", "accuracy", log_x=True)
    assert fig.layout.yaxis.range[1] <= 1.0 and max(fig.layout.yaxis.tickvals) <= 1.0
    assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin
    named = [t for t in fig.data if t.text]
    assert {t.text[0] for t in named} == {r["name"] for r in rows}          # every point says which variant it is
    assert all(t.cliponaxis is False for t in named)
    right_edge = max(named, key=lambda t: t.x[0])
    assert "left" in right_edge.textposition or "center" in right_edge.textposition
    assert fig.layout.legend.orientation == "h"                             # under the plot: phones keep its width
    spots = charts.label_positions([(0.5, 0.5, "tflite_int8"), (0.51, 0.5, "tflite_int8_io")])
    assert spots[0] != spots[1]                                              # two labels on one spot: moved apart


# ================================================================ 9. downloads


def test_downloads_are_bytes_with_labels_and_a_word_on_the_input(runs):
    at = open_page("pages/3_Results.py", run_id=runs["named"])
    buttons = at.get("download_button")
    labels = [b.proto.label for b in buttons]
    assert "labels.txt" in labels and "Download" in labels
    assert labels.count("Download") == 1                       # one file at a time, chosen in a list
    for b in buttons:
        assert b.proto.url and not b.proto.deferred_file_id, b.proto.label    # the bytes are there, not deferred
        assert b.proto.ignore_rerun, b.proto.label              # a click does not rerun (nor drop the other files)
    assert "preprocessed" in texts(at) and "labels.txt" in texts(at)
    assert "file" in [s.label.lower() for s in at.selectbox]


# ================================================================ 10. small things


def test_an_upload_is_shown_by_the_users_file_name(tmp_path):
    from ui.uploads import save_upload
    root = make_class_folder(tmp_path / "c", COLOURS, n=12, size=24)
    archive = tmp_path / "colours.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(root.rglob("*.png")):
            z.write(p, p.relative_to(root))
    stored = save_upload("Class 9 colours.zip", archive.read_bytes())
    assert "Class 9 colours.zip" not in stored
    at = open_page("pages/1_Data.py", data_source="Upload a ZIP", uploaded_dataset=stored)
    body = texts(at)
    assert "Class 9 colours.zip" in body and os.path.basename(stored) not in body
    train = open_page("pages/2_Train.py", dataset=stored)
    assert train.selectbox(key="w_train_dataset").format_func(stored) == "Class 9 colours.zip (your data)"


def test_a_bad_zip_is_explained_once(tmp_path):
    from ui.uploads import save_upload
    stored = save_upload("broken.zip", b"this is not a zip archive")
    at = open_page("pages/1_Data.py", data_source="Upload a ZIP", uploaded_dataset=stored)
    said = [e.value for e in at.error if "not a readable ZIP" in e.value]
    assert len(said) == 1, [e.value for e in at.error]
    assert "broken.zip" in said[0] and os.path.basename(stored) not in said[0]


def test_a_generated_dataset_shows_progress_on_first_use(monkeypatch, tmp_path):
    from dataclasses import replace

    from core.data import datasets
    seen: list[float] = []
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "empty-home"))         # nothing generated yet
    spec = datasets.DATASETS["shapes"]
    assert spec.first_use_pending()
    calls: list[float] = []

    def first_use(progress):
        for f in (0.25, 0.5, 1.0):
            progress(f)
            calls.append(f)
        spec.first_use(lambda f: seen.append(f))
    monkeypatch.setitem(datasets.DATASETS, "shapes", replace(spec, first_use=first_use))
    at = open_page("pages/1_Data.py")
    assert calls == [0.25, 0.5, 1.0]                                      # the page drew a progress bar
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)              # the generator reports as it goes
    assert not spec.first_use_pending()
    assert {m.label: m.value for m in at.metric}["Images"] == "1,500"


def test_the_favicon_is_no_outside_request():
    text = open(APP).read()
    assert 'page_icon=":material' not in text and 'initial_sidebar_state="auto"' in text


def test_a_confusion_matrix_cell_without_mistakes_says_so():
    from core.evaluation.compare import cell_note
    cm, classes = [[5, 0, 1], [0, 4, 0], [2, 0, 3]], ["circle", "square", "triangle"]
    assert "diagonal" in cell_note(cm, classes, "square", "square") and "4 test images" in cell_note(
        cm, classes, "square", "square")
    assert "no test image of **circle** was predicted as **square**" in cell_note(cm, classes, "circle", "square")
    assert cell_note(cm, classes, "triangle", "circle") is None


# ================================================================ 11. a tiny dataset: the page says what the lab did


def test_small_data_is_explained_on_results_predict_and_train(runs, no_scheduling):
    from core.store.runs import read_json, run_dir
    rid = runs["small"][0]
    note = read_json(run_dir(rid) / "run.json")["head_fit"]["small_data_note"]
    assert "cross-validation" in note
    at = open_page("pages/3_Results.py", run_id=rid)
    assert any("Small data" in i.value and note in i.value for i in at.info)
    at = open_page("pages/4_Predict.py", predict_run=rid)
    assert any("Small data" in i.value for i in at.info)
    from core.jobs.queue import _connect
    job_id = jobs.submit(quick_spec(name="tiny"), start=False)
    with _connect() as con:
        con.execute("UPDATE jobs SET status='done', started=?, finished=?, result=? WHERE id=?",
                    (time.time() - 5, time.time(), json.dumps({"test_accuracy": 0.57, "head_fit": {
                        "small_data_note": note}}), job_id))
    at = open_page("pages/2_Train.py", job_id=job_id)
    assert any("Small data" in i.value for i in at.info)
