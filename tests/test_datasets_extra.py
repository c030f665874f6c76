"""The reports' datasets: each importer on a small fixture laid out like the real download."""
import gzip
import io
import math
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.prepare import prepare
from core.data.datasets import DATASETS, get_dataset
from core.data.datasets import cifar, mnistlike, vehicle_rear
from core.data.datasets.sources import datasets_dir
from core.errors import LabError

REPORT_DATASETS = ("cifar10", "cats_vs_dogs", "vehicle_rear", "fashion_mnist", "digits", "vehicle_colors_synthetic")





def test_report_datasets_are_registered_with_an_honest_status():
    for name in REPORT_DATASETS:
        info = DATASETS[name].info()
        assert info["availability"], name
    # Generated and packaged ones are always here.
    for name in ("digits", "vehicle_colors_synthetic", "cats_dogs_silhouettes"):
        assert DATASETS[name].availability()[0], name
    syn = DATASETS["vehicle_colors_synthetic"].info()
    assert syn["synthetic"] and "SYNTHETIC" in syn["title"] and "SYNTHETIC" in syn["description"]
    assert syn["classes"] == ["black", "blue", "green", "grey", "orange", "red", "silver", "white"]


def test_missing_datasets_say_what_to_download_and_where(fresh_home, monkeypatch):
    import core.models.backbones as bb
    monkeypatch.setattr(bb, "online", lambda *a, **k: False)
    monkeypatch.setattr(mnistlike, "DEBIAN_FASHION", fresh_home / "no-debian")
    where = str(datasets_dir())
    expect = {"cifar10": "cifar-10-python.tar.gz", "cats_vs_dogs": "kagglecatsanddogs",
              "vehicle_rear": "dataset2", "fashion_mnist": "dataset-fashion-mnist",
              "basic_shapes": "circles", "animals10": "raw-img"}
    for name, hint in expect.items():
        ok, msg = DATASETS[name].availability()
        assert not ok, name
        assert hint in msg and where in msg, (name, msg)
        with pytest.raises(LabError, match="not available"):
            prepare(name, 16)


# ---------------------------------------------------------------- CIFAR-10

class _Py2Pickler(pickle._Pickler):
    """Writes bytes the way Python 2's cPickle wrote its str (BINSTRING), as in the real CIFAR-10 batches,
    instead of Python 3's protocol-2 `_codecs.encode(...)` calls."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n])) if n < 256 else (pickle.BINSTRING + struct.pack("<i", n)))
        self.write(obj)
        self.memoize(obj)
    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    raw = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")   # numpy 1.x names
    assert b"_codecs" not in raw and b"cnumpy.core.multiarray\n_reconstruct" in raw or b"numpy" not in raw
    return raw


def _cifar_batch(labels: list[int], tag: int) -> bytes:
    """One batch in CIFAR's own layout: rows of 1024 R, 1024 G, 1024 B values; red encodes the label."""
    n = len(labels)
    img = np.zeros((n, 32, 32, 3), np.uint8)
    img[..., 0] = np.array(labels)[:, None, None] * 20 + 10
    img[..., 1] = tag
    img[..., 2] = np.arange(32, dtype=np.uint8)[None, None, :]   # a horizontal ramp: checks the row-major order
    data = img.transpose(0, 3, 1, 2).reshape(n, 3072)
    d = {b"batch_label": f"batch {tag}".encode(), b"labels": list(labels), b"data": data,
         b"filenames": [f"img_{tag}_{i}.png".encode() for i in range(n)]}
    return py2_pickle(d)


def make_cifar_archive(path: Path, per_class_per_batch: int = 2, test_per_class: int = 3) -> Path:
    members = {}
    for b in range(1, 6):
        members[f"data_batch_{b}"] = _cifar_batch([c for c in range(10) for _ in range(per_class_per_batch)], b)
    members["test_batch"] = _cifar_batch([c for c in range(10) for _ in range(test_per_class)], 99)
    members["batches.meta"] = py2_pickle({b"label_names": [n.encode() for n in cifar.CLASS_NAMES],
                                          b"num_cases_per_batch": 20, b"num_vis": 3072})
    with tarfile.open(path, "w:gz") as tf:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


def test_cifar10_from_a_local_archive_keeps_the_40_10_10_split(fresh_home, tmp_path, monkeypatch):
    archive = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    monkeypatch.setenv("LAB_CIFAR10", str(archive))
    ok, msg = get_dataset("cifar10").availability()
    assert ok and "cifar-10-python.tar.gz" in msg
    s = get_dataset("cifar10").load()
    assert s.images.shape == (130, 32, 32, 3) and s.class_names == list(cifar.CLASS_NAMES)
    assert (s.split == "test").sum() == 30
    data = prepare("cifar10", 32)
    n = {k: len(v) for k, v in data.index.items()}
    assert n == {"train": 80, "val": 20, "test": 30}            # 4 : 1 of the training batches, test batch kept
    assert all(i.startswith("test") for i in data.split_ids("test"))
    for split in ("train", "val", "test"):
        x, y = data.x(split), data.y(split)
        assert (x[:, :, :, 0] == (y * 20 + 10)[:, None, None]).all()       # label travels with its image
        assert (x[:, 5, :, 2] == np.arange(32)).all()                       # planes and rows decoded right
    assert set(np.unique(data.x("test")[:, 0, 0, 1])) == {99}


def test_cifar10_extracted_folder_and_default_place(fresh_home, tmp_path):
    archive = make_cifar_archive(tmp_path / "c.tar.gz")
    dest = datasets_dir()
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    ok, msg = get_dataset("cifar10").availability()
    assert ok and "cifar-10-batches-py" in msg
    assert len(get_dataset("cifar10").load()) == 130


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_pickles_cannot_run_code(fresh_home, tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_archive(archive)
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            raw = src.extractfile(m).read()
            if m.name.endswith("data_batch_3"):
                raw = py2_pickle({b"data": _Evil(), b"labels": [0]})
                m.size = len(raw)
            dst.addfile(m, io.BytesIO(raw))
    monkeypatch.setenv("LAB_CIFAR10", str(bad))
    with pytest.raises(LabError, match="refusing to load posix.system|refusing to load os.system|not a CIFAR"):
        get_dataset("cifar10").load()


# ---------------------------------------------------------------- Cats vs Dogs

def make_pet_images(root: Path, n: int = 20) -> Path:
    """PetImages/{Cat,Dog} with the archive's two known-empty files, a file that is not a JPEG, and Thumbs.db."""
    rng = np.random.default_rng(0)
    for cls, rgb in (("Cat", (200, 40, 40)), ("Dog", (40, 40, 200))):
        d = root / "PetImages" / cls
        d.mkdir(parents=True)
        for i in range(n):
            a = np.clip(np.array(rgb) + rng.integers(-15, 15, (20, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"{i}.jpg", quality=90)
        (d / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 thumbnail cache")
    (root / "PetImages" / "Cat" / "666.jpg").write_bytes(b"")
    (root / "PetImages" / "Dog" / "11702.jpg").write_bytes(b"")
    (root / "PetImages" / "Dog" / "7.jpg").write_bytes(b"GIF89a this is no picture at all")  # overwrites a good one
    return root


def _check_cats_dogs(data, n_cats: int, n_dogs: int):
    assert data.class_names == ["cat", "dog"]
    assert np.bincount(data.labels).tolist() == [n_cats, n_dogs]
    for split in ("train", "val", "test"):
        for img, y in zip(data.x(split), data.y(split)):
            red, blue = img[..., 0].mean(), img[..., 2].mean()
            assert (red > blue) == (y == 0)
    reasons = {p.replace("\\", "/").split("PetImages/")[-1]: r for p, r in data.skipped}
    assert "known broken" in reasons["Cat/666.jpg"] and "known broken" in reasons["Dog/11702.jpg"]
    assert "not a readable image" in reasons["Dog/7.jpg"]
    assert "thumbnail" in reasons["Cat/Thumbs.db"]
    n = len(data.labels)
    test = math.ceil(n * 0.1)                       # 80/10/10, as scikit-learn rounds the held-out parts
    val = math.ceil((n - test) * 0.1 / 0.9)
    assert [len(data.index[s]) for s in ("train", "val", "test")] == [n - test - val, val, test]


def test_cats_vs_dogs_folder_skips_broken_files(fresh_home, tmp_path, monkeypatch):
    make_pet_images(tmp_path / "src")
    monkeypatch.setenv("LAB_CATS_VS_DOGS", str(tmp_path / "src"))
    ok, msg = get_dataset("cats_vs_dogs").availability()
    assert ok and "PetImages" in msg
    _check_cats_dogs(prepare("cats_vs_dogs", 16), 20, 19)


def test_cats_vs_dogs_from_the_microsoft_zip(fresh_home, tmp_path):
    src = make_pet_images(tmp_path / "src", n=11)
    datasets_dir().mkdir(parents=True)
    z = datasets_dir() / "kagglecatsanddogs_5340.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, f.relative_to(src))
        zf.writestr("CDLA-Permissive-2.0.pdf", b"%PDF licence")
    ok, msg = get_dataset("cats_vs_dogs").availability()
    assert ok and "kagglecatsanddogs_5340.zip" in msg and "extracted" in msg
    _check_cats_dogs(prepare("cats_vs_dogs", 16), 11, 10)
    ok, msg = get_dataset("cats_vs_dogs").availability()        # extracted once, then used as a folder
    assert ok and msg.startswith("folder")


# ---------------------------------------------------------------- UFPR Vehicle-Rear

COLOUR_RGB = {"red": (210, 30, 30), "white": (240, 240, 240), "gray": (128, 128, 128), "green": (30, 170, 40),
              "yellow": (230, 220, 20)}


def make_vehicle_rear(root: Path, plan: dict[str, list[tuple[str, str, str, bool]]], frames: int = 3) -> Path:
    """dataset2/CameraX/SetNN/classes_carros/<plate>/*.png and dataset2/xmls/CameraX/SetNN/vehicles.xml.

    plan: "CameraX/SetNN" -> [(plate, colour or "" for no XML entry, ..., discard)]; frame k's green channel is k.
    """
    ds2 = root / "dataset2"
    for where, vehicles in plan.items():
        cam, s = where.split("/")
        xml = ['<?xml version="1.0"?>', "<GroundTruthRoot>", "<gtruth>"]
        for plate, colour, model, discard in vehicles:
            d = ds2 / cam / s / "classes_carros" / plate
            d.mkdir(parents=True)
            (ds2 / cam / s / "classes" / plate).mkdir(parents=True)       # the plate crops live beside
            rgb = np.array(COLOUR_RGB.get(colour.lower(), (0, 0, 0)))
            for k in range(frames):
                a = np.tile(rgb, (12, 16, 1)).astype(np.uint8)
                a[0, 0, 1] = k
                Image.fromarray(a).save(d / f"frame{k:03d}.png")
            if colour:
                xml.append(f'<vehicle placa="{plate}" iframe="1" brand="VW" color="{colour}" model="{model}" '
                           f'year="2010" discard="{"True" if discard else "False"}"/>')
        xml.append('<vehicle placa="" iframe="9" brand="" color="Red" model="" year="" discard="False"/>')
        xml += ["</gtruth>", "</GroundTruthRoot>"]
        (ds2 / "xmls" / cam / s).mkdir(parents=True)
        (ds2 / "xmls" / cam / s / "vehicles.xml").write_text("\n".join(xml))
    return root


def _fixture_plan():
    c1 = [(f"RED{i:04d}", "Red", "gol", False) for i in range(4)] + \
         [(f"WHT{i:04d}", "White", "uno", False) for i in range(4)] + \
         [(f"GRY{i:04d}", "Gray", "ka", False) for i in range(3)] + \
         [("YEL0001", "Yellow", "fox", False), ("DIS0001", "Red", "gol", True), ("NOX0001", "", "", False)]
    c2 = [(f"RED{i:04d}", "Red", "gol", False) for i in range(2)] + \
         [("DIS0001", "Red", "gol", False)] + [(f"GRN{i:04d}", "Green", "palio", False) for i in range(3)]
    return {"Camera1/Set01": c1, "Camera2/Set01": c2, "Camera2/Set02": [("WHT9999", "white", "uno", False)]}


def test_vehicle_rear_import_gives_colour_folders_one_image_per_plate(tmp_path):
    src = make_vehicle_rear(tmp_path / "data", _fixture_plan())
    out = tmp_path / "out"
    m = vehicle_rear.import_vehicle_rear(src, out, min_per_class=3)
    folders = {d.name: sorted(f.name for f in d.iterdir()) for d in out.iterdir() if d.is_dir()}
    assert folders == {"red": [f"RED{i:04d}.png" for i in range(4)],
                       "white": [f"WHT{i:04d}.png" for i in range(4)] + ["WHT9999.png"],
                       "grey": [f"GRY{i:04d}.png" for i in range(3)],
                       "green": [f"GRN{i:04d}.png" for i in range(3)]}
    assert m["vehicles"] == 15 and m["classes"] == {"green": 3, "grey": 3, "red": 4, "white": 5}
    for colour, files in folders.items():
        for f in files:
            a = np.asarray(Image.open(out / colour / f))
            assert a[0, 0, 1] == 1                                          # the middle of 3 frames
            assert tuple(a[5, 5]) == COLOUR_RGB["gray" if colour == "grey" else colour]
    assert m["plates"]["RED0000"]["camera"] == "Camera1"                   # first appearance wins
    assert m["plates"]["GRN0000"]["camera"] == "Camera2"
    why = {w.rsplit("/", 1)[-1]: r for w, r in m["skipped"]}
    assert "discarded" in why["DIS0001"] and "not in vehicles.xml" in why["NOX0001"]
    assert "'yellow' is not one of the 8 kept" in why["YEL0001"]
    assert not any(w.endswith(("RED0000", "RED0001")) for w, _ in m["skipped"])   # seen twice is not skipped
    assert (out / ".import.json").exists()
    assert not any(p.name.startswith("out.tmp") for p in tmp_path.iterdir())
    every = vehicle_rear.import_vehicle_rear(src, tmp_path / "all", min_per_class=1, colours=None)
    assert every["classes"]["yellow"] == 1 and every["vehicles"] == 16
    few = vehicle_rear.import_vehicle_rear(src, tmp_path / "few", min_per_class=4)
    assert few["classes"] == {"red": 4, "white": 5}
    assert any(r.startswith("colour 'grey' has only 3") for _, r in few["skipped"])


def test_vehicle_rear_registry_entry_imports_on_first_use(fresh_home, tmp_path, monkeypatch):
    plan = {"Camera1/Set01": [(f"RED{i:04d}", "Red", "gol", False) for i in range(12)] +
                             [(f"WHT{i:04d}", "White", "uno", False) for i in range(10)] +
                             [("YEL0001", "Yellow", "fox", False)]}
    src = make_vehicle_rear(tmp_path / "vr", plan, frames=2)
    spec = get_dataset("vehicle_rear")
    monkeypatch.setenv("LAB_VEHICLE_REAR", str(src))
    ok, msg = spec.availability()
    assert ok and "first use" in msg
    data = prepare("vehicle_rear", 16)
    assert data.class_names == ["red", "white"] and np.bincount(data.labels).tolist() == [12, 10]
    ok, msg = spec.availability()
    assert ok and msg.startswith("imported: 22 vehicles in 2 colours")
    assert sorted(p.name for p in (datasets_dir() / "vehicle_rear").iterdir()) == [".import.json", "red", "white"]


def test_vehicle_rear_cli_import(tmp_path, capsys):
    import json
    from core.cli.main import main
    src = make_vehicle_rear(tmp_path / "data", _fixture_plan())
    assert main(["import-vehicle-rear", str(src), "--dest", str(tmp_path / "o"), "--json"]) == 2   # too few per colour
    assert "no usable vehicles" in capsys.readouterr().err
    src2 = make_vehicle_rear(tmp_path / "d2", {"Camera1/Set01": [(f"R{i:03d}", "Red", "m", False) for i in range(10)]
                                               + [(f"B{i:03d}", "Black", "m", False) for i in range(10)]}, frames=1)
    assert main(["import-vehicle-rear", str(src2), "--dest", str(tmp_path / "o2"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["vehicles"] == 20 and out["classes"] == {"black": 10, "red": 10}


# ---------------------------------------------------------------- Fashion-MNIST, digits

def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def make_fashion(folder: Path, train_per_class: int = 12, test_per_class: int = 3) -> Path:
    folder.mkdir(parents=True)
    for part, n in (("train", train_per_class), ("t10k", test_per_class)):
        y = np.tile(np.arange(10), n)
        x = np.zeros((len(y), 28, 28), np.uint8) + (y * 25)[:, None, None].astype(np.uint8)
        _write_idx(folder / f"{part}-images-idx3-ubyte.gz", x)
        _write_idx(folder / f"{part}-labels-idx1-ubyte.gz", y)
    return folder


def test_fashion_mnist_from_idx_files(fresh_home, tmp_path, monkeypatch):
    folder = make_fashion(tmp_path / "fm")
    monkeypatch.setenv("LAB_FASHION_MNIST", str(folder))
    ok, msg = get_dataset("fashion_mnist").availability()
    assert ok and str(folder) in msg
    data = prepare("fashion_mnist", 28)
    assert data.class_names[0] == "tshirt_top" and data.class_names[9] == "ankle_boot"
    assert len(data.labels) == 150 and len(data.index["test"]) == 30
    assert all(i.startswith("test") for i in data.split_ids("test"))
    for s in ("train", "val", "test"):
        assert (data.x(s)[:, 14, 14, 0] == data.y(s) * 25).all()
    small = get_dataset("fashion_mnist_12k").load()          # the subset takes what there is, per class
    assert len(small) == 150 and small.fingerprint != get_dataset("fashion_mnist").load().fingerprint


def test_idx_reader_rejects_bad_files(tmp_path):
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + np.array([2, 2, 2], ">u4").tobytes() + b"\x00" * 7)
    with pytest.raises(LabError, match="does not match its header"):
        mnistlike.read_idx(p)
    q = tmp_path / "y.gz"
    with gzip.open(q, "wb") as f:
        f.write(b"PK\x03\x04 not idx")
    with pytest.raises(LabError, match="bad magic"):
        mnistlike.read_idx(q)


@pytest.mark.skipif(mnistlike.find_fashion() != mnistlike.DEBIAN_FASHION, reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_files_and_12k_subset():
    s = get_dataset("fashion_mnist").load()
    assert s.images.shape == (70000, 28, 28) and (s.split == "test").sum() == 10000
    assert np.bincount(s.labels).tolist() == [7000] * 10
    small = get_dataset("fashion_mnist_12k").load()
    assert len(small) == 12000 and np.bincount(small.labels).tolist() == [1200] * 10
    assert (small.split == "test").sum() == 2000


def test_digits_and_cat_dog_silhouettes():
    data = prepare("digits", 8)
    assert len(data.labels) == 1797 and data.class_names == [str(i) for i in range(10)]
    assert data.images.max() == 255 and data.images.dtype == np.uint8
    from sklearn.datasets import load_digits
    d = load_digits()
    assert (np.round(d.images[17] * 255 / 16) == data.images[17, :, :, 0]).all() and data.labels[17] == d.target[17]

    cd = get_dataset("cats_dogs_silhouettes").load()
    animals = get_dataset("animals").load()
    cat, dog = animals.class_names.index("cat"), animals.class_names.index("dog")
    assert cd.class_names == ["cat", "dog"] and np.bincount(cd.labels).tolist() == [1000, 1000]
    assert (cd.images[cd.labels == 0] == animals.images[animals.labels == cat]).all()
    assert (cd.images[cd.labels == 1] == animals.images[animals.labels == dog]).all()
    assert get_dataset("cats_dogs_silhouettes").split == (0.8, 0.1, 0.1)


def test_kaggle_class_folders_are_found_where_documented(fresh_home):
    from tests.conftest import make_class_folder
    raw = datasets_dir() / "animals10" / "raw-img"
    make_class_folder(raw, {"gatto": (200, 0, 0), "cane": (0, 0, 200)}, n=10, size=12)
    (datasets_dir() / "animals10" / "translate.py").write_text("# the archive's own helper\n")
    ok, msg = get_dataset("animals10").availability()
    assert ok and msg.endswith("raw-img")
    s = get_dataset("animals10").load()
    assert s.class_names == ["dog", "cat"]                            # cane, gatto: Italian folders in English
    assert all(p.split("/")[-2] == {"dog": "cane", "cat": "gatto"}[s.class_names[y]] for p, y in zip(s.paths, s.labels))
    make_class_folder(datasets_dir() / "basic_shapes" / "shapes", {"circles": (0, 0, 0), "squares": (9, 9, 9)}, n=10)
    assert get_dataset("basic_shapes").load().class_names == ["circles", "squares"]
