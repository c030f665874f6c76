"""`python -m core.worker JOB_ID`: run one background job (started by core.jobs.schedule, never by hand).

Trains the job's run (its run id was assigned when the job was queued), then applies the requested compression
techniques, writing progress to the job's row. SIGTERM cancels (KeyboardInterrupt inside training, so the run is
marked cancelled); any exception marks the job failed with the error and the log tail. On exit the worker starts
the next queued job, so the queue advances with no browser open.

Where the training itself runs is the job backend's choice (core.jobs.backends): `local` runs it in this process
(`execute`); `ray` makes this process a thin driver that runs `execute` as a Ray task on a cluster node and writes
the progress it streams back (core.jobs.ray_backend). Either way only this process writes the job's row.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback

from . import queue as jobs
from core.errors import LabError
from core.progress import ProgressEvent

# share of the whole job each phase takes (roughly, for the progress bar); epochs phases are split by epoch
PHASE_WEIGHTS = {"data": 1.0, "backbone": 1.0, "features": 2.0, "head": 3.0, "train": 8.0, "fine-tune": 8.0,
                 "evaluate": 1.0, "save": 0.5}
# compression: techniques that fine-tune a model cost several times a post-training conversion
HEAVY_TECHNIQUES = ("pruning", "clustering", "qat", "pqat", "pruning_int8", "clustering_int8")
COMPRESS_WEIGHTS = {"heavy": 8.0, "light": 2.0, "original": 2.0}
EPOCH_STAGES = ("head", "train", "fine-tune")
FLUSH_EVERY = 0.25        # seconds between progress writes to the database (stage changes always write)
PROGRESS_PATIENCE = 5.0   # seconds a progress write waits for a busy database before it is left to the next one
RESULT_PATIENCE = 900.0   # seconds the worker's final progress, result and run records wait for a busy database


def plan(spec: dict) -> list[str]:
    """The phases this job goes through, in order."""
    cfg = spec["config"]
    augment = cfg.get("augment") or {}
    cached = cfg.get("mode") == "feature-extraction" and not (augment.get("flip") or augment.get("rotation")
                                                              or augment.get("zoom"))
    phases = ["data", "backbone"] + (["features", "head"] if cached else ["train"])
    if cfg.get("fine_tune_epochs"):
        phases.append("fine-tune")
    phases += ["evaluate", "save"]
    if (spec.get("compress") or {}).get("techniques"):
        phases.append("compress")
    return phases


class Reporter:
    """A Progress callback: keeps the stage, epoch, metrics, ETA and the accumulated epoch history for the job row."""

    def __init__(self, job_id: str, spec: dict):
        self.job_id = job_id
        self.phases = plan(spec)
        self.t0 = time.time()
        self.history: list[dict] = []
        self.offset = 0               # epochs of earlier stages (global epoch = offset + epoch within stage)
        self.fine_tune_start: int | None = None
        self.stage = ""
        self.state: dict = {"stage": "starting", "message": "starting: loading TensorFlow", "fraction": 0.0,
                            "phases": self.phases, "started": self.t0}
        self.last_flush = 0.0
        self.dirty_history = False
        self.techniques = list((spec.get("compress") or {}).get("techniques") or [])
        self.t_weights = [COMPRESS_WEIGHTS["heavy" if t in HEAVY_TECHNIQUES else "light"] for t in self.techniques]
        self.t_index = -1             # technique being built (-1: measuring the original)

    def _phase(self, stage: str) -> str:
        return "compress" if stage.startswith("compress") else stage

    def _weight(self, phase: str) -> float:
        if phase == "compress":
            return COMPRESS_WEIGHTS["original"] + sum(self.t_weights)
        return PHASE_WEIGHTS.get(phase, 1.0)

    def _compress_within(self, ev: ProgressEvent) -> float:
        """Share of the compression phase done: techniques finished, plus epochs of the current one."""
        name = ev.stage.split(":", 1)[1] if ":" in ev.stage else ""
        if name in self.techniques:
            self.t_index = max(self.t_index, self.techniques.index(name))
        step = 0.0
        own_counter = ev.message.endswith(f"({ev.epoch}/{ev.epochs})") if ev.epoch else False
        if ev.epoch is not None and ev.epochs and not own_counter and self.t_index >= 0:
            step = min(ev.epoch / ev.epochs, 1.0) * 0.8      # fine-tuning epochs of the technique
        done = COMPRESS_WEIGHTS["original"] if self.t_index >= 0 else 0.0
        done += sum(self.t_weights[:max(self.t_index, 0)])
        if self.t_index >= 0:
            done += self.t_weights[self.t_index] * step
        return done / (COMPRESS_WEIGHTS["original"] + sum(self.t_weights))

    def _fraction(self, phase: str, within: float) -> float:
        weights = [self._weight(p) for p in self.phases]
        if phase not in self.phases:
            return self.state.get("fraction", 0.0)
        i = self.phases.index(phase)
        done = sum(weights[:i]) + weights[i] * min(max(within, 0.0), 1.0)
        return min(done / sum(weights), 0.999)

    def __call__(self, ev: ProgressEvent) -> None:
        now = time.time()
        phase = self._phase(ev.stage)
        stage_changed = ev.stage != self.stage
        if stage_changed and ev.stage in EPOCH_STAGES:
            self.offset = len(self.history)
            if ev.stage == "fine-tune":
                self.fine_tune_start = self.offset
        self.stage = ev.stage
        within = 0.0
        if ev.epochs and ev.epoch is not None:
            within = ev.epoch / ev.epochs
        if ev.stage in EPOCH_STAGES and ev.epoch and ev.metrics:
            self.history.append({"epoch": self.offset + ev.epoch, "stage": ev.stage, **ev.metrics})
            self.dirty_history = True
        if phase == "compress" and self.techniques:
            within = self._compress_within(ev)
        fraction = 1.0 if ev.stage == "done" and "compress" not in self.phases else self._fraction(phase, within)
        elapsed = now - self.t0
        overall_eta = elapsed / fraction - elapsed if fraction > 0.05 else None
        self.state = {
            "stage": ev.stage, "message": ev.message or ev.stage, "epoch": ev.epoch, "epochs": ev.epochs,
            "global_epoch": (self.offset + ev.epoch) if ev.stage in EPOCH_STAGES and ev.epoch else None,
            "metrics": ev.metrics or self.state.get("metrics", {}), "eta_seconds": ev.eta_seconds,
            "overall_eta_seconds": overall_eta, "fraction": max(fraction, self.state.get("fraction", 0.0)),
            "elapsed": elapsed, "phases": self.phases, "fine_tune_start_epoch": self.fine_tune_start,
            "started": self.t0, "time": now,
        }
        _print(ev)
        if stage_changed or now - self.last_flush >= FLUSH_EVERY or ev.stage == "done":
            self.flush()

    def flush(self, final: bool = False) -> bool:
        """Write the state (and the history, if it grew) to the job row. While the database stays busy, a progress
        write gives up after PROGRESS_PATIENCE seconds and the next event writes everything it missed (the
        state is whole and the history accumulates, so nothing is lost); the final one waits RESULT_PATIENCE."""
        from core.store.registry import is_busy
        try:
            self.write(self.history if self.dirty_history else None, RESULT_PATIENCE if final else PROGRESS_PATIENCE)
        except Exception as e:  # noqa: BLE001
            if final or not is_busy(e):
                raise
            print(f"progress write deferred (database busy: {e})", flush=True)
            return False
        self.dirty_history = False
        self.last_flush = time.time()
        return True

    def write(self, history: list[dict] | None, patience: float) -> None:
        """Store the state (and the history when given) on the job row."""
        jobs.set_progress(self.job_id, self.state, history, patience=patience)


def _print(ev: ProgressEvent) -> None:
    parts = [f"[{time.strftime('%H:%M:%S')}] {ev.message or ev.stage}"]
    if ev.metrics:
        parts.append(" ".join(f"{k}={v:.4f}" for k, v in ev.metrics.items() if isinstance(v, (int, float))))
    if ev.eta_seconds:
        parts.append(f"eta {ev.eta_seconds:.0f}s")
    print("  ".join(parts), flush=True)


class Cancelled(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM (a KeyboardInterrupt, so training marks its run cancelled)."""


_SIGTERM_AT: list[float] = []     # when a cancel (SIGTERM) arrived, if one did


def _hold_sigterm() -> None:
    """Ignore further SIGTERMs (one interruption; cleanup must not be interrupted again). Signal handlers belong to
    the main thread: elsewhere (a Ray task runs `execute` in a thread) there is nothing to hold."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _on_sigterm(signum, frame):
    _hold_sigterm()
    _SIGTERM_AT.append(time.time())
    raise Cancelled()


def run(job_id: str) -> int:
    job = jobs.get_job(job_id)
    if job is None:
        print(f"no job {job_id}", file=sys.stderr)
        return 2
    if job["status"] not in jobs.ACTIVE or job["pid"] != os.getpid():
        print(f"job {job_id} is {job['status']} with pid {job['pid']}; not mine (pid {os.getpid()})", file=sys.stderr)
        return 2
    spec = job["spec"]
    print(f"[{time.strftime('%H:%M:%S')}] job {job_id} (pid {os.getpid()}): run {job['run_id']}", flush=True)
    reporter = Reporter(job_id, spec)
    reporter.flush()
    from .backends import usable_backend
    try:
        backend = usable_backend()
    except LabError as e:
        status, error, result, own_run = "failed", str(e), None, True
    else:
        if backend == "ray":
            from .ray_backend import execute_on_ray
            status, error, result, own_run = execute_on_ray(job, reporter)
        else:
            status, error, result, own_run = execute(job, reporter)
    _hold_sigterm()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        reporter.flush(final=True)
    except Exception:  # noqa: BLE001
        pass
    try:
        if status in ("cancelled", "failed") and own_run:
            jobs._mark_run(job["run_id"], status, error or status)
        if status == "cancelled":
            row = jobs.get_job(job_id)
            if row and row["status"] in jobs.ACTIVE:
                jobs.finish(job_id, "cancelled", error, result)
        else:
            jobs.finish(job_id, status, error, result)
    finally:
        if own_run:
            _copy_log(job_id, job["run_id"])
        try:
            jobs.schedule()          # the queue advances without any browser open
        except Exception as e:  # noqa: BLE001
            print(f"could not start the next job: {e}", file=sys.stderr)
    if status == "done":             # once the run folder is complete (its job.log too) and the queue moved on
        from core.export.mlflow_log import after_run
        after_run(job["run_id"])      # MLflow, when LAB_MLFLOW_URI is set; never raises
    return {"done": 0, "cancelled": 130}.get(status, 1)


def execute(job: dict, reporter: Reporter) -> tuple[str, str | None, dict | None, bool]:
    """Train the job's run (then compress it) in this process, reporting to `reporter`; never raises.
    Returns (status, error, result, own_run): own_run is False when the run folder turned out to be another's."""
    spec = job["spec"]
    status, error, result = "failed", None, None
    own_run = True                     # False when the run folder belongs to someone else: never touch it
    try:
        if jobs.run_dir_exists(job["run_id"]):
            own_run = False
            raise LabError(f"the run folder {job['run_id']} already exists; a job never writes into another "
                           "run's folder (submit the job again)")
        from core.config import TrainConfig
        from core.training.train import train
        cfg = TrainConfig.from_dict(spec["config"])
        preset = spec.get("preset")
        if preset:
            from dataclasses import replace
            from core.presets.recipes import mark_run, record_run
            cfg = replace(cfg, preset=cfg.preset or preset["preset"])
            mark_run(job["run_id"], preset)
        summary = train(cfg, progress=reporter, run_id=job["run_id"])
        if preset:
            record_run(job["run_id"], preset)
        result = {k: summary.get(k) for k in ("run_id", "test_accuracy", "macro_f1", "weights", "train_seconds",
                                               "epochs_run", "warnings", "taps", "head_fit", "check_set")}
        techniques = (spec.get("compress") or {}).get("techniques") or []
        if techniques:
            from core.compression import compress
            reporter(ProgressEvent("compress", f"compressing: {', '.join(techniques)}"))
            out = compress(job["run_id"], techniques, (spec.get("compress") or {}).get("options") or None,
                           progress=reporter, threads=2)
            result["variants"] = [{k: v.get(k) for k in ("name", "technique", "test_accuracy", "size_bytes")}
                                  for v in out.get("variants", [])]
            result["failed"] = [{"technique": f.get("technique"), "error": f.get("error")}
                                for f in out.get("failed", [])]
            for f in result["failed"]:
                print(f"compression {f['technique']} failed: {f['error']}", flush=True)
        reporter(ProgressEvent("done", f"finished: test accuracy {summary['test_accuracy']:.4f}"))
        reporter.state["fraction"] = 1.0
        reporter.flush(final=True)
        status = "done"
    except KeyboardInterrupt:
        _hold_sigterm()
        status, error = "cancelled", "cancelled by the user"
        print(f"[{time.strftime('%H:%M:%S')}] cancelled", flush=True)
    except MemoryError:
        _hold_sigterm()
        error = "out of memory: try a smaller input size, batch size or backbone"
        traceback.print_exc()
    except LabError as e:
        _hold_sigterm()
        error = str(e)
        print(f"error: {e}", flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure is recorded on the job
        _hold_sigterm()
        if isinstance(e, FileExistsError) and e.filename and os.path.basename(str(e.filename)) == job["run_id"]:
            own_run = False            # training found the run folder taken: it is another run's
        if _SIGTERM_AT:
            # the cancel interrupted code that turned the KeyboardInterrupt into another error (a C extension's
            # import, e.g. TensorFlow's "ImportError: initialization failed"): it is still a cancel
            status, error = "cancelled", "cancelled by the user"
            print(f"[{time.strftime('%H:%M:%S')}] cancelled ({type(e).__name__}: {e})", flush=True)
        else:
            error = describe_error(e)
            traceback.print_exc()
    return status, error, result, own_run


def _original(e: BaseException) -> BaseException:
    """The first failure when another one happened while handling it (e.g. writing error.json on a full disk)."""
    seen = {id(e)}
    while e.__cause__ is None and not e.__suppress_context__ and e.__context__ is not None \
            and id(e.__context__) not in seen:
        e = e.__context__
        seen.add(id(e))
    return e


_TMP_NAMES = (re.compile(r"^\.tmp\d+-[0-9a-f]+-(?P<name>.+)$"), re.compile(r"^\.(?P<name>.+)\.tmp\d+-[0-9a-f]+$"))


def _final_name(filename) -> str:
    """The file an atomic write was producing (not its temporary sibling)."""
    path = os.fsdecode(filename)
    head, base = os.path.split(path)
    for rx in _TMP_NAMES:
        m = rx.match(base)
        if m:
            return os.path.join(head, m["name"])
    return path


def _plain(e: BaseException) -> str:
    """One failure in words; disk and permission errors say what happened and what to do."""
    if isinstance(e, OSError) and e.errno is not None:
        where = f" while writing {_final_name(e.filename)}" if e.filename else ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"the disk is full (no space left on device){where}: free some space and start the job again"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            from core.store.paths import lab_home
            what = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                    errno.EROFS: "read-only file system"}[e.errno]
            return f"{what}{where}: the lab's folder {lab_home()} must be writable"
    if isinstance(e, MemoryError):
        return "out of memory: try a smaller input size, batch size or backbone"
    text = str(e)
    if type(e).__name__ == "OperationalError" and "disk is full" in text:
        return "the disk is full (the registry database cannot grow): free some space and start the job again"
    return text if isinstance(e, LabError) else f"{type(e).__name__}: {text}"


def describe_error(e: BaseException) -> str:
    """The error message stored on a failed job: the original failure first, in plain words."""
    first = _original(e)
    msg = _plain(first)
    same_kind = type(first) is type(e) and getattr(first, "errno", None) == getattr(e, "errno", None)
    if first is not e and not same_kind:
        msg += f" (then, while recording the failure: {_plain(e)})"
    return msg


def _copy_log(job_id: str, run_id: str) -> None:
    """Keep the job's log in its run folder too (the run folder is created by training, so it is copied at the end)."""
    try:
        folder = jobs.run_dir(run_id)
        shutil.copyfile(jobs.log_path(job_id), folder / "job.log")
    except (LabError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    from core.store import registry
    signal.signal(signal.SIGTERM, _on_sigterm)
    registry.WRITE_PATIENCE = RESULT_PATIENCE     # this process's run and job records wait out a busy database
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m core.worker JOB_ID", file=sys.stderr)
        return 2
    try:
        jobs.check_job_id(argv[0])
    except LabError as e:
        print(e, file=sys.stderr)
        return 2
    return run(argv[0])


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # skip TensorFlow's slow interpreter teardown
