"""Export bundles of the run compressed by test_compression.compressed_run, run in a fresh venv that holds only
ai-edge-litert, numpy and pillow (no TensorFlow), against `python -m core predict` on the same images."""
from __future__ import annotations

import json
import subprocess
import venv
import zipfile
from importlib.metadata import version

import numpy as np
import pytest
from PIL import Image

from tests.test_compression import compressed_run

BUNDLE_DEPS = [f"ai-edge-litert=={version('ai-edge-litert')}", f"numpy=={version('numpy')}", f"pillow=={version('pillow')}"]


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory):
    """A venv with only the bundle's three dependencies (installed by pip from the registry or its cache)."""
    env = tmp_path_factory.mktemp("bundle-venv")
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *BUNDLE_DEPS],
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        pytest.skip(f"could not install the bundle's dependencies: {r.stderr[-500:]}")
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert not names & {"tensorflow", "tf-keras", "keras", "tensorflow-cpu"}, names
    return py


@pytest.mark.parametrize("variant", ["tflite_float32", "tflite_int8"])
def test_bundle_runs_without_tensorflow_and_agrees_with_the_lab(variant, plain_python, tmp_path, capsys):
    from core.cli.main import main
    from core.data.prepare import prepare
    run_id = compressed_run()["run_id"]
    out = tmp_path / f"{variant}.zip"
    assert main(["export", run_id, "--variant", variant, "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["preprocessing_inside"] and res["check"]["top1_agreement"] >= 0.97
    with zipfile.ZipFile(out) as z:
        names = {n.split("/", 1)[1] for n in z.namelist()}
        assert names == {"README.md", "labels.txt", "metadata.json", "predict.py", "model.tflite"}
        z.extractall(tmp_path / "bundle")
    folder = next((tmp_path / "bundle").iterdir())
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["preprocessing"]["inside_model"] and meta["input"]["size"] == 96 and meta["input"]["colour_order"] == "RGB"
    assert (folder / "labels.txt").read_text().split() == meta["class_names"] == ["circle", "square", "triangle"]
    assert meta["measured"]["test_accuracy"] > 0.9 and meta["measured"]["size_bytes"] > 0
    data = prepare("shapes", 128)                       # the photos, larger than the model's input: predict.py resizes
    y, paths = data.y("test"), []
    for i in [i for c in range(3) for i in np.flatnonzero(y == c)[:3]]:      # three of each class
        p = tmp_path / f"img{i}.jpg"
        Image.fromarray(data.x("test")[i]).save(p, quality=95)
        paths.append(str(p))
    got = subprocess.run([str(plain_python), str(folder / "predict.py"), *paths], capture_output=True, text=True,
                         timeout=120)
    assert got.returncode == 0, got.stderr
    bundle = [line.split("\t")[1] for line in got.stdout.strip().splitlines()]
    assert main(["predict", run_id, *paths, "--variant", variant, "--json"]) == 0
    lab = [p["top"][0]["class"] for p in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]]
    assert bundle == lab, (bundle, lab)


def test_keras_original_exports_as_keras_with_the_same_metadata(tmp_path):
    from core.export import export_bundle
    run_id = compressed_run()["run_id"]
    res = export_bundle(run_id, "original", tmp_path / "original.zip")
    assert "model.keras" in res["files"] and not res["preprocessing_inside"]
    with zipfile.ZipFile(tmp_path / "original.zip") as z:
        meta = json.loads(z.read(f"{run_id}-original/metadata.json"))
    assert meta["model_file"] == "model.keras" and meta["preprocessing"]["matrix"][0][0] == pytest.approx(1 / 127.5)
    assert meta["preprocessing"]["offset"] == [-1.0, -1.0, -1.0]
