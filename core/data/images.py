"""Decode any image PIL reads into RGB uint8 at a square size, the one way every variant sees pixels."""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import LabError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
CHECK_SIZE = 32  # decoding at a small size is enough to prove a file is a usable image
MAX_PIXELS = 64_000_000  # the largest image decoded (width x height, first frame); larger ones are refused
Image.MAX_IMAGE_PIXELS = MAX_PIXELS   # PIL's own decompression-bomb guard (it errors only above twice this)
Image.init()
# Every format PIL reads except EPS, which PIL renders by running Ghostscript on the file: nothing uploaded is executed.
READ_FORMATS = tuple(sorted(f for f in Image.OPEN if f not in {"EPS"}))


def to_rgb(img: Image.Image) -> Image.Image:
    """Honour EXIF rotation, flatten alpha on white, and map grey/palette/16-bit/CMYK modes to 8-bit RGB."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.size else 1.0
        scale = 255.0 / (65535.0 if hi > 255 else 255.0)
        img = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (a.min(), a.max()) if a.size else (0.0, 1.0)
        img = Image.fromarray(((a - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img.convert("RGBA"))
    return img.convert("RGB")


def resize_rgb(img: Image.Image, size: int) -> np.ndarray:
    """Resize to size x size (bilinear, no crop) and return an (size, size, 3) uint8 array."""
    return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def too_large(width: int, height: int) -> str:
    return (f"image too large: {width:,} x {height:,} = {width * height:,} pixels, over the limit of "
            f"{MAX_PIXELS:,} pixels")


def _name(src) -> str:
    return str(src) if isinstance(src, (str, Path)) else "upload"


@contextmanager
def _open_checked(src, name: str) -> Iterator[Image.Image]:
    """Open an image lazily and refuse it by its header size before anything is decoded."""
    fh = io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src
    with Image.open(fh, formats=READ_FORMATS) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise LabError(f"{name}: {too_large(w, h)}")
        yield img


def load_image(src: str | Path | bytes | BinaryIO, size: int) -> np.ndarray:
    """Read a file path, bytes or file object; raise LabError with the reason if it is not a usable image.

    The pixel count is checked from the header, before anything is decoded; only the first frame of an
    animation or a multi-page file is used. Any failure of the decoder (truncated, corrupt, or a file that is
    not an image at all) becomes a LabError: hostile input can never crash the caller.
    """
    name = _name(src)
    try:
        with _open_checked(src, name) as img:
            w, h = img.size
            if w < 1 or h < 1:
                raise LabError(f"{name}: not a readable image (it has no pixels)")
            img.load()
            return resize_rgb(to_rgb(img), size)
    except LabError:
        raise
    except Image.DecompressionBombError as e:
        raise LabError(f"{name}: image too large (over {MAX_PIXELS:,} pixels)") from e
    except UnidentifiedImageError as e:
        raise LabError(f"{name}: not a readable image (not a format PIL reads, or not an image at all)") from e
    except MemoryError as e:
        raise LabError(f"{name}: not a readable image (too large to decode in memory)") from e
    except Exception as e:  # noqa: BLE001 - truncated or corrupt data makes decoders raise all kinds of errors
        raise LabError(f"{name}: not a readable image ({type(e).__name__ + ': ' if not isinstance(e, OSError) else ''}"
                       f"{e})") from e


def thumbnail(src: bytes | str | Path, max_side: int = 320) -> np.ndarray:
    """A small RGB preview (aspect ratio kept) of an image, with the same checks as load_image; LabError if unusable."""
    name = _name(src)
    try:
        with _open_checked(src, name) as img:
            img.draft("RGB", (max_side, max_side))        # JPEG: decode at a reduced scale
            img.load()
            img = to_rgb(img)
            img.thumbnail((max_side, max_side), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except LabError:
        raise
    except Exception as e:  # noqa: BLE001
        raise LabError(f"{name}: not a readable image ({e})") from e


def resize_array(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 batch (N, H, W) or (N, H, W, C) to (N, size, size, 3) RGB."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:3] == (size, size) and images.shape[-1] == 3:
        return images.astype(np.uint8, copy=False)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, a in enumerate(images):
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        out[i] = resize_rgb(to_rgb(img), size)
    return out
