"""CZI pixel types: their numpy dtypes and the B, G, R sample order of the Bgr* types.

Shared by the native CZI source (`czi`), its mosaic reader (`czi_mosaic`) and the bioio-czi path
(`bioio_file`), so that every path puts samples in the same order. Imports nothing but numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: libCZI pixel type (as aicspylibczi names it) -> dtype; the types bioio-czi 3 reads, with its
#: choice of uint8 for "invalid" (subblocks of several pixel types), so that both paths agree
PIXEL_TYPES: dict[str, type[np.generic]] = {
    "gray8": np.uint8,
    "gray16": np.uint16,
    "gray32": np.uint32,
    "gray32float": np.float32,
    "bgr24": np.uint8,
    "bgr48": np.uint16,
    "invalid": np.uint8,
}

#: pixel types whose samples are stored in B, G, R(, A) order
BGR_PIXEL_TYPES = ("bgr24", "bgr48", "bgra32", "bgr96float")


def names_bgr(metadata: Any) -> bool:
    """Whether CZI metadata (an XML element) names a Bgr* pixel type."""
    try:
        types = {e.text.strip().lower() for e in metadata.iter("PixelType") if e.text}
    except Exception:
        return False
    return any(t in BGR_PIXEL_TYPES for t in types)


def to_rgb(plane: np.ndarray, bgr: bool) -> np.ndarray:
    """(Y, X, S) with samples in R, G, B(, A) order."""
    if not bgr or plane.shape[2] < 3:
        return plane
    order = [2, 1, 0] + list(range(3, plane.shape[2]))
    return plane[:, :, order]
