"""Every image mode PIL reads becomes RGB uint8 at the requested size; unreadable input is a clear error."""
import io

import numpy as np
import pytest
from PIL import Image

from core.errors import LabError
from core.data.images import load_image, resize_array


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "1", "LA"])
def test_modes_become_rgb(mode):
    img = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((30, 40), 40000, np.uint16))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    x = load_image(_png(img, fmt), 16)
    assert x.shape == (16, 16, 3) and x.dtype == np.uint8
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white
        assert 140 < x.mean() < 170


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert (load_image(_png(img), 8) == 255).all()


def test_exif_rotation_is_applied():
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    x = load_image(_png(img, "JPEG", exif=exif.tobytes(), quality=95), 20)
    # displayed upright the image is 20 wide x 40 high with the white half on top
    assert x[:8].mean() > 200 and x[-8:].mean() < 50


def test_corrupt_and_truncated_images_raise_laberror(tmp_path):
    good = _png(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(LabError, match="not a readable image"):
        load_image(b"this is not an image", 8)
    p = tmp_path / "trunc.jpg"
    p.write_bytes(good[: len(good) // 3])
    with pytest.raises(LabError, match="trunc.jpg"):
        load_image(p, 8)


def test_resize_array_grey_batch():
    x = resize_array(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28), 32)
    assert x.shape == (2, 32, 32, 3) and (x[..., 0] == x[..., 2]).all()
