"""The Ray job backend on a real two-node Ray cluster on 127.0.0.1 (Ray's own ray.cluster_utils.Cluster): jobs
submitted from the CLI train on the worker node and come back as complete runs, progress shows live on the Train
page, cancel stops the Ray task, and a worker node that dies fails its job with a clear message."""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from core import jobs  # noqa: E402
from core.store import registry  # noqa: E402
from core.store.runs import read_json, run_dir  # noqa: E402
from tests.conftest import REPO, wait_for_job  # noqa: E402

JOB_TIMEOUT = 240
WORKER_CPUS = 3          # logical CPUs: the three jobs run at once (the machine has 2 cores)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if text in cmd:
                found.append(f"{p.name}: {cmd[:120]}")
    return found


@pytest.fixture(scope="module")
def cluster():
    """A head node that runs no jobs (num_cpus=0, as the lab's own machine would) and one worker node with 3
    (logical) CPUs, all on 127.0.0.1, no dashboard, no usage stats. Shut down (and checked gone) at the end."""
    from ray.cluster_utils import Cluster
    temp = tempfile.mkdtemp(prefix="labray-", dir="/tmp")       # short: Ray's socket paths must stay < 108 chars
    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "RAY_TMPDIR")}
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=temp)   # the drivers (subprocesses) inherit both
    c = None
    try:
        for attempt in (1, 2):       # Ray gives a node 30 s to start: on a loaded machine, try once more
            c = Cluster()
            try:
                c.add_node(num_cpus=0, include_dashboard=False, node_ip_address="127.0.0.1")
                c.worker = c.add_node(num_cpus=WORKER_CPUS, node_ip_address="127.0.0.1")
                c.wait_for_nodes()
                break
            except Exception:
                c.shutdown()
                if attempt == 2:
                    raise
        yield c
    finally:
        if c is not None:
            c.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    end = time.time() + 15
    while (left := _processes_mentioning(temp)) and time.time() < end:
        time.sleep(0.2)
    shutil.rmtree(temp, ignore_errors=True)
    assert not left, f"Ray processes left behind: {left}"


@pytest.fixture
def on_ray(cluster, monkeypatch):
    monkeypatch.setenv("LAB_JOB_BACKEND", "ray")
    monkeypatch.setenv("LAB_RAY_ADDRESS", cluster.address)
    monkeypatch.setenv("LAB_MAX_CONCURRENT_JOBS", "3")
    yield cluster
    for j in jobs.list_jobs(100, jobs.OPEN, reconcile_first=False):
        jobs.cancel(j["id"], grace=3)


def config(**cfg) -> dict:
    return {"dataset": "shapes", "backbone": "mlp", "image_size": 16, "epochs": 3, "batch_size": 32,
            "head": {"dense": [16], "dropout": 0.0}} | cfg


def submit_cli(*runs: tuple[str, ...]) -> list[str]:
    """`python -m core submit` once per run (all at once, as three students would), returning the job ids."""
    procs = [subprocess.Popen([sys.executable, "-m", "core", "submit", "--dataset", "shapes", "--backbone", "mlp",
                               "--image-size", "16", "--batch-size", "32", *args, "--json"], cwd=REPO,
                              env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in runs]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(json.loads(out.strip().splitlines()[-1])["id"])
    return ids


def live(job: dict) -> bool:
    return job["status"] == "running" and len(job["history"]) >= 1 and bool(job["progress"].get("ray_node"))


def test_the_local_path_never_imports_ray():
    code = ("import sys, core.jobs, core.jobs.worker, core.cli.main; from core.jobs import backends; "
            "assert backends.backend_name() == 'local'; assert 'ray' not in sys.modules, 'ray imported'")
    env = {k: v for k, v in os.environ.items() if k != "LAB_JOB_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def _listening(text: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Addresses of the TCP sockets listening in processes whose command line mentions `text` (from /proc)."""
    inodes = {}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":                          # LISTEN; the address is 32-bit words in host (little) order
                raw = bytes.fromhex(f[1].split(":")[0])
                inodes[f[9]] = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    found = []
    for entry in _processes_mentioning(text):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{entry.split(':')[0]}/fd").iterdir()]
        except OSError:
            continue
        found += [inodes[x[8:-1]] for x in links if x.startswith("socket:[") and x[8:-1] in inodes]
    return found


def _loopback(ip) -> bool:
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def test_auto_without_a_cluster_runs_the_job_on_a_private_ray_that_listens_on_loopback_only(tmp_path, monkeypatch):
    """LAB_RAY_ADDRESS=auto with no cluster on this machine: the job's driver starts a private Ray for it, in Ray's
    single-machine mode, so no Ray port is open to the network; cancel stops it and leaves no Ray process."""
    temp = tempfile.mkdtemp(prefix="labauto-", dir="/tmp")          # a Ray temp dir with no cluster in it
    monkeypatch.setenv("RAY_TMPDIR", temp)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("LAB_JOB_BACKEND", "ray")
    monkeypatch.setenv("LAB_RAY_ADDRESS", "auto")
    job_id = jobs.submit({"kind": "train", "config": config(epochs=1000, mode="full"), "name": "private ray"})
    try:
        job = wait_for_job(job_id, live, JOB_TIMEOUT, what="training on a private Ray")
        assert job["progress"]["ray_node"] == "127.0.0.1", job["progress"]
        ports = _listening(temp)
        assert ports and all(_loopback(a) for a in ports), ports
    finally:
        jobs.cancel(job_id, grace=3)
    assert jobs.get_job(job_id)["status"] == "cancelled"
    end = time.time() + 20
    while (left := _processes_mentioning(temp)) and time.time() < end:
        time.sleep(0.2)
    shutil.rmtree(temp, ignore_errors=True)
    assert not left, f"the private Ray outlived its job: {left}"


def test_three_cli_jobs_train_on_the_cluster_and_come_back_as_complete_runs(on_ray, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("LAB_MLFLOW_URI", uri)             # and the runs that came back from Ray are tracked
    t0 = time.monotonic()
    ids = submit_cli(("--epochs", "3", "--name", "ray one", "--compress", "tflite_float32"),
                     ("--epochs", "3", "--name", "ray two"),
                     ("--epochs", "12", "--mode", "full", "--batch-size", "2", "--name", "ray long"))   # slow epochs
    long_job = wait_for_job(ids[2], live, JOB_TIMEOUT, what="training on Ray")
    # the Train page's job view reads the registry: it shows the Ray job running, with its epochs so far
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)    # through the app's navigation,
    at.query_params["job"] = ids[2]                                                # so its page links resolve
    at.switch_page("pages/2_Train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = jobs.get_job(ids[2])
    panel = " ".join(m.value for m in at.markdown)
    assert "ray long" in panel and ids[2] in panel
    assert shown["status"] == "running", "the long job ended before the page was drawn: make its epochs slower"
    bar = at.get("progress")[0].proto.text
    assert "on Ray node 127.0.0.1" in bar, bar
    assert any(m.label == "Epoch" for m in at.metric) and at.get("plotly_chart")      # its epochs so far, live
    done = [wait_for_job(j, lambda j: j["status"] in jobs.FINISHED, JOB_TIMEOUT, what="finished") for j in ids]
    took = time.monotonic() - t0
    for job in done:
        assert job["status"] == "done", (job["error"], jobs.read_log(job["id"])[-2000:])
        folder = run_dir(job["run_id"])
        for name in ("model.keras", "config.json", "history.json", "metrics.json", "predictions.json", "run.json",
                     "job.log"):
            assert (folder / name).is_file(), (job["name"], name)
        row = registry.get_run(job["run_id"])
        assert row["status"] == "done" and row["dataset"] == "shapes" and row["backbone"] == "mlp"
        assert row["test_accuracy"] == pytest.approx(read_json(folder / "metrics.json")["accuracy"])
        assert job["result"]["test_accuracy"] == pytest.approx(row["test_accuracy"])
        assert job["progress"]["fraction"] == 1.0 and job["progress"]["ray_node"] == "127.0.0.1"
        assert "running on Ray node 127.0.0.1" in (folder / "job.log").read_text()     # the whole log, kept
    # the epoch history streamed while it ran (for the live curves) and was complete at the end
    assert long_job["history"] and [e["epoch"] for e in done[2]["history"]] == list(range(1, 13))
    # the compressed variant came back too: its file in the folder, its row in the registry
    variants = {v["name"]: v for v in registry.list_variants(done[0]["run_id"])}
    assert "tflite_float32" in variants
    from core.evaluation.compare import load_run
    rep = load_run(done[0]["run_id"])
    assert rep.status == "done" and {"original", "tflite_float32"} <= {v["name"] for v in rep.variants}
    from core.export import mlflow_log
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")    # MLflow 3 asks for it to read a file: store
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(mlflow_log.DEFAULT_EXPERIMENT)
    for job in done:
        end = time.time() + 60                  # the driver logs once the job is done and its folder complete
        while not (found := client.search_runs([exp.experiment_id] if exp else [],
                                               f"tags.`lab.run_id` = '{job['run_id']}'")) and time.time() < end:
            time.sleep(0.5)
            exp = exp or client.get_experiment_by_name(mlflow_log.DEFAULT_EXPERIMENT)
        assert found, f"run {job['run_id']} was not logged to MLflow"
        assert any(r.data.params.get("backbone") == "mlp" for r in found)
    # nothing was left in the node's scratch homes
    assert not any((Path(os.environ["LAB_HOME"]) / "ray-scratch").glob("job-*"))
    print(f"three Ray jobs: {took:.1f} s")


def test_cancel_stops_the_ray_task(on_ray):
    job_id = jobs.submit({"kind": "train", "config": config(epochs=1000, mode="full"), "name": "cancel me"})
    job = wait_for_job(job_id, live, JOB_TIMEOUT, what="training on Ray")
    ray_pid = job["progress"]["ray_pid"]
    assert _processes_mentioning("ray::") and Path(f"/proc/{ray_pid}").exists()
    t = time.monotonic()
    job = jobs.cancel(job_id)
    took = time.monotonic() - t
    assert job["status"] == "cancelled" and job["error"] == "cancelled by the user", job
    assert took < 8, took
    end = time.time() + 15                      # force-cancelled: the Ray worker process is killed
    while Path(f"/proc/{ray_pid}").exists() and time.time() < end:
        time.sleep(0.2)
    assert not Path(f"/proc/{ray_pid}").exists(), "the Ray worker still runs after cancel"
    log = jobs.read_log(job_id)
    assert "cancelled (the Ray task was stopped)" in log, log[-1500:]


def test_a_job_no_node_can_take_fails_at_once_with_a_clear_message(on_ray, monkeypatch):
    monkeypatch.setenv("LAB_RAY_CPUS_PER_JOB", "64")
    job_id = jobs.submit({"kind": "train", "config": config()})
    job = wait_for_job(job_id, lambda j: j["status"] in jobs.FINISHED, 90, what="finished")
    assert job["status"] == "failed"
    assert "no node of the Ray cluster can run a job needing 64 CPU(s)" in job["error"], job["error"]


def test_a_worker_node_that_dies_mid_job_fails_the_job(on_ray):
    job_id = jobs.submit({"kind": "train", "config": config(epochs=1000, mode="full"), "name": "node dies"})
    wait_for_job(job_id, live, JOB_TIMEOUT, what="training on Ray")
    t = time.monotonic()
    on_ray.remove_node(on_ray.worker, allow_graceful=False)
    job = wait_for_job(job_id, lambda j: j["status"] in jobs.FINISHED, 120, what="finished")
    took = time.monotonic() - t
    assert job["status"] == "failed", job
    assert "Ray node 127.0.0.1 died or lost its worker mid-job" in job["error"], job["error"]
    assert "not retried" in job["error"]
    print(f"node death noticed after {took:.1f} s")
    on_ray.worker = on_ray.add_node(num_cpus=WORKER_CPUS, node_ip_address="127.0.0.1")   # for any later test


def test_scratch_homes_of_killed_tasks_are_swept_and_live_ones_kept(tmp_path):
    import fcntl

    from core.jobs import ray_backend
    node_home = tmp_path / "node"
    home, fd = ray_backend._scratch_home(node_home, "job-0000000001")
    assert (home / "weights").is_symlink() and (home / "weights").resolve() == (node_home / "weights").resolve()
    stale = node_home / ray_backend.SCRATCH / "job-0000000002-abcdef"      # its task was killed: unlocked
    stale.mkdir()
    (stale / ".lock").touch()
    other, fd2 = ray_backend._scratch_home(node_home, "job-0000000003")
    assert not stale.exists() and home.is_dir() and other.is_dir()           # the live (locked) one stays
    for f in (fd, fd2):
        fcntl.flock(f, fcntl.LOCK_UN)
        os.close(f)


def test_a_returned_archive_with_files_outside_its_run_is_refused(tmp_path):
    import io
    import tarfile

    from core.errors import LabError
    from core.jobs import ray_backend
    from core.store.paths import runs_dir
    run_id = "20261201-000000-abcdef"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in (f"{run_id}/metrics.json", "../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(LabError, match="outside its folder"):
        ray_backend.import_run(run_id, {"archive": buf.getvalue()})
    assert not (runs_dir() / run_id).exists() and not (runs_dir().parent / "escaped.txt").exists()
    assert not list(runs_dir().glob(".incoming-*")) and registry.get_run(run_id) is None
