"""Tests run against a throw-away LAB_HOME; the download/feature caches are shared with artifacts/ to stay fast."""
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


SHARED = ("packages", "weights", "cache")
DATASET_VARS = ("LAB_CIFAR10", "LAB_CATS_VS_DOGS", "LAB_VEHICLE_REAR", "LAB_FASHION_MNIST", "LAB_BASIC_SHAPES",
                "LAB_ANIMALS10")


def lab_home_with_shared_caches(home: Path) -> Path:
    """`home` as a lab home of its own whose packages, weights and caches are the repo's shared ones."""
    shared = REPO / "artifacts"
    home.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        (shared / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to((shared / name).resolve(), target_is_directory=True)
    return home


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A lab home of its own, so datasets placed by one test are seen by no other; caches stay shared."""
    home = lab_home_with_shared_caches(tmp_path / "home")
    monkeypatch.setenv("LAB_HOME", str(home))
    for var in DATASET_VARS:
        monkeypatch.delenv(var, raising=False)
    return home


def wait_for_job(job_id: str, pred, timeout: float, reconcile: bool = True, what: str = "") -> dict:
    """Poll a background job until `pred(job)`; fail with its status and log tail after `timeout` seconds."""
    import time

    from core import jobs
    end = time.time() + timeout
    while time.time() < end:
        if reconcile:
            jobs.reconcile()
        job = jobs.get_job(job_id)
        if pred(job):
            return job
        time.sleep(0.1)
    job = jobs.get_job(job_id)
    pytest.fail(f"job {job_id} never got {what or 'there'}: {job['status']} {job['error']} {job['progress']}\n"
                f"{jobs.read_log(job_id)[-3000:]}")


@contextmanager
def across_workers(name: str):
    """A folder shared by every pytest-xdist worker of this session, held under an exclusive lock: the first worker
    builds what goes in it, the others wait and reuse it (pytest-xdist's documented recipe for session data)."""
    import fcntl
    folder = Path(os.environ["LAB_TEST_SHARED"]) / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def lab_home(tmp_path_factory):
    """A fresh lab home per test session; weights, packages and caches are symlinked to the shared ones."""
    base = tmp_path_factory.getbasetemp()
    os.environ["LAB_TEST_SHARED"] = str(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)
    home = lab_home_with_shared_caches(tmp_path_factory.mktemp("labhome"))
    old = os.environ.get("LAB_HOME")
    os.environ["LAB_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LAB_HOME", None)
    else:
        os.environ["LAB_HOME"] = old


def make_class_folder(root: Path, colours: dict[str, tuple[int, int, int]], n: int = 12, size: int = 24,
                      seed: int = 0) -> Path:
    """A class-folder dataset whose image colour encodes its class, so misaligned labels are detectable."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for cls, rgb in colours.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.clip(np.array(rgb)[None, None] + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / cls / f"{cls}_{i:03d}.png")
    return root


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


# Scheduling: pytest-xdist (`--dist loadfile`) hands test files to free workers in collection order. Files with long
# chains of work go first, so no worker starts one near the end while the others sit idle; the files that reuse
# test_compression's run (built once per session, see `across_workers`) go last, so they copy it instead of waiting
# on its lock. Seconds are each file's measured total (1 December, 2 workers); an unlisted file counts as 0.
FIRST = {"test_compression": 221, "test_presets": 174, "test_e2e_classroom": 158, "test_concurrency": 134,
         "test_training": 106, "test_app_builder": 95, "test_e2e_builder": 83, "test_e2e_browser": 82,
         "test_classroom": 75, "test_ray_backend": 67, "test_hostile": 62, "test_head_and_taps": 51,
         "test_cli": 43, "test_sweeps": 42, "test_app_pages": 39, "test_extractor": 38, "test_jobs": 36,
         "test_e2e_live": 30}
LAST = ("test_export", "test_predict")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> tuple[int, float]:
        module = item.module.__name__.rsplit(".", 1)[-1]
        return (1, LAST.index(module)) if module in LAST else (0, -FIRST.get(module, 0))
    items.sort(key=rank)          # stable: the tests of a file keep their order
