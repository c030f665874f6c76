"""The `ray` job backend: the worker process drives its job as a Ray task on a cluster node.

The queue starts `python -m core.jobs.worker JOB_ID` as for a local job; with LAB_JOB_BACKEND=ray that process
(`execute_on_ray`) is a thin driver:
1. it connects to the cluster (LAB_RAY_ADDRESS; `auto`: the cluster running on this machine, else a private local
   one for this job) and submits `run_job_task` with the job's needs declared (num_cpus, and memory if set);
2. the task is a streaming generator (`num_returns="streaming"`): on its node it runs the very same training as the
   local backend (worker.execute) in a scratch lab home of its own, and yields every progress write; the driver
   writes each to the job's row, so the Train page shows it live. Ray's own object transfer carries them, in order,
   with no actor or queue to keep alive, and the stream ends in an error when the node or the task dies;
3. the last item is the outcome with the run folder as a tar archive (bytes) and the run's registry rows; the driver
   unpacks the folder atomically into this lab's runs folder and writes the rows, so Results works unchanged.
   No shared storage is needed: the nodes read datasets, weights and caches from their own lab home.

Only the driver writes the lab's SQLite registry; the task writes only its scratch home's throw-away one.
Cancel (SIGTERM to the driver, as for a local job) calls ray.cancel(force=True). A node or worker that dies mid-job
fails the job with a message saying so (max_retries=0: not retried, since its progress was already shown).
"""
from __future__ import annotations

import fcntl
import io
import os
import queue as queue_mod
import secrets
import shutil
import signal
import socket
import tarfile
import threading
import time
from pathlib import Path

from core.errors import LabError
from core.store import registry, settings
from core.store.paths import REPO_ROOT, lab_home, runs_dir

from . import worker
from .backends import RayOptions, ray_address, ray_options

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _address_parts(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` cluster address; None for `auto`, `ray://` and anything else."""
    host, _, port = address.rpartition(":")
    if not host or "/" in address or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _prepare_environment() -> None:
    """Before Ray is imported: no usage reporting, and for a cluster on 127.0.0.1 Ray's single-machine mode, in
    which it keeps the loopback address instead of swapping it for this machine's network one (where a cluster
    started with --node-ip-address 127.0.0.1 does not listen)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")          # the job log is a file: no colour codes
    parts = _address_parts(ray_address())
    if parts and parts[0] in LOOPBACK:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


_prepare_environment()

import ray  # noqa: E402
from ray import exceptions as rex  # noqa: E402


SHARED_DIRS = ("packages", "weights", "cache", "datasets", "uploads")   # read by a task from its node's lab home
SHARED_FILES = ("check_sets.json",)
PASSED_SETTINGS = ("carbon_region", "cpu_watts_per_core")   # the lab's, applied to the task's energy figures
POLL_SECONDS = 0.5          # the driver waits for the next item this long at a time (a cancel gets through between)
RECHECK_SECONDS = 5.0       # while the task waits for a node, how often the driver checks one can still take it
CONNECT_SECONDS = 5.0       # how long the cluster's address may take to answer
SCRATCH = "ray-scratch"     # per-task lab homes on a node, under its lab home


# ---------------------------------------------------------------- on the node


class StreamReporter(worker.Reporter):
    """The Reporter inside the Ray task: each progress write goes to the task's stream instead of a database."""

    def __init__(self, job_id: str, spec: dict, out: queue_mod.Queue):
        super().__init__(job_id, spec)
        self.out = out

    def write(self, history: list[dict] | None, patience: float) -> None:
        self.out.put({"kind": "progress", "state": dict(self.state),
                      "history": list(history) if history is not None else None})


def _scratch_home(node_home: Path, job_id: str) -> tuple[Path, int]:
    """A lab home for one task: its own runs folder and registry, the node's shared data linked in. It stays locked
    while the task runs; folders of tasks that were killed (unlocked) are removed here."""
    base = node_home / SCRATCH
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.name.startswith("."):
            continue                                    # one being made (below)
        lock = old / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(old, ignore_errors=True)      # its task is gone
        except OSError:
            pass                                        # still running
        finally:
            os.close(fd)
    name = f"{job_id}-{secrets.token_hex(3)}"
    making = base / f".{name}"
    making.mkdir()
    fd = os.open(making / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)                      # locked before any sweep can see it under its name
    home = base / name
    os.rename(making, home)
    for name in SHARED_DIRS:
        (node_home / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to((node_home / name).resolve(), target_is_directory=True)
    for name in SHARED_FILES:
        if (node_home / name).is_file():
            (home / name).symlink_to((node_home / name).resolve())
    return home, fd


def _export_run(run_id: str) -> dict:
    """The run folder as a tar archive and its registry rows, from the scratch home (empty if no folder exists)."""
    folder = runs_dir() / run_id
    if not folder.is_dir():
        return {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=run_id)
    return {"archive": buf.getvalue(), "run_row": registry.get_run(run_id), "variants": registry.list_variants(run_id)}


@ray.remote(num_returns="streaming", max_retries=0, max_calls=1)
def run_job_task(job: dict, env: dict):
    """(The Ray task.) Run the job as the local backend does, in a scratch lab home on this node; yield where it
    runs, then each progress write, then the outcome with the run. max_calls=1: a fresh worker process per job, so
    TensorFlow's memory is returned to the node afterwards."""
    os.environ.update(env)
    node_home = Path(env.get("LAB_RAY_NODE_HOME") or env["LAB_HOME"])
    home, lock_fd = _scratch_home(node_home, job["id"])
    os.environ["LAB_HOME"] = str(home)
    events: queue_mod.Queue = queue_mod.Queue()
    reporter = StreamReporter(job["id"], job["spec"], events)
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["value"] = worker.execute(job, reporter)
        finally:
            events.put(None)

    try:
        yield {"kind": "started", "node": ray.util.get_node_ip_address(), "pid": os.getpid(),
               "node_id": ray.get_runtime_context().get_node_id()}
        threading.Thread(target=train, name=f"train-{job['id']}", daemon=True).start()
        while (item := events.get()) is not None:
            yield item
        status, error, result, own_run = outcome.get("value") or ("failed", "the training ended without an outcome",
                                                                  None, True)
        yield {"kind": "outcome", "status": status, "error": error, "result": result, "own_run": own_run,
               **(_export_run(job["run_id"]) if own_run else {})}
    finally:
        shutil.rmtree(home, ignore_errors=True)
        os.close(lock_fd)


# ---------------------------------------------------------------- in the driver (the lab's worker process)


def _single_machine() -> None:
    """Ray's single-machine mode (the one it uses on macOS and Windows) for a private local Ray: without it Ray swaps
    127.0.0.1 for this machine's network address and its GCS, raylet and workers listen on every interface, an
    unauthenticated cluster open to the network for as long as the job runs. Ray reads the flag when it needs the
    node's address, and its processes inherit the variable."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants
    ray_constants.ENABLE_RAY_CLUSTER = False


def _connect(opts: RayOptions) -> bool:
    """Connect this process to the cluster. True if it started a private local Ray (to shut down afterwards)."""
    common = {"log_to_driver": True, "logging_level": "warning", "namespace": "lab",
              # the workers import the lab's code from the same path as here (on every node)
              "job_config": ray.job_config.JobConfig(code_search_path=[str(REPO_ROOT)])}
    if opts.address == "auto":
        try:
            ray.init(address="auto", **common)
            return False
        except ConnectionError:
            _single_machine()
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **common)
            return True
    parts = _address_parts(opts.address)
    if parts:                        # a plain host:port: fail in seconds, not after Ray's minutes of retries
        try:
            socket.create_connection(parts, timeout=CONNECT_SECONDS).close()
        except OSError as e:
            raise LabError(f"cannot reach the Ray cluster at {opts.address} (LAB_RAY_ADDRESS): {e}") from e
    try:
        ray.init(address=opts.address, **common)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise LabError(f"cannot connect to the Ray cluster at {opts.address} (LAB_RAY_ADDRESS): {e}") from e
    return False


def _needs(opts: RayOptions) -> str:
    return f"{opts.num_cpus:g} CPU(s)" + (f" and {opts.memory_mb} MB of memory" if opts.memory_mb else "")


def _unschedulable(opts: RayOptions) -> str | None:
    """Why no alive node of the cluster could ever run the job (None when one could)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    memory = (opts.memory_mb or 0) * 2 ** 20
    if any(n["Resources"].get("CPU", 0) >= opts.num_cpus and n["Resources"].get("memory", 0) >= memory
           for n in nodes):
        return None
    have = ", ".join(f"{n.get('NodeManagerAddress')}: {n['Resources'].get('CPU', 0):g} CPU(s)" for n in nodes)
    return (f"no node of the Ray cluster can run a job needing {_needs(opts)} ({have or 'no nodes'}): add a worker "
            "node (`ray start --address HEAD:6379`) or lower LAB_RAY_CPUS_PER_JOB / LAB_RAY_MEMORY_MB_PER_JOB")


def _task_env(opts: RayOptions) -> dict:
    env = {"LAB_HOME": str(lab_home()), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONUNBUFFERED": "1"}
    if opts.node_home:
        env["LAB_RAY_NODE_HOME"] = opts.node_home
    for key in PASSED_SETTINGS:
        value = settings.get(key)
        if value is not None:
            env[settings.ENV[key]] = str(value)
    return env


def _stream(gen, opts: RayOptions):
    """The task's items, in order. Waits in short steps, so a SIGTERM (cancel) is handled promptly; while nothing
    has arrived (the task waits for a free node), checks now and then that some node can still take it."""
    started = False
    checked = time.monotonic()
    while True:
        ready, _ = ray.wait([gen], timeout=POLL_SECONDS)
        if not ready:
            if not started and time.monotonic() - checked > RECHECK_SECONDS:
                checked = time.monotonic()
                if (problem := _unschedulable(opts)):
                    raise LabError(problem)
            continue
        try:
            ref = next(gen)
        except StopIteration:
            return
        started = True
        yield ray.get(ref)


def _node_address(node_id: str) -> str | None:
    """The address a node joined the cluster with (what `ray start --node-ip-address` gave), from the cluster."""
    return next((n.get("NodeManagerAddress") for n in ray.nodes() if n.get("NodeID") == node_id), None)


def _ray_failure(e: BaseException, node: str | None) -> str:
    where = f"the Ray node {node}" if node else "its Ray node"
    first = (str(e).strip().splitlines() or [""])[0][:300]
    if isinstance(e, (rex.NodeDiedError, rex.WorkerCrashedError, rex.ObjectLostError, rex.LocalRayletDiedError)):
        return (f"{where} died or lost its worker mid-job ({type(e).__name__}); the job was not retried: "
                "submit it again")
    if isinstance(e, rex.TaskCancelledError):
        return f"the Ray task was cancelled on {where}"
    return f"the Ray task failed on {where}: {type(e).__name__}: {first}"


def import_run(run_id: str, outcome: dict) -> None:
    """Unpack a run folder the task returned into this lab's runs folder (atomically: a temporary sibling is renamed
    into place), then write its registry rows."""
    dest = runs_dir() / run_id
    if dest.exists():
        raise LabError(f"the run folder {run_id} already exists here; the run from Ray was not unpacked over it")
    tmp = runs_dir() / f".incoming-{run_id}-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(outcome["archive"])) as tar:
            if any(m.name != run_id and not m.name.startswith(run_id + "/") for m in tar.getmembers()):
                raise LabError(f"the archive of run {run_id} from Ray holds files outside its folder")
            tar.extractall(tmp, filter="data")          # no absolute paths, links out or devices
        os.replace(tmp / run_id, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row = outcome.get("run_row")
    if row:
        registry.upsert_run(run_id, row.get("summary") or {},
                            **{k: row[k] for k in registry.RUN_COLUMNS if row.get(k) is not None})
    if outcome.get("variants"):
        registry.replace_variants(run_id, [{**(v.get("data") or {}), "name": v["name"]} for v in outcome["variants"]])


def execute_on_ray(job: dict, reporter: worker.Reporter) -> tuple[str, str | None, dict | None, bool]:
    """Run the job on the Ray cluster, writing its progress through `reporter`; never raises. Returns what
    worker.execute returns."""
    gen, node, private, where = None, None, False, {}
    try:
        opts = ray_options()
        private = _connect(opts)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, worker._on_sigterm)    # ray.init put its own (a crash report) in place
        if (problem := _unschedulable(opts)):
            return "failed", problem, None, True
        reporter.state = reporter.state | {"message": f"waiting for a Ray node with {_needs(opts)} free",
                                           "backend": "ray"}
        reporter.flush()
        gen = run_job_task.options(num_cpus=opts.num_cpus,
                                   memory=opts.memory_mb * 2 ** 20 if opts.memory_mb else None,
                                   name=f"lab-{job['id']}").remote(job, _task_env(opts))
        outcome = None
        for item in _stream(gen, opts):
            if item["kind"] == "started":
                node = _node_address(item["node_id"]) or item["node"]
                where = {"backend": "ray", "ray_node": node, "ray_pid": item["pid"]}
                reporter.state = reporter.state | where | {"message": f"starting on Ray node {node}"}
                reporter.flush()
                print(f"[{time.strftime('%H:%M:%S')}] running on Ray node {node} (worker pid {item['pid']})",
                      flush=True)
            elif item["kind"] == "progress":
                reporter.state = item["state"] | where
                if item["history"] is not None:
                    reporter.history = item["history"]
                    reporter.dirty_history = True
                reporter.flush()
            elif item["kind"] == "outcome":
                outcome = item
        worker._hold_sigterm()              # the job has ended: a late cancel must not cut the unpacking short
        if outcome is None:
            return "failed", "the Ray task ended without an outcome", None, True
        if outcome.get("archive"):
            if (runs_dir() / job["run_id"]).exists():     # never over another run's folder, never marking it
                return "failed", (f"the run folder {job['run_id']} already exists here; the run from Ray was not "
                                  "unpacked over it (submit the job again)"), None, False
            import_run(job["run_id"], outcome)
        return outcome["status"], outcome["error"], outcome["result"], outcome["own_run"]
    except KeyboardInterrupt:                   # SIGTERM: the user cancelled the job
        worker._hold_sigterm()
        if gen is not None:
            ray.cancel(gen, force=True)
        print(f"[{time.strftime('%H:%M:%S')}] cancelled (the Ray task was stopped)", flush=True)
        return "cancelled", "cancelled by the user", None, True
    except rex.RayError as e:
        return "failed", _ray_failure(e, node), None, True
    except LabError as e:
        if gen is not None:
            ray.cancel(gen, force=True)
        return "failed", str(e), None, True
    except Exception as e:  # noqa: BLE001 - every failure is recorded on the job
        return "failed", worker.describe_error(e), None, True
    finally:
        if private:
            ray.shutdown()          # the private local Ray of this job goes with it
