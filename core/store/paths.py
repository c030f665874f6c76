"""Where the lab keeps its runtime files (override the root with the LAB_HOME environment variable)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def lab_home() -> Path:
    """Root of all runtime output: runs, caches, weights, the SQLite registry."""
    return Path(os.environ.get("LAB_HOME", REPO_ROOT / "artifacts")).resolve()


def sub(name: str) -> Path:
    """A sub-folder of the lab home, created on demand."""
    p = lab_home() / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def runs_dir() -> Path:
    return sub("runs")


def weights_dir() -> Path:
    return sub("weights")


def packages_dir() -> Path:
    """Wheels fetched from PyPI with `pip download --no-deps` (never installed)."""
    return sub("packages")


def cache_dir() -> Path:
    """Feature and resized-image caches; safe to delete."""
    return sub("cache")


def db_path() -> Path:
    return lab_home() / "lab.db"
