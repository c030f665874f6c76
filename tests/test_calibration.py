"""core.evaluation.calibration on synthetic classifiers whose true probabilities are known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from core.evaluation.calibration import (SEEN_NOTE, apply_temperature, at_bound, calibration_record,
                                         expected_calibration_error, fit_temperature, top_two)


def _classifier(n: int, sharpen: float, seed: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the classifier reports softmax(sharpen * z) (sharpen > 1: over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, k))
    truth = softmax(z, axis=1)
    labels = np.array([rng.choice(k, p=p) for p in truth])
    return softmax(sharpen * z, axis=1).astype(np.float32), labels


def test_over_confident_classifier_is_cooled_and_better_calibrated():
    val_p, val_y = _classifier(4000, 3.0, 0)
    test_p, test_y = _classifier(4000, 3.0, 1)
    t = fit_temperature(val_p, val_y)
    assert t > 1 and t == pytest.approx(3.0, rel=0.1)          # the sharpening it undoes
    before = expected_calibration_error(test_p, test_y)
    after = expected_calibration_error(apply_temperature(test_p, t), test_y)
    assert before > 0.1 and after < 0.03 and after < before / 4
    assert (apply_temperature(test_p, t).argmax(1) == test_p.argmax(1)).all()      # never changes the answer
    rec = calibration_record(val_p, val_y, test_p, test_y)
    assert rec == {"temperature": round(t, 4), "ece": pytest.approx(before, abs=1e-6),
                   "ece_calibrated": pytest.approx(after, abs=1e-4)}


def test_under_confident_classifier_gets_t_below_one():
    p, y = _classifier(4000, 0.5, 2)
    assert fit_temperature(p, y) == pytest.approx(0.5, rel=0.1)


def test_temperature_one_changes_nothing_and_calibrated_model_keeps_t_near_one():
    p, y = _classifier(4000, 1.0, 3)
    assert np.array_equal(apply_temperature(p, 1.0), p)
    assert np.allclose(apply_temperature(p, 1.0 + 1e-9), p, atol=1e-6)
    assert fit_temperature(p, y) == pytest.approx(1.0, abs=0.1)
    rows = apply_temperature(p, 2.5).sum(1)
    assert np.allclose(rows, 1, atol=1e-6)
    with pytest.raises(ValueError):
        apply_temperature(p, 0)


def test_ece_of_perfectly_calibrated_outcomes_is_about_zero():
    rng = np.random.default_rng(4)
    conf = rng.uniform(0.5, 1.0, 100_000)
    probs = np.stack([conf, 1 - conf], 1)
    labels = np.where(rng.uniform(size=conf.size) < conf, 0, 1)     # right exactly as often as it says
    assert expected_calibration_error(probs, labels) < 0.01
    # the opposite outcomes: right as often as it says it is wrong, a gap of |1 - 2 conf| = 0.5 on average
    assert expected_calibration_error(probs, 1 - labels) == pytest.approx(0.5, abs=0.01)


def test_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.65, 0.35], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bin (0.9, 1]: 2 images, confidence 0.95, accuracy 0.5; bin (0.6, 0.7]: 2 images, confidence 0.675, accuracy 1
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.45 + 0.5 * 0.325)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_int8_zeros_are_finite():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 0.99609375, 0.00390625]], np.float32)
    out = apply_temperature(p, 2.0)
    assert np.isfinite(out).all() and (out.argmax(1) == [0, 1]).all()
    assert np.isfinite(fit_temperature(p, np.array([0, 2])))


def test_top_two():
    names = ["black", "white", "silver"]
    assert top_two(np.array([0.1, 0.8, 0.1]), names) == "white"
    assert top_two(np.array([0.05, 0.5, 0.45]), names) == "white or silver"
    assert top_two(np.array([0.05, 0.5, 0.45]), names, margin=0.01) == "white"
    assert top_two(np.array([0.2, 0.4, 0.4]), names) == "white or silver"          # a tie: in class order
    assert top_two(np.array([1.0]), ["only"]) == "only"


def test_no_validation_errors_no_temperature():
    """All validation images right: the NLL falls for ever as T -> 0, so no temperature is recorded, and why."""
    p, y = _classifier(500, 1.0, 6)
    right = p.argmax(1) == y
    assert at_bound(fit_temperature(p[right], y[right]))
    rec = calibration_record(p[right], y[right], p, y)
    assert rec["temperature"] is None and rec["ece_calibrated"] is None and rec["ece"] > 0
    assert f"on the {right.sum()} validation images (0 misclassified)" in rec["calibration_note"]
    assert "goes to 0" in rec["calibration_note"]
    wrong2 = np.array([[0.9, 0.1], [0.3, 0.7]])            # two classes, always wrong: T -> infinity (50/50)
    assert "goes to infinity" in calibration_record(wrong2, np.array([1, 0]), wrong2, np.array([1, 0]))["calibration_note"]
    assert not at_bound(fit_temperature(p, y))


def test_record_without_validation_and_with_seen_validation():
    p, y = _classifier(500, 2.0, 5)
    rec = calibration_record(None, None, p, y)
    assert rec["temperature"] is None and rec["ece_calibrated"] is None and rec["ece"] > 0
    assert calibration_record(p[:0], y[:0], p, y)["temperature"] is None
    seen = calibration_record(p, y, p, y, val_seen=True)
    assert seen["temperature"] > 1 and seen["calibration_note"] == SEEN_NOTE
    assert "calibration_note" not in calibration_record(p, y, p, y)


def test_small_run_records_its_temperature_everywhere(fresh_home, tmp_path):
    """Train (small data: head fitted on train+val), compress, predict: the temperature and its caveat travel along."""
    from core.compression import compress
    from core.config import TrainConfig
    from core.evaluation.calibration import recorded_temperature
    from core.evaluation.compare import load_run
    from core.evaluation.predict import predict
    from core.training.train import train
    from tests.conftest import COLOURS, make_class_folder
    folder = make_class_folder(tmp_path / "colours", COLOURS, n=12, size=24)
    s = train(TrainConfig(dataset=str(folder), backbone="mlp", image_size=16, epochs=2))
    assert s["head_fit"]["fitted_on"] == "train+val"
    cal = s["calibration"]
    assert cal["temperature"] > 0 and 0 <= cal["ece"] <= 1 and cal["calibration_note"] == SEEN_NOTE
    assert load_run(s["run_id"]).table()[0]["ece"] == cal["ece"]          # before compression: from run.json
    assert recorded_temperature(s["run_id"]) == cal["temperature"]
    r = compress(s["run_id"], ["tflite_float32"], {"measure": {"latency_runs": 50, "warmup_runs": 1,
                                                               "throughput_repeats": 1}})
    v = {row["name"]: row for row in r["variants"]}
    assert v["original"]["temperature"] == pytest.approx(cal["temperature"], rel=1e-3)
    assert v["tflite_float32"]["temperature"] == pytest.approx(cal["temperature"], rel=1e-3)
    assert all(row["calibration_note"] == SEEN_NOTE and row["ece_calibrated"] is not None for row in v.values())
    out = predict(s["run_id"], [make_class_folder(tmp_path / "one", {"red": COLOURS["red"]}, n=1) / "red" /
                                "red_000.png"], variant="tflite_float32", top_k=3)[0]
    assert out["calibrated"] is True and out["temperature"] == v["tflite_float32"]["temperature"]
    assert out["label"].split(" or ")[0] == out["class"] and abs(sum(t["probability"] for t in out["top"]) - 1) < 1e-4
