"""Background jobs: training (then optional compression) in separate OS processes, tracked in the SQLite registry.

A job is a row in the `jobs` table of artifacts/lab.db. `submit()` queues it; `schedule()` starts queued jobs
as `python -m core.worker JOB_ID` processes (own session, output to a log file) while fewer than
`max_concurrent()` jobs run (the worker trains locally or drives a Ray task: see core.jobs.backends). The worker writes its progress to its row and, when it exits, calls `schedule()`
so the queue advances without any browser open. `cancel()` stops a job's process group (SIGTERM, then SIGKILL),
and `reconcile()` marks jobs whose process is gone as interrupted.

Statuses: queued -> running -> done | failed | cancelled | interrupted (running -> cancelling -> cancelled).
Nothing here imports TensorFlow or Streamlit.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.store import registry
from core.errors import LabError
from core.store.paths import REPO_ROOT, sub
from core.store.runs import new_run_id, run_dir

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, run_id TEXT NOT NULL UNIQUE, name TEXT, status TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, started REAL, finished REAL, pid INTEGER,
    cancel_requested REAL, spec TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}',
    history TEXT NOT NULL DEFAULT '[]', result TEXT NOT NULL DEFAULT '{}', error TEXT, log_tail TEXT
)
"""
JOBS_INDEX = "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created)"
registry.add_schema("jobs", JOBS_SCHEMA + ";\n" + JOBS_INDEX)     # created once per process, with the registry's

ACTIVE = ("running", "cancelling")            # a process exists (or should)
OPEN = ("queued",) + ACTIVE                   # not finished yet
FINISHED = ("done", "failed", "cancelled", "interrupted")
KINDS = ("train",)
JOB_ID_RE = re.compile(r"^job-[0-9a-f]{10}$")
CANCEL_GRACE = 4.0                            # seconds between SIGTERM and SIGKILL
LOG_TAIL_CHARS = 6000
_WATCHERS: dict[str, subprocess.Popen] = {}   # jobs this process spawned (reaped by a watcher thread)


def max_concurrent() -> int:
    """How many jobs may run at once (env LAB_MAX_CONCURRENT_JOBS; default 1 with the local backend, as two cores
    fit one training, and more with Ray: see backends.default_concurrency)."""
    from .backends import default_concurrency
    try:
        return max(1, int(os.environ["LAB_MAX_CONCURRENT_JOBS"]))
    except (KeyError, ValueError):
        return default_concurrency()


def _connect(write: bool = True, patience: float | None = None):
    """The queue's own connection to the registry database (the jobs table is there): by default one write
    transaction (BEGIN IMMEDIATE, retried with backoff while the database is busy); write=False for plain reads."""
    return registry.connect(write=write, patience=patience)


def _read(sql: str, args: tuple | list = (), one: bool = False):
    """A read that never takes the write lock (retried while the database is busy)."""
    return registry.query(sql, args, one=one)


def _write(fn, patience: float | None = None):
    """fn(con) in one write transaction, retried as a whole while the database is busy (never for spawning)."""
    return registry.write(fn, patience)


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise LabError(f"'{job_id}' is not a job id (expected e.g. job-0a1b2c3d4e); see `python -m core jobs`")
    return job_id


def jobs_dir() -> Path:
    return sub("jobs")


def log_path(job_id: str) -> Path:
    return jobs_dir() / f"{check_job_id(job_id)}.log"


def _row(r) -> dict:
    d = dict(r)
    for k, empty in (("spec", {}), ("progress", {}), ("history", []), ("result", {})):
        d[k] = json.loads(d.get(k) or "null") or empty
    return d


# ---------------------------------------------------------------- submitting and reading


def validate_spec(spec: dict) -> dict:
    """Check a job spec before it is queued: a training config and an optional compression request."""
    from core.config import TrainConfig
    if not isinstance(spec, dict):
        raise LabError("a job spec must be a dict")
    kind = spec.get("kind", "train")
    if kind not in KINDS:
        raise LabError(f"unknown job kind '{kind}'; one of {', '.join(KINDS)}")
    cfg = spec.get("config")
    cfg = TrainConfig.from_dict(cfg if isinstance(cfg, dict) else {}).to_dict()   # raises LabError when invalid
    check_runnable(cfg)
    comp = spec.get("compress") or None
    if comp is not None:
        techniques = list(comp.get("techniques") or [])
        if techniques:
            try:
                from core.compression import TECHNIQUES
            except ImportError as e:
                raise LabError(f"compression is not available here ({e})") from e
            unknown = [t for t in techniques if t not in TECHNIQUES]
            if unknown:
                raise LabError(f"unknown compression technique(s) {', '.join(unknown)}; "
                               f"choose from {', '.join(TECHNIQUES)}")
        comp = {"techniques": techniques, "options": dict(comp.get("options") or {})} if techniques else None
    preset = spec.get("preset")
    if preset is not None:
        if not isinstance(preset, dict) or not {"preset", "preset_group", "preset_run"} <= set(preset):
            raise LabError("a job's preset entry must name the preset, its group and its run")
        preset = json.loads(json.dumps(preset))                 # plain JSON data only
    out = {"kind": kind, "config": cfg, "compress": comp, "name": spec.get("name") or cfg.get("name")}
    return out | ({"preset": preset} if preset else {})


def check_runnable(cfg: dict) -> None:
    """Refuse, before anything is queued, a run that cannot work here: a dataset that is not on this machine (or
    a path that does not exist), and a frozen backbone without pretrained weights unless acknowledged."""
    from core.data.datasets import get_dataset
    from core.models.backbones import frozen_random_problem
    spec = get_dataset(cfg["dataset"])                  # LabError for an unknown name or a missing path
    ok, why = spec.availability()
    if not ok:
        raise LabError(f"dataset '{spec.name}' is not available here: {why}")
    problem = frozen_random_problem(cfg["backbone"], cfg.get("weights", "auto"), cfg.get("mode"),
                                    int(cfg.get("fine_tune_epochs") or 0), bool(cfg.get("allow_random_frozen")))
    if problem:
        raise LabError(problem)


def submit(spec: dict, start: bool = True) -> str:
    """Queue a job (its run id is assigned now, so it owns its run folder); start it if a slot is free."""
    from .backends import usable_backend
    spec = validate_spec(spec)
    usable_backend()                          # a misspelt backend, or Ray missing, is refused before queueing
    job_id = "job-" + secrets.token_hex(5)
    run_id = new_run_id()
    while run_dir_exists(run_id):
        run_id = new_run_id()
    now = time.time()

    def insert(con) -> None:
        rid = run_id
        while con.execute("SELECT 1 FROM jobs WHERE run_id=?", (rid,)).fetchone():
            rid = new_run_id()
        con.execute("INSERT INTO jobs (id, kind, run_id, name, status, created, updated, spec) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (job_id, spec["kind"], rid, spec["name"], "queued", now, now, json.dumps(spec)))
    _write(insert)
    if start:
        schedule()
    return job_id


def run_dir_exists(run_id: str) -> bool:
    try:
        run_dir(run_id)
        return True
    except LabError:
        return False


def get_job(job_id: str) -> dict | None:
    check_job_id(job_id)
    r = _read("SELECT * FROM jobs WHERE id=?", (job_id,), one=True)
    return _row(r) if r else None


def list_jobs(limit: int = 50, statuses: tuple[str, ...] | None = None, reconcile_first: bool = True) -> list[dict]:
    """Newest first; by default reconciles first so a vanished process never shows as running."""
    if reconcile_first:
        reconcile()
    q, args = "SELECT * FROM jobs", []
    if statuses:
        q += f" WHERE status IN ({','.join('?' * len(statuses))})"
        args += list(statuses)
    q += " ORDER BY created DESC LIMIT ?"
    return [_row(r) for r in _read(q, (*args, limit))]


def job_for_run(run_id: str) -> dict | None:
    r = _read("SELECT * FROM jobs WHERE run_id=?", (run_id,), one=True)
    return _row(r) if r else None


def queue_position(job_id: str) -> int | None:
    """1-based position among queued jobs (oldest first), or None if the job is not queued."""
    ids = [r[0] for r in _read("SELECT id FROM jobs WHERE status='queued' ORDER BY created, rowid")]
    return ids.index(job_id) + 1 if job_id in ids else None


def read_log(job_id: str, max_chars: int = LOG_TAIL_CHARS) -> str:
    """The last `max_chars` characters of a job's log (empty if none yet)."""
    p = log_path(job_id)
    if not p.exists():
        return ""
    with open(p, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - max_chars * 2))
        text = f.read().decode("utf-8", "replace")
    return text[-max_chars:]


# ---------------------------------------------------------------- processes


PF_KTHREAD = 0x00200000           # /proc/PID/stat flags: a kernel thread


def _proc_state(pid: int) -> tuple[str | None, str, int]:
    """(state letter, command line, flags) of a process from /proc; (None, '', 0) if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        return fields[0], cmd, int(fields[6])
    except (OSError, ValueError, IndexError):
        return None, "", 0


def process_alive(pid: int | None, job_id: str) -> bool:
    """Whether the worker of `job_id` still runs as `pid` (a zombie, or a reused pid, does not count).

    A process whose command line is still empty counts as alive (unless it is a kernel thread): a new worker reads
    so from the moment `Popen` returns, while the kernel is still loading its program (measured: 257 of 303 spawns
    read at once under load), and taking it for gone marked a job that was starting as interrupted."""
    if not pid:
        return False
    if Path("/proc/self/stat").exists():
        state, cmd, flags = _proc_state(pid)
        if state is None or state in ("Z", "X"):
            return False
        return job_id in cmd or (not cmd.strip() and not flags & PF_KTHREAD)
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _spawn(job: dict) -> subprocess.Popen:
    log = log_path(job["id"])
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        return subprocess.Popen([sys.executable, "-m", "core.jobs.worker", job["id"]], cwd=str(REPO_ROOT), env=env,
                                stdin=devnull, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)


def _on_exit(job_id: str, code: int) -> bool:
    """A worker this process spawned has exited with `code`: record an outcome if it did not. True if recorded."""
    job = get_job(job_id)
    if not job or job["status"] not in ACTIVE:
        return False
    if job["status"] == "cancelling":
        _finish_cancel(job_id)
        return True
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    hint = " (out of memory?)" if code == -signal.SIGKILL else ""
    _mark_run(job["run_id"], "failed", f"worker process {how}{hint}")     # the run first: whoever sees the job
    return _finish(job_id, "failed", error=f"the worker process ended without a result: {how}{hint}",  # ended sees it
                   from_status=ACTIVE)


def _watch(job_id: str, proc: subprocess.Popen) -> None:
    """Reap a worker this process spawned (`schedule` registered it in _WATCHERS); if it died without recording an
    outcome, record one."""
    def wait():
        code = proc.wait()
        try:
            _on_exit(job_id, code)
            schedule()
        except Exception as e:  # noqa: BLE001 - a watcher must never take its host process down
            print(f"jobs: watcher for {job_id}: {e}", file=sys.stderr)
        finally:
            _WATCHERS.pop(job_id, None)
    threading.Thread(target=wait, name=f"watch-{job_id}", daemon=True).start()


def schedule() -> list[str]:
    """Start queued jobs, oldest first, while fewer than max_concurrent() are active. Returns the started ids.

    Claiming and spawning happen inside one IMMEDIATE transaction, so concurrent schedulers (the app, several
    browser sessions, exiting workers) can never exceed the limit together. A plain read first: with no free
    slot or nothing queued (what most callers find) the write lock is never taken.
    """
    started: list[tuple[str, subprocess.Popen]] = []
    limit = max_concurrent()
    counts = _read(f"SELECT SUM(status IN ({','.join('?' * len(ACTIVE))})), SUM(status='queued') FROM jobs "
                   f"WHERE status IN ({','.join('?' * len(OPEN))})", (*ACTIVE, *OPEN), one=True)
    if not (counts[1] or 0) or (counts[0] or 0) >= limit:
        return []
    with _connect() as con:
        active = con.execute(f"SELECT id, pid FROM jobs WHERE status IN ({','.join('?' * len(ACTIVE))})",
                             ACTIVE).fetchall()
        slots = limit - len(active)
        if slots > 0:
            queued = con.execute("SELECT * FROM jobs WHERE status='queued' ORDER BY created, rowid LIMIT ?",
                                 (slots,)).fetchall()
            for r in queued:
                job = _row(r)
                now = time.time()
                try:
                    proc = _spawn(job)
                except OSError as e:
                    con.execute("UPDATE jobs SET status='failed', error=?, updated=?, finished=? WHERE id=?",
                                (f"could not start the worker: {e}", now, now, job["id"]))
                    continue
                con.execute("UPDATE jobs SET status='running', pid=?, started=?, updated=? WHERE id=?",
                            (proc.pid, now, now, job["id"]))
                _WATCHERS[job["id"]] = proc      # before the row is visible: this process's reconcile polls it
                started.append((job["id"], proc))
    for job_id, proc in started:
        _watch(job_id, proc)
    return [j for j, _ in started]


def _finish(job_id: str, status: str, error: str | None = None, result: dict | None = None,
            from_status: tuple[str, ...] = OPEN, patience: float | None = None) -> bool:
    """Record a final status (only from a non-final one); store the log tail. True if this call changed it."""
    now = time.time()
    tail = read_log(job_id)
    q = (f"UPDATE jobs SET status=?, error=COALESCE(?, error), log_tail=?, finished=?, updated=?"
         f"{', result=?' if result is not None else ''} WHERE id=? AND status IN ({','.join('?' * len(from_status))})")
    args = [status, error, tail, now, now] + ([json.dumps(result, default=float)] if result is not None else [])
    return _write(lambda con: con.execute(q, (*args, job_id, *from_status)).rowcount > 0, patience)


def _mark_run(run_id: str, status: str, error: str) -> None:
    """Mark the job's run (if it exists) with the job's final status: a run still running, and a trained run whose
    job was then cancelled or failed (e.g. during compression), reads as its job does."""
    row = registry.get_run(run_id)
    if row and row["status"] in ("running", "created", "done") and row["status"] != status:
        if row["status"] == "done":
            error = f"{error} (after training: the trained model is kept)"
        registry.upsert_run(run_id, {"error": error}, status=status, error=error)


def _finish_cancel(job_id: str) -> None:
    job = get_job(job_id)
    if job and job["status"] in OPEN:
        _mark_run(job["run_id"], "cancelled", "cancelled by the user")          # the run first, then the job
        _finish(job_id, "cancelled", error="cancelled by the user", from_status=OPEN)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)           # start_new_session: the worker leads its own process group
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(pid: int, job_id: str, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        proc = _WATCHERS.get(job_id)
        if proc is not None:
            proc.poll()
        if not process_alive(pid, job_id):
            return True
        time.sleep(0.05)
    return not process_alive(pid, job_id)


def _stop(job_id: str, pid: int, grace: float) -> None:
    if not _wait_gone(pid, job_id, grace):
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(pid, job_id, 3.0)
    _finish_cancel(job_id)
    schedule()


def cancel(job_id: str, wait: bool = True, grace: float = CANCEL_GRACE) -> dict:
    """Cancel a job: a queued one at once; a running one by SIGTERM to its process group, SIGKILL after `grace`
    seconds. With wait=False the escalation runs in a background thread (reconcile() finishes it otherwise)."""
    check_job_id(job_id)
    now = time.time()

    def mark(con) -> dict:
        r = con.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if r is None:
            raise LabError(f"no job '{job_id}'; see `python -m core jobs`")
        job = _row(r)
        if job["status"] == "queued":
            con.execute("UPDATE jobs SET status='cancelled', error='cancelled before it started', cancel_requested=?, "
                        "finished=?, updated=? WHERE id=?", (now, now, now, job_id))
        elif job["status"] == "running":
            con.execute("UPDATE jobs SET status='cancelling', cancel_requested=?, updated=? WHERE id=?",
                        (now, now, job_id))
        return job
    job = _write(mark)
    if job["status"] in ("running", "cancelling"):
        pid = job["pid"]
        if process_alive(pid, job_id):
            _signal_group(pid, signal.SIGTERM)
            if wait:
                _stop(job_id, pid, grace)
            else:
                threading.Thread(target=_stop, args=(job_id, pid, grace), daemon=True).start()
        else:
            _finish_cancel(job_id)
            schedule()
    return get_job(job_id)


def reconcile() -> list[str]:
    """Mark jobs whose worker process is gone: running -> interrupted, cancelling -> cancelled; escalate overdue
    cancellations to SIGKILL; then start queued jobs if slots are free. Returns the ids whose status changed.
    Only reads while nothing has changed and no slot is free (the common case: it never takes the write lock)."""
    active = [_row(r) for r in _read(f"SELECT * FROM jobs WHERE status IN ({','.join('?' * len(ACTIVE))})", ACTIVE)]
    queued = _read("SELECT COUNT(*) FROM jobs WHERE status='queued'", one=True)[0]
    changed = []
    for job in active:
        proc = _WATCHERS.get(job["id"])
        if proc is not None and job["status"] == "running":
            # our own child: its watcher thread knows how it ended (poll() is None while the watcher reaps it)
            if proc.poll() is not None and _on_exit(job["id"], proc.returncode):
                changed.append(job["id"])
            continue
        alive = process_alive(job["pid"], job["id"])
        if job["status"] == "cancelling":
            if alive and time.time() - (job["cancel_requested"] or 0) > CANCEL_GRACE:
                _signal_group(job["pid"], signal.SIGKILL)
                alive = not _wait_gone(job["pid"], job["id"], 1.0)
            if not alive:
                _finish_cancel(job["id"])
                changed.append(job["id"])
        elif not alive:
            # a worker started moments ago may not have its pid row yet; the row is written with the spawn
            msg = (f"the worker process (pid {job['pid']}) is gone without a result: it was killed, "
                   "or the machine or app restarted")
            if _finish(job["id"], "interrupted", error=msg, from_status=("running",)):   # not if it just ended
                _mark_run(job["run_id"], "interrupted", msg)
                changed.append(job["id"])
    if changed or (queued and len(active) < max_concurrent()):
        schedule()
    return changed


# ---------------------------------------------------------------- used by the worker


def set_progress(job_id: str, progress: dict, history: list[dict] | None = None,
                 patience: float | None = None) -> None:
    """Store a job's progress (and its epoch history); retried while the database is busy, for up to `patience`
    seconds (registry.WRITE_PATIENCE by default), then the busy error is raised for the caller to try later."""
    now = time.time()
    if history is None:
        q, args = "UPDATE jobs SET progress=?, updated=? WHERE id=?", (json.dumps(progress, default=float), now, job_id)
    else:
        q = "UPDATE jobs SET progress=?, history=?, updated=? WHERE id=?"
        args = (json.dumps(progress, default=float), json.dumps(history, default=float), now, job_id)
    _write(lambda con: con.execute(q, args), patience)


def finish(job_id: str, status: str, error: str | None = None, result: dict | None = None,
           patience: float | None = None) -> bool:
    """The worker's own final record (the ACTIVE statuses only, so a cancel or reconcile is never overwritten)."""
    if status not in FINISHED:
        raise ValueError(status)
    return _finish(job_id, status, error, result, from_status=ACTIVE, patience=patience)




# ---------------------------------------------------------------- runs as the dashboard and the CLI show them


def _jobs_by_run(run_ids: list[str] | None = None) -> dict[str, dict]:
    with _connect() as con:
        if run_ids is None:
            rows = con.execute("SELECT id, run_id, status, name, error FROM jobs").fetchall()
        else:
            rows = con.execute(f"SELECT id, run_id, status, name, error FROM jobs WHERE run_id IN "
                               f"({','.join('?' * len(run_ids))})", run_ids).fetchall() if run_ids else []
    return {r["run_id"]: dict(r) for r in rows}


def _with_job(row: dict, job: dict | None) -> dict:
    """A registry row with its displayed status: its job's status when a job made it, else its own. `run_status`
    keeps the run's own (done: the model was trained), `trained` says whether the run has a model, and `name`
    and `label` say how to call it."""
    out = dict(row)
    out["run_status"] = row["status"]
    out["trained"] = row["status"] == "done" or (row.get("test_accuracy") is not None)
    if job is not None:
        out["status"] = job["status"]
        out["job_id"] = job["id"]
        if job["status"] in ("cancelled", "failed", "interrupted") and not out.get("error"):
            out["error"] = job.get("error")
    out["name"] = registry.run_name(row)
    out["label"] = registry.run_label(row)
    return out


def list_runs(limit: int = 200) -> list[dict]:
    """The runs, newest first, each with the status of the job that made it (see _with_job)."""
    rows = registry.list_runs(limit)
    by_run = _jobs_by_run([r["id"] for r in rows])
    return [_with_job(r, by_run.get(r["id"])) for r in rows]


def get_run(run_id: str) -> dict | None:
    row = registry.get_run(run_id)
    return None if row is None else _with_job(row, _jobs_by_run([run_id]).get(run_id))


def rename_run(run_id: str, name: str | None) -> str | None:
    """Name a run (None or "" clears the name): its files, its registry row and the job that made it."""
    from core.store.runs import rename_run as rename_files
    name = rename_files(run_id, name)
    with _connect() as con:
        con.execute("UPDATE jobs SET name=?, updated=? WHERE run_id=?", (name, time.time(), run_id))
    return name


def delete_run(run_id: str) -> None:
    """Delete a run: its folder, its registry rows, and the finished job that made it (with its log). A run whose
    job is still queued or running is refused: cancel the job first."""
    from core.store.runs import check_run_id, delete_run as delete_files
    check_run_id(run_id)
    job = job_for_run(run_id)
    if job is not None and job["status"] in OPEN:
        raise LabError(f"run {run_id} is still being made by job {job['id']} ({job['status']}): "
                       f"cancel the job first (`python -m core cancel {job['id']}`)")
    if job is None and registry.get_run(run_id) is None and not run_dir_exists(run_id):
        raise LabError(f"no run '{run_id}'; see `python -m core runs`")
    if run_dir_exists(run_id) or registry.get_run(run_id) is not None:
        delete_files(run_id)
    if job is not None:
        with _connect() as con:
            con.execute("DELETE FROM jobs WHERE id=? AND status NOT IN (?,?,?)", (job["id"], *OPEN))
        log_path(job["id"]).unlink(missing_ok=True)
