"""8-bit normalisation of binned grids (docs/views.md, section 4).

A grid is stretched between two order statistics of its finite cells, the 0.1 % and 99.9 % ones,
and mapped linearly to 0..255. Cells without a finite pixel are black. A grid without contrast is
*flat*: its finite cells are mid-gray (128); a grid without any finite cell is mid-gray everywhere.
So a view is never silently black, and a flat view is reported as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Order statistics of the stretch: the k-th smallest and k-th largest, k = (n - 1) // 1000.
TAIL_DIVISOR = 1000
#: Gray level of the finite cells of a flat grid, and of a grid without finite cells.
FLAT_LEVEL = 128
#: ITU-R BT.601 luma weights in thousandths (as Pillow's convert("L") uses them).
LUMA_WEIGHTS = (299, 587, 114)


@dataclass(frozen=True)
class Stretch:
    """The value range mapped to 0..255; `flat` when it is empty (no contrast or no finite cell)."""

    low: float | None
    high: float | None
    flat: bool


def stretch_of(mean: np.ndarray) -> Stretch:
    """The stretch limits of a grid: its 0.1 % and 99.9 % order statistics (min/max if they meet)."""
    valid = np.isfinite(mean)
    finite = mean.reshape(-1).copy() if valid.all() else mean[valid]
    count = int(finite.size)
    if count == 0:
        return Stretch(low=None, high=None, flat=True)
    tail = (count - 1) // TAIL_DIVISOR
    finite.partition([tail, count - 1 - tail])
    low, high = float(finite[tail]), float(finite[count - 1 - tail])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    return Stretch(low=low, high=high, flat=high <= low)


def to_uint8(mean: np.ndarray, stretch: Stretch) -> np.ndarray:
    """Map a grid to 8 bits: round(255 * (clip(v, low, high) - low) / (high - low)), half up.

    The arithmetic runs on halved values (an exact power-of-two scaling), so that the range of
    float64 extremes cannot overflow.
    """
    if stretch.low is None or stretch.high is None:
        return np.full(mean.shape, FLAT_LEVEL, dtype=np.uint8)
    finite = np.isfinite(mean)
    if stretch.flat:
        return np.where(finite, FLAT_LEVEL, 0).astype(np.uint8)
    low, high = np.ldexp(stretch.low, -1), np.ldexp(stretch.high, -1)
    with np.errstate(invalid="ignore"):
        scaled = (np.clip(np.ldexp(mean, -1), low, high) - low) / (high - low) * 255.0
        levels = np.floor(scaled + 0.5)
    return np.where(finite, levels, 0.0).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """8-bit gray of an 8-bit RGB image: (299 R + 587 G + 114 B + 500) // 1000, exactly."""
    red, green, blue = (rgb[:, :, i].astype(np.uint32) for i in range(3))
    weights = LUMA_WEIGHTS
    return ((weights[0] * red + weights[1] * green + weights[2] * blue + 500) // 1000).astype(np.uint8)


def composite(channels: Sequence[np.ndarray]) -> np.ndarray:
    """An RGB image of one to three 8-bit channels: red, green, blue in order (blue black for two)."""
    if not 1 <= len(channels) <= 3:
        raise ValueError(f"a composite combines 1 to 3 channels, got {len(channels)}")
    if len(channels) == 1:
        return channels[0]
    planes = list(channels) + [np.zeros_like(channels[0])] * (3 - len(channels))
    return np.stack(planes, axis=-1)


def gray_of(image: np.ndarray) -> np.ndarray:
    """The 8-bit gray image ISCC-IMAGE hashes: the image itself, or the luma of an RGB image."""
    return image if image.ndim == 2 else luma(image)


def entropy_bits(image: np.ndarray) -> float:
    """Shannon entropy (bits per pixel) of the histogram of an 8-bit image."""
    counts = np.bincount(image.reshape(-1), minlength=256).astype(np.float64)
    probabilities = counts[counts > 0] / counts.sum()
    return float(-(probabilities * np.log2(probabilities)).sum()) + 0.0
