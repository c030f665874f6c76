"""Work in the background: the SQLite job queue (queue), the worker process that runs one job (worker), and presets
queued as grouped jobs (presets)."""
from .presets import submit_preset
from .queue import (ACTIVE, FINISHED, OPEN, cancel, check_runnable, delete_run, get_job, get_run, job_for_run,
                    list_jobs, list_runs, log_path, max_concurrent, process_alive, queue_position, read_log, reconcile,
                    rename_run, schedule, set_progress, submit)

__all__ = ["ACTIVE", "FINISHED", "OPEN", "cancel", "check_runnable", "delete_run", "get_job", "get_run", "job_for_run",
           "list_jobs", "list_runs", "log_path", "max_concurrent", "process_alive", "queue_position", "read_log",
           "reconcile", "rename_run", "schedule", "set_progress", "submit", "submit_preset"]
