"""The registry under concurrency: many threads and processes reading and writing at once never see
`database is locked`, readers never wait for a writer, the schema is created once per process, and 30 training
jobs finish while 10 simulated browser sessions read the registry, with no job failing."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import jobs
from core.store import registry
from tests.conftest import COLOURS, make_class_folder

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
RUN = "20250101-000000-{:06x}"

# One process of the stress test: `threads` writer threads and as many reader threads, for `seconds`.
# registry.BUSY_TIMEOUT is cut to 1 ms so that SQLite's own busy handler gives up at once and every contended
# write goes through the lab's retry with backoff (the path a worker relies on under load).
STRESS = r"""
import json, os, random, sys, threading, time, traceback
from core import jobs
from core.store import registry
registry.BUSY_TIMEOUT = 0.001
proc, threads, seconds, job_ids = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
registry.list_runs(1)
print("ready", flush=True)
t0 = float(sys.stdin.readline())          # the moment every process starts at
errors, writes, reads = [], {}, [0]
lock = threading.Lock()

def writer(w):
    rid = "20250101-000000-%06x" % (proc * 100 + w)
    rng = random.Random(proc * 100 + w)
    n = 0
    while time.time() < t0 + seconds:
        try:
            n += 1
            registry.upsert_run(rid, {"n": n, "blob": "x" * rng.randint(0, 5000)}, status="running", test_accuracy=n)
            registry.replace_variants(rid, [{"name": f"v{j}", "technique": "t", "n": n} for j in range(rng.randint(1, 4))])
            jobs.set_progress(job_ids[(proc * 100 + w) % len(job_ids)], {"n": n, "by": rid}, [{"epoch": e} for e in range(n % 30)])
        except Exception as e:
            with lock:
                errors.append(f"writer: {type(e).__name__}: {e}")
            n -= 1
    writes[rid] = n

def reader(r):
    while time.time() < t0 + seconds:
        try:
            registry.list_runs(50)
            registry.get_run("20250101-000000-%06x" % (proc * 100 + r))
            jobs.list_jobs(20, reconcile_first=False)
            jobs.get_job(job_ids[r % len(job_ids)])
            registry.list_variants("20250101-000000-%06x" % (proc * 100 + r))
            with lock:
                reads[0] += 1
        except Exception as e:
            with lock:
                errors.append(f"reader: {type(e).__name__}: {e}")

time.sleep(max(0.0, t0 - time.time()))
ts = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
ts += [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"errors": errors[:20], "n_errors": len(errors), "writes": writes, "reads": reads[0]}), flush=True)
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    return tmp_path


def _seed_jobs(n: int) -> list[str]:
    ids = [f"job-{i:010x}" for i in range(n)]
    now = time.time()
    with jobs.queue._connect() as con:
        for i, j in enumerate(ids):
            con.execute("INSERT INTO jobs (id, kind, run_id, status, created, updated, spec) VALUES (?,?,?,?,?,?,?)",
                        (j, "train", RUN.format(0xF00000 + i), "done", now, now, "{}"))
    return ids


def test_many_threads_and_processes_read_and_write_at_once_without_database_is_locked(home):
    job_ids = _seed_jobs(4)
    seconds, threads = 4.0, 4
    procs = [subprocess.Popen([PY, "-c", STRESS, str(p), str(threads), str(seconds), json.dumps(job_ids)],
                              cwd=REPO, env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for p in range(1, 4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-3000:]
    t0 = time.time() + 0.3                                   # every process starts its threads at the same moment
    for p in procs:
        p.stdin.write(f"{t0}\n")
        p.stdin.flush()
    # this process joins in too, with the default busy timeout: 4 writer and 4 reader threads
    local_errors: list[str] = []
    local_writes: dict[str, int] = {}

    def writer(w: int) -> None:
        rid, n = RUN.format(w), 0
        while time.time() < t0 + seconds:
            try:
                n += 1
                registry.upsert_run(rid, {"n": n}, status="running", test_accuracy=n)
                jobs.set_progress(job_ids[w % len(job_ids)], {"n": n})
            except Exception as e:  # noqa: BLE001
                local_errors.append(f"{type(e).__name__}: {e}")
                n -= 1
        local_writes[rid] = n

    def reader(r: int) -> None:
        while time.time() < t0 + seconds:
            try:
                registry.list_runs(50)
                jobs.list_jobs(20)                           # with reconcile, as the dashboard reads it
                jobs.get_job(job_ids[r % len(job_ids)])
            except Exception as e:  # noqa: BLE001
                local_errors.append(f"{type(e).__name__}: {e}")

    time.sleep(max(0.0, t0 - time.time()))
    ts = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    ts += [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    errors = local_errors + [e for o in outs for e in o["errors"]]
    assert not errors and not any(o["n_errors"] for o in outs), errors[:10]
    assert not any("locked" in e for e in errors)
    # every write that returned is there: each writer's row holds its last count
    writes = {**local_writes, **{k: v for o in outs for k, v in o["writes"].items()}}
    assert len(writes) == 16 and all(n > 0 for n in writes.values()), writes
    for rid, n in writes.items():
        row = registry.get_run(rid)
        assert row["summary"]["n"] == n and row["test_accuracy"] == n, (rid, n, row["summary"].get("n"))
    assert sum(o["reads"] for o in outs) > 0
    con = sqlite3.connect(home / "lab.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_readers_never_wait_for_a_writer(home):
    job_ids = _seed_jobs(2)
    registry.upsert_run(RUN.format(1), {"a": 1}, status="done")
    # another process holds the write lock (a long write transaction)
    holder = subprocess.Popen([PY, "-c", "import sqlite3, sys, time\n"
                                          "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                                          "con.execute('BEGIN IMMEDIATE')\n"
                                          "con.execute(\"UPDATE runs SET status='held'\")\n"
                                          "print('held', flush=True)\ntime.sleep(30)\n", str(home / "lab.db")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.monotonic()
        for _ in range(20):
            assert registry.get_run(RUN.format(1))["status"] == "done"      # the last committed state
            assert registry.list_runs()
            assert registry.list_variants(RUN.format(1)) == []
            assert len(jobs.list_jobs(20)) == 2                              # reconcile included: nothing to write
            assert jobs.get_job(job_ids[0])["status"] == "done"
            assert jobs.schedule() == []                                     # nothing queued: no write lock wanted
        took = time.monotonic() - t
        # 120 reads; one that waited for the lock would wait out the busy timeout (5 s) at least
        assert took < registry.BUSY_TIMEOUT * 2, f"reads waited for the writer: {took:.2f} s"
        # a writer, though, waits for the lock (with backoff) and gets through once it is free
        registry_write = threading.Thread(target=registry.upsert_run, args=(RUN.format(2),), kwargs={"status": "done"})
        registry_write.start()
        time.sleep(0.5)
        assert registry.get_run(RUN.format(2)) is None
    finally:
        holder.kill()
        holder.wait()
    registry_write.join(timeout=30)
    assert registry.get_run(RUN.format(2))["status"] == "done"


def test_the_schema_is_created_once_per_process(home, monkeypatch):
    registry.get_run(RUN.format(1))                      # the first connection creates the tables
    seen: list[str] = []
    real_open = registry._open

    def traced(path):
        con = real_open(path)
        con.set_trace_callback(seen.append)
        return con
    monkeypatch.setattr(registry, "_open", traced)
    registry.upsert_run(RUN.format(1), status="done")
    registry.get_run(RUN.format(1))
    jobs.list_jobs(5)
    assert seen and not [s for s in seen if s.upper().startswith("CREATE") or "JOURNAL_MODE" in s.upper()], seen
    assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]     # only the one write
    # a new database file (another lab home) gets its tables on its first use
    other = home / "other"
    monkeypatch.setenv("LAB_HOME", str(other))
    assert jobs.list_jobs(5) == [] and registry.list_runs() == []
    assert any("CREATE TABLE IF NOT EXISTS jobs" in s for s in seen)


def test_a_busy_database_delays_a_write_and_never_loses_it(home, monkeypatch):
    """SQLite's busy handler gives up (1 ms here); the lab's backoff keeps trying until the lock is free."""
    monkeypatch.setattr(registry, "BUSY_TIMEOUT", 0.001)
    job_id = _seed_jobs(1)[0]
    holder = subprocess.Popen([PY, "-c", "import sqlite3, sys, time\n"
                                          "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                                          "con.execute('BEGIN IMMEDIATE')\nprint('held', flush=True)\n"
                                          "time.sleep(1.5)\ncon.execute('COMMIT')\n", str(home / "lab.db")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t = time.monotonic()
    jobs.set_progress(job_id, {"stage": "head", "fraction": 0.5}, [{"epoch": 1}])
    assert time.monotonic() - t > 0.5
    holder.wait(timeout=30)
    job = jobs.get_job(job_id)
    assert job["progress"]["fraction"] == 0.5 and job["history"] == [{"epoch": 1}]
    # with no patience left, the busy error reaches the caller (the worker then writes it with the next event)
    holder = subprocess.Popen([PY, "-c", "import sqlite3, sys, time\n"
                                          "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                                          "con.execute('BEGIN IMMEDIATE')\nprint('held', flush=True)\n"
                                          "time.sleep(3)\n", str(home / "lab.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            jobs.set_progress(job_id, {"fraction": 0.6}, patience=0.2)
    finally:
        holder.kill()
        holder.wait()
    from core.jobs.worker import Reporter
    rep = Reporter(job_id, {"config": {"mode": "feature-extraction"}})
    rep.state["fraction"] = 0.7
    rep.history = [{"epoch": 1}, {"epoch": 2}]
    rep.dirty_history = True
    monkeypatch.setattr("core.jobs.worker.PROGRESS_PATIENCE", 0.2)
    holder = subprocess.Popen([PY, "-c", "import sqlite3, sys, time\n"
                                          "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                                          "con.execute('BEGIN IMMEDIATE')\nprint('held', flush=True)\n"
                                          "time.sleep(1)\n", str(home / "lab.db")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert rep.flush() is False and rep.dirty_history          # deferred, kept for the next write
    holder.wait(timeout=30)
    assert rep.flush() is True
    job = jobs.get_job(job_id)
    assert job["progress"]["fraction"] == 0.7 and len(job["history"]) == 2


# ---------------------------------------------------------------- 30 jobs while 10 sessions read

N_JOBS, N_READERS = 30, 10


def test_thirty_jobs_while_ten_sessions_read_finish_with_zero_failures(fresh_home, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_MAX_CONCURRENT_JOBS", "4")
    data = str(make_class_folder(tmp_path / "colours", COLOURS, n=12, size=24))
    spec = {"kind": "train", "config": {"dataset": data, "backbone": "mlp", "image_size": 16, "epochs": 2,
                                        "batch_size": 16, "head": {"dense": [16], "dropout": 0.0}}}
    stop = threading.Event()
    errors: list[str] = []
    reads = [0] * N_READERS

    def session(k: int) -> None:
        """What one open dashboard reads, over and over: the job list (reconciling), its job, the runs."""
        while not stop.is_set():
            try:
                listed = jobs.list_jobs(20)
                for j in listed[:2]:
                    jobs.get_job(j["id"])
                    registry.get_run(j["run_id"])
                registry.list_runs(50)
                reads[k] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.05)

    readers = [threading.Thread(target=session, args=(k,), daemon=True) for k in range(N_READERS)]
    for t in readers:
        t.start()
    try:
        ids = [jobs.submit(spec | {"name": f"load-{i}"}) for i in range(N_JOBS)]
        end = time.time() + 240
        while time.time() < end:
            rows = jobs.list_jobs(100, reconcile_first=False)      # one snapshot (one SELECT)
            assert sum(r["status"] in jobs.ACTIVE for r in rows) <= 4
            if all(r["status"] in jobs.FINISHED for r in rows):
                break
            time.sleep(0.25)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=10)
    rows = [jobs.get_job(i) for i in ids]
    bad = [(r["id"], r["status"], r["error"], (r["log_tail"] or "")[-500:]) for r in rows if r["status"] != "done"]
    assert not bad, bad
    assert not errors, errors[:10]
    assert min(reads) > 0
    for r in rows:
        assert r["progress"]["fraction"] == 1.0 and [e["epoch"] for e in r["history"]] == [1, 2]
        assert registry.get_run(r["run_id"])["status"] == "done"
    assert not any("locked" in (jobs.read_log(r["id"]) or "") for r in rows)
