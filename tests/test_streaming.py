"""Data larger than the memory budget is streamed from disk (or resized as it is read): the same images, labels,
splits, features and results as in memory."""
import shutil

import numpy as np
import pytest

from conftest import COLOURS, REPO, make_class_folder


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A lab home whose weights and packages are shared but whose caches start empty (nothing computed is reused)."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("packages", "weights"):
        (home / name).symlink_to((REPO / "artifacts" / name).resolve(), target_is_directory=True)
    monkeypatch.setenv("LAB_HOME", str(home))
    return home


def _stream(monkeypatch) -> None:
    """Every dataset counts as larger than the budget, and batches are 32 rows."""
    monkeypatch.setattr("core.data.prepare.in_ram_limit", lambda: 0)
    monkeypatch.setattr("core.data.prepare.batch_rows", lambda *a, **k: 32)
    monkeypatch.setattr("core.training.features.batch_rows", lambda *a, **k: 32)
    monkeypatch.setattr("core.training.features.in_ram_limit", lambda: 0)


def test_lazy_arrays_index_like_numpy(tmp_path):
    from core.data.lazy import NpyFile, Resized, Rows, create_npy, take, write_npy
    a = np.random.default_rng(0).integers(0, 255, (70, 5, 4, 3), dtype=np.uint8)
    n = write_npy(tmp_path / "a.npy", (a[i:i + 32] for i in range(0, 70, 32)), (5, 4, 3), np.uint8)
    assert n == 70 and np.array_equal(np.load(tmp_path / "a.npy"), a)        # a standard .npy
    f = NpyFile(tmp_path / "a.npy")
    assert (len(f), f.shape, f.dtype, f.nbytes) == (70, a.shape, np.uint8, a.nbytes)
    idx = np.array([5, 3, 3, 69, 0, -1])
    for key in (7, -2, slice(3, 40, 4), slice(None, None, -3), idx, a[:, 0, 0, 0] > 128, (idx, 2, slice(1, 3), 0),
                (4, 1)):
        assert np.array_equal(f[key], a[key]), key
    assert np.array_equal(np.asarray(f), a) and np.array_equal(np.stack(list(f)), a)
    view = take(f, np.array([9, 2, 40]))
    assert isinstance(view, Rows) and np.array_equal(view[1:], a[[2, 40]]) and np.array_equal(take(a, [1]), a[[1]])
    with pytest.raises(IndexError):
        f[np.array([70])]
    g = create_npy(tmp_path / "g.npy", (50, 7), np.float32)                  # filled by rows, in any order
    rows, v = np.array([9, 3, 4, 5, 40, 41, 0, 49]), np.random.default_rng(2).random((8, 7), np.float32)
    g.write(rows, v)
    assert np.array_equal(g[rows], v) and np.array_equal(np.load(tmp_path / "g.npy")[rows], v)
    assert not np.load(tmp_path / "g.npy")[[1, 2, 48]].any()
    grey = a[..., 0]
    from core.data.images import resize_array
    assert np.array_equal(Resized(grey, 9)[[4, 1]], resize_array(grey[[4, 1]], 9))


def test_a_failed_write_leaves_nothing(tmp_path):
    from core.data.lazy import write_npy

    def chunks():
        yield np.zeros((4, 2), np.uint8)
        raise RuntimeError("decoder died")
    with pytest.raises(RuntimeError):
        write_npy(tmp_path / "b.npy", chunks(), (2,), np.uint8)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="rows of shape"):
        write_npy(tmp_path / "c.npy", [np.zeros((3, 5), np.uint8)], (2,), np.uint8)
    assert list(tmp_path.iterdir()) == []


def test_budget_is_read_from_the_environment_and_the_settings(tmp_path, monkeypatch):
    from core.errors import LabError
    from core.store import settings
    monkeypatch.setenv("LAB_MEMORY_BUDGET_MB", "512")
    assert settings.memory_budget() == 512 << 20 and settings.in_ram_limit() == 128 << 20
    assert settings.batch_rows(96 * 96 * 3) == (32 << 20) // (96 * 96 * 3) // 32 * 32
    assert settings.batch_rows(10 << 30) == 32                       # never fewer than one batch of 32
    monkeypatch.setenv("LAB_MEMORY_BUDGET_MB", "lots")
    with pytest.raises(LabError, match="LAB_MEMORY_BUDGET_MB must be a number"):
        settings.memory_budget()
    monkeypatch.delenv("LAB_MEMORY_BUDGET_MB")
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    assert settings.memory_budget() == settings.DEFAULT_MEMORY_BUDGET_MB << 20
    from core.cli.main import main
    assert main(["settings", "--memory-budget-mb", "1024", "--json"]) == 0
    assert settings.memory_budget() == 1024 << 20 and settings.stored()["memory_budget_mb"] == 1024
    assert main(["settings", "--memory-budget-mb", "100"]) == 2 and settings.memory_budget() == 1024 << 20


def test_streamed_prepare_gives_the_same_images_labels_and_splits(tmp_path, own_cache, monkeypatch):
    from core.data.lazy import NpyFile, Resized
    from core.data.prepare import prepare
    folder = make_class_folder(tmp_path / "d", COLOURS, n=15, size=20)
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    for name, size, kind in ((str(folder), 16, NpyFile), ("digits", 24, Resized)):
        ram = prepare(name, size, seed=3)
        shutil.rmtree(own_cache / "cache" / "images", ignore_errors=True)
        with monkeypatch.context() as m:
            _stream(m)
            lazy = prepare(name, size, seed=3)
            again = prepare(name, size, seed=3)                        # a stored copy when it was decoded
        assert isinstance(ram.images, np.ndarray) and isinstance(lazy.images, kind) and not lazy.in_memory
        assert np.array_equal(np.asarray(lazy.images), ram.images) and np.array_equal(lazy.labels, ram.labels)
        assert lazy.ids == ram.ids and lazy.skipped == ram.skipped and lazy.fingerprint == ram.fingerprint
        for s in ("train", "val", "test"):
            assert np.array_equal(lazy.index[s], ram.index[s]) and np.array_equal(np.asarray(lazy.x(s)), ram.x(s))
        assert np.array_equal(np.asarray(again.images), ram.images)
        assert any("broken.png" in f for f, _ in lazy.skipped) == (kind is NpyFile)     # said, and left out


def test_streamed_batches_are_the_in_memory_batches(tmp_path):
    from core.data.lazy import NpyFile, write_npy
    from core.data.pipeline import image_dataset
    a = np.random.default_rng(1).integers(0, 255, (45, 8, 8, 3), dtype=np.uint8)
    y = np.arange(45) % 3
    write_npy(tmp_path / "a.npy", [a], (8, 8, 3), np.uint8)
    ram = image_dataset("mobilenet_v2", a, y, 16, shuffle=True, seed=7)
    disk = image_dataset("mobilenet_v2", NpyFile(tmp_path / "a.npy"), y, 16, shuffle=True, seed=7)
    for _ in range(2):                                                   # each epoch reshuffled, both the same way
        for (xr, yr), (xd, yd) in zip(ram, disk, strict=True):
            assert np.array_equal(xr.numpy(), xd.numpy()) and np.array_equal(yr.numpy(), yd.numpy())


def test_streamed_training_gives_the_same_features_and_results(tmp_path, own_cache, monkeypatch):
    """Feature extraction, the cached fine-tune below a cut and evaluation, in memory and streamed from disk."""
    from core.config import TrainConfig
    from core.store.runs import read_json, run_dir
    from core.training.train import train
    folder = make_class_folder(tmp_path / "d", COLOURS, n=14, size=40)
    cfg = TrainConfig(dataset=str(folder), image_size=32, epochs=3, fine_tune_at=-20, fine_tune_epochs=2, seed=1)
    out = {}
    for way in ("ram", "disk"):
        shutil.rmtree(own_cache / "cache", ignore_errors=True)
        with monkeypatch.context() as m:
            if way == "disk":
                _stream(m)
            s = train(cfg)
        stored = own_cache / "cache" / "features"
        if way == "ram":
            feats = next(stored.glob("*.npz"))
            with np.load(feats) as z:
                values, known = z["values"], z["known"]
        else:                                                            # large features: a .npy read by rows
            feats = next(stored.glob("*.known.npy"))
            values, known = np.load(stored / feats.name.replace(".known", "")), np.load(feats)
        out[way] = s, read_json(run_dir(s["run_id"]) / "predictions.json"), values[known], feats.name.split(".")[0]
    (s_ram, p_ram, f_ram, key_ram), (s_disk, p_disk, f_disk, key_disk) = out["ram"], out["disk"]
    assert key_ram == key_disk                                           # the feature cache key does not move
    assert len(f_ram) == len(f_disk) == s_ram["num_train"] + s_ram["num_val"]        # test rows: through the model
    assert np.abs(f_ram - f_disk).max() <= 1e-5
    assert s_disk["fine_tune"]["path"] == s_ram["fine_tune"]["path"] == "cached below the cut"
    assert p_disk["indices"] == p_ram["indices"] and p_disk["y_true"] == p_ram["y_true"]
    assert np.abs(np.array(p_disk["probs"]) - np.array(p_ram["probs"])).max() <= 1e-5
    assert s_disk["test_accuracy"] == s_ram["test_accuracy"]
