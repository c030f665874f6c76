"""The live view of background jobs: progress, curves, log, cancel, and the queue. Refreshed by st.fragment.

Cheap to poll with a classroom open: every session reads one shared snapshot of the job list per server process
(ui.common.jobs_snapshot, re-read when the database changes and at most once a second otherwise), only the
fragment that shows a job reruns on its timer, and the timer runs only while a job is open (queued or running).
"""
from __future__ import annotations

import time

import streamlit as st

from core import jobs as jobs_mod

from . import charts
from .common import (choose, dataset_label, fmt_pct, fmt_secs, fmt_time, jobs_snapshot, remember, save, status_badge,
                     taps_label)

REFRESH_SECONDS = 1.0          # the Train page's job panel, while a job is open
SIDEBAR_REFRESH_SECONDS = 3.0  # the sidebar's small status, on every page, while a job is open
NOISE = ("cudart_stub.cc", "cuda_platform.cc", "absl::InitializeLog", "oneDNN custom operations",
         "TF_ENABLE_ONEDNN_OPTS", "cpu_feature_guard", "rebuild TensorFlow with the appropriate compiler flags")


def clean_log(text: str, lines: int = 80) -> str:
    """The job log without TensorFlow's start-up noise, last `lines` lines."""
    kept = [ln for ln in text.splitlines() if not any(n in ln for n in NOISE)]
    return "\n".join(kept[-lines:])


def job_label(job: dict) -> str:
    """A job as people call it: its run's name, else dataset · backbone · size · when it was queued."""
    cfg = job["spec"].get("config", {})
    if job.get("name"):
        return job["name"]
    return " · ".join(p for p in (dataset_label(cfg.get("dataset")), cfg.get("backbone") or "?",
                                  f"{cfg.get('image_size')} px" if cfg.get("image_size") else "",
                                  time.strftime("%d %b %H:%M", time.localtime(job["created"]))) if p)


def cancel_control(job: dict, where: str) -> None:
    """A cancel button labelled with the job it stops, and a confirmation before anything is stopped."""
    label = job_label(job)
    if job["status"] == "cancelling":
        st.button("Cancelling…", key=f"cancelling-{where}-{job['id']}", disabled=True, icon=":material/stop_circle:")
        return
    with st.popover(f"Cancel {label}", icon=":material/stop_circle:", width="stretch",
                    key=f"cancel-pop-{where}-{job['id']}", help=f"Stop job {job['id']} (asks first)"):
        st.markdown(f"Stop **{label}** (`{job['id']}`, {job['status']})? "
                    + ("It has not started: it leaves the queue." if job["status"] == "queued" else
                       "Its training so far is lost (a run that finished training keeps its model)."))
        st.button("Yes, cancel this job", key=f"cancel-{where}-{job['id']}", type="primary",
                  icon=":material/stop_circle:", on_click=_on_cancel, args=(job["id"],))


def watched_job(all_jobs: list[dict]) -> dict | None:
    """The job this session watches: its own choice (the job it started, kept in the URL as ?job= so a refresh
    keeps it), else the active one, else the newest."""
    want = st.session_state.get("job_id") or st.query_params.get("job")
    for j in all_jobs:
        if j["id"] == want:
            return j
    active = [j for j in all_jobs if j["status"] in jobs_mod.OPEN]
    job = (active[-1] if active else None) or (all_jobs[0] if all_jobs else None)
    return job


def _on_cancel(job_id: str) -> None:
    try:
        jobs_mod.cancel(job_id, wait=False)
        st.toast(f"Cancelling {job_id}…", icon=":material/stop_circle:")
    except Exception as e:  # noqa: BLE001
        st.toast(f"Could not cancel: {e}", icon=":material/error:")


def progress_text(job: dict) -> str:
    p = job["progress"]
    status = job["status"]
    if status == "queued":
        pos = jobs_mod.queue_position(job["id"])
        return f"Waiting in the queue{f' (position {pos})' if pos else ''}: {jobs_mod.max_concurrent()} job(s) run at a time"
    if status in ("cancelled", "failed", "interrupted"):
        return f"stopped during: {p.get('message') or p.get('stage') or 'start-up'}"
    parts = [p.get("message") or p.get("stage") or status]
    if status in jobs_mod.ACTIVE:
        eta = p.get("eta_seconds") if p.get("stage") in ("head", "train", "fine-tune") else None
        overall = p.get("overall_eta_seconds")
        if overall is not None:
            parts.append(f"about {fmt_secs(overall)} left")
        elif eta:
            parts.append(f"stage ETA {fmt_secs(eta)}")
        parts.append(f"elapsed {fmt_secs(time.time() - (job.get('started') or time.time()))}")
    if p.get("ray_node"):
        parts.append(f"on Ray node {p['ray_node']}")
    return " · ".join(parts)


@st.cache_resource(show_spinner=False, max_entries=16)
def _curves(job_id: str, n_epochs: int, fine_tune_start: int | None, _history: list[dict]):
    """A job's learning curves, rebuilt only when an epoch is added (its history only grows), shared by sessions."""
    return charts.learning_curves(_history, fine_tune_start, height=300)


def job_panel(job: dict) -> None:
    """Everything about one job. Cheap enough to redraw every second."""
    spec = job["spec"]
    cfg = spec.get("config", {})
    p = job["progress"]
    status = job["status"]
    head = st.columns([5, 1.3], vertical_alignment="center")
    with head[0]:
        st.markdown(f"**{job_label(job)}** &nbsp; {status_badge(status)} &nbsp; "
                    f"`{job['id']}` · run `{job['run_id']}`")
        techniques = ", ".join((spec.get("compress") or {}).get("techniques") or []) or "none"
        st.caption(f"{dataset_label(cfg.get('dataset'))} · {cfg.get('backbone')} · {cfg.get('image_size')} px · "
                   f"{cfg.get('mode')} · {cfg.get('epochs')} epochs"
                   f"{' + ' + str(cfg.get('fine_tune_epochs')) + ' fine-tune' if cfg.get('fine_tune_epochs') else ''}"
                   f" · compression: {techniques}")
    with head[1]:
        if status in jobs_mod.OPEN:
            cancel_control(job, "panel")
    frac = 1.0 if status == "done" else float(p.get("fraction") or 0.0)
    st.progress(min(max(frac, 0.0), 1.0), text=f"{frac:.0%} · {progress_text(job)}")

    hist = job["history"]
    if hist:
        last = hist[-1]
        m = st.columns(5)
        m[0].metric("Epoch", f"{last.get('epoch')}" + (f" ({last.get('stage')})" if last.get("stage") else ""))
        for col, key, label in ((m[1], "loss", "Loss"), (m[2], "accuracy", "Accuracy"),
                                (m[3], "val_loss", "Val loss"), (m[4], "val_accuracy", "Val accuracy")):
            v = last.get(key)
            prev = hist[-2].get(key) if len(hist) > 1 else None
            if v is None:
                col.metric(label, "–")
            elif "acc" in key:
                col.metric(label, fmt_pct(v), None if prev is None else f"{100 * (v - prev):+.1f} pp")
            else:
                col.metric(label, f"{v:.4f}", None if prev is None else f"{v - prev:+.4f}", delta_color="inverse")
        st.plotly_chart(_curves(job["id"], len(hist), p.get("fine_tune_start_epoch"), hist),
                        key=f"curves-{job['id']}", config={"displayModeBar": False})

    if status == "done":
        res = job.get("result") or {}
        st.success(f"Finished in {fmt_secs((job.get('finished') or 0) - (job.get('started') or 0))}: "
                   f"test accuracy **{fmt_pct(res.get('test_accuracy'))}**"
                   + (f", {n} compressed variant(s)" if (n := sum(1 for v in res.get("variants") or []
                                                                  if v.get("name") != "original")) else ""))
        st.caption(f"Features from {taps_label(res.get('taps'))}."
                   + (f" Check set (real photos): {res['check_set']['right']} of {res['check_set']['total']} right."
                      if (res.get("check_set") or {}).get("total") else ""))
        if (note := (res.get("head_fit") or {}).get("small_data_note")):
            st.info(f"**Small data:** {note}.")
        for f in res.get("failed") or []:
            st.warning(f"Compression **{f.get('technique')}** failed: {f.get('error')}")
        if st.button("Open the results", key=f"open-{job['id']}", type="primary", icon=":material/insights:"):
            choose("run_id", job["run_id"])
            st.switch_page("pages/3_Results.py", query_params={"run": job["run_id"]})
    elif status in ("failed", "interrupted"):
        st.error(f"The job {status}: {job.get('error') or 'no error message'}")
    elif status == "cancelled":
        trained = (job.get("result") or {}).get("test_accuracy") is not None
        st.warning("The job was cancelled" + (" before it started." if not job.get("started") else
                                              " after training: its run keeps the trained model and the variants "
                                              "built so far, and reads \"cancelled\" on every page." if trained
                                              else "."))
        if trained and st.button("Open its results", key=f"open-{job['id']}", icon=":material/insights:"):
            choose("run_id", job["run_id"])
            st.switch_page("pages/3_Results.py", query_params={"run": job["run_id"]})

    log = jobs_mod.read_log(job["id"]) or job.get("log_tail") or ""
    with st.expander("Job log", expanded=status in ("failed", "interrupted")):
        st.code(clean_log(log) or "(nothing logged yet)", language="log")


def queue_table(all_jobs: list[dict]) -> None:
    """The queue and recent jobs as a list (it wraps on a phone): each job by its name, what it has done, and for
    a job not finished its own labelled cancel, which asks first."""
    if not all_jobs:
        st.caption("No jobs yet.")
        return
    for j in all_jobs:
        status = j["status"]
        acc = (j.get("result") or {}).get("test_accuracy")
        if status in jobs_mod.OPEN:
            done = f"{float(j['progress'].get('fraction') or 0):.0%}"
        else:
            done = f"test accuracy {fmt_pct(acc)}" if acc is not None else (j.get("error") or status)
        line = (f"{status_badge(status)} **{job_label(j)}** · {done} · queued {fmt_time(j['created'])} · "
                f"`{j['id']}`")
        if status in jobs_mod.OPEN:
            a, b = st.columns([3, 2], vertical_alignment="center")
            a.markdown(line)
            with b:
                cancel_control(j, "queue")
        else:
            st.markdown(line)


def live_jobs_section() -> None:
    """The Train page's job area: it refreshes itself every second while a job is open, so the page never blocks."""
    active_now = any(j["status"] in jobs_mod.OPEN for j in jobs_snapshot(20))

    @st.fragment(run_every=REFRESH_SECONDS if active_now else None)
    def section() -> None:
        all_jobs = jobs_snapshot(20)
        open_now = any(j["status"] in jobs_mod.OPEN for j in all_jobs)
        if not all_jobs:
            st.info("No training jobs yet: set up a run above and press **Start training**.")
            return
        job = watched_job(all_jobs)
        if len(all_jobs) > 1:
            ids = [j["id"] for j in all_jobs]
            labels = {j["id"]: f"{job_label(j)} · {j['status']} · {j['id']}" for j in all_jobs}
            st.session_state["job_id"] = job["id"]
            key = remember("job_id", job["id"], ids)
            st.selectbox("Watch job", ids, key=key, format_func=labels.get, on_change=save, args=("job_id",))
            job = next(j for j in all_jobs if j["id"] == st.session_state[key])
        if st.query_params.get("job") != job["id"]:
            st.query_params["job"] = job["id"]          # a refresh keeps watching this job
        with st.container(border=True):
            job_panel(job)
        st.markdown("##### Queue and recent jobs")
        st.caption(f"At most {jobs_mod.max_concurrent()} job(s) run at once (LAB_MAX_CONCURRENT_JOBS); "
                   "the others wait in the queue and start by themselves.")
        queue_table(all_jobs)
        if open_now != active_now:
            st.rerun(scope="app")     # switch the auto-refresh on or off

    section()


def sidebar_status() -> None:
    """A small always-visible job status in the sidebar."""
    active_now = any(j["status"] in jobs_mod.OPEN for j in jobs_snapshot(20))

    @st.fragment(run_every=SIDEBAR_REFRESH_SECONDS if active_now else None)
    def mini() -> None:
        open_jobs = [j for j in jobs_snapshot(20) if j["status"] in jobs_mod.OPEN]
        if not open_jobs:
            st.caption("No jobs running.")
        for j in open_jobs[:3]:
            frac = float(j["progress"].get("fraction") or 0)
            st.caption(f"**{job_label(j)}** · {j['status']} · {j['progress'].get('message') or j['status']}")
            st.progress(min(frac, 1.0))
        if bool(open_jobs) != active_now:
            st.rerun(scope="app")

    mini()
