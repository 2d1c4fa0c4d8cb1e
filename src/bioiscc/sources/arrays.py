"""Reading planes from a chunked N-D array (zarr, tifffile's zarr view) with each chunk decoded once.

The walk visits Z outermost and C, T, extras inside it. A chunk that spans several Z planes is
needed again at each of those Z, after every other (C, T, extra) block has been visited. So the
reader keeps one *block* (the chunk-aligned range of the non-plane axes, full Y and X) per
(C, T, extra) chunk position until the walk leaves its Z range, within a memory budget. Beyond the
budget blocks are evicted least-recently-used, which costs re-reads, never correctness.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SceneError, describe
from ..scene import SceneInfo

PLANE_AXES = ("Y", "X", "S")
STANDARD_AXES = ("T", "C", "Z", "Y", "X", "S")
DEFAULT_CACHE_MB = 1024


def cache_budget() -> int:
    """Bytes the block cache may hold (BIOISCC_CACHE_MB, default 1024)."""
    return int(os.environ.get("BIOISCC_CACHE_MB", DEFAULT_CACHE_MB)) * 1024 * 1024


def split_axes(axes: Sequence[str], shape: Sequence[int]) -> tuple[dict[str, int], dict[str, int]]:
    """Standard sizes and extra dimensions (in array order) from axis names and a shape."""
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes!r} do not match shape {tuple(shape)}")
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} name a dimension twice")
    standard = {a: int(n) for a, n in zip(axes, shape, strict=True) if a in STANDARD_AXES}
    extra = {a: int(n) for a, n in zip(axes, shape, strict=True) if a not in STANDARD_AXES}
    return standard, extra


class ChunkedArrayScene:
    """A `SceneReader` over an array with named axes; `read` returns (Y, X, S) planes.

    `axes` names each array dimension: T, C, Z, Y, X, S, or any other name for an extra dimension.
    """

    def __init__(
        self,
        info: SceneInfo,
        array: Any,
        axes: Sequence[str],
        chunks: Sequence[int] | None = None,
    ) -> None:
        self.info = info
        self.array = array
        self.axes = list(axes)
        shape = tuple(int(n) for n in array.shape)
        self.shape = shape
        self.outer = [i for i, a in enumerate(axes) if a not in PLANE_AXES]
        chunk_shape = tuple(chunks) if chunks is not None else tuple(getattr(array, "chunks", shape))
        self.block_extent = {i: max(1, int(chunk_shape[i])) for i in self.outer}
        # Put the plane axes last in Y, X, S order (S added when absent).
        self.plane_perm = [axes.index(a) for a in PLANE_AXES if a in axes]
        self.has_samples = "S" in axes
        self.extra_axes = [a for a in axes if a not in STANDARD_AXES]
        self.blocks: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self.capacity = self._capacity()
        self.decoded_bytes = 0

    def _capacity(self) -> int:
        """Blocks to keep: every (C, T, extra) block of one Z range, if the budget allows."""
        block_bytes = np.dtype(self.array.dtype).itemsize
        for i, n in enumerate(self.shape):
            block_bytes *= self.block_extent.get(i, n)
        needed = 1
        for i in self.outer:
            if self.axes[i] != "Z":
                needed *= math.ceil(self.shape[i] / self.block_extent[i])
        return max(1, min(needed, cache_budget() // max(1, block_bytes)))

    def _position(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> dict[str, int]:
        pos = {"T": t, "C": c, "Z": z}
        pos.update(zip(self.extra_axes, extra, strict=True))
        return pos

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        pos = self._position(t, c, z, extra)
        index = {i: pos[self.axes[i]] for i in self.outer}
        key = tuple(index[i] // self.block_extent[i] for i in self.outer)
        block = self.blocks.get(key)
        if block is None:
            block = self._read_block(key)
            self.blocks[key] = block
            while len(self.blocks) > self.capacity:
                self.blocks.popitem(last=False)
        else:
            self.blocks.move_to_end(key)
        within: list[int | slice] = []
        for axis in range(len(self.axes)):
            if axis in index:
                within.append(index[axis] - key[self.outer.index(axis)] * self.block_extent[axis])
            else:
                within.append(slice(None))
        plane = block[tuple(within)]
        # Remaining axes are the plane axes in array order; bring them to Y, X, S.
        remaining = [a for a in self.axes if a in PLANE_AXES]
        plane = np.transpose(plane, [remaining.index(a) for a in PLANE_AXES if a in remaining])
        if not self.has_samples:
            plane = plane[:, :, np.newaxis]
        return plane

    def _read_block(self, key: tuple[int, ...]) -> np.ndarray:
        selection: list[slice] = []
        for axis, n in enumerate(self.shape):
            if axis in self.block_extent:
                k = key[self.outer.index(axis)]
                extent = self.block_extent[axis]
                selection.append(slice(k * extent, min((k + 1) * extent, n)))
            else:
                selection.append(slice(None))
        try:
            block = np.asarray(self.array[tuple(selection)])
        except Exception as exc:
            where = " ".join(
                f"{self.axes[axis]}={sel.start}..{sel.stop - 1}"
                for axis, sel in enumerate(selection)
                if axis in self.block_extent
            )
            raise SceneError(f"cannot decode the chunk(s) at {where}: {describe(exc)}") from exc
        self.decoded_bytes += block.nbytes
        return block
