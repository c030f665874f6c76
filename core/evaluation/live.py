"""Live classification of a camera stream: the newest frame wins, every chosen variant answers it, and the latency
per variant and the frames per second are measured as it goes.

A camera (or any producer thread) calls `offer(frame)` as often as it likes; it never waits for a model. One worker
thread takes the newest frame, resizes it as `predict` does (core.evaluation.predict.as_image) and runs each
variant on it in turn through the same cached predictors and the same `answer` (so a live answer is the answer
`python -m core predict` gives for that frame). A frame that arrives while the worker is busy replaces the one
waiting: frames are dropped, never queued, so the answers follow the camera with at most one frame of delay.
The worker stops by itself after `idle_stop` seconds without frames (a closed browser tab leaves no thread).
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from typing import Sequence

import numpy as np

from core.errors import LabError
from .calibration import recorded_temperature
from .predict import answer, as_image, cached_predictor

WINDOW = 30            # answers kept per variant for the rolling latency
FPS_SECONDS = 3.0      # frames per second are counted over the last few seconds


class LiveClassifier:
    """Thread-safe: `offer` from the camera thread, `state` from the UI thread, `close` from either."""

    def __init__(self, run_id: str, variants: Sequence[str], top_k: int = 3, threads: int = 2,
                 idle_stop: float = 5.0):
        from core.models.predictor import run_info, variant_file
        variants = list(dict.fromkeys(variants))
        if not variants:
            raise LabError("choose at least one variant to classify live")
        if top_k < 1:
            raise LabError("top-k must be at least 1")
        self.run_id, self.variants, self.top_k, self.idle_stop = run_id, variants, int(top_k), idle_stop
        self.image_size = run_info(run_id).image_size
        for v in variants:
            variant_file(run_id, v)                 # a bad variant fails here, before any model is loaded
        self._models = {v: (cached_predictor(run_id, v, threads), recorded_temperature(run_id, v)) for v in variants}
        self._cond = threading.Condition()
        self._pending: np.ndarray | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._arrived: deque[float] = deque(maxlen=240)
        self._classified: deque[float] = deque(maxlen=240)
        self._latency = {v: deque(maxlen=WINDOW) for v in variants}
        self._answers: dict[str, dict | None] = {v: None for v in variants}
        self._errors: dict[str, str] = {}
        self.frames_in = self.frames_classified = self.frames_dropped = 0

    def classify(self, frame: np.ndarray) -> dict[str, dict]:
        """Every variant's answer to one RGB frame (H, W, 3) uint8 of any size, synchronously (no statistics)."""
        _, img = as_image(frame, self.image_size)
        return {v: answer(p, img, t, self.top_k) for v, (p, t) in self._models.items()}

    def offer(self, frame: np.ndarray) -> None:
        """Hand over the camera's newest frame; returns at once. A frame still waiting is dropped for this one."""
        if self._closed:
            return
        now = time.perf_counter()
        with self._cond:
            self.frames_in += 1
            self._arrived.append(now)
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = frame
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=f"live-{self.run_id}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                if self._pending is None:
                    self._cond.wait(self.idle_stop)
                if self._pending is None or self._closed:
                    self._thread = None
                    return
                frame, self._pending = self._pending, None
            try:
                _, img = as_image(frame, self.image_size)
            except LabError as e:
                with self._cond:
                    self._errors = {v: str(e) for v in self.variants}
                continue
            for v, (p, t) in self._models.items():
                try:
                    got = answer(p, img, t, self.top_k)
                except Exception as e:  # noqa: BLE001 - one broken variant must not stop the others
                    with self._cond:
                        self._errors[v] = f"{type(e).__name__}: {e}"
                    continue
                with self._cond:
                    self._answers[v] = got
                    self._latency[v].append(got["latency_ms"])
                    self._errors.pop(v, None)
            with self._cond:
                self.frames_classified += 1
                self._classified.append(time.perf_counter())

    def state(self) -> dict:
        """A snapshot: frame counts, camera and classified frames per second, and per variant the newest answer
        with the median and 95th percentile of its last WINDOW latencies (ms) and the error, if any."""
        with self._cond:
            now = time.perf_counter()
            out = {"frames_in": self.frames_in, "frames_classified": self.frames_classified,
                   "frames_dropped": self.frames_dropped, "camera_fps": _rate(self._arrived, now),
                   "fps": _rate(self._classified, now), "running": self._thread is not None, "variants": {}}
            for v in self.variants:
                lat = list(self._latency[v])
                out["variants"][v] = {
                    "answer": self._answers[v], "error": self._errors.get(v), "n": len(lat),
                    "latency_ms": round(statistics.median(lat), 3) if lat else None,
                    "latency_ms_p95": round(float(np.percentile(lat, 95)), 3) if lat else None}
            return out

    def close(self) -> None:
        """Stop the worker (it finishes the frame in hand); later offers are ignored."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)


def _rate(times: deque, now: float) -> float:
    """Events per second over the last FPS_SECONDS (0 when fewer than two, or none lately)."""
    recent = [t for t in times if now - t <= FPS_SECONDS]
    if len(recent) < 2 or recent[-1] <= recent[0]:
        return 0.0
    return round((len(recent) - 1) / (recent[-1] - recent[0]), 2)
