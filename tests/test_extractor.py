"""The TFLite feature extractor: built once, checked against Keras on real images, stored, and used by training."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def shapes_backbone():
    from core.models.backbones import build_backbone
    from core.data.prepare import prepare
    from core.config import HeadConfig
    from core.models.heads import feature_extractor
    data = prepare("shapes", 96, 0)
    backbone, weights = build_backbone("mobilenet_v2", 96)
    assert weights.startswith("imagenet"), "the packaged MobileNetV2 weights are needed here"
    return data, feature_extractor(backbone, HeadConfig()), weights


def test_tflite_extractor_agrees_with_keras_is_stored_and_survives_a_corrupt_file(shapes_backbone, tmp_path,
                                                                                   monkeypatch):
    from core.training import extractor as ex
    from core.data.pipeline import predict_images
    monkeypatch.setattr(ex, "cache_dir", lambda: tmp_path)
    data, keras_extractor, weights = shapes_backbone
    images = data.images[:80]
    make = lambda n, check: ex.make_extractor(keras_extractor, "mobilenet_v2", weights, 96, "avg", n, check)  # noqa: E731

    few = make(ex.BUILD_MIN_IMAGES - 1, images[:32])
    assert few.engine == "keras" and "would not pay" in few.note and not list(tmp_path.rglob("*.tflite"))

    built = make(5000, images[:32])
    assert built.engine == "tflite" and built.build_seconds > 0 and "built" in built.note
    want, got = predict_images(keras_extractor, "mobilenet_v2", images), built.extract(images)
    assert got.shape == want.shape == (80, 1280)
    assert np.abs(got - want).max() <= ex.MAX_GAP * max(1.0, np.abs(want).max())
    assert np.abs(got[:40] - got[40:]).max() > 0.1          # rows stay with their images: different images differ

    stored = make(10, images[:0])        # few images, but a stored extractor costs nothing to use
    assert stored.engine == "tflite" and "stored" in stored.note
    np.testing.assert_array_equal(stored.extract(images[:8]), got[:8])

    [path] = tmp_path.rglob("*.tflite")
    path.write_bytes(path.read_bytes()[:4096])                 # truncated, as by a full disk
    after = make(10, images[:32])
    assert after.engine == "keras" and not path.exists()


def test_a_disagreeing_conversion_is_discarded_and_random_weights_are_never_stored(shapes_backbone, tmp_path,
                                                                                   monkeypatch):
    from core.training import extractor as ex
    monkeypatch.setattr(ex, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(ex, "MAX_GAP", 0.0)       # any float difference at all now counts as a disagreement
    data, keras_extractor, weights = shapes_backbone
    out = ex.make_extractor(keras_extractor, "mobilenet_v2", weights, 96, "avg", 5000, data.images[:32])
    assert out.engine == "keras" and "disagrees with Keras" in out.note
    assert not list(tmp_path.rglob("*.tflite")) and not list(tmp_path.rglob("extractor-*"))

    rnd = ex.make_extractor(keras_extractor, "mobilenet_v2", "random", 96, "avg", 5000, data.images[:32])
    assert rnd.engine == "keras" and "random" in rnd.note and not list(tmp_path.rglob("*.tflite"))
    with pytest.raises(ValueError, match="feature engine"):
        ex.make_extractor(keras_extractor, "mobilenet_v2", weights, 96, "avg", 10, data.images[:0], engine="onnx")


def test_training_through_tflite_features_matches_keras_features(tmp_path, monkeypatch):
    """Same run, features from each engine (caches apart): the same predictions on the test split."""
    from core.training import features
    from core.config import TrainConfig
    from core.store.runs import read_json, run_dir
    from core.training.train import train
    runs = {}
    for engine in ("keras", "tflite"):
        monkeypatch.setattr(features, "cache_dir", lambda e=engine: tmp_path / e)
        s = train(TrainConfig(dataset="shapes", image_size=96, epochs=5, feature_engine=engine))
        assert s["feature_extractor"]["engine"] == engine and not s["features_cached"]
        runs[engine] = (s, np.asarray(read_json(run_dir(s["run_id"]) / "predictions.json")["probs"]))
    (k, pk), (t, pt) = runs["keras"], runs["tflite"]
    assert abs(k["test_accuracy"] - t["test_accuracy"]) <= 0.01
    assert (pk.argmax(1) == pt.argmax(1)).mean() >= 0.99
    assert np.abs(pk - pt).max() < 0.05
