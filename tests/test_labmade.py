"""Datasets made in the lab (core.data.datasets.labmade): a normal class-folder dataset, checked as a ZIP's images."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from core.data.datasets import LabDataset, all_datasets, get_dataset
from core.data.datasets.labmade import list_made, made_root
from core.errors import LabError


def png(rgb=(200, 30, 30), size=24, seed=0, fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    a = np.clip(np.array(rgb)[None, None] + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt)
    return buf.getvalue()


def files(stem, rgb, n, start=0):
    return [(f"{stem}{i}.png", png(rgb, seed=i)) for i in range(start, start + n)]


def on_disk(ds: LabDataset) -> dict[str, list[str]]:
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(ds.path.iterdir())}


def test_make_edit_and_use_a_dataset(fresh_home):
    ds = LabDataset.create("My Toys!", ["red ball", "green-cube"])
    assert ds.name == "My_Toys" and ds.classes() == ["green-cube", "red_ball"]
    assert ds.path == fresh_home / "datasets" / "made" / "My_Toys"
    assert ds.problems() and "only" not in ds.problems()[0]          # two empty classes: no usable images yet

    got = ds.add_images("red_ball", files("r", (220, 30, 30), 12))
    assert len(got.added) == 12 and not got.refused
    assert ds.add_images("green-cube", files("g", (30, 200, 40), 12)).refused == []
    assert ds.counts() == {"green-cube": 12, "red_ball": 12} and ds.problems() == []
    assert all(n.startswith("r") and n.endswith(".png") for n in ds.images("red_ball"))

    # a normal lab dataset: listed, found by name, loads as a class folder, passes check-dataset
    assert list_made() == ["My_Toys"] and all_datasets()["My_Toys"].editable
    spec = get_dataset("My_Toys")
    assert spec.info()["editable"] and spec.class_names == ("green-cube", "red_ball")
    s = spec.load()
    assert s.class_names == ["green-cube", "red_ball"] and np.bincount(s.labels).tolist() == [12, 12]
    fp0 = s.fingerprint
    from core.data.prepare import prepare
    assert np.bincount(prepare("My_Toys", 16).labels).tolist() == [12, 12]        # (now in the image cache)

    # a mislabelled image moved to its class: the labels and the fingerprint (the caches' key) follow
    wrong = ds.images("red_ball")[0]
    assert ds.locate(f"red_ball/{wrong}") == ("red_ball", wrong)
    ds.move_image("red_ball", wrong, "green-cube")
    assert ds.counts() == {"green-cube": 13, "red_ball": 11} and ds.locate(f"red_ball/{wrong}") is None
    fp1 = spec.load().fingerprint
    assert fp1 != fp0 and np.bincount(prepare("My_Toys", 16).labels).tolist() == [13, 11]   # not a stale cache
    ds.remove_image("green-cube", wrong)
    fp2 = get_dataset("My_Toys").load().fingerprint
    assert fp2 not in (fp0, fp1)
    assert ds.rename_class("green-cube", "cube") == "cube"
    assert get_dataset("My_Toys").load().class_names == ["cube", "red_ball"]
    assert get_dataset("My_Toys").load().fingerprint != fp2
    assert not any(n.startswith(".") for names in on_disk(ds).values() for n in names)   # no temporary left

    ds.delete_class("cube")
    assert ds.classes() == ["red_ball"] and "only one class" in ds.problems()[0]
    ds.delete()
    assert list_made() == [] and not any(made_root().iterdir())
    with pytest.raises(LabError, match="unknown dataset 'My_Toys'"):
        get_dataset("My_Toys")


def test_hostile_images_are_refused_and_nothing_is_written(fresh_home):
    ds = LabDataset.create("hostile", ["a", "b"])
    good = png()
    truncated = good[: len(good) // 2]
    bomb = io.BytesIO()
    Image.new("1", (9000, 8000)).save(bomb, "PNG")              # 72 megapixels: over the pixel limit
    got = ds.add_images("a", [("ok.png", good), ("broken.png", truncated), ("notes.txt", b"hello"),
                              ("fake.jpg", b"GIF89a not really"), ("noext", good), ("huge.png", bomb.getvalue()),
                              ("../../../etc/passwd.png", png(seed=5)), ("again.png", good)])
    why = dict(got.refused)
    assert len(got.added) == 2, got
    assert "not a readable image" in why["broken.png"] and "not a readable image" in why["fake.jpg"]
    assert why["notes.txt"] == "not an image file (.txt)" and why["noext"] == "not an image file (no extension)"
    assert "too large" in why["huge.png"]
    assert why["again.png"].startswith("the same image is in the dataset already (a/ok-")
    assert on_disk(ds)["b"] == [] and len(on_disk(ds)["a"]) == 2           # only the two good ones, whole
    assert any(n.startswith("passwd-") for n in on_disk(ds)["a"])          # the path-ish name stays inside
    assert not (fresh_home / "etc").exists()
    # the same image in another class is refused too (it would leak between train and test)
    assert "already" in ds.add_images("b", [("copy.png", good)]).refused[0][1]


@pytest.mark.parametrize("name", ["", "...", "../", "  ", "\u00e9\u00e9"])
def test_names_without_letters_or_digits_are_refused(fresh_home, name):
    with pytest.raises(LabError, match="no letters or digits"):
        LabDataset.create(name)
    ds = LabDataset.create("names")
    with pytest.raises(LabError, match="no letters or digits"):
        ds.add_class(name)


def test_path_ish_taken_and_duplicate_names(fresh_home):
    ds = LabDataset.create("../../outside")
    assert ds.name == "outside" and ds.path.parent == made_root()
    for taken in ("shapes", "SHAPES", "Outside"):
        with pytest.raises(LabError, match="taken"):
            LabDataset.create(taken)
    assert ds.add_class("/tmp/cats") == "tmp_cats"
    with pytest.raises(LabError, match="there is a class 'tmp_cats' already"):
        ds.add_class("TMP cats")
    with pytest.raises(LabError, match="read as a train/validation/test split"):
        ds.add_class("Train")
    ds.add_class("dogs")
    with pytest.raises(LabError, match="already"):
        ds.rename_class("dogs", "tmp_cats")
    with pytest.raises(LabError, match="no class"):
        ds.rename_class("../outside", "x")
    with pytest.raises(LabError, match="no class"):
        ds.add_images("..", files("x", (1, 2, 3), 1))
    ds.add_images("dogs", files("d", (9, 9, 9), 1))
    with pytest.raises(LabError, match="no image"):
        ds.remove_image("dogs", "../../../lab.db")
    with pytest.raises(LabError, match="no image"):
        ds.move_image("dogs", ds.images("dogs")[0] + "/..", "tmp_cats")
    assert ds.counts() == {"dogs": 1, "tmp_cats": 0}
    with pytest.raises(LabError, match="no dataset named"):
        LabDataset("../made/outside")
    with pytest.raises(LabError, match="there is a class 'dogs' already"):     # nothing is left of a refused one
        LabDataset.create("twice", ["dogs", "Dogs"])
    assert list_made() == ["outside"]


def test_two_images_per_class_is_said_too_few_and_the_cli_agrees(fresh_home, capsys):
    from core.cli.main import main

    def cli(*args, status=0):
        assert main([*args, "--json"]) == status
        return json.loads(capsys.readouterr().out)

    ds = LabDataset.create("tiny", ["a", "b"])
    ds.add_images("a", files("a", (200, 0, 0), 2))
    ds.add_images("b", files("b", (0, 0, 200), 12))
    assert ds.problems() == ["too few usable images: 'a' has 2; each class needs at least 10 to be split into "
                             "train, validation and test"]
    report = cli("check-dataset", "tiny", status=2)
    assert not report["usable"] and report["problems"] == ds.problems() and report["counts"] == {"a": 2, "b": 12}
    ds.add_images("a", files("a", (200, 0, 0), 8, start=2))
    assert cli("check-dataset", "tiny")["usable"]
    row = next(r for r in cli("datasets") if r["name"] == "tiny")
    assert row["editable"] and row["available"] and row["classes"] == ["a", "b"]
    run = cli("train", "--dataset", "tiny", "--backbone", "mlp", "--image-size", "16", "--epochs", "20", "--quiet")
    assert run["dataset"] == "tiny" and run["num_train"] + run["num_val"] + run["num_test"] == 22
    assert run["test_accuracy"] >= 0.75                          # dark red vs dark blue: easy (4 test images)
