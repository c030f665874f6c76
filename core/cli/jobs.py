"""`jobs`, `submit`, `cancel`: the background job queue from the command line."""
from __future__ import annotations

import time

from core.errors import LabError
from core.jobs.queue import (ACTIVE, OPEN, cancel, get_job, list_jobs, log_path, reconcile, submit)

from .main import add_train_args, command, config_from_args, emit


def _fmt_job(j: dict) -> str:
    p = j["progress"]
    pct = f"{100 * p.get('fraction', 0):3.0f}%" if j["status"] in ACTIVE else "    "
    when = time.strftime("%m-%d %H:%M", time.localtime(j["created"]))
    return (f"{j['id']}  {j['status']:11s} {pct} {when}  run {j['run_id']}  "
            f"{p.get('message', '') if j['status'] in ACTIVE else (j.get('error') or '')}")


def _add_submit_args(p) -> None:
    add_train_args(p)
    p.add_argument("--compress", nargs="*", metavar="TECHNIQUE", help="compression techniques to apply afterwards")
    p.add_argument("--wait", action="store_true", help="wait for the job to finish and print its outcome")


@command("list background jobs (reconciles vanished processes first)",
         lambda p: p.add_argument("--limit", type=int, default=30))
def jobs(args) -> None:
    rows = list_jobs(args.limit)
    out = [{k: j[k] for k in ("id", "kind", "status", "run_id", "name", "created", "started", "finished", "pid",
                              "error")} | {"progress": j["progress"]} for j in rows]
    emit(out, args.json, lambda r: "\n".join(_fmt_job(j) for j in rows) or "no jobs")


@command("queue a training job in the background (as the dashboard does)", _add_submit_args)
def submit_(args) -> None:
    cfg = config_from_args(args)
    spec = {"kind": "train", "config": cfg.to_dict(), "name": args.name,
            "compress": {"techniques": args.compress} if args.compress else None}
    job_id = submit(spec)
    job = get_job(job_id)
    if args.wait:
        while job["status"] in OPEN:
            time.sleep(0.5)
            reconcile()
            job = get_job(job_id)
    out = {k: job[k] for k in ("id", "status", "run_id", "error")} | {"log": str(log_path(job_id))}
    emit(out, args.json, lambda o: "\n".join(f"{k:8s} {v}" for k, v in o.items()))
    if job["status"] in ("failed", "interrupted"):
        raise LabError(f"job {job_id} {job['status']}: {job['error']}")


@command("cancel a queued or running job", lambda p: p.add_argument("job_id"))
def cancel_(args) -> None:
    job = cancel(args.job_id)
    emit({"id": job["id"], "status": job["status"]}, args.json, lambda o: f"{o['id']}  {o['status']}")
