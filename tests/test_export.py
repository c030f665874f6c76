"""Export bundles of the run compressed by test_compression.compressed_run, run in fresh venvs that hold only the
bundle's runtime (ai-edge-litert, or onnxruntime, with numpy and pillow; no TensorFlow), against
`python -m core predict` on the same images."""
from __future__ import annotations

import json
import subprocess
import venv
import zipfile
from importlib.metadata import version

import numpy as np
import pytest
from PIL import Image

from core.errors import LabError
from tests.test_compression import compressed_run

COMMON = [f"numpy=={version('numpy')}", f"pillow=={version('pillow')}"]
RUNTIMES = {"tflite": [f"ai-edge-litert=={version('ai-edge-litert')}", *COMMON],
            "onnx": [f"onnxruntime=={version('onnxruntime')}", *COMMON]}


def _venv_with(root, deps: list[str]):
    """A venv with only `deps` (installed by pip from the registry or its cache), asserted to hold no TensorFlow."""
    venv.create(root, with_pip=True)
    py = root / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *deps],
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        pytest.skip(f"could not install the bundle's dependencies: {r.stderr[-500:]}")
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert not names & {"tensorflow", "tf-keras", "keras", "tensorflow-cpu", "tf2onnx"}, names
    return py


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory):
    return _venv_with(tmp_path_factory.mktemp("bundle-venv"), RUNTIMES["tflite"])


@pytest.fixture(scope="module")
def onnx_python(tmp_path_factory):
    return _venv_with(tmp_path_factory.mktemp("onnx-venv"), RUNTIMES["onnx"])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[str]:
    """Nine JPEGs, three per class, larger than the model's input: predict.py resizes them."""
    from core.data.prepare import prepare
    folder = tmp_path_factory.mktemp("photos")
    data = prepare("shapes", 128)
    y, paths = data.y("test"), []
    for i in [i for c in range(3) for i in np.flatnonzero(y == c)[:3]]:
        p = folder / f"img{i}.jpg"
        Image.fromarray(data.x("test")[i]).save(p, quality=95)
        paths.append(str(p))
    return paths


def _bundle_and_lab(python, folder, run_id: str, variant: str, paths: list[str], capsys) -> tuple[list, list]:
    """The classes the bundle's predict.py prints, and those `python -m core predict` gives, for the same images."""
    from core.cli.main import main
    got = subprocess.run([str(python), str(folder / "predict.py"), *paths], capture_output=True, text=True,
                         timeout=120)
    assert got.returncode == 0, got.stderr
    bundle = [line.split("\t")[1] for line in got.stdout.strip().splitlines()]
    assert main(["predict", run_id, *paths, "--variant", variant, "--json"]) == 0
    lab = [p["top"][0]["class"] for p in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]]
    return bundle, lab


@pytest.mark.parametrize("variant", ["tflite_float32", "tflite_int8"])
def test_bundle_runs_without_tensorflow_and_agrees_with_the_lab(variant, plain_python, photos, tmp_path, capsys):
    from core.cli.main import main
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
    bundle, lab = _bundle_and_lab(plain_python, folder, run_id, variant, photos, capsys)
    assert bundle == lab, (bundle, lab)


@pytest.mark.parametrize("variant", ["original", "pruned_50"])
def test_onnx_bundle_runs_on_onnxruntime_and_agrees_with_the_lab(variant, onnx_python, photos, tmp_path, capsys):
    from core.cli.main import main
    run_id = compressed_run()["run_id"]
    out = tmp_path / f"{variant}-onnx.zip"
    assert main(["export", run_id, "--variant", variant, "--format", "onnx", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["check"]["top1_agreement"] >= 0.99 and res["check"]["max_prob_diff"] <= 1e-3
    assert res["check"]["test_images"] > 50
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp_path / "bundle")
    folder = next((tmp_path / "bundle").iterdir())
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["model_file"] == "model.onnx" and meta["preprocessing"]["inside_model"]
    assert meta["runtime"] == "onnxruntime numpy pillow" and "onnxruntime" in (folder / "README.md").read_text()
    bundle, lab = _bundle_and_lab(onnx_python, folder, run_id, variant, photos, capsys)
    assert bundle == lab, (bundle, lab)


def test_onnx_refuses_a_tflite_variant_and_an_unknown_format(tmp_path):
    from core.export import export_bundle
    run_id = compressed_run()["run_id"]
    with pytest.raises(LabError, match="Keras variant"):
        export_bundle(run_id, "tflite_int8", tmp_path / "x.zip", "onnx")
    with pytest.raises(LabError, match="unknown export format"):
        export_bundle(run_id, "original", tmp_path / "x.zip", "tfjs")
    assert not (tmp_path / "x.zip").exists()


def test_keras_original_exports_as_keras_with_the_same_metadata(tmp_path):
    from core.export import export_bundle
    run_id = compressed_run()["run_id"]
    res = export_bundle(run_id, "original", tmp_path / "original.zip")
    assert "model.keras" in res["files"] and not res["preprocessing_inside"]
    with zipfile.ZipFile(tmp_path / "original.zip") as z:
        meta = json.loads(z.read(f"{run_id}-original/metadata.json"))
    assert meta["model_file"] == "model.keras" and meta["preprocessing"]["matrix"][0][0] == pytest.approx(1 / 127.5)
    assert meta["preprocessing"]["offset"] == [-1.0, -1.0, -1.0]
