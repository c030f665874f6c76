"""Where a job's training runs: the job backend, chosen by the `job_backend` setting (env LAB_JOB_BACKEND).

- `local` (the default): the worker process the queue starts trains the run itself, on this machine.
- `ray`: the same worker process becomes a thin driver: it submits the training to a Ray cluster as a task with its
  CPU (and memory) needs declared, writes the progress the task streams back to the job's row, and unpacks the
  run folder the task returns into this lab's runs folder (core.jobs.ray_backend).

The queue, the registry, cancel and the pages are the same for both: only the process that owns the SQLite
registry (this machine's worker) writes to it. Nothing here imports Ray.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from core.errors import LabError
from core.store import settings

BACKENDS = ("local", "ray")
DEFAULT_RAY_CPUS = 1.0          # a small transfer-learning job keeps about one core busy (TF's extra threads idle)
RAY_MAX_CONCURRENT = 8          # default number of Ray jobs driven at once (LAB_MAX_CONCURRENT_JOBS wins)


def backend_name() -> str:
    """The active job backend: `local` or `ray` (LabError for anything else, naming the setting)."""
    name = str(settings.get("job_backend") or "local").strip().lower()
    if name not in BACKENDS:
        where = "LAB_JOB_BACKEND" if settings.overridden("job_backend") else "the job_backend setting"
        raise LabError(f"unknown job backend '{name}' ({where}); one of {', '.join(BACKENDS)}")
    return name


def usable_backend() -> str:
    """The active job backend, if it can run here: Ray must be installed for `ray` (checked without importing it)."""
    name = backend_name()
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise LabError("the ray job backend needs Ray installed: run bin/setup --cluster (requirements-cluster.txt)")
    return name


@dataclass(frozen=True)
class RayOptions:
    """How the lab reaches its Ray cluster and what each job asks of it."""
    address: str                 # "auto": the cluster on this machine if one runs, else a private one for the job
    num_cpus: float
    memory_mb: int | None        # declared to Ray's scheduler when set (Ray then packs no more jobs than fit)
    node_home: str | None        # the lab home on the worker nodes (default: the same path as here)


def _number(key: str, kind, default, low: float):
    raw = settings.get(key)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low:
        raise LabError(f"setting {key} ({settings.ENV[key]}) must be a number of at least {low:g}, not '{raw}'")
    return value


def ray_address() -> str:
    """The Ray cluster's address (setting `ray_address`, env LAB_RAY_ADDRESS), "auto" when unset."""
    return str(settings.get("ray_address") or "auto").strip()


def ray_options() -> RayOptions:
    return RayOptions(address=ray_address(),
                      num_cpus=_number("ray_cpus_per_job", float, DEFAULT_RAY_CPUS, 0.25),
                      memory_mb=_number("ray_memory_mb_per_job", int, None, 64),
                      node_home=settings.get("ray_node_home") or None)


def default_concurrency() -> int:
    """Jobs run at once when LAB_MAX_CONCURRENT_JOBS is not set: one locally (two cores fit one training); with Ray,
    RAY_MAX_CONCURRENT drivers (Ray itself queues tasks that find no free node)."""
    try:
        return RAY_MAX_CONCURRENT if backend_name() == "ray" else 1
    except LabError:
        return 1
