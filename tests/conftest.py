"""Tests run against a throw-away LAB_HOME; the download/feature caches are shared with artifacts/ to stay fast."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def lab_home(tmp_path_factory):
    """A fresh lab home per test session; weights, packages and caches are symlinked to the shared ones."""
    home = tmp_path_factory.mktemp("labhome")
    shared = REPO / "artifacts"
    for name in ("packages", "weights", "cache"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(shared / name, target_is_directory=True)
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
