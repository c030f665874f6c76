"""Decode any image PIL reads into RGB uint8 at a square size, the one way every variant sees pixels."""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .errors import LabError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MAX_PIXELS = 64_000_000  # PIL's decompression-bomb guard for a single image
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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


def load_image(src: str | Path | bytes | BinaryIO, size: int) -> np.ndarray:
    """Read a file path, bytes or file object; raise LabError with the reason if it is not a usable image."""
    name = str(src) if isinstance(src, (str, Path)) else "upload"
    try:
        fh = io.BytesIO(src) if isinstance(src, bytes) else src
        with Image.open(fh) as img:
            img.load()
            return resize_rgb(to_rgb(img), size)
    except Image.DecompressionBombError as e:
        raise LabError(f"{name}: image too large (over {MAX_PIXELS:,} pixels)") from e
    except (OSError, ValueError, SyntaxError) as e:  # PIL's UnidentifiedImageError is an OSError
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
