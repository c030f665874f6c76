"""Page scaffolding, session-state memory, cached loaders and formatting shared by every page."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import streamlit as st

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_IMAGE_SIZE = 96
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "cancelling": ":material/stop_circle:",
                "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:",
                "interrupted": ":material/warning:", "created": ":material/radio_button_unchecked:"}
STATUS_COLORS = {"queued": "gray", "running": "blue", "cancelling": "orange", "done": "green", "failed": "red",
                 "cancelled": "gray", "interrupted": "orange", "created": "gray"}


# ------------------------------------------------------------------ start-up


@st.cache_resource(show_spinner=False)
def _startup(home: str) -> str | None:
    """Once per server process and lab home: mark jobs whose process vanished, start queued ones, and warm up
    TensorFlow in the background so the first prediction is quick. Returns an error message, if any."""
    from core import jobs
    if os.environ.get("LAB_NO_WARMUP") != "1":
        threading.Thread(target=_warm_tf, name="tf-warmup", daemon=True).start()
    try:
        jobs.reconcile()
    except Exception as e:  # noqa: BLE001 - a broken registry must not stop the app from showing the error
        return f"could not check the background jobs: {e}"
    return None


def _warm_tf() -> None:
    import importlib
    try:
        importlib.import_module("core.tfenv")        # TensorFlow loads once, before anyone waits for it
    except Exception:  # noqa: BLE001
        pass


def _through_navigation() -> None:
    """Make sure the app runs through streamlit_app.py's st.navigation.

    Until st.navigation has been called once in a server process, Streamlit treats the pages/ folder the old way
    and runs a page opened by its URL (e.g. a bookmark of /Results) on its own: no sidebar jobs, no wide layout.
    Switch that mode off and rerun: the rerun goes through streamlit_app.py and lands on the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    if getattr(PagesManager, "uses_pages_directory", False) and not st.session_state.get("_nav_rerun"):
        st.session_state["_nav_rerun"] = True      # once per session (streamlit's AppTest resets the mode every run)
        PagesManager.uses_pages_directory = False
        st.rerun()


def page(title: str, icon: str = "", intro: str | None = None) -> None:
    """Common top of a page: start-up work, the title and a one-line introduction."""
    from core.store.paths import lab_home
    _through_navigation()
    st.session_state["_url_keys"] = {}        # the choices this page keeps in its URL (see remember)
    err = _startup(str(lab_home()))
    if err:
        st.error(err)
    st.title(f"{icon} {title}".strip())
    if intro:
        st.caption(intro)


# ------------------------------------------------------------------ choices remembered across pages


_MISSING = object()


def _from_url(name: str, default, options: list | None):
    """The value of query parameter `name` as the type of `default` (or one of `options`); _MISSING if absent/bad."""
    if name not in st.query_params:
        return _MISSING
    raw = st.query_params.get(name, "")
    try:
        if isinstance(default, list):
            items = [x for x in raw.split(",") if x]
            return [x for x in items if options is None or x in options]
        if options is not None:
            return next((o for o in options if str(o) == raw), _MISSING)
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return raw
    except ValueError:
        return _MISSING


def _url_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def url_set(name: str, value, default=_MISSING) -> None:
    """Keep `value` in the page's URL query (?name=value); removed when it is the default or None."""
    if value is None or (default is not _MISSING and value == default):
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != _url_text(value):
        st.query_params[name] = _url_text(value)


def remember(key: str, default=None, options: list | None = None, url: str | None = None,
             url_always: bool = False):
    """Prepare the widget key `w_<key>` from the remembered value `key` (which survives page switches).

    With `url`, the choice is kept in the page's URL query too (?url=value, when not the default), so a refresh or
    a shared link opens with it: a new session starts from the URL. `url_always` keeps it there even when it is
    the default (a run picker's default changes as runs are added: a link must keep naming the same run).
    Use with `on_change=save, args=(key,)` on the widget, or call `save(key)` after it.
    """
    seen = st.session_state.setdefault("_url_seen", {})
    if url and (key not in st.session_state or (url in st.query_params
                                                and st.query_params.get(url) != seen.get(key))):
        # a new session (a refresh, a shared link), or the URL changed by a link or the back button: it wins
        found = _from_url(url, default, options)
        if found is not _MISSING:
            st.session_state[key] = found
    value = st.session_state.get(key, default)
    if isinstance(default, list) or isinstance(value, list):
        value = [v for v in (value or []) if options is None or v in options]
    elif options is not None and value not in options:
        value = default if default in options else (options[0] if options else None)
    st.session_state[f"w_{key}"] = value
    if url:
        st.session_state.setdefault("_url_keys", {})[key] = (url, _MISSING if url_always else default)
        url_set(url, value, _MISSING if url_always else default)
        seen[key] = st.query_params.get(url)
    return f"w_{key}"


def save(key: str) -> None:
    st.session_state[key] = st.session_state.get(f"w_{key}")
    url, default = (st.session_state.get("_url_keys") or {}).get(key, (None, None))
    if url:
        url_set(url, st.session_state[key], default)
        st.session_state.setdefault("_url_seen", {})[key] = st.query_params.get(url)


def choose(key: str, value) -> None:
    """Set a remembered choice (e.g. the run to show on the Results page)."""
    st.session_state[key] = value


# ------------------------------------------------------------------ cached loaders


@st.cache_data(ttl=30, show_spinner=False)
def datasets_info() -> list[dict]:
    """Every dataset known by name (built in, made in the lab); `datasets_info.clear()` after making one."""
    from core.data.datasets import all_datasets
    return [s.info() for s in all_datasets().values()]


@st.cache_data(ttl=60, show_spinner=False)
def backbones_info() -> list[dict]:
    from core.models.backbones import BACKBONES
    return [s.info() for s in BACKBONES.values()]


def option_defaults() -> dict:
    try:
        from core.compression import OPTION_DEFAULTS
        return {g: dict(v) for g, v in OPTION_DEFAULTS.items()}
    except Exception:  # noqa: BLE001
        return {}


def techniques_info() -> tuple[list[dict], list[str], str | None]:
    """(techniques, defaults, error): the compression techniques, if the compression module is here."""
    try:
        from core.compression import DEFAULT_TECHNIQUES, TECHNIQUES
    except Exception as e:  # noqa: BLE001 - the Train page still works without compression
        return [], [], f"compression is not available: {e}"
    rows = [{"name": t.name, "title": getattr(t, "title", t.name), "description": getattr(t, "description", ""),
             "groups": list(getattr(t, "groups", ()))} for t in TECHNIQUES.values()]
    return rows, [d for d in DEFAULT_TECHNIQUES if d in TECHNIQUES], None


@st.cache_data(ttl=60, show_spinner=False)
def presets_info() -> dict[str, str]:
    """{preset name: title naming what runs on this machine}, once the presets module exists."""
    try:
        from core.presets.recipes import PRESETS, resolve
    except Exception:  # noqa: BLE001
        return {}
    out = {}
    for n, p in PRESETS.items():
        try:
            out[n] = resolve(n)["title"]
        except Exception:  # noqa: BLE001 - a preset that cannot be resolved keeps its report's title
            out[n] = getattr(p, "title", n)
    return out


@st.cache_data(ttl=60, show_spinner=False)
def preset_plan(name: str, quick: bool) -> dict:
    """What a preset will do on this machine (datasets, substituted backbones, compression), with reasons."""
    from core.errors import LabError
    from core.presets.recipes import resolve
    try:
        return resolve(name, quick=quick)
    except LabError as e:
        return {"runnable": False, "messages": [str(e)], "runs": []}


def prepared(dataset: str, size: int, seed: int = 0, split: tuple | None = None):
    """A PreparedData (arrays shared read-only by all sessions; LabError propagates); read again when a dataset
    made in the lab changes."""
    from core.data.datasets import get_dataset, is_made
    stamp = get_dataset(dataset).load().fingerprint if is_made(dataset) else ""
    return _prepared(dataset, size, seed, tuple(split) if split else None, stamp)


@st.cache_resource(show_spinner=False, max_entries=6)
def _prepared(dataset: str, size: int, seed: int, split: tuple | None, stamp: str):
    from core.data.prepare import prepare
    return prepare(dataset, size, seed, split)


def _path_stamp(dataset: str) -> str:
    """Changes when a folder or file given by path changes (its own and its sub-folders' modification times)."""
    p = Path(dataset)
    try:
        st_ = p.stat()
        stamp = [st_.st_mtime_ns, st_.st_size]
        if p.is_dir():
            stamp += sorted(c.stat().st_mtime_ns for c in p.iterdir() if c.is_dir())
        return str(stamp)
    except OSError:
        return "missing"


def check_report(dataset: str) -> dict:
    """`python -m core check-dataset` for a dataset (never raises for bad data), re-checked when it changes."""
    return _check_report(dataset, _path_stamp(dataset))


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def _check_report(dataset: str, stamp: str) -> dict:
    from core.data.check import check_dataset
    return check_dataset(dataset)


def run_stamp(run_id: str) -> str:
    """Changes whenever a run's folder or its registry row changes: the key of everything cached per run."""
    from core.store.runs import run_dir
    folder = run_dir(run_id)
    stamp = [folder.stat().st_mtime_ns] + sorted(p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file())
    row = next((r for r in runs() if r["id"] == run_id), None)
    if row is None:
        from core.store import registry
        row = registry.get_run(run_id)
    return f"{stamp}|{row and row['updated']}"


def run_report(run_id: str, stamp: str | None = None):
    """The Results view of a run, re-read whenever its folder or registry rows change."""
    return _run_report(run_id, stamp or run_stamp(run_id))


@st.cache_resource(show_spinner=False, max_entries=32)
def _run_report(run_id: str, stamp: str):
    """One RunReport per run and stamp, shared read-only by every session (nothing mutates it)."""
    from core.evaluation.compare import load_run
    return load_run(run_id)


def db_stamp() -> tuple:
    """Changes with every commit to the registry database (its file and WAL's size and modification time): a few
    stat() calls, no query. The snapshots below are keyed by it, so a change is seen at once."""
    from core.store.paths import db_path
    path = db_path()
    out: list = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            s_ = p.stat()
            out += [s_.st_mtime_ns, s_.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


SNAPSHOT_TTL = 1.0      # seconds: at most one job-list read (and reconcile) per second and server process


@st.cache_data(ttl=SNAPSHOT_TTL, show_spinner=False, max_entries=8)
def _jobs_snapshot(limit: int, stamp: tuple) -> list[dict]:
    from core import jobs
    return jobs.list_jobs(limit)


def jobs_snapshot(limit: int = 20) -> list[dict]:
    """The newest jobs (reconciled), one copy per server process shared by every session's polling: re-read
    when the database changes, and at most once a second otherwise (a worker that vanished is noticed then)."""
    return _jobs_snapshot(limit, db_stamp())


@st.cache_data(ttl=30, show_spinner=False, max_entries=8)
def _runs_snapshot(limit: int, stamp: tuple) -> list[dict]:
    from core import jobs
    return jobs.list_runs(limit)        # each run with the status of the job that made it, its name and label


def runs(limit: int = 200) -> list[dict]:
    """The newest runs, shared by every session until the database changes."""
    return _runs_snapshot(limit, db_stamp())


def done_runs() -> list[dict]:
    return [r for r in runs() if r["status"] == "done"]


class TestImages:
    """A run's test split, in the stored order, as a view on the shared prepared data: `images[k]` and `ids[k]`
    pick one image by index (nothing is copied until an image is shown)."""

    def __init__(self, data, indices):
        self._data = data
        self.indices = [int(i) for i in indices]
        self.ids = _LazyIds(data.ids, self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        return self._data.images[self.indices[k]]


class _LazyIds:
    def __init__(self, ids, indices):
        self._ids, self._indices = ids, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, k):
        return self._ids[self._indices[k]]

    def __iter__(self):
        return (self._ids[i] for i in self._indices)


def trained_runs() -> list[dict]:
    """Runs with a trained model (a run whose job was cancelled after training keeps its model: it is labelled so)."""
    return [r for r in runs() if r.get("trained") and r["status"] not in ("running", "queued")]


def test_images(report) -> tuple:
    """(images, ids) of a run's test split, in the stored order, picked by index from the prepared data that
    every session shares (raises if the data cannot be loaded here)."""
    cfg = report.config
    data = prepared(cfg["dataset"], int(cfg["image_size"]), int(cfg.get("seed", 0)),
                    tuple(cfg["split"]) if cfg.get("split") else None)
    idx = report.predictions.get("indices")
    if idx is None:
        idx = data.index["test"]
    view = TestImages(data, idx)
    return view, view.ids


# ------------------------------------------------------------------ formatting


def fmt_bytes(n) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_pct(v, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * float(v):.{digits}f}%"


def fmt_secs(s) -> str:
    if s is None:
        return "–"
    s = float(s)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def energy_unit(values) -> str:
    """J, Wh or kWh: the unit that suits the largest of `values` (so one column shares one unit)."""
    top = max((float(v) for v in values if v is not None and v == v), default=0.0)
    return "J" if top < 360 else "Wh" if top < 3.6e6 else "kWh"


def fmt_energy(j, unit: str | None = None) -> str:
    """Joules below 360 J (0.1 Wh), watt-hours above, kWh from 1 kWh; or in the given unit."""
    if j is None or j != j:
        return "–"
    j = float(j)
    unit = unit or energy_unit([j])
    return f"{j:.3g} J" if unit == "J" else f"{j / 3600:.3g} Wh" if unit == "Wh" else f"{j / 3.6e6:.3g} kWh"


def co2_unit(values) -> str:
    """mg, g or kg: the unit that suits the largest of `values`."""
    top = max((float(v) for v in values if v is not None and v == v), default=0.0)
    return "mg" if top < 1 else "g" if top < 1000 else "kg"


def fmt_co2(g, unit: str | None = None) -> str:
    """Grams of CO2e as mg, g or kg (or in the given unit)."""
    if g is None or g != g:
        return "–"
    g = float(g)
    unit = unit or co2_unit([g])
    return f"{g * 1000:.3g} mg" if unit == "mg" else f"{g:.3g} g" if unit == "g" else f"{g / 1000:.3g} kg"


def fmt_time(t) -> str:
    return "–" if not t else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def dataset_label(name: str | None) -> str:
    """A short label for a dataset (built-in name, an upload by the user's own file name, or a folder's name)."""
    from core.store.uploads import display_name
    return display_name(name)


def status_badge(status: str) -> str:
    return f":{STATUS_COLORS.get(status, 'gray')}-badge[{STATUS_ICONS.get(status, '')} {status}]"


def run_label(r: dict) -> str:
    """A run as a picker shows it: its name (or dataset · backbone · size · time), accuracy, and status unless done."""
    from core.store.registry import run_label as label
    acc = "" if r.get("test_accuracy") is None else f" · {100 * r['test_accuracy']:.1f}%"
    return f"{r.get('label') or label(r)}{acc}{'' if r['status'] == 'done' else ' · ' + r['status']}"


def run_facts(r: dict) -> str:
    """One wrapping line under a run's link: status, accuracy, and what its label does not already say."""
    parts = [r["status"]]
    if r.get("test_accuracy") is not None:
        parts.append(f"test accuracy {100 * r['test_accuracy']:.1f}%")
    if r.get("name"):                                  # a generated label already has data, backbone, size, time
        parts += [dataset_label(r.get("dataset")), r.get("backbone") or "?", f"{r.get('image_size')} px",
                  fmt_time(r.get("created"))]
    return " · ".join(str(p) for p in parts if p)


def run_labels(rows: list[dict]) -> dict[str, str]:
    """{run id: label} for a picker, every label different (a repeated one gets the end of its run id)."""
    labels = {r["id"]: run_label(r) for r in rows}
    seen: dict[str, int] = {}
    for v in labels.values():
        seen[v] = seen.get(v, 0) + 1
    return {i: (f"{v} · {i[-6:]}" if seen[v] > 1 else v) for i, v in labels.items()}


def check_set_table(run_id: str) -> "tuple[pd.DataFrame, str] | None":
    """The run's check-set scores (check_set.json), one row per variant, and the check set's note; None if it has none."""
    import pandas as pd

    from core.store.runs import read_json, run_dir
    path = run_dir(run_id) / "check_set.json"
    if not path.is_file():
        return None
    data = read_json(path)
    if "error" in data:
        return pd.DataFrame([{"variant": "-", "check set": f"not checked: {data['error']}"}]), ""
    rows = []
    for name, c in data.items():
        if not isinstance(c, dict):
            continue
        row = {"variant": name, "check set": f"{c['right']} of {c['total']} ({100 * c['accuracy']:.0f}%)"}
        if "clear_total" in c:
            row |= {"clear colours named right": f"{c['clear_right']} of {c['clear_total']}",
                    "grey/silver named grey or silver": f"{c['shade_right']} of {c['shade_total']}"}
        rows.append(row | {"named wrong": ", ".join(c["wrong"]) or "-"})
    return pd.DataFrame(rows), f"{data.get('check_set', '')}: {data.get('note', '')}"


def taps_label(taps: dict | None) -> str:
    """'several depths (block_3_expand_relu, ...)' or 'the last layer', from a run's `taps` record."""
    if not taps:
        return "the last layer"
    used = "several depths" if taps.get("used") == "multi" else "the last layer"
    how = " (auto: chosen on validation)" if taps.get("requested") == "auto" and len(taps.get("candidates", [])) > 1 else ""
    return f"{used}{how}: {', '.join(taps.get('layers', []))}"


def default_run(runs: list[dict]) -> str:
    """The run a page opens on: the newest finished one or, when that came from a preset, the run its preset
    recommends (once finished)."""
    done = [r for r in runs if r["status"] == "done"] or runs
    newest = done[0]
    group = (newest.get("summary") or {}).get("preset_group")
    if group:
        for r in done:
            s = r.get("summary") or {}
            if s.get("preset_group") == group and s.get("recommended"):
                return r["id"]
    return newest["id"]
