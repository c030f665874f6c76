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
