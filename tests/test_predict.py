"""core.evaluation.predict and the `predict` sub-command, on the run compressed by test_compression.compressed_run."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from core.errors import LabError
from tests.test_compression import compressed_run


@pytest.fixture(scope="module")
def run() -> dict:
    from core.data.prepare import prepare
    result = compressed_run()
    data = prepare("shapes", 96)
    return {"run_id": result["run_id"], "x": data.x("test")[:6], "y": data.y("test")[:6], "classes": data.class_names}


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("variant", ["original", "tflite_int8_io", "pruned_50"])
def test_predict_paths_bytes_and_arrays(run, tmp_path, variant):
    from core.models import load_variant
    from core.evaluation.calibration import apply_temperature, recorded_temperature
    from core.evaluation.predict import predict
    paths = []
    for i, a in enumerate(run["x"][:3]):
        paths.append(tmp_path / f"img{i}.png")
        paths[-1].write_bytes(_png(a))
    inputs = [str(p) for p in paths] + [_png(a) for a in run["x"][3:5]] + [run["x"][5]]
    out = predict(run["run_id"], inputs, variant=variant, top_k=2)
    assert len(out) == 6 and out[0]["image"] == str(paths[0])
    temperature = recorded_temperature(run["run_id"], variant)          # fitted on validation by compression
    assert all(o["calibrated"] == (temperature is not None) and o["temperature"] == temperature for o in out)
    expected = load_variant(run["run_id"], variant).predict(run["x"])
    expected = expected if temperature is None else apply_temperature(expected, temperature)
    for o, e in zip(out, expected):
        assert len(o["top"]) == 2 and o["top"][0]["probability"] >= o["top"][1]["probability"]
        assert o["class"] == run["classes"][int(e.argmax())]     # PNG is lossless: same pixels, same answer
        assert abs(o["probability"] - float(e.max())) < 1e-5
        assert o["latency_ms"] > 0
    assert sum(o["class"] == run["classes"][y] for o, y in zip(out, run["y"])) >= 5


def test_predict_resizes_any_image(run):
    from core.evaluation.predict import predict
    big = np.asarray(Image.fromarray(run["x"][0]).resize((200, 150)))
    grey = np.asarray(Image.fromarray(run["x"][1]).convert("L"))
    out = predict(run["run_id"], [big, grey], top_k=10)
    assert [len(o["top"]) for o in out] == [3, 3]                 # top-k is capped at the number of classes
    assert abs(sum(t["probability"] for t in out[0]["top"]) - 1) < 1e-4


def test_predict_errors(run, tmp_path):
    from core.evaluation.predict import predict
    with pytest.raises(LabError, match="no variant"):
        predict(run["run_id"], [run["x"][0]], variant="tflite_int3")
    with pytest.raises(LabError, match="not a readable image"):
        predict(run["run_id"], [b"not an image"])
    with pytest.raises(LabError, match="no such file"):
        predict(run["run_id"], [str(tmp_path / "missing.png")])
    with pytest.raises(LabError, match="no images"):
        predict(run["run_id"], [])


def test_cli_predict_json(run, tmp_path, capsys):
    from core.cli.main import main
    p = tmp_path / "one.png"
    p.write_bytes(_png(run["x"][0]))
    assert main(["predict", run["run_id"], str(p), "--variant", "tflite_int8", "--json", "--top-k", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["variant"] == "tflite_int8" and out["predictions"][0]["class"] == run["classes"][run["y"][0]]
    assert out["predictions"][0]["latency_ms"] > 0 and len(out["predictions"][0]["top"]) == 1
    one = out["predictions"][0]
    from core.evaluation.calibration import recorded_temperature
    assert one["temperature"] == recorded_temperature(run["run_id"], "tflite_int8")
    assert one["calibrated"] == (one["temperature"] is not None) and one["label"].split(" or ")[0] == one["class"]
    assert main(["predict", run["run_id"], str(p), "--variant", "nope"]) == 2
