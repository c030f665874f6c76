"""Work in the background: the SQLite job queue (queue), the worker process that runs one job (worker), and presets
queued as grouped jobs (presets), and sweeps queued the same way (sweeps)."""
from .presets import cancel_group, group_jobs, submit_preset
from .queue import (ACTIVE, FINISHED, OPEN, cancel, check_runnable, delete_run, get_job, get_run, job_for_run,
                    list_jobs, list_runs, log_path, max_concurrent, process_alive, queue_position, read_log, reconcile,
                    rename_run, schedule, set_progress, submit)
from .sweeps import list_sweeps, submit_sweep, sweep_status

__all__ = ["ACTIVE", "FINISHED", "OPEN", "cancel", "check_runnable", "delete_run", "get_job", "get_run", "job_for_run",
           "list_jobs", "list_runs", "log_path", "max_concurrent", "process_alive", "queue_position", "read_log",
           "reconcile", "rename_run", "schedule", "set_progress", "submit", "submit_preset", "cancel_group", "group_jobs",
           "list_sweeps", "submit_sweep", "sweep_status"]
