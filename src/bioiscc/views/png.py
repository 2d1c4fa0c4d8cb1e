"""8-bit PNG files of views and thumbnails (Pillow), written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..output import write_atomically

#: Pillow modes a view PNG may have: 8-bit gray, 8-bit RGB.
VIEW_MODES = ("L", "RGB")


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit gray (Y, X) or RGB (Y, X, 3) image."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"a view is 8-bit gray or RGB, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_png(image: np.ndarray, path: Path) -> None:
    """Write a PNG atomically: a reader never sees half a file."""
    write_atomically(encode_png(image), path)


def read_png(path: Path) -> np.ndarray:
    """The pixels of a view PNG: (Y, X) for gray, (Y, X, 3) for RGB; any other mode is refused."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in VIEW_MODES:
            raise ValueError(f"{path}: a view PNG is 8-bit gray or RGB, this one is mode {image.mode}")
        return np.asarray(image, dtype=np.uint8).copy()
