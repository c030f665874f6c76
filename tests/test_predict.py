"""core.evaluation.predict, core.evaluation.live and the `predict` sub-command, on the run compressed by test_compression.compressed_run."""
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


# --- core.evaluation.live: the Predict page's live camera, on the same trained run --------------------------------

LIVE_VARIANTS = ["original", "tflite_int8_io"]


def _camera_frame(a: np.ndarray) -> np.ndarray:
    """A test image as a webcam would send it: 4:3, larger than the model's input."""
    return np.asarray(Image.fromarray(a).resize((320, 240)))


def test_live_answers_as_predict(run):
    from core.evaluation.live import LiveClassifier
    from core.evaluation.predict import predict
    live = LiveClassifier(run["run_id"], LIVE_VARIANTS, top_k=2)
    for a in run["x"][:3]:
        frame = _camera_frame(a)
        got = live.classify(frame)
        assert list(got) == LIVE_VARIANTS
        for v in LIVE_VARIANTS:
            want = predict(run["run_id"], [frame], variant=v, top_k=2)[0]
            assert got[v]["class"] == want["class"] and abs(got[v]["probability"] - want["probability"]) < 1e-5
            assert [t["class"] for t in got[v]["top"]] == [t["class"] for t in want["top"]]
            assert got[v]["latency_ms"] > 0
    live.close()


def test_live_stream_drops_frames_and_measures(run):
    """A camera faster than the models: frames are dropped (never queued), latency and FPS are measured."""
    import time

    from core.evaluation.live import LiveClassifier
    from core.evaluation.predict import predict
    frame = _camera_frame(run["x"][0])
    want = {v: predict(run["run_id"], [frame], variant=v)[0]["class"] for v in LIVE_VARIANTS}
    live = LiveClassifier(run["run_id"], LIVE_VARIANTS, idle_stop=0.5)
    t0 = time.perf_counter()
    offered = 0
    while time.perf_counter() - t0 < 2.5:                 # a 250 fps camera for 2.5 s
        live.offer(frame)
        offered += 1
        time.sleep(0.004)
    s = live.state()
    assert s["frames_in"] == offered and s["running"]
    assert s["frames_dropped"] > 0 and s["frames_classified"] >= 5, s
    assert s["frames_classified"] + s["frames_dropped"] <= offered <= s["frames_classified"] + s["frames_dropped"] + 2
    assert 50 < s["camera_fps"] < 300, s
    assert 0 < s["fps"] < s["camera_fps"], s
    per_frame_ms = 0.0
    for v in LIVE_VARIANTS:
        got = s["variants"][v]
        assert got["error"] is None and got["answer"]["class"] == want[v]
        assert 0 < got["latency_ms"] <= got["latency_ms_p95"] < 5000 and 1 <= got["n"] <= 30
        per_frame_ms += got["latency_ms"]
    assert s["fps"] * per_frame_ms / 1000 < 1.5, s        # it cannot answer faster than its models run
    from core.evaluation.live import FPS_SECONDS
    time.sleep(FPS_SECONDS + 0.3)                        # no frames: the worker stops by itself, FPS falls to 0
    s2 = live.state()
    assert not s2["running"] and s2["fps"] == 0 and s2["frames_in"] == offered
    assert s2["frames_classified"] + s2["frames_dropped"] == offered     # the frame in hand and the waiting one
    live.offer(frame)                                    # and starts again with the next frame
    deadline = time.time() + 10
    while live.state()["frames_classified"] == s2["frames_classified"] and time.time() < deadline:
        time.sleep(0.02)
    assert live.state()["frames_classified"] == s2["frames_classified"] + 1
    live.close()
    live.offer(frame)
    assert not live.state()["running"]


def test_live_threads_and_bad_input(run):
    import threading
    import time

    from core.evaluation.live import LiveClassifier
    with pytest.raises(LabError, match="at least one variant"):
        LiveClassifier(run["run_id"], [])
    with pytest.raises(LabError, match="no variant"):
        LiveClassifier(run["run_id"], ["original", "tflite_int3"])
    live = LiveClassifier(run["run_id"], ["tflite_int8"])
    frames = [_camera_frame(a) for a in run["x"][:4]]
    readers_saw: list[int] = []

    def camera(k: int) -> None:
        for i in range(40):
            live.offer(frames[(i + k) % 4])
            time.sleep(0.002)

    def reader() -> None:
        for _ in range(40):
            readers_saw.append(live.state()["frames_in"])
            time.sleep(0.002)
    threads = [threading.Thread(target=camera, args=(k,)) for k in range(2)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert live.state()["frames_in"] == 80 and readers_saw == sorted(readers_saw)
    live.offer(np.zeros((8, 8, 5), np.uint8))            # not an image: said per variant, the worker goes on
    deadline = time.time() + 10
    while live.state()["variants"]["tflite_int8"]["error"] is None and time.time() < deadline:
        time.sleep(0.02)
    assert "expected an (H, W)" in live.state()["variants"]["tflite_int8"]["error"]
    live.offer(frames[0])
    while live.state()["variants"]["tflite_int8"]["error"] is not None and time.time() < deadline:
        time.sleep(0.02)
    got = live.state()["variants"]["tflite_int8"]
    assert got["error"] is None and got["answer"]["class"] == run["classes"][run["y"][0]]
    live.close()
