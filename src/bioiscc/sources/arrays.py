"""Reading planes from a chunked N-D array (zarr, tifffile's zarr view) with each chunk decoded once.

The walk visits Z outermost and C, T, extras inside it. A chunk that spans several Z planes is
needed again at each of those Z, after every other (C, T, extra) block has been visited. So the
reader keeps one *block* (the chunk-aligned range of the non-plane axes, full Y and X) per
(C, T, extra) chunk position until the walk leaves its Z range, within a memory budget. Beyond the
budget blocks are evicted least-recently-used, which costs re-reads, never correctness.

Blocks arrive in bursts (one decode serves many planes), so the walk may read ahead as many planes
as one Z range of blocks yields: the hash then works through them while the next blocks decode.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import SceneError, describe
from ..scene import SceneInfo, plane_position

PLANE_AXES = ("Y", "X", "S")
STANDARD_AXES = ("T", "C", "Z", "Y", "X", "S")
DEFAULT_CACHE_MB = 1024
#: at most this many bytes of planes are read ahead of the hash
READAHEAD_BYTES = 256 * 1024 * 1024


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
        self.blocks: OrderedDict[tuple[int, ...], np.ndarray | BlockOfPlanes] = OrderedDict()
        self.capacity = self._capacity()
        self.decoded_bytes = 0
        self.z_axis = axes.index("Z") if "Z" in axes and axes.index("Z") in self.outer else None
        self.readahead_planes = self._readahead()
        self.spares: list[np.ndarray] = []  # evicted blocks, decoded into again (transient reads)

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

    def _readahead(self) -> int:
        """Planes one Z range of blocks yields in the walk, within READAHEAD_BYTES."""
        depth = self.block_extent[self.z_axis] if self.z_axis is not None else 1
        planes = depth * self.info.planes // max(1, self.info.dims["Z"])
        return max(2, min(planes, READAHEAD_BYTES // max(1, self.info.plane_bytes)))

    def _position(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> dict[str, int]:
        return plane_position(t, c, z, self.extra_axes, extra)

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        return self._plane(t, c, z, extra, reuse=False)

    @property
    def rows_decode_once(self) -> bool:
        """True when `read_rows` decodes each chunk once per walk: chunks hold one plane each (a
        chunk spanning several planes would be decoded again for each; the walk then reads whole
        planes through the block cache)."""
        return all(self.block_extent[i] == 1 for i in self.outer)

    @property
    def chunk_rows(self) -> int | None:
        """Rows per stored chunk (per shard, for sharded arrays: the unit that is decoded)."""
        chunks = getattr(self.array, "shards", None) or getattr(self.array, "chunks", None)
        return int(chunks[self.axes.index("Y")]) if chunks else None

    def read_rows(self, t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of a plane as (rows, X, S), sliced from the array (bypasses the block cache)."""
        try:
            return slice_rows(self.array, self.axes, self._position(t, c, z, extra), y0, y1)
        except Exception as exc:
            raise SceneError(f"rows {y0}-{y1} of plane t={t} c={c} z={z}: {describe(exc)}") from exc

    def read_transient(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        """Like `read`, but an evicted block's memory may be decoded into (valid until the next call)."""
        return self._plane(t, c, z, extra, reuse=True)

    def read_owned(
        self, t: int, c: int, z: int, extra: tuple[int, ...], new_array: Callable[..., np.ndarray]
    ) -> np.ndarray:
        """Like `read`, for a caller that hands planes on (bioiscc.handoff). A block of a Zarr array
        read from its chunk files is decoded into one array per plane from `new_array(shape,
        dtype)`, which is never written again (read-only once decoded). A plane whose memory is not
        all of such an array (a block read earlier by `read_transient`, other arrays) is as from
        `read_transient`: valid until the next call."""
        if not hasattr(self.array, "read_into"):
            return self.read_transient(t, c, z, extra)
        return self._plane(t, c, z, extra, reuse=False, new_array=new_array)

    def _plane(
        self,
        t: int,
        c: int,
        z: int,
        extra: tuple[int, ...],
        reuse: bool,
        new_array: Callable[..., np.ndarray] | None = None,
    ) -> np.ndarray:
        pos = self._position(t, c, z, extra)
        index = {i: pos[self.axes[i]] for i in self.outer}
        key = tuple(index[i] // self.block_extent[i] for i in self.outer)
        block = self.blocks.get(key)
        if block is None:
            self._evict(z, reuse)
            spare = self.spares.pop() if self.spares and reuse else None
            block = self._read_block(key, spare, new_array)
            self.blocks[key] = block
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

    def _evict(self, z: int, reuse: bool) -> None:
        """Make room before decoding: blocks the walk has passed in Z, then least recently used.

        Z is the outermost loop of the walk, so a block whose Z range ends at or before `z` is never
        needed again. Evicting before the decode keeps at most `capacity` blocks in memory.
        """
        if self.z_axis is not None:
            position = self.outer.index(self.z_axis)
            extent = self.block_extent[self.z_axis]
            for key in [k for k in self.blocks if (k[position] + 1) * extent <= z]:
                self._drop(key, reuse)
        while self.blocks and len(self.blocks) >= self.capacity:
            self._drop(next(iter(self.blocks)), reuse)

    def _drop(self, key: tuple[int, ...], reuse: bool) -> None:
        block = self.blocks.pop(key)
        if reuse and isinstance(block, np.ndarray) and len(self.spares) < self.capacity:
            self.spares.append(block)  # decoded into next: no fresh allocation, no page faults

    def _read_block(
        self,
        key: tuple[int, ...],
        spare: np.ndarray | None = None,
        new_array: Callable[..., np.ndarray] | None = None,
    ) -> Any:
        selection: list[slice] = []
        for axis, n in enumerate(self.shape):
            if axis in self.block_extent:
                k = key[self.outer.index(axis)]
                extent = self.block_extent[axis]
                selection.append(slice(k * extent, min((k + 1) * extent, n)))
            else:
                selection.append(slice(None))
        try:
            block = self._decode(tuple(selection), spare, new_array)
        except Exception as exc:
            where = " ".join(
                f"{self.axes[axis]}={sel.start}..{sel.stop - 1}"
                for axis, sel in enumerate(selection)
                if axis in self.block_extent
            )
            raise SceneError(f"cannot decode the chunk(s) at {where}: {describe(exc)}") from exc
        self.decoded_bytes += block.nbytes
        return block

    def _decode(
        self,
        selection: tuple[slice, ...],
        spare: np.ndarray | None,
        new_array: Callable[..., np.ndarray] | None = None,
    ) -> Any:
        """The block at `selection`, decoded into `spare` when it fits and the array is zarr's, or
        one array per plane from `new_array` (`read_owned`)."""
        shape = tuple(len(range(*sel.indices(n))) for sel, n in zip(selection, self.shape, strict=True))
        if hasattr(self.array, "read_into"):  # chunk files read without zarr (`zarr_folder`)
            # Big-endian, the byte order of the canonical bytes: the decode threads swap the bytes
            # as they copy each chunk in, and the walk takes the planes without another copy.
            dtype = self.array.dtype.newbyteorder(">") if self.array.dtype.itemsize > 1 else self.array.dtype
            out: Any = spare
            if new_array is not None:
                out = BlockOfPlanes(shape, self.outer, dtype, new_array)
            elif out is None or out.shape != shape or out.dtype != dtype:
                out = np.empty(shape, dtype=dtype)
            self.array.read_into(selection, out)
            if isinstance(out, BlockOfPlanes):
                out.freeze()  # its planes may be handed to the hash: never written again
            return out
        if spare is not None and spare.shape == shape and spare.dtype == self.array.dtype:
            out = _zarr_buffer(self.array, spare)
            if out is not None:
                self.array.get_basic_selection(selection, out=out)
                return spare
        return np.asarray(self.array[selection])


class BlockOfPlanes:
    """A block held as one array per plane (per index of its non-plane axes), each from
    `new_array(shape, dtype)`, so that each plane's memory can be handed on alone (bioiscc.handoff).

    It does what reading a block needs of an array: `shape`, `dtype`, `nbytes`, assigning to a
    region given as slices (or to `...`), and taking a plane with integers for the non-plane axes.
    """

    def __init__(
        self, shape: tuple[int, ...], outer: Sequence[int], dtype: Any, new_array: Callable[..., np.ndarray]
    ) -> None:
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(shape) * self.dtype.itemsize
        self.outer = list(outer)
        self.inner = [axis for axis in range(len(shape)) if axis not in self.outer]
        plane_shape = tuple(shape[axis] for axis in self.inner)
        self.planes = {
            index: new_array(plane_shape, self.dtype)
            for index in np.ndindex(*(shape[axis] for axis in self.outer))
        }

    def __setitem__(self, key: Any, value: Any) -> None:
        if key is Ellipsis:
            for plane in self.planes.values():
                plane[...] = value
            return
        value = np.asarray(value)
        ranges = [range(*key[axis].indices(self.shape[axis])) for axis in self.outer]
        inner_key = tuple(key[axis] for axis in self.inner)
        for offsets in np.ndindex(*map(len, ranges)):
            index = tuple(r[o] for r, o in zip(ranges, offsets, strict=True))
            self.planes[index][inner_key] = value if value.ndim == 0 else value[self._within(offsets)]

    def freeze(self) -> None:
        """Make every plane read-only: a write after the block was read raises."""
        for plane in self.planes.values():
            plane.flags.writeable = False

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        return self.planes[tuple(key[axis] for axis in self.outer)][tuple(key[axis] for axis in self.inner)]

    def _within(self, offsets: tuple[int, ...]) -> tuple[Any, ...]:
        """The index of one plane's part in a value that spans the region's non-plane axes."""
        place = dict(zip(self.outer, offsets, strict=True))
        return tuple(place.get(axis, slice(None)) for axis in range(len(self.shape)))


def _zarr_buffer(array: Any, spare: np.ndarray) -> Any | None:
    """`spare` as an output buffer zarr 3 decodes into, or None for any other array."""
    try:
        import zarr
        from zarr.core.buffer import cpu
    except ImportError:
        return None
    return cpu.NDBuffer.from_numpy_array(spare) if isinstance(array, zarr.Array) else None


def slice_rows(array: Any, axes: Sequence[str], position: dict[str, int], y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of the plane of `array` at `position` (a missing axis at 0), as (rows, X, S)."""
    selection: list[int | slice] = []
    for axis in axes:
        if axis == "Y":
            selection.append(slice(y0, y1))
        elif axis in ("X", "S"):
            selection.append(slice(None))
        else:
            selection.append(position.get(axis, 0))
    rows = np.asarray(array[tuple(selection)])
    kept = [a for a in axes if a in PLANE_AXES]
    rows = np.transpose(rows, [kept.index(a) for a in PLANE_AXES if a in kept])
    return rows if rows.ndim == 3 else rows[:, :, np.newaxis]
