"""The Results page's computations, without Streamlit: best per column, Pareto fronts, confusion views, run loading."""
from __future__ import annotations

import pytest

from core.store import registry
from core.evaluation.compare import (RANKED, best_per_column, confusion_pairs, load_run, misclassified_for, normalise_rows,
                          pareto_front, to_csv)
from core.store.runs import new_run_id, run_dir, write_json

ROWS = [
    {"name": "original", "test_accuracy": 0.95, "size_bytes": 9_000_000, "latency_ms_p50": 12.0, "sparsity": None},
    {"name": "int8", "test_accuracy": 0.95, "size_bytes": 2_400_000, "latency_ms_p50": 4.0, "sparsity": 0.0},
    {"name": "pruned", "test_accuracy": 0.93, "size_bytes": 2_500_000, "latency_ms_p50": 3.0, "sparsity": 0.5},
    {"name": "float16", "test_accuracy": 0.96, "size_bytes": 4_500_000, "latency_ms_p50": 9.0, "sparsity": 0.0},
    {"name": "broken", "test_accuracy": None, "size_bytes": 100, "latency_ms_p50": float("nan")},
]


def test_best_per_column_marks_ties_and_ignores_missing_values():
    best = best_per_column(ROWS)
    assert best["test_accuracy"] == {3}
    assert best["size_bytes"] == {4}
    assert best["latency_ms_p50"] == {2}                      # NaN is not a latency
    assert best["sparsity"] == {2}
    assert best["gzip_bytes"] == set()                        # nobody measured it
    tie = best_per_column([{"test_accuracy": 0.9}, {"test_accuracy": 0.9}, {"test_accuracy": 0.8}])
    assert tie["test_accuracy"] == {0, 1}
    assert {c.better for c in RANKED} == {"max", "min"}


def test_pareto_front_keeps_only_undominated_points_in_x_order():
    rows = ROWS[:4]
    # smaller size and higher accuracy are better: int8 (2.4 MB, .95) beats original (9 MB, .95)
    assert [rows[i]["name"] for i in pareto_front(rows, "size_bytes", "test_accuracy")] == ["int8", "float16"]
    assert [rows[i]["name"] for i in pareto_front(rows, "latency_ms_p50", "test_accuracy")] == \
        ["pruned", "int8", "float16"]
    assert pareto_front([{"x": 1, "y": 1}, {"x": 1, "y": 1}], "x", "y") == [0, 1]     # equal points both stay
    assert pareto_front([{"x": None, "y": 1}], "x", "y") == []


def test_confusion_helpers():
    cm = [[5, 1, 0], [2, 3, 0], [0, 0, 0]]
    norm = normalise_rows(cm)
    assert norm[0] == pytest.approx([5 / 6, 1 / 6, 0]) and norm[2] == [0, 0, 0]
    assert confusion_pairs(cm, ["a", "b", "c"]) == [("b", "a", 2), ("a", "b", 1)]
    wrong = [{"true": "b", "pred": "a", "index": 3}, {"true": "a", "pred": "b", "index": 1}]
    assert misclassified_for(wrong, "b", "a") == [wrong[0]]


def test_load_run_adds_the_original_and_reads_stored_variants(tmp_path):
    run_id = new_run_id()
    folder = run_dir(run_id, create=True)
    metrics = {"accuracy": 0.9, "macro_f1": 0.89, "per_class": {"a": {"precision": 1, "recall": 0.8, "f1-score": 0.89,
                                                                         "support": 5}},
               "confusion_matrix": [[4, 1], [0, 5]], "misclassified": [{"index": 2, "true": "a", "pred": "b"}],
               "num": 10}
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "class_names.json", ["a", "b"])
    write_json(folder / "config.json", {"dataset": "shapes", "image_size": 32})
    (folder / "model.keras").write_bytes(b"k" * 1000)
    (folder / "int8.tflite").write_bytes(b"t" * 300)
    registry.upsert_run(run_id, status="done", test_accuracy=0.9)
    rep = load_run(run_id)
    assert [v["name"] for v in rep.variants] == ["original"]
    assert rep.variants[0]["size_bytes"] == 1000 and rep.finished
    write_json(folder / "variants.json", {"run_id": run_id, "variants": [
        {"name": "int8", "technique": "int8", "test_accuracy": 0.88, "size_bytes": 300,
         "files": ["int8.tflite", "../../../../etc/passwd", "/etc/hostname"]}]})
    rep = load_run(run_id)
    assert [v["name"] for v in rep.variants] == ["original", "int8"]
    assert [p.name for p in rep.files()] == ["model.keras", "int8.tflite"]     # nothing outside the run folder
    registry.replace_variants(run_id, [{"name": "original", "technique": "none", "test_accuracy": 0.9},
                                       {"name": "int8", "technique": "int8", "test_accuracy": 0.87}])
    rep = load_run(run_id)                                                     # the registry wins over the file
    assert [(v["name"], v["test_accuracy"]) for v in rep.variants] == [("original", 0.9), ("int8", 0.87)]
    assert rep.table()[1]["test_accuracy"] == 0.87
    assert rep.per_class_rows() == [] or rep.per_class_rows()[0]["class"] == "a"
    csv = to_csv(rep.table())
    assert csv.splitlines()[0].startswith("name,technique,test_accuracy") and len(csv.splitlines()) == 3
