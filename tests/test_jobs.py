"""Background jobs with real worker processes: train end to end, cancel, crash, kill, reconcile, the concurrency limit."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core import jobs
from core.store import registry
from core.errors import LabError
from core.store.runs import read_json, run_dir
from tests.conftest import COLOURS, make_class_folder, wait_for_job

JOB_TIMEOUT = 150


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A tiny class-folder dataset (3 colours x 12 images of 24 px): data loading costs nothing."""
    return str(make_class_folder(tmp_path_factory.mktemp("jobs-data") / "colours", COLOURS, n=12, size=24))


@pytest.fixture(autouse=True)
def no_open_jobs(monkeypatch):
    """Each test starts and ends with no open job (so one test's job never holds another's slot)."""
    monkeypatch.setenv("LAB_MAX_CONCURRENT_JOBS", "1")
    yield
    for j in jobs.list_jobs(100, jobs.OPEN, reconcile_first=False):
        jobs.cancel(j["id"], grace=2)


def spec(dataset: str, **cfg) -> dict:
    base = {"dataset": dataset, "backbone": "mlp", "image_size": 16, "epochs": 3, "batch_size": 16,
            "head": {"dense": [16], "dropout": 0.0}}
    return {"kind": "train", "config": base | cfg}


def wait_for(job_id: str, pred, timeout: float = JOB_TIMEOUT, what: str = "") -> dict:
    return wait_for_job(job_id, pred, timeout, what=what)


def finished(job: dict) -> bool:
    return job["status"] in jobs.FINISHED


def training(job: dict) -> bool:
    return job["status"] == "running" and len(job["history"]) >= 1


def test_a_job_trains_a_run_end_to_end_in_its_own_process(colours):
    job_id = jobs.submit(spec(colours, name="tiny"))
    job = jobs.get_job(job_id)
    assert job["status"] in ("queued", "running") and job["run_id"]
    assert job["pid"] != os.getpid()
    job = wait_for(job_id, finished, what="finished")
    assert job["status"] == "done", (job["error"], job["log_tail"])
    folder = run_dir(job["run_id"])
    for name in ("model.keras", "config.json", "history.json", "metrics.json", "predictions.json", "run.json",
                 "job.log"):
        assert (folder / name).exists(), name
    assert read_json(folder / "config.json")["dataset"] == colours
    assert registry.get_run(job["run_id"])["status"] == "done"
    # progress and the epoch history (for live curves) were recorded on the job row
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["stage"] == "done"
    assert [e["epoch"] for e in job["history"]] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(job["history"][0])
    assert job["result"]["test_accuracy"] == pytest.approx(read_json(folder / "metrics.json")["accuracy"])
    assert "epoch 3/3" in jobs.read_log(job_id)
    end = time.time() + 30                     # the worker records "done", starts the next job, then exits
    while jobs.process_alive(job["pid"], job_id) and time.time() < end:
        time.sleep(0.1)
    assert not jobs.process_alive(job["pid"], job_id)
    # the CLI lists it (and reconciles) without importing TensorFlow
    out = subprocess.run([sys.executable, "-m", "core", "jobs", "--json"], capture_output=True, text=True,
                         env=dict(os.environ), timeout=60)
    assert out.returncode == 0, out.stderr
    listed = {j["id"]: j for j in json.loads(out.stdout.strip().splitlines()[-1])}
    assert listed[job_id]["status"] == "done"


def test_cancel_stops_a_running_job_within_seconds(colours):
    job_id = jobs.submit(spec(colours, epochs=1000, mode="full"))
    job = wait_for(job_id, training, what="training")
    assert jobs.process_alive(job["pid"], job_id)
    assert jobs.reconcile() == [] and jobs.get_job(job_id)["status"] == "running"   # alive: left alone
    t = time.monotonic()
    jobs.cancel(job_id)
    took = time.monotonic() - t
    job = jobs.get_job(job_id)
    assert took < 6, took
    assert job["status"] == "cancelled"
    assert not jobs.process_alive(job["pid"], job_id)
    assert registry.get_run(job["run_id"])["status"] == "cancelled"
    end = time.time() + 3                 # the whole process group is gone (once the watcher has reaped it)
    while time.time() < end:
        try:
            os.killpg(job["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker's process group is still there")


def test_cancel_a_queued_job_and_unknown_ids(colours):
    job_id = jobs.submit(spec(colours), start=False)
    assert jobs.cancel(job_id)["status"] == "cancelled"
    assert jobs.get_job(job_id)["pid"] is None
    with pytest.raises(LabError):
        jobs.cancel("job-0000000000")
    with pytest.raises(LabError):
        jobs.get_job("../../etc/passwd")


def test_an_exception_in_training_marks_the_job_failed_with_error_and_log(colours):
    # fine-tuning from a layer the backbone does not have: a LabError raised inside core.training.train
    job_id = jobs.submit(spec(colours, epochs=1, fine_tune_at=5000, fine_tune_epochs=1))
    job = wait_for(job_id, finished, what="finished")
    assert job["status"] == "failed"
    assert "fine-tune-at 5000" in job["error"]
    assert "fine-tune-at 5000" in job["log_tail"]
    assert registry.get_run(job["run_id"])["status"] == "failed"
    assert (run_dir(job["run_id"]) / "job.log").exists()


def test_a_killed_worker_marks_the_job_failed(colours):
    job_id = jobs.submit(spec(colours, epochs=1000, mode="full"))
    job = wait_for(job_id, training, what="training")
    os.killpg(job["pid"], signal.SIGKILL)            # e.g. the kernel's OOM killer
    job = wait_for(job_id, finished, timeout=20, what="finished")
    assert job["status"] == "failed"
    assert "killed by signal 9" in job["error"]
    assert job["log_tail"]
    assert registry.get_run(job["run_id"])["status"] == "failed"


def test_reconcile_marks_jobs_whose_process_vanished_as_interrupted(colours):
    dead = subprocess.Popen(["true"])
    dead.wait()
    a = jobs.submit(spec(colours), start=False)
    b = jobs.submit(spec(colours), start=False)
    with jobs.queue._connect() as con:   # as if the app had started them and then the machine restarted
        con.execute("UPDATE jobs SET status='running', pid=?, started=? WHERE id=?", (dead.pid, time.time(), a))
        # a live pid that is not this job's worker (pid reuse after a restart)
        con.execute("UPDATE jobs SET status='running', pid=?, started=? WHERE id=?", (os.getpid(), time.time(), b))
    for j in (a, b):
        registry.upsert_run(jobs.get_job(j)["run_id"], status="running")
    changed = jobs.reconcile()
    assert set(changed) == {a, b}
    for j in (a, b):
        job = jobs.get_job(j)
        assert job["status"] == "interrupted"
        assert "gone" in job["error"]
        assert registry.get_run(job["run_id"])["status"] == "interrupted"
    assert jobs.reconcile() == []


def test_a_worker_that_is_still_starting_counts_as_alive(colours, monkeypatch):
    """Right after `Popen` returns, the kernel may still be loading the worker's program and /proc/PID/cmdline
    reads as empty (most spawns, read at once): a reconcile in another session that reads it then must not take the
    starting worker for gone (under load, it marked a starting job of the 30-job classroom test interrupted)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)", "job-0123456789"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    assert jobs.process_alive(p.pid, "job-0123456789")
    p.wait()
    assert not jobs.process_alive(p.pid, "job-0123456789")
    assert not jobs.process_alive(os.getpid(), "job-0123456789")          # alive, but not that job's worker

    starting = subprocess.Popen(["sleep", "30"])      # stands for the worker caught between exec and its arguments
    real = jobs.queue._proc_state
    monkeypatch.setattr(jobs.queue, "_proc_state", lambda pid: ("R", "", 0) if pid == starting.pid else real(pid))
    try:
        a = jobs.submit(spec(colours), start=False)
        with jobs.queue._connect() as con:
            con.execute("UPDATE jobs SET status='running', pid=?, started=? WHERE id=?", (starting.pid, time.time(), a))
        assert jobs.reconcile() == [] and jobs.get_job(a)["status"] == "running"
        monkeypatch.setattr(jobs.queue, "_proc_state",                     # a kernel thread on a reused pid
                            lambda pid: ("S", "", jobs.queue.PF_KTHREAD) if pid == starting.pid else real(pid))
        assert jobs.reconcile() == [a] and jobs.get_job(a)["status"] == "interrupted"
    finally:
        starting.kill()
        starting.wait()


def test_the_concurrency_limit_holds_and_the_queue_advances_by_itself(colours):
    ids = [jobs.submit(spec(colours, epochs=2), start=False) for _ in range(2)]
    # several schedulers at once (browser sessions, exiting workers) never start more than the limit
    started: list[str] = []
    threads = [threading.Thread(target=lambda: started.extend(jobs.schedule())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert started == [ids[0]]
    assert jobs.get_job(ids[1])["status"] == "queued"
    assert jobs.queue_position(ids[1]) == 1
    end = time.time() + 2 * JOB_TIMEOUT
    seen_second_running = False
    while time.time() < end:
        rows = [jobs.get_job(i) for i in ids]          # no reconcile here: the queue must advance by itself
        assert sum(r["status"] in jobs.ACTIVE for r in rows) <= 1
        seen_second_running |= rows[1]["status"] == "running"
        if all(r["status"] in jobs.FINISHED for r in rows):
            break
        time.sleep(0.1)
    rows = [jobs.get_job(i) for i in ids]
    assert [r["status"] for r in rows] == ["done", "done"], [(r["error"], r["log_tail"]) for r in rows]
    assert seen_second_running
    assert rows[1]["started"] >= rows[0]["finished"] - 0.5
    assert rows[0]["run_id"] != rows[1]["run_id"]


def test_invalid_specs_are_refused_before_queueing(colours):
    with pytest.raises(LabError, match="epochs"):
        jobs.submit(spec(colours, epochs=0))
    with pytest.raises(LabError, match="kind"):
        jobs.submit({"kind": "mine-bitcoin", "config": {}})
    before = len(jobs.list_jobs(1000, reconcile_first=False))
    with pytest.raises(LabError):
        jobs.submit(spec(colours, optimizer="nope"))
    assert len(jobs.list_jobs(1000, reconcile_first=False)) == before


def test_progress_fraction_only_grows_through_training_and_compression():
    """The worker's progress bar: monotonic over a real event sequence, 1.0 only when done."""
    from core.progress import ProgressEvent
    from core.jobs.worker import Reporter
    spec_ = {"config": {"mode": "feature-extraction", "epochs": 3},
             "compress": {"techniques": ["pruning", "tflite_float32", "tflite_int8"]}}
    seen: list[float] = []
    rep = Reporter("job-0000000000", spec_)
    rep.flush = lambda: seen.append(rep.state["fraction"])      # no database here
    events = [ProgressEvent("data", "loading"), ProgressEvent("backbone", "building"),
              ProgressEvent("features", "features"), ProgressEvent("head", "head: starting", 0, 3)]
    events += [ProgressEvent("head", f"head: epoch {i}/3", i, 3, {"loss": 1.0 / i, "accuracy": 0.5}) for i in (1, 2, 3)]
    events += [ProgressEvent("evaluate", "evaluating"), ProgressEvent("save", "saving"),
               ProgressEvent("done", "test accuracy 0.9"), ProgressEvent("compress", "compressing"),
               ProgressEvent("compress:original", "measuring"),
               ProgressEvent("compress:pruning", "Magnitude pruning (1/3)", 1, 3),
               ProgressEvent("compress:pruning", "pruning to 50%"),
               ProgressEvent("compress:pruning", "compress:pruning: starting", 0, 4)]
    events += [ProgressEvent("compress:pruning", f"compress:pruning: epoch {i}/4", i, 4, {"loss": 0.1}) for i in (1, 2, 3, 4)]
    events += [ProgressEvent("compress:tflite_float32", "TFLite float32 (2/3)", 2, 3),
               ProgressEvent("compress:float32", "converting"),
               ProgressEvent("compress:tflite_int8", "TFLite int8 (3/3)", 3, 3),
               ProgressEvent("compress:int8", "converting")]
    fractions = []
    for ev in events:
        rep.last_flush = 0
        rep(ev)
        fractions.append(rep.state["fraction"])
    assert fractions == sorted(fractions), fractions
    assert fractions[0] == 0.0 and 0.9 < fractions[-1] < 1.0
    assert fractions[events.index(next(e for e in events if e.stage == "compress"))] < 0.5   # compression is the long part
    assert [e["epoch"] for e in rep.history] == [1, 2, 3]              # compression epochs are not learning curves


def test_a_preset_job_records_its_group_and_notes(colours):
    """Jobs queued for a preset (as Home and the Train page do) record the preset's group on their runs."""
    from core.presets.recipes import group_runs
    info = {"preset": "shapes", "preset_group": "shapes-test-group", "preset_run": "tiny", "notes": ["a note"],
            "warnings": [], "quick": True}
    job_id = jobs.submit(spec(colours) | {"preset": info})
    job = wait_for(job_id, finished, what="finished")
    assert job["status"] == "done", (job["error"], job["log_tail"])
    row = registry.get_run(job["run_id"])
    assert row["preset"] == "shapes" and row["summary"]["preset_group"] == "shapes-test-group"
    assert [r["id"] for r in group_runs("shapes-test-group")] == [job["run_id"]]
    assert read_json(run_dir(job["run_id"]) / "preset.json")["notes"] == ["a note"]
    with pytest.raises(LabError, match="preset entry"):
        jobs.submit(spec(colours) | {"preset": {"preset": "shapes"}})
