"""Lab settings kept in LAB_HOME/settings.json (an environment variable of the same meaning wins).

Only a few plain values live here, for what is a choice of the user rather than of a run: the carbon region,
the power assumed per busy CPU core, how the Predict page's live camera connects (WebRTC): on or off, and the
STUN/TURN servers it may use (none by default: on localhost or a LAN the browser and the lab connect directly),
where jobs run (the job backend and its Ray cluster, see core.jobs.backends), and the memory budget.

The memory budget (`LAB_MEMORY_BUDGET_MB`, default 2048: a 2-core, 8 GB laptop) bounds what the lab holds of a
dataset in RAM, whatever its size; see `memory_budget`. It does not count the fixed cost of TensorFlow and the model
(about 0.5 to 1 GB for MobileNetV2), which does not grow with the data.
"""
from __future__ import annotations

import json
import os

from core.errors import LabError
from .paths import lab_home

ENV = {"carbon_region": "LAB_CARBON_REGION", "cpu_watts_per_core": "LAB_CPU_WATTS_PER_CORE",
       "live_video": "LAB_LIVE_VIDEO", "ice_servers": "LAB_ICE_SERVERS",
       "job_backend": "LAB_JOB_BACKEND", "ray_address": "LAB_RAY_ADDRESS", "ray_cpus_per_job": "LAB_RAY_CPUS_PER_JOB",
       "ray_memory_mb_per_job": "LAB_RAY_MEMORY_MB_PER_JOB", "ray_node_home": "LAB_RAY_NODE_HOME",
       "memory_budget_mb": "LAB_MEMORY_BUDGET_MB"}
ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
DEFAULT_MEMORY_BUDGET_MB = 2048
MIN_MEMORY_BUDGET_MB = 256


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


def live_video() -> bool:
    """Whether the Predict page offers live video (setting `live_video`, env LAB_LIVE_VIDEO: on|off; default on)."""
    value = get("live_video", True)
    if isinstance(value, str):
        value = value.strip().lower() not in ("0", "off", "false", "no")
    return bool(value)


def ice_servers() -> list[dict]:
    """The STUN/TURN servers for live video, as WebRTC's iceServers ([] by default: no server is contacted).

    Setting `ice_servers` or env LAB_ICE_SERVERS: URLs separated by commas or spaces
    ("stun:stun.example.org:3478"), or a JSON list of {"urls", "username", "credential"} for a TURN server.
    """
    return ice_servers_from(get("ice_servers", []))


def ice_servers_from(value) -> list[dict]:
    """`ice_servers` parsed and checked (a string of URLs or JSON, or a list); LabError saying what is wrong."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as e:
                raise LabError(f"ice_servers: not valid JSON ({e})") from None
        else:
            value = [{"urls": u} for u in text.replace(",", " ").split()]
    if not isinstance(value, list):
        raise LabError("ice_servers must be a list of servers")
    out = []
    for server in value:
        server = {"urls": server} if isinstance(server, str) else server
        urls = server.get("urls") if isinstance(server, dict) else None
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not all(isinstance(u, str) and u.startswith(ICE_SCHEMES) for u in urls):
            raise LabError(f"ice_servers: {server!r} is not a STUN/TURN server (give urls starting with "
                           f"{', '.join(ICE_SCHEMES)})")
        out.append({"urls": urls, **{k: str(server[k]) for k in ("username", "credential") if server.get(k)}})
    return out


def memory_budget() -> int:
    """The memory budget in bytes (LAB_MEMORY_BUDGET_MB, or the settings file, else 2048 MB; at least 256 MB).

    How the lab spends it, stage by stage:
    - a decoded dataset is held in RAM only when it takes at most a quarter of the budget; larger ones stay on disk
      (a uint8 .npy per data fingerprint and size) or at their source size, and are read in batches;
    - a batch in flight (decoding, feature extraction, caching activations) takes at most 1/16 of the budget;
    - cached features are kept in RAM up to a quarter of the budget, larger ones are read from disk by rows;
    - fine-tuning activations are kept as float32 in RAM up to an eighth of the budget (core.training.cut), larger
      ones are stored as float16 and read from disk batch by batch.
    """
    raw = get("memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB)
    try:
        mb = float(raw)
    except (TypeError, ValueError):
        raise LabError(f"{ENV['memory_budget_mb']} must be a number of megabytes (got {raw!r})") from None
    return int(max(MIN_MEMORY_BUDGET_MB, mb)) << 20


def in_ram_limit() -> int:
    """Bytes of one dataset-sized array (images, features, activations) the lab may hold in RAM: 1/4 of the budget."""
    return memory_budget() // 4


def batch_rows(row_bytes: int, multiple: int = 32) -> int:
    """Rows per batch in flight so that a batch takes at most 1/16 of the budget (a multiple of `multiple`, at
    least `multiple`)."""
    rows = memory_budget() // 16 // max(1, int(row_bytes))
    return max(multiple, rows // multiple * multiple)
