"""Lab settings kept in LAB_HOME/settings.json (an environment variable of the same meaning wins).

Only a few plain values live here, for what is a choice of the user rather than of a run: the carbon region,
the power assumed per busy CPU core, and where jobs run (the job backend and its Ray cluster, see core.jobs.backends).
"""
from __future__ import annotations

import json
import os

from .paths import lab_home

ENV = {"carbon_region": "LAB_CARBON_REGION", "cpu_watts_per_core": "LAB_CPU_WATTS_PER_CORE",
       "job_backend": "LAB_JOB_BACKEND", "ray_address": "LAB_RAY_ADDRESS", "ray_cpus_per_job": "LAB_RAY_CPUS_PER_JOB",
       "ray_memory_mb_per_job": "LAB_RAY_MEMORY_MB_PER_JOB", "ray_node_home": "LAB_RAY_NODE_HOME"}


def _path():
    return lab_home() / "settings.json"


def stored() -> dict:
    """The settings file's content ({} when absent or unreadable)."""
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def get(key: str, default=None):
    """The environment variable for `key` if set, else the settings file's value, else `default`."""
    env = ENV.get(key)
    if env and os.environ.get(env):
        return os.environ[env]
    return stored().get(key, default)


def overridden(key: str) -> bool:
    """True when an environment variable fixes this setting (the file's value is then ignored)."""
    return bool(ENV.get(key) and os.environ.get(ENV[key]))


def save(**values) -> dict:
    """Merge `values` into the settings file (atomically) and return the new content."""
    from .runs import write_json
    unknown = set(values) - set(ENV)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(ENV)}")
    data = {**stored(), **values}
    write_json(_path(), data)
    return data
