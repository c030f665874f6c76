"""Feature taps (several depths), the linear head fitted to the probe floor, and check sets of real photos."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.config import HeadConfig, TrainConfig
from bench.probe import tiny_squares
from core.errors import LabError


def test_linear_head_in_keras_equals_the_fitted_regression():
    """The head sklearn fits is written into the Keras layers exactly (multi-class and binary)."""
    from core.models.heads import head_layers, head_model
    from core.training.head_fit import Candidate, predict_linear, select_linear, set_linear_weights
    rng = np.random.default_rng(0)
    for k in (2, 4):
        y = np.arange(240) % k
        x = (rng.normal(size=(240, 20)) * rng.uniform(0.5, 3, 20) + rng.uniform(-2, 5, 20)).astype(np.float32)
        x[:, :k] = rng.normal(size=(240, k)) + 3.0 * np.eye(k)[y]   # the first k columns carry the class
        idx = rng.permutation(240)
        sel = select_linear(x, y, idx[:160], idx[160:200], k, [Candidate("all", slice(0, 20)),
                                                              Candidate("half", slice(10, 20))])
        layers = head_layers(HeadConfig(), k)
        model = head_model(sel.candidate.columns.stop - sel.candidate.columns.start, layers)
        set_linear_weights(layers, sel.head)
        xt = x[idx[200:]][:, sel.candidate.columns]
        np.testing.assert_allclose(model(xt, training=False).numpy(), predict_linear(sel.head, xt), atol=2e-5)
        assert sel.candidate.name == "all" and sel.fitted_on == "train"          # the informative columns win
        assert (predict_linear(sel.head, xt).argmax(1) == y[idx[200:]]).mean() > 0.8
        assert {r["taps"] for r in sel.scores} == {"all", "half"} and sel.head.C in {r["C"] for r in sel.scores}


def test_tiny_colour_data_reaches_the_probe_floor_with_several_depths(tmp_path):
    """15 images a class of coloured squares on the defaults: features from several depths (auto), a head at least as
    good as a tuned logistic regression on the same features minus one point, and the small-data note."""
    from core.data.pipeline import predict_images
    from core.data.prepare import prepare
    from core.evaluation.probe import probe_accuracy
    from core.models.backbones import build_backbone, get_backbone
    from core.models.heads import feature_extractor
    from core.training.train import train
    data_dir = tiny_squares(tmp_path / "squares")
    s = train(TrainConfig(dataset=data_dir, image_size=96))
    assert s["taps"]["requested"] == "auto" and s["taps"]["candidates"] == ["multi", "last"]
    assert "cross-validation" in s["head_fit"]["chosen_by"] and s["head_fit"]["fitted_on"] == "train+val"
    assert "small_data_note" in s["head_fit"] and s["head_fit"]["train_images_per_class_min"] < 30
    data = prepare(data_dir, 96, 0)
    backbone, _ = build_backbone("mobilenet_v2", 96)
    taps = get_backbone("mobilenet_v2").taps if s["taps"]["used"] == "multi" else ()
    feats = predict_images(feature_extractor(backbone, HeadConfig(), taps), "mobilenet_v2", data.images)
    probe = probe_accuracy(feats, data.labels, data.index)
    assert s["test_accuracy"] >= probe["accuracy"] - 0.01, (s["test_accuracy"], probe)
    last = train(TrainConfig(dataset=data_dir, image_size=96, head=HeadConfig(taps="last")))
    assert last["taps"]["used"] == "last" and last["taps"]["layers"] == ["out_relu"]
    print(f"\ntiny squares: lab {s['test_accuracy']:.3f} ({s['taps']['used']}), probe {probe['accuracy']:.3f}, "
          f"last layer only {last['test_accuracy']:.3f}")


def test_multi_taps_model_is_one_flat_graph(tmp_path):
    from core.models.backbones import build_backbone, get_backbone
    from core.models.heads import assemble, head_layers, tap_widths
    from core.tfenv import keras
    backbone, _ = build_backbone("mobilenet_v2", 64)
    taps = get_backbone("mobilenet_v2").tap_layers("multi")
    model = assemble(backbone, HeadConfig(), head_layers(HeadConfig(), 3), taps)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.get_layer("head_taps").output_shape[-1] == sum(tap_widths(backbone, taps)) == 144 + 192 + 576 + 1280
    assert model.input is backbone.input
    with pytest.raises(LabError, match="taps must be"):
        HeadConfig(taps="deep")
    with pytest.raises(LabError, match="need avg or max pooling"):
        HeadConfig(pooling="flatten", taps="multi")


def test_every_backbone_names_taps_that_exist():
    from core.models.backbones import BACKBONES
    from core.tfenv import keras
    for spec in BACKBONES.values():
        if not spec.taps:
            continue
        size = max(spec.min_size, 75 if spec.name == "inception_resnet_v2" else 32)
        model = getattr(keras.applications, spec.app)(include_top=False, weights=None, input_shape=(size, size, 3)) \
            if spec.app else None
        if model is None:
            continue
        names = {layer.name for layer in model.layers}
        assert set(spec.taps) <= names, (spec.name, set(spec.taps) - names)
        assert spec.taps[-1] == model.layers[-1].name, spec.name       # the deepest tap is the backbone's output


def test_a_check_set_attached_to_a_dataset_scores_every_run(tmp_path, capsys):
    from core.cli.main import main
    from core.data.checksets import attach, check_set_for
    from core.evaluation.checkset import score_run
    from core.store.runs import read_json, run_dir
    from core.training.train import train
    from tests.conftest import COLOURS, make_class_folder
    data = str(make_class_folder(tmp_path / "train", COLOURS, n=12, size=24))
    photos = make_class_folder(tmp_path / "photos", COLOURS, n=3, size=40, seed=7)
    assert check_set_for(data) is None
    with pytest.raises(LabError):
        attach(data, str(tmp_path / "nowhere"))
    assert attach(data, str(photos))["photos"] == 9
    s = train(TrainConfig(dataset=data, backbone="mlp", image_size=16, epochs=30, head=HeadConfig(dense=[16])))
    assert s["check_set"]["total"] == 9 and 0 <= s["check_set"]["right"] <= 9
    stored = read_json(run_dir(s["run_id"]) / "check_set.json")
    assert stored["original"]["right"] == s["check_set"]["right"] and "never used in training" in stored["note"]
    assert main(["check-set", s["run_id"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["total"] == 9 and len(out["photos"]) == 9 and {p["label"] for p in out["photos"]} == set(COLOURS)
    assert out["right"] == sum(p["right"] for p in out["photos"]) == stored["original"]["right"]
    assert score_run(s["run_id"])["original"]["right"] == out["right"]         # the same check, rerun
    attach(data, None)
    assert check_set_for(data) is None
