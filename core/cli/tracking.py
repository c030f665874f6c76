"""Sub-command `mlflow-export [RUN_ID...]`: log earlier runs and their variants to MLflow (core.export.mlflow_log)."""
from __future__ import annotations

import argparse

from core.errors import LabError

from .main import command, emit


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to log (default: every finished run)")
    p.add_argument("--uri", help="tracking store (default: $LAB_MLFLOW_URI), e.g. file:/path/mlruns or http://host:5000")
    p.add_argument("--experiment", help="experiment name (default: $LAB_MLFLOW_EXPERIMENT or green-transfer-learning-lab)")


@command("log runs and their variants to MLflow (skips what is already logged there)", _export_args)
def mlflow_export(args) -> int:
    from core.export.mlflow_log import log_run, tracking_uri
    from core.store import registry
    from core.store.runs import check_run_id
    uri = args.uri or tracking_uri()
    if not uri:
        raise LabError("no MLflow tracking store: set LAB_MLFLOW_URI (e.g. file:/path/to/mlruns) or pass --uri")
    ids = [check_run_id(r) for r in args.run_ids] or [r["id"] for r in reversed(registry.list_runs(100_000))
                                                       if r["status"] == "done"]
    done, failed = [], []
    for run_id in ids:
        try:
            done.append(log_run(run_id, uri, args.experiment))
        except LabError as e:
            failed.append({"run_id": run_id, "error": str(e)})
    out = {"uri": uri, "logged": done, "failed": failed}
    emit(out, args.json, lambda o: "\n".join(
        [f"{d['run_id']}  {'logged' if d['created'] else 'already there'} as MLflow run {d['mlflow_run_id']}; "
         f"variants logged: {', '.join(d['variants_logged']) or 'none'}"
         + (f"; already there: {', '.join(d['variants_skipped'])}" if d["variants_skipped"] else "")
         for d in o["logged"]] + [f"{f['run_id']}  NOT logged: {f['error']}" for f in o["failed"]]) or "no runs")
    return 2 if failed and not done else 0
