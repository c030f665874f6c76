"""Compression lab on a real run: shapes, MobileNetV2 with the packaged ImageNet weights, 96 px.

One run is trained and compressed once per session (`compressed_run`, shared with test_predict.py); the tests
then check the issue's acceptance figures that do not depend on machine speed. Speed figures are printed.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from core.errors import LabError
from tests.conftest import across_workers

TECHNIQUES = ["pruning", "clustering", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8",
              "tflite_int8_io", "pruning_int8", "pqat"]
OPTIONS = {"pqat": {"epochs": 1}, "clustering": {"epochs": 1, "lr": 5e-5}, "tflite": {"representative_images": 100},
           "measure": {"latency_runs": 50, "warmup_runs": 3, "throughput_repeats": 2, "eval_repeats": 1}}


def compressed_run() -> dict:
    """Train shapes/MobileNetV2 at 96 px and compress it once per test session, for every xdist worker.

    The first worker builds it and leaves a copy of the run folder in the session's shared folder; a worker that
    needs it later copies that folder into its own LAB_HOME. The result is kept in the LAB_HOME, not in a Python
    cache: pytest may import this module twice (as a test module and from test_predict.py) and both must share it.
    """
    from core.compression import compress
    from core.config import HeadConfig, TrainConfig
    from core.store import registry
    from core.store.paths import lab_home, runs_dir
    from core.store.runs import read_json, write_json
    from core.training.train import train
    cache = lab_home() / "test_compression_result.json"
    if cache.is_file():
        return read_json(cache)
    with across_workers("compressed_run") as shared:
        if (shared / "result.json").is_file():           # built by another worker: its folder and registry rows
            result = read_json(shared / "result.json")
            shutil.copytree(shared / "run", runs_dir() / result["run_id"], symlinks=True)
            rows = read_json(shared / "rows.json")
            registry.upsert_run(result["run_id"], rows["run"]["summary"],
                                **{k: rows["run"][k] for k in registry.RUN_COLUMNS})
            registry.replace_variants(result["run_id"], [v["data"] for v in rows["variants"]])
        else:
            summary = train(TrainConfig(dataset="shapes", image_size=96, head=HeadConfig(taps="multi")))
            assert summary["taps"]["used"] == "multi" and len(summary["taps"]["layers"]) == 4   # several depths
            assert summary["weights"].startswith("imagenet"), "the packaged ImageNet weights should be used"
            result = compress(summary["run_id"], TECHNIQUES, OPTIONS)
            shutil.copytree(runs_dir() / result["run_id"], shared / "run", symlinks=True)
            write_json(shared / "rows.json", {"run": registry.get_run(result["run_id"]),
                                              "variants": registry.list_variants(result["run_id"])})
            write_json(shared / "result.json", result)
    write_json(cache, result)
    return read_json(cache)


@pytest.fixture(scope="module")
def result() -> dict:
    return compressed_run()


def _by_name(result: dict) -> dict[str, dict]:
    return {v["name"]: v for v in result["variants"]}


def test_all_variants_built_and_speed_report(result):
    v = _by_name(result)
    assert not result["failed"], result["failed"]
    assert list(v) == ["original", "pruned_50", "clustered_16", "tflite_float32", "tflite_float16", "tflite_dynamic",
                       "tflite_int8", "tflite_int8_io", "pruned_50_int8", "pqat_50_int8"]
    for row in v.values():
        for key in ("test_accuracy", "size_bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p95", "agreement",
                    "macro_f1", "loss", "params", "throughput_ips", "eval_images_per_s", "max_prob_diff"):
            assert row[key] is not None, (row["name"], key)
        assert row["latency_runs"] >= 50 and row["latency_ms_p95"] >= row["latency_ms_p50"] > 0
        assert np.sum(row["confusion_matrix"]) == row["num_test"] == 225
        assert row["energy_per_1000_j"] > 0 and row["energy_per_1000_single_j"] > 0
        assert row["inference_energy"]["batched"]["images"] == 225 and row["inference_energy"]["single"]["method"]
        assert row["compress_energy_j"] > 0 or row["name"] == "original"
    # speed targets are machine-dependent: reported, not asserted
    print("\n" + "\n".join(f"{c['check']}: {c['value']} ({'ok' if c['passed'] else 'NOT MET'})"
                           for c in result["checks"]))
    print(f"compression of {len(result['variants']) - 1} variants took {result['seconds']:.0f} s: " +
          ", ".join(f"{r['name']} {r.get('seconds', 0):.0f} s" for r in result["variants"]))


def test_every_variant_calibrated_on_the_validation_split(result):
    """Each variant's temperature is fitted on its own validation probabilities; ECE on test before and after."""
    from core.store.paths import runs_dir
    from core.store.runs import read_json
    run = read_json(runs_dir() / result["run_id"] / "run.json")
    assert run["head_fit"]["fitted_on"] == "train"                      # validation held out: no caveat
    v = _by_name(result)
    print("\nvariant: temperature, ECE before -> after scaling (test split)")
    for row in v.values():
        t, after = row["temperature"], row["ece_calibrated"]
        print(f"{row['name']}: T {t}, ECE {row['ece']:.4f} -> {after}" + (f" ({row['calibration_note']})"
                                                                         if t is None else ""))
        assert 0 <= row["ece"] <= 1
        if t is None:     # no validation error to fit on: said, and nothing rescaled
            assert "no temperature" in row["calibration_note"] and after is None
        else:
            assert 0.05 < t < 20 and 0 <= after <= 1 and "calibration_note" not in row
    # None only where the variant made no validation error (measured: pruned_50, pruned_50_int8, pqat_50_int8)
    assert all("(0 misclassified)" in r["calibration_note"] for r in v.values() if r["temperature"] is None)
    assert v["original"]["temperature"] is not None and v["tflite_int8"]["temperature"] is not None
    print(f"at training: {run['calibration']}")
    # training fitted the original's T on the head's outputs on cached features; compression on the stored model
    assert v["original"]["temperature"] == pytest.approx(run["calibration"]["temperature"], rel=0.01)
    assert v["original"]["ece"] == pytest.approx(run["calibration"]["ece"], abs=0.005)
    assert v["tflite_float32"]["temperature"] == pytest.approx(v["original"]["temperature"], rel=1e-3)


def test_float32_tflite_agrees_with_keras(result):
    f32 = _by_name(result)["tflite_float32"]
    assert f32["agreement"] == 1.0 and f32["max_prob_diff"] < 1e-4
    assert f32["checks"] == {"matches_original": True}
    assert f32["test_accuracy"] == _by_name(result)["original"]["test_accuracy"]


def test_int8_inference_costs_less_energy_than_keras(result):
    """The issue's check: energy per 1,000 predictions of the full-int8 model is below the Keras model's."""
    v = _by_name(result)
    keras_b, int8_b = v["original"]["energy_per_1000_j"], v["tflite_int8_io"]["energy_per_1000_j"]
    keras_1, int8_1 = v["original"]["energy_per_1000_single_j"], v["tflite_int8_io"]["energy_per_1000_single_j"]
    print(f"\nenergy per 1,000 predictions, batched: Keras {keras_b:.2f} J, int8 {int8_b:.2f} J; "
          f"one at a time: Keras {keras_1:.2f} J, int8 {int8_1:.2f} J")
    assert int8_b < keras_b and int8_1 < keras_1
    assert v["pruned_50"]["compress_energy_j"] > v["tflite_float32"]["compress_energy_j"]   # fine-tuning vs conversion


def test_fine_tuning_on_a_stratified_sample(result):
    """fine_tune.max_images: compression fine-tunes on a seeded sample with every class in proportion."""
    from core.compression.context import Workbench
    from core.compression.options import resolve
    from core.models.predictor import run_info
    from core.progress import silent
    wb = Workbench(run_info(result["run_id"]), resolve({"fine_tune": {"max_images": 300}}), silent, 1, None)
    rows, train = wb.fine_tune_rows(), wb.data.index["train"]
    assert len(rows) == 300 and set(rows) <= set(train) and list(rows) == sorted(rows)
    share = np.bincount(wb.data.labels[rows]) / 300
    assert np.abs(share - np.bincount(wb.data.labels[train]) / len(train)).max() < 0.01
    assert (wb.fine_tune_rows() == rows).all()                                   # seeded: the same sample again
    full = Workbench(run_info(result["run_id"]), resolve(None), silent, 1, None)
    assert (full.fine_tune_rows() == train).all()
    with pytest.raises(LabError, match="fine_tune.max_images"):
        resolve({"fine_tune": {"max_images": -1}})


def test_int8_levels_small_and_accurate(result):
    v = _by_name(result)
    base = v["original"]["test_accuracy"]
    for name in ("tflite_int8", "tflite_int8_io"):
        assert v[name]["size_bytes"] <= v["tflite_float32"]["size_bytes"] / 3, name
        assert base - v[name]["test_accuracy"] <= 0.01 + 1e-9, name
    assert v["tflite_int8_io"]["quantization"]["input"]["dtype"] == "int8"
    assert v["tflite_int8"]["quantization"]["input"]["dtype"] == "float32"
    assert v["tflite_float16"]["size_bytes"] < 0.55 * v["tflite_float32"]["size_bytes"]
    assert v["tflite_dynamic"]["size_bytes"] <= v["tflite_float32"]["size_bytes"] / 3


def test_pruning_sparsity_gzip_and_accuracy(result):
    v = _by_name(result)
    p, o = v["pruned_50"], v["original"]
    assert abs(p["sparsity"] - 0.5) <= 0.02
    assert p["sparsity_all"] < p["sparsity"]                       # depthwise kernels, BN and biases stay dense
    assert p["sparsity_depthwise"] == 0.0 and any("Depthwise" in n for n in p["notes"])
    assert p["gzip_bytes"] <= 0.70 * o["gzip_bytes"]
    assert abs(p["size_bytes"] - o["size_bytes"]) < 0.01 * o["size_bytes"]   # zeros are stored densely
    assert o["test_accuracy"] - p["test_accuracy"] <= 0.02
    assert not any("fine-tuned on" in n for n in p["notes"])                  # all training images by default
    # the chain keeps the zeros through int8 conversion, measured from the .tflite flatbuffer itself
    assert v["pruned_50_int8"]["sparsity"] >= 0.49
    assert v["pruned_50_int8"]["info"]["final_mask_update_step"] == p["info"]["final_mask_update_step"]  # trained once


def test_head_scope_trains_the_head_on_its_inputs_computed_once(result):
    """Pruning only the head: the backbone is frozen, so the head trains on its inputs computed once (one backbone
    pass in all, not one per epoch), and reaches the model the image path reaches (no dropout: the same weights)."""
    import time
    from core.compression.context import Workbench
    from core.compression.options import resolve
    from core.compression.tfmot_methods import prune
    from core.data.pipeline import predict_images
    from core.models.predictor import run_info
    from core.progress import silent
    out = {}
    for cache in (True, False):
        wb = Workbench(run_info(result["run_id"]), resolve({"fine_tune": {"max_images": 300, "cache": cache}}),
                       silent, 1, None)
        model = wb.original()
        model.get_layer("head_dropout").rate = 0.0            # both ways deterministic up to float rounding
        t = time.perf_counter()
        pruned, info = prune(model, wb.fine_tune_data(), 0.5, "polynomial", 2, 1e-3, "head", 0.3)
        seconds = time.perf_counter() - t
        acc = float((predict_images(pruned, wb.cfg.backbone, wb.data.x("test")).argmax(1) == wb.data.y("test")).mean())
        out[cache] = pruned.get_layer("predictions").get_weights()[0], acc, info, seconds
    (k_c, acc_c, info_c, s_c), (k_p, acc_p, info_p, s_p) = out[True], out[False]
    print(f"\nhead-scope pruning, 2 epochs on 300 images: cached head inputs {s_c:.1f} s, images {s_p:.1f} s")
    assert info_c["fine_tuned_on"] == "cached head inputs (head_taps)" and info_c["backbone_passes"] == 1
    assert info_p["fine_tuned_on"] == "images" and info_p["backbone_passes"] == 2
    assert abs((k_c == 0).mean() - 0.5) < 0.02 and ((k_c == 0) == (k_p == 0)).mean() > 0.999
    assert np.abs(k_c - k_p).max() < 1e-4 and abs(acc_c - acc_p) <= 0.01
    # the whole-model scope cannot skip the backbone: the session's pruned_50 trained on images every epoch
    whole = _by_name(result)["pruned_50"]["info"]
    assert whole["fine_tuned_on"] == "images" and whole["backbone_passes"] == 3


def test_clustering_gzip(result):
    v = _by_name(result)
    c = v["clustered_16"]
    assert c["gzip_bytes"] <= 0.40 * v["original"]["gzip_bytes"]
    assert c["max_unique_per_kernel"] > 16                          # depthwise kernels are not clustered...
    from core.models import load_variant
    from core.models.measure import prunable_weight_names
    model = load_variant(result["run_id"], "clustered_16").model
    kernels = [getattr(l, n).numpy() for l in model.layers for n in prunable_weight_names(l)]
    assert max(np.unique(k).size for k in kernels) <= 16            # ...every Conv2D/Dense kernel is


def test_pruning_preserving_qat(result):
    v = _by_name(result)
    q = v["pqat_50_int8"]
    assert q["format"] == "tflite" and q["size_bytes"] <= v["tflite_float32"]["size_bytes"] / 3
    assert q["sparsity"] >= 0.49                                    # QAT kept the pruned zeros
    assert q["info"]["batchnorm_folded"] and q["info"]["calibration_batches"] > 0
    assert q["test_accuracy"] >= 0.95          # one short epoch; without folding and calibration it was ~0.93


def test_batchnorm_folding_is_exact(result):
    from core.models.backbones import preprocess
    from core.compression.tfmot_methods import fold_batchnorm
    from core.data.prepare import prepare
    from core.store.paths import runs_dir
    from core.store.runs import load_keras
    from core.tfenv import keras
    model = load_keras(runs_dir() / result["run_id"] / "model.keras")
    folded = fold_batchnorm(model)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
    x = preprocess("mobilenet_v2", prepare("shapes", 96).x("test")[:16])
    assert np.abs(model(x, training=False).numpy() - folded(x, training=False).numpy()).max() < 1e-4


def test_results_stored_with_run_and_registry(result):
    from core.store import registry
    from core.store.paths import runs_dir
    from core.store.runs import read_json
    folder = runs_dir() / result["run_id"]
    stored = read_json(folder / "variants.json")
    assert [r["name"] for r in stored] == [r["name"] for r in result["variants"]]
    for r in result["variants"]:
        assert all((folder / f).is_file() for f in r["files"]), r["files"]
        assert read_json(folder / "variants" / r["name"] / "metrics.json")["test_accuracy"] == r["test_accuracy"]
    rows = {r["name"]: r for r in registry.list_variants(result["run_id"])}
    assert set(rows) == set(_by_name(result))
    assert rows["pruned_50"]["sparsity"] == _by_name(result)["pruned_50"]["sparsity"]
    assert rows["tflite_int8"]["technique"] == "tflite_int8" and rows["tflite_int8"]["data"]["per_class"]


def test_energy_in_the_comparison_and_from_the_cli(result, capsys, monkeypatch):
    """Energy to make = training + compression step; CO2e follows the chosen region; `show --json` has it all."""
    from core.cli.main import main
    from core.evaluation.compare import load_run
    monkeypatch.setenv("LAB_CARBON_REGION", "FR")
    rep = load_run(result["run_id"])
    train_j = rep.train_energy["joules"]
    fr = {r["name"]: r for r in rep.table()}
    pl = {r["name"]: r for r in rep.table("PL")}
    assert fr["original"]["energy_to_make_j"] == pytest.approx(train_j)
    pruned = _by_name(result)["pruned_50"]
    assert fr["pruned_50"]["energy_to_make_j"] == pytest.approx(train_j + pruned["compress_energy_j"])
    assert fr["pruned_50"]["co2e_to_make_g"] == pytest.approx(fr["pruned_50"]["energy_to_make_j"] / 3.6e6 * 55)
    assert pl["tflite_int8"]["co2e_per_1000_g"] == pytest.approx(fr["tflite_int8"]["co2e_per_1000_g"] * 660 / 55)
    assert main(["show", result["run_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["energy"]["total"]["joules"] == pytest.approx(train_j)
    assert shown["run"]["energy"]["total"]["method"].startswith(("estimated", "measured"))
    v = {r["name"]: r["data"] for r in shown["variants"]}
    assert v["tflite_int8"]["energy_per_1000_j"] == _by_name(result)["tflite_int8"]["energy_per_1000_j"]
    assert v["pruned_50"]["compress_energy"]["method"].startswith(("estimated", "measured"))


def test_exported_files_work_outside_the_lab(result):
    """A bare ai_edge_litert interpreter and plain tf_keras, with MobileNetV2 preprocessing done by hand."""
    from ai_edge_litert.interpreter import Interpreter
    from core.models import load_variant
    from core.data.prepare import prepare
    from core.store.paths import runs_dir
    from core.tfenv import keras
    folder = runs_dir() / result["run_id"] / "variants"
    images = prepare("shapes", 96).x("test")[:4]
    x = images.astype(np.float32) / 127.5 - 1.0
    keras_probs = keras.models.load_model(str(folder / "pruned_50" / "model.keras"), compile=False)(x).numpy()
    assert np.allclose(keras_probs, load_variant(result["run_id"], "pruned_50").predict(images), atol=1e-5)
    it = Interpreter(model_path=str(folder / "tflite_int8_io" / "model.tflite"))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    it.set_tensor(inp["index"], np.clip(np.round(x[:1] / scale + zero), -128, 127).astype(np.int8))
    it.invoke()
    s_out, z_out = out["quantization"]
    probs = (it.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out
    assert np.allclose(probs, load_variant(result["run_id"], "tflite_int8_io").predict(images[:1]), atol=1e-6)


def test_load_variant_predicts_in_batches_like_the_evaluator(result):
    from core.models import load_variant
    from core.data.prepare import prepare
    from core.evaluation.metrics import classification_metrics
    data = prepare("shapes", 96)
    p = load_variant(result["run_id"], "tflite_int8")
    assert p.resizable
    probs = p.predict(data.x("test"))
    assert probs.dtype == np.float32 and probs.shape == (225, 3)
    acc = classification_metrics(data.y("test"), probs, data.class_names)["accuracy"]
    assert acc == _by_name(result)["tflite_int8"]["test_accuracy"]
    assert np.allclose(p.predict(data.x("test")[:5], batch_size=1), probs[:5], atol=1e-6)
    with pytest.raises(LabError, match="uint8"):
        p.predict(data.x("test")[:2].astype(np.float32))


def test_cli_compress_json_and_help(result, capsys):
    from core.cli.main import main
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    helptext = capsys.readouterr().out
    from core.compression import TECHNIQUES as ALL
    assert all(name in helptext for name in ALL)
    assert main(["compress", result["run_id"], "--techniques", "", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["run_id"] == result["run_id"] and [v["name"] for v in out["variants"]] == ["original"]
    assert set(out["variants"][0]) >= {"name", "technique", "test_accuracy", "size_bytes", "gzip_bytes",
                                       "latency_ms_p50", "latency_ms_p95", "agreement", "sparsity"}
    from core.store.paths import runs_dir
    from core.store.runs import read_json
    assert len(read_json(runs_dir() / result["run_id"] / "variants.json")) == len(result["variants"])  # merged


def test_bad_input_is_a_lab_error(result, capsys):
    from core.cli.main import main
    from core.compression import compress
    from core.models import load_variant
    run = result["run_id"]
    with pytest.raises(LabError, match="unknown technique"):
        compress(run, ["pruning", "shrink_ray"])
    with pytest.raises(LabError, match="no variant 'nope'"):
        load_variant(run, "nope")
    with pytest.raises(LabError, match="no variant"):
        load_variant(run, "../../model")
    with pytest.raises(LabError, match="no run"):
        compress("20200101-000000-abcdef")
    with pytest.raises(LabError, match="pruning.sparsity"):
        compress(run, ["pruning"], {"pruning": {"sparsity": 1.5}})
    with pytest.raises(LabError, match="unknown option"):
        compress(run, ["pruning"], {"pruning": {"sparsty": 0.5}})
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["compress", run, "--techniques", "nope"]) == 2
    assert err.getvalue().count("\n") == 1 and "unknown technique" in err.getvalue()
