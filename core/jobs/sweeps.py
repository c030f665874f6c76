"""A sweep as background jobs: one job per run, grouped as a preset's are (core.presets.sweep plans it)."""
from __future__ import annotations

import time

from core.errors import LabError
from core.presets.recipes import new_group_id, presets_dir
from core.presets.sweep import SWEEP, plan as plan_sweep, run_info
from core.store.runs import write_json

from .presets import cancel_group, group_jobs
from .queue import submit, validate_spec


def submit_sweep(axes: dict, base: dict | None = None, sample: int | None = None, seed: int = 0,
                 options: dict | None = None) -> dict:
    """Plan a sweep (every value and combination checked first), then queue one job per distinct run, in one
    group; return the group's summary {group, jobs, plan}. Nothing is queued when any run would be refused."""
    plan = plan_sweep(axes, base, sample, seed, options)
    group = new_group_id(SWEEP)
    specs = []
    for r in plan["runs"]:
        try:
            specs.append(validate_spec({"kind": "train", "config": r["config"], "name": r["config"]["name"],
                                        "compress": {"techniques": r["techniques"], "options": plan["options"]},
                                        "preset": run_info(plan, r, group)}))
        except LabError as e:
            raise LabError(f"the sweep cannot run: {r['label']}: {e}") from None
    job_ids: list[str] = []
    summary = {"preset": SWEEP, "kind": SWEEP, "group": group, "status": "queued", "plan": plan, "jobs": job_ids,
               "started": time.time()}
    try:
        for spec in specs:
            job_ids.append(submit(spec))
    except BaseException:
        summary["status"] = "failed"
        write_json(presets_dir() / f"{group}.json", summary)
        cancel_group(group)                      # all or nothing: the jobs queued so far are cancelled
        raise
    write_json(presets_dir() / f"{group}.json", summary)
    return summary


def list_sweeps() -> list[dict]:
    """Stored sweeps, newest first (their summaries)."""
    from core.presets.recipes import list_groups
    return list_groups(SWEEP)


def sweep_status(group: str) -> dict:
    """How far a sweep is: its job count per status, and whether any job is still open."""
    from .queue import OPEN
    jobs = group_jobs(group)
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    return {"group": group, "jobs": len(jobs), "counts": counts, "open": any(j["status"] in OPEN for j in jobs),
            "run_ids": [j["run_id"] for j in jobs]}


def sweep_report(group: str, objectives: list[str] | None = None, region: str | None = None) -> dict:
    """The Pareto report (core.evaluation.pareto) of a group's runs, each named by its label in the group."""
    from core.evaluation.pareto import report
    from core.presets.recipes import group_runs
    rows = group_runs(group)
    labels = {r["id"]: (r.get("summary") or {}).get("preset_run") or r["id"] for r in rows}
    ids = [r["id"] for r in rows] or [j["run_id"] for j in group_jobs(group)]
    return {"group": group} | report(ids, objectives, region, labels)
