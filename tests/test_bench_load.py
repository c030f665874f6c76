"""`python -m bench load`'s headless client against a real server: two sessions go once round the step loop
(Home -> Results -> Predict -> upload a photo and wait for the answer -> Results) with no error."""
from __future__ import annotations

import asyncio
import os

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def served_run(tmp_path_factory):
    """A lab home with one quickly trained, compressed run (an MLP at 16 px) for the server to show."""
    from core.compression import compress
    from core.config import HeadConfig, TrainConfig
    from core.training.train import train
    home = os.environ["LAB_HOME"]
    run_id = train(TrainConfig(dataset="shapes", backbone="mlp", image_size=16, epochs=1,
                               head=HeadConfig(dense=[8])))["run_id"]
    compress(run_id, ["tflite_float32"], {"measure": {"latency_runs": 50, "warmup_runs": 1, "throughput_repeats": 1}})
    return home, run_id


def test_headless_sessions_go_round_the_step_loop(served_run, tmp_path):
    from bench.load import Server, free_port, photo, scenario
    home, _ = served_run
    env = dict(os.environ, LAB_HOME=home, LAB_NO_WARMUP="1", PYTHONPATH=str(REPO))
    port = free_port()
    server = Server(env, port, tmp_path / "server.log")
    try:
        xsrf = server.wait_ready(timeout=180)
        out = asyncio.run(scenario(2, [(port, xsrf)], photo(), loops=1, think=0.0, step_timeout=180.0,
                                   timeout=400.0))
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text(errors="replace")[-3000:]
    assert out["errors"] == 0, (out["error_samples"], log)
    assert out["steps"] == 10 and out["loops"] == 2
    assert set(out["median_by_step_s"]) == {"home", "results", "predict", "upload+answer", "results again"}
    assert server.peak_kb > 0
