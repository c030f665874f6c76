"""Runs and their variants in MLflow, when `LAB_MLFLOW_URI` names a tracking store (a `file:` mlruns folder or a
tracking server's http(s) address). Unset, nothing here runs and mlflow is never imported.

One MLflow run per lab run (tag `lab.run_id`): the training configuration as parameters, test accuracy, macro-F1,
training time and energy as metrics, and the model files (model.keras, config.json, run.json, metrics.json,
class_names.json) as artifacts. One nested MLflow run per variant (tags `lab.run_id` and `lab.variant`): the
technique and its options as parameters, accuracy, size, latency, energy (and the check-set score) as metrics,
its model file as an artifact. Logging is idempotent: a run or variant already in the experiment is skipped, so
`python -m core mlflow-export` can be run again after more variants were built. The experiment is
`LAB_MLFLOW_EXPERIMENT` (default "green-transfer-learning-lab").

`after_run(run_id)` is what the job worker and the CLI call when a run finishes: it never raises; a failure is one
clear warning on stderr (the job's log).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from core.errors import LabError

ENV_URI = "LAB_MLFLOW_URI"
ENV_EXPERIMENT = "LAB_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "green-transfer-learning-lab"
TAG_RUN, TAG_VARIANT, TAG_KIND = "lab.run_id", "lab.variant", "lab.kind"
RUN_FILES = ("model.keras", "config.json", "run.json", "metrics.json", "class_names.json", "history.json")
RUN_METRICS = ("test_accuracy", "test_loss", "macro_f1", "train_seconds", "epochs_run", "params", "num_train",
               "num_val", "num_test")
VARIANT_METRICS = ("test_accuracy", "check_accuracy", "macro_f1", "size_bytes", "gzip_bytes", "latency_ms_p50",
                   "latency_ms_p95", "throughput_ips", "sparsity", "agreement", "ece", "ece_calibrated",
                   "energy_per_1000_j", "energy_per_1000_single_j", "energy_to_make_j", "co2e_per_1000_g",
                   "co2e_to_make_g", "compress_energy_j", "build_seconds")
MAX_PARAM = 500                # characters of one parameter value (MLflow allows more; a value this long is a list)


def tracking_uri() -> str | None:
    """The tracking store named by LAB_MLFLOW_URI, or None when logging is off."""
    uri = os.environ.get(ENV_URI, "").strip()
    return uri or None


def enabled() -> bool:
    return tracking_uri() is not None


def _client(uri: str):
    """An MlflowClient for `uri`. A local folder (file: or a plain path) uses MLflow's file store, which MLflow 3
    refuses unless MLFLOW_ALLOW_FILE_STORE is set; a server is asked at most twice, 20 s each, before giving up."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - another process created it meanwhile
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _find(client, experiment_id: str, run_id: str, variant: str | None):
    q = f"tags.`{TAG_RUN}` = '{run_id}' and tags.`{TAG_KIND}` = '{'variant' if variant else 'run'}'"
    if variant:
        q += f" and tags.`{TAG_VARIANT}` = '{variant}'"
    found = client.search_runs([experiment_id], q, max_results=1)
    return found[0] if found else None


def flat_params(d: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow parameters: {"head.dense": "128-64", "epochs": "10", ...}."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flat_params(v, key + ".")
        elif isinstance(v, (list, tuple)):
            out[key] = "-".join(map(str, v)) if all(isinstance(x, (int, float)) for x in v) else ",".join(map(str, v))
        else:
            out[key] = str(v)
    return {k: v[:MAX_PARAM] for k, v in out.items()}


def _numbers(d: dict, keys: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf"):
            out[k] = float(v)
    return out


def _log(client, mlflow_run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param
    now = int(time.time() * 1000)
    client.log_batch(mlflow_run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                     params=[Param(k, v) for k, v in params.items()])


def _artifacts(client, mlflow_run_id: str, folder: Path, files: list[str], into: str) -> list[str]:
    logged = []
    for rel in files:
        p = folder / rel
        if p.is_file():
            sub = str(Path(into) / Path(rel).parent) if str(Path(rel).parent) != "." else into
            client.log_artifact(mlflow_run_id, str(p), sub)
            logged.append(rel)
    return logged


def log_run(run_id: str, uri: str | None = None, experiment: str | None = None) -> dict:
    """Log one finished run and each of its variants not logged yet; what was done:
    {run_id, mlflow_run_id, experiment_id, created, variants_logged, variants_skipped, uri}."""
    from core.evaluation.compare import load_run
    uri = uri or tracking_uri()
    if not uri:
        raise LabError(f"no MLflow tracking store: set {ENV_URI} (e.g. file:/path/to/mlruns or http://host:5000) "
                       "or pass --uri")
    rep = load_run(run_id)
    if not rep.finished:
        raise LabError(f"run {run_id} has no results yet ({rep.status}): only finished runs are logged")
    client = _client(uri)
    exp_id = _experiment_id(client, experiment or os.environ.get(ENV_EXPERIMENT) or DEFAULT_EXPERIMENT)
    summary = (rep.row or {}).get("summary") or {}
    label = rep.config.get("name") or summary.get("preset_run") or run_id
    parent = _find(client, exp_id, run_id, None)
    created = parent is None
    if created:
        tags = {TAG_RUN: run_id, TAG_KIND: "run", "mlflow.runName": f"{label} ({run_id})"[:250],
                "lab.dataset": str(rep.config.get("dataset")), "lab.backbone": str(rep.config.get("backbone"))}
        for k in ("preset", "preset_group", "preset_run"):
            if summary.get(k):
                tags[f"lab.{k}"] = str(summary[k])[:250]
        parent = client.create_run(exp_id, tags=tags)
        energy = (rep.run.get("energy") or {}).get("total") or {}
        metrics = _numbers(rep.run, RUN_METRICS) | {f"energy_{k}": v for k, v in _numbers(
            energy, ("joules", "kwh", "co2e_g", "cpu_seconds")).items()}
        if isinstance(rep.run.get("check_set"), dict):
            metrics |= {f"check_{k}": v for k, v in _numbers(rep.run["check_set"], ("accuracy",)).items()}
        _log(client, parent.info.run_id, flat_params(rep.config) | {"weights": str(rep.run.get("weights"))}, metrics)
        _artifacts(client, parent.info.run_id, rep.folder, list(RUN_FILES), "model")
        client.set_terminated(parent.info.run_id, "FINISHED")
    logged, skipped = [], []
    by_name = {v.get("name"): v for v in rep.variants}
    for row in rep.table():
        name = row["name"]
        if _find(client, exp_id, run_id, name) is not None:
            skipped.append(name)
            continue
        raw = by_name.get(name) or {}
        child = client.create_run(exp_id, tags={TAG_RUN: run_id, TAG_VARIANT: name, TAG_KIND: "variant",
                                                "mlflow.parentRunId": parent.info.run_id,
                                                "mlflow.runName": f"{name} ({run_id})"})
        params = {"technique": str(row.get("technique") or name)} | flat_params(raw.get("options") or {}, "options.")
        _log(client, child.info.run_id, params, _numbers(row, VARIANT_METRICS) | _numbers(raw, VARIANT_METRICS))
        files = [f for f in raw.get("files") or [] if f not in RUN_FILES]
        _artifacts(client, child.info.run_id, rep.folder, files, "variant")
        client.set_terminated(child.info.run_id, "FINISHED")
        logged.append(name)
    return {"run_id": run_id, "mlflow_run_id": parent.info.run_id, "experiment_id": exp_id, "created": created,
            "variants_logged": logged, "variants_skipped": skipped, "uri": uri}


def after_run(run_id: str) -> dict | None:
    """Log a run that just finished, if LAB_MLFLOW_URI is set; never raises (a failure is a warning on stderr)."""
    uri = tracking_uri()
    if uri is None:
        return None
    try:
        out = log_run(run_id, uri)
    except Exception as e:  # noqa: BLE001 - tracking must never fail the run it tracks
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        print(f"WARNING: MLflow logging of run {run_id} to {uri} failed ({type(e).__name__}: {msg}); the run "
              "itself is complete. Log it later with `python -m core mlflow-export " + run_id + "`.",
              file=sys.stderr, flush=True)
        return None
    print(f"MLflow: run {run_id} logged to {uri} (MLflow run {out['mlflow_run_id']}; "
          f"{len(out['variants_logged'])} variant(s) logged, {len(out['variants_skipped'])} already there)",
          file=sys.stderr, flush=True)
    return out
