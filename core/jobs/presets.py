"""A preset as background jobs: one job per run, grouped as `run_preset` groups them."""
from __future__ import annotations

import time

from core.errors import LabError
from core.presets.recipes import new_group_id, preset_info, presets_dir, resolve, run_options
from core.store.runs import write_json

from .queue import submit, validate_spec


def submit_preset(name: str, quick: bool = False, substitute: bool = True, seed: int = 0) -> dict:
    """Queue a preset as background jobs, one per run, grouped like `run_preset`; return {group, jobs, plan}.

    Each job trains its run and applies the preset's compression; the group file lists the jobs, and
    `group_runs(group)` finds the runs in the registry as they are trained.
    """
    plan = resolve(name, quick, substitute, seed)
    if not plan["runnable"]:
        raise LabError(f"preset '{name}' cannot run here: {plan['dataset']['message']}")
    comp = plan["compression"]
    if not comp["available"]:
        raise LabError(f"preset '{name}': compression unavailable ({comp['message']})")
    group = new_group_id(plan["preset"])
    todo = [r for r in plan["runs"] if not r["duplicate_of"]]
    specs = [validate_spec({"kind": "train", "config": r["config"], "name": r["config"].get("name"),
                                 "compress": {"techniques": comp["techniques"], "options": run_options(plan, r)},
                                 "preset": preset_info(plan, r, group)}) for r in todo]
    job_ids = [submit(spec) for spec in specs]
    summary = {"preset": plan["preset"], "group": group, "status": "queued", "plan": plan, "jobs": job_ids,
               "runs": [], "started": time.time()}
    write_json(presets_dir() / f"{group}.json", summary)
    return summary


def group_summary(group: str) -> dict:
    """The stored summary of a preset's or a sweep's group (LabError if there is none)."""
    from core.store.runs import read_json
    path = presets_dir() / f"{group}.json"
    if "/" in group or group.startswith(".") or not path.is_file():
        raise LabError(f"no preset or sweep group '{group}'; see `python -m core sweeps` or `python -m core presets`")
    return read_json(path)


def group_jobs(group: str) -> list[dict]:
    """The jobs of a group, in the order they were queued (jobs deleted since are left out)."""
    from .queue import get_job
    return [j for j in (get_job(i) for i in group_summary(group).get("jobs") or []) if j is not None]


def cancel_group(group: str, wait: bool = False) -> dict:
    """Cancel every job of a preset's or a sweep's group that has not finished; {group, cancelled: [job ids], jobs}."""
    from .queue import OPEN, cancel
    todo = [j["id"] for j in group_jobs(group) if j["status"] in OPEN]
    for job_id in todo:
        cancel(job_id, wait=wait)
    return {"group": group, "cancelled": todo, "jobs": {j["id"]: j["status"] for j in group_jobs(group)}}
