"""Reducing full-resolution planes to small grids, band by band, with results that never depend on I/O.

Two reductions (docs/views.md, sections 3 and 6):

- *binning*: a Y x X plane becomes a grid of ceil(Y/f) x ceil(X/f) cells, f = ceil(max(Y, X) / 512);
  each cell is the mean of the finite pixels of its f x f block (the last row and column of blocks
  may be partial). The rows may arrive in any portions (row bands of a plane too large for memory,
  which is never loaded whole); they are binned a whole block row at a time and each cell is summed
  in one fixed order (`band_sums`), so the cell values never depend on how the rows were delivered.
- *32 x 32 area average*: an 8-bit image becomes the 1024 gray values ISCC-IMAGE hashes. It is
  computed with integer weights, so it is exact and identical on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..scene import SceneReader

#: The long side of a binned grid is at most this many cells (and the view PNGs at most this wide).
WORKING_SIDE = 512
#: The side of the image ISCC-IMAGE hashes.
CODE_SIDE = 32
#: A plane larger than this is read in row bands when its reader can deliver them.
BAND_PLANE_BYTES = 128 * 1024 * 1024
#: Target size of one row band.
BAND_BYTES = 32 * 1024 * 1024
#: A band may grow to one whole chunk row up to this size (so that each chunk is decoded once).
CHUNK_ROW_LIMIT = 256 * 1024 * 1024

#: Returns stored rows [y0, y1) of one plane as a (rows, X, S) array.
RowReader = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Grid:
    """A binned plane: the mean of the finite pixels of each cell (NaN where a cell has none)."""

    mean: np.ndarray
    finite_fraction: float

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.mean.shape[0]), int(self.mean.shape[1])


def bin_factor(height: int, width: int, side: int = WORKING_SIDE) -> int:
    """The block size f that brings the long side of a plane to at most `side` cells."""
    return max(1, math.ceil(max(height, width) / side))


def grid_shape(height: int, width: int, side: int = WORKING_SIDE) -> tuple[int, int]:
    factor = bin_factor(height, width, side)
    return math.ceil(height / factor), math.ceil(width / factor)


def summable(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int, type]:
    """Pixel values ready to be summed, the mask of finite ones (None: all), a scale, the sum type.

    Integers up to 32 bits and booleans are summed exactly in int64. 64-bit integers become float64.
    Complex pixels become their magnitude. Floats keep their value; non-finite ones are masked (as 0).
    float64 values are multiplied by 2**-scale (exact) so that the sum of a block of huge values
    cannot overflow.
    """
    if values.dtype.kind == "b":  # != 0: a stored byte other than 00/01 still counts as 1
        return np.not_equal(values.view(np.uint8), 0).view(np.uint8), None, 0, np.int64
    if values.dtype.kind in "ui" and values.dtype.itemsize <= 4:
        return values, None, 0, np.int64
    if values.dtype.kind in "ui":
        return values.astype(np.float64), None, 0, np.float64
    floats = np.abs(values) if values.dtype.kind == "c" else values
    if floats.dtype.itemsize > 8 or floats.dtype.kind != "f":
        floats = floats.astype(np.float64)
    finite = np.isfinite(floats)
    mask = None if finite.all() else finite
    if mask is not None:
        floats = np.where(mask, floats, floats.dtype.type(0))
    scale = 0
    if floats.dtype.itemsize == 8:
        scale = 64
        floats = np.ldexp(floats, -scale)
    return floats, mask, scale, np.float64


def strided_sum(values: np.ndarray, factor: int, axis: int, dtype: type) -> np.ndarray:
    """Sums of consecutive groups of `factor` entries along `axis` (0 or 1; the last group may be short).

    The entries of a group are added in order, offset 0 first, element-wise: a fixed order that
    depends only on the group's own values.
    """
    size = values.shape[axis]
    first = values[::factor] if axis == 0 else values[:, ::factor]
    total: np.ndarray = first.astype(dtype)  # offset 0 has a member in every group
    for offset in range(1, min(factor, size)):
        if axis == 0:
            part = values[offset::factor]
            total[: part.shape[0]] += part
        else:
            part = values[:, offset::factor]
            total[:, : part.shape[1]] += part
    return total


def _fits_int32(dtype: np.dtype, factor: int) -> bool:
    """True when `factor` pixels of this integer type always sum within int32 (faster than int64)."""
    return dtype.kind in "bui" and dtype.itemsize <= 2 and factor < 2**15


def band_sums(band: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-cell sums and finite counts of a band of whole block rows (its first row starts a block).

    Each cell is summed in one fixed order: row by row within its block, then column by column
    (`strided_sum`), so the result depends only on the block's own pixels, never on the band height,
    the memory layout or how the rows were stored.
    """
    values, mask, scale, dtype = summable(band)
    row_dtype = np.int32 if _fits_int32(values.dtype, factor) else dtype
    sums = strided_sum(strided_sum(values, factor, 0, row_dtype), factor, 1, dtype).astype(np.float64)
    if mask is None:
        heights = np.minimum(factor, band.shape[0] - np.arange(0, band.shape[0], factor))
        widths = np.minimum(factor, band.shape[1] - np.arange(0, band.shape[1], factor))
        counts = np.multiply.outer(heights, widths).astype(np.int64)
    else:
        counts = strided_sum(strided_sum(mask, factor, 0, np.int64), factor, 1, np.int64)
    return sums, counts, scale


class GridBuilder:
    """Accumulates the rows of one plane, in any portions, into its `Grid`.

    Rows are binned a whole block row at a time; rows of an incomplete block wait for the next
    portion. So the result never depends on how the rows were portioned.
    """

    def __init__(self, height: int, width: int) -> None:
        self.height = height
        self.width = width
        self.factor = bin_factor(height, width)
        rows, cols = grid_shape(height, width)
        self.sums = np.zeros((rows, cols), dtype=np.float64)
        self.counts = np.zeros((rows, cols), dtype=np.int64)
        self.scale = 0
        self.done_rows = 0
        self.pending: np.ndarray | None = None

    def add(self, rows: np.ndarray) -> None:
        """Add the next rows of the plane (a 2D array of any height)."""
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"rows of a {self.height}x{self.width} plane, got shape {rows.shape}")
        waiting = 0 if self.pending is None else self.pending.shape[0]
        if self.done_rows + waiting + rows.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows of the plane")
        if self.pending is not None:
            # complete the waiting block from the head of `rows`; only that block is copied
            block_rows = min(self.factor, self.height - self.done_rows)
            block = np.concatenate([self.pending, rows[: block_rows - waiting]])
            rows = rows[block_rows - waiting :]
            self.pending = None
            if block.shape[0] < block_rows:
                self.pending = block
                return
            self._bin(block)
        ends_plane = self.done_rows + rows.shape[0] == self.height
        whole = rows.shape[0] if ends_plane else rows.shape[0] // self.factor * self.factor
        if whole < rows.shape[0]:
            self.pending = rows[whole:].copy()
        if whole:
            self._bin(rows[:whole])

    def _bin(self, band: np.ndarray) -> None:
        sums, counts, self.scale = band_sums(band, self.factor)
        first = self.done_rows // self.factor
        self.sums[first : first + sums.shape[0]] = sums
        self.counts[first : first + sums.shape[0]] = counts
        self.done_rows += band.shape[0]

    def result(self) -> Grid:
        if self.done_rows != self.height:
            raise ValueError(f"got {self.done_rows} of {self.height} rows")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sums / self.counts  # 0 / 0 is NaN: a cell without a finite pixel
        if self.scale:
            mean = np.ldexp(mean, self.scale)
        finite = float(self.counts.sum()) / float(self.height * self.width)
        return Grid(mean=mean, finite_fraction=finite)


def bin_plane(plane: np.ndarray) -> Grid:
    """The grid of a 2D plane that is in memory."""
    builder = GridBuilder(int(plane.shape[0]), int(plane.shape[1]))
    builder.add(plane)
    return builder.result()


@dataclass(frozen=True)
class RowSource:
    """Rows of one stored plane: `read(y0, y1)` gives (rows, X, S); `chunk_rows` is the storage's
    row granularity (a chunk's or strip's height), when known."""

    read: RowReader
    chunk_rows: int | None = None


def band_rows(rows: RowSource, height: int, row_bytes: int, budget: int | None = None) -> int:
    """Rows to read at a time: whole chunk rows (each stored chunk decoded once) within `budget` bytes,
    at least one chunk row unless that exceeds CHUNK_ROW_LIMIT (then `budget`-sized bands, which decode
    those chunks more than once, but keep memory bounded)."""
    budget = BAND_BYTES if budget is None else budget
    by_budget = max(1, budget // max(1, row_bytes))
    chunk = rows.chunk_rows
    if chunk and chunk * row_bytes <= CHUNK_ROW_LIMIT:
        return min(height, max(1, by_budget // chunk) * chunk)
    return min(height, by_budget)


def bands(height: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, height, step):
        yield start, min(height, start + step)


# --- row bands from the readers ---------------------------------------------------------------


def row_source(reader: SceneReader, t: int, c: int, z: int, extra: tuple[int, ...]) -> RowSource | None:
    """A way to read rows of one stored plane without reading it whole, or None.

    Readers offer it as the optional `read_rows(t, c, z, extra, y0, y1) -> (rows, X, S)` with
    `chunk_rows` (bioiscc.scene.SceneReader): OME-Zarr and TIFF do. Other readers (bioio plugins)
    have no row access: callers then fall back to `read()`.
    """
    method = getattr(reader, "read_rows", None)
    if not callable(method):
        return None
    return RowSource(lambda y0, y1: method(t, c, z, extra, y0, y1), getattr(reader, "chunk_rows", None))


# --- the 32 x 32 reduction --------------------------------------------------------------------


def area_weights(size: int, side: int = CODE_SIDE) -> np.ndarray:
    """Integer overlap weights (side x size) of `side` equal output cells over `size` input pixels.

    In units where an input pixel is `side` long and an output cell `size` long, weight[i, k] is the
    length of the overlap of output cell i and input pixel k; each row sums to `size`.
    """
    starts = np.arange(side, dtype=np.int64) * size
    ends = starts + size
    pixel_starts = np.arange(size, dtype=np.int64) * side
    pixel_ends = pixel_starts + side
    overlap = np.minimum(ends[:, None], pixel_ends[None, :]) - np.maximum(
        starts[:, None], pixel_starts[None, :]
    )
    return np.clip(overlap, 0, None)


def reduce_to_code_side(gray: np.ndarray, side: int = CODE_SIDE) -> np.ndarray:
    """The side x side area average of an 8-bit gray image, rounded half up, computed exactly.

    Every product and partial sum is an integer below 2**53, so float64 arithmetic is exact here in
    any summation order (BLAS may reorder it freely).
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"an 8-bit gray image, got {gray.dtype} {gray.shape}")
    height, width = gray.shape
    rows = area_weights(height, side).astype(np.float64)
    cols = area_weights(width, side).astype(np.float64)
    total = rows @ gray.astype(np.float64) @ cols.T
    denominator = height * width
    exact = total.astype(np.int64)
    return ((exact * 2 + denominator) // (2 * denominator)).astype(np.uint8)
