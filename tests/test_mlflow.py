"""MLflow tracking (core.export.mlflow_log): a run and its variants read back through MLflow's own client, exporting
earlier runs (idempotent), a broken store never failing anything, and mlflow never imported while it is off."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.export import mlflow_log
from core.store.runs import read_json, run_dir
from tests.conftest import REPO

MEASURE = {"measure": {"latency_runs": 50, "warmup_runs": 2, "throughput_repeats": 1, "eval_repeats": 1}}


@pytest.fixture(scope="module")
def earlier_run():
    """A run trained and compressed with MLflow off (an 'earlier run' for mlflow-export)."""
    assert not os.environ.get(mlflow_log.ENV_URI)
    from core.compression import compress
    from core.config import HeadConfig, TrainConfig
    from core.training.train import train
    run_id = train(TrainConfig(dataset="shapes", backbone="mlp", image_size=16, epochs=2,
                               head=HeadConfig(dense=[16])))["run_id"]
    compress(run_id, ["tflite_float32"], MEASURE)
    return run_id


def client_for(uri: str):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(mlflow_log.DEFAULT_EXPERIMENT)
    return client, exp.experiment_id


def export(run_id: str, uri: str, capsys) -> dict:
    """`python -m core mlflow-export RUN_ID --uri URI --json`, through the CLI's own entry point."""
    from core.cli.main import main
    capsys.readouterr()
    assert main(["mlflow-export", run_id, "--uri", uri, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_export_logs_an_earlier_run_once_and_later_variants_too(earlier_run, tmp_path, capsys):
    uri = f"file:{tmp_path / 'mlruns'}"
    first = export(earlier_run, uri, capsys)["logged"][0]
    assert first["created"] and first["variants_logged"] == ["original", "tflite_float32"]
    client, exp = client_for(uri)
    parent = client.get_run(first["mlflow_run_id"])
    stored = read_json(run_dir(earlier_run) / "run.json")
    config = read_json(run_dir(earlier_run) / "config.json")
    assert parent.data.tags["lab.run_id"] == earlier_run
    assert parent.data.params["backbone"] == "mlp" and parent.data.params["head.dense"] == "16"
    assert parent.data.params["epochs"] == str(config["epochs"]) and parent.data.params["dataset"] == "shapes"
    assert parent.data.metrics["test_accuracy"] == pytest.approx(stored["test_accuracy"])
    assert parent.data.metrics["macro_f1"] == pytest.approx(stored["macro_f1"])
    assert parent.data.metrics["energy_joules"] == pytest.approx(stored["energy"]["total"]["joules"])
    variants = {r.data.tags["lab.variant"]: r for r in client.search_runs([exp], "tags.`lab.kind` = 'variant'")}
    assert set(variants) == {"original", "tflite_float32"}
    f32 = variants["tflite_float32"]
    assert f32.data.tags["mlflow.parentRunId"] == parent.info.run_id
    stored_v = next(v for v in read_json(run_dir(earlier_run) / "variants.json") if v["name"] == "tflite_float32")
    assert f32.data.metrics["size_bytes"] == stored_v["size_bytes"]
    assert f32.data.metrics["energy_per_1000_j"] == pytest.approx(stored_v["energy_per_1000_j"])

    again = export(earlier_run, uri, capsys)["logged"][0]                  # idempotent: nothing is logged twice
    assert not again["created"] and again["variants_logged"] == [] and again["mlflow_run_id"] == parent.info.run_id
    assert len(client.search_runs([exp], "")) == 3

    from core.compression import compress                         # a variant built later joins the same run
    compress(earlier_run, ["tflite_float16"], MEASURE)
    later = export(earlier_run, uri, capsys)["logged"][0]
    assert later["variants_logged"] == ["tflite_float16"] and sorted(later["variants_skipped"]) == \
        ["original", "tflite_float32"]
    assert len(client.search_runs([exp], "")) == 4


def test_a_broken_store_is_a_warning_never_a_failure(earlier_run, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(mlflow_log.ENV_URI, f"file:{blocker}/mlruns")           # cannot be created
    assert mlflow_log.after_run(earlier_run) is None
    err = capsys.readouterr().err
    assert f"WARNING: MLflow logging of run {earlier_run}" in err and "the run itself is complete" in err
    assert f"mlflow-export {earlier_run}" in err
    monkeypatch.setenv(mlflow_log.ENV_URI, str(tmp_path / "mlruns"))
    from core.errors import LabError
    with pytest.raises(LabError, match="no results yet|no run"):               # only finished runs are logged
        mlflow_log.log_run("20000101-000000-abcdef")


def test_unset_nothing_is_logged_and_mlflow_is_not_imported(tmp_path):
    """With LAB_MLFLOW_URI unset: a CLI training, the worker's hook and every CLI module, and mlflow stays out."""
    code = f"""
import sys
from core.cli import main
main._load_command_modules()
import core.jobs.worker
assert main.main(["train", "--backbone", "mlp", "--image-size", "16", "--epochs", "1", "--dense", "8",
                  "--quiet"]) == 0
from core.export.mlflow_log import after_run
assert after_run("20000101-000000-abcdef") is None
assert "mlflow" not in sys.modules, sorted(m for m in sys.modules if "mlflow" in m)
print("NOT-IMPORTED")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_MLFLOW", "MLFLOW"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "NOT-IMPORTED" in out.stdout, out.stderr[-3000:]
    assert "MLflow" not in out.stderr
