"""Nikon ND2 files read with the `nd2` package directly (`nd2.ND2File`), one stored frame at a time.

bioio-nd2 reads ND2s with the same package but brings bioio, dask, xarray and ome-types with it,
over a second of start-up for a file of any size. This source gives every scene the geometry and
the pixels bioio-nd2's reader object gives it, so that every code is the one the bioio-nd2 path
(`BioioSource(.., "nd2")`) gives:

- **scenes** are the XY positions (P), named as bioio-nd2 names them (the position's name, or
  `XYPos:<index>`; one scene `XYPos:0` without a position loop);
- **dimensions** are nd2's `sizes` without P; a loop nd2 does not know (U) is an extra dimension;
- **a frame** holds every channel of one (P, T, Z, …) position: frame `ravel_multi_index` of the
  position over nd2's loop dimensions, as bioio-nd2 reads it; channel c is one plane of it, with its
  3 RGB samples when nd2 shows S (a frame of 2 or 4 components per channel, which bioio-nd2 cannot
  read, walks every component as a channel, as nd2's `sizes` shows them).

The file is read with `read()` calls, never through a memory map of the whole file (nd2's default):
mapped pages that were read count as resident memory until the map is closed, so the memory a walk
needs would grow with the file, and an array a caller keeps would pin the map. A frame nd2 cannot
find in the file is zeros, as nd2 and bioio-nd2 give it.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SceneError, describe, import_reader
from ..scene import STANDARD_DIMS, SceneInfo, SceneReader, Source, make_dims, plane_position
from .integrity import nd2_damage, nd2_read_frame

POSITION = "P"
#: dimensions inside a frame (nd2's frame coordinates): channel, rows, columns, RGB samples
FRAME_DIMS = ("C", "Y", "X", "S")
#: planes the walk may read ahead in a thread (reads of one file are serialized by a lock)
READAHEAD_PLANES = 2
#: frames kept for the channels after the first: the walk reads all T (and extras) of one channel
#: before the next channel, so the frames of one Z fit when they are this small
FRAME_CACHE_BYTES = 64 * 1024 * 1024


class Nd2Source(Source):
    """An ND2 file opened once with nd2; its XY positions as scenes."""

    format = "nd2"
    kind = "bioio"  # a vendor file, opened by its suffix

    def __init__(self, location: str, path: Path) -> None:
        nd2 = import_reader(location, "nd2", "nd2")
        self.location = location
        self.path = path
        self._version = str(getattr(nd2, "__version__", "?"))
        self.lock = threading.Lock()
        handle = UnmappedFile(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.nd2: Any = nd2.ND2File(handle)
                self.layout = FrameLayout.of(self.nd2)
                self.names = position_names(self.nd2.experiment)
                damage = nd2_damage(self.nd2, path.stat().st_size)
        except Exception as exc:
            handle.close()
            raise InputError(location, f"not a readable ND2 file: {_nd2_cause(exc)}") from exc
        if damage:  # nd2 would read the frames past the end of the file as zeros
            self.nd2.close()
            raise InputError(location, damage)
        self._closed = False

    @property
    def reader_name(self) -> str:
        return f"nd2 {self._version}"

    def scenes(self) -> list[SceneInfo]:
        return [self._describe(index, name) for index, name in enumerate(self.names)]

    def _describe(self, index: int, name: str) -> SceneInfo:
        try:
            self.layout.check_position(index)
        except IndexError as exc:
            return SceneInfo(index=index, name=name, error=describe(exc))
        sizes = self.layout.scene_sizes
        return SceneInfo(
            index=index,
            name=name,
            dims=make_dims({d: n for d, n in sizes.items() if d in STANDARD_DIMS}),
            extra_dims={d: n for d, n in sizes.items() if d not in STANDARD_DIMS},
            dtype=str(self.layout.dtype),
        )

    def open_scene(self, info: SceneInfo) -> SceneReader:
        if self._closed:
            raise SceneError("the file is closed")
        return Nd2Scene(info, self.nd2, self.layout, self.lock)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self.lock:
                self.nd2.close()


class UnmappedFile(io.RawIOBase):
    """A local file with no `fileno()`, so that nd2 reads it with `read()` rather than mapping it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = io.FileIO(path, "r")
        self.name = str(path)  # nd2 records it as the file's path

    def readinto(self, buffer: Any) -> int:
        return self._file.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()


def position_names(experiment: Any) -> list[str]:
    """The scene names: the points of the first XY position loop, else one `XYPos:0`."""
    for loop in experiment:
        if loop.type == "XYPosLoop":
            return [point.name or f"XYPos:{i}" for i, point in enumerate(loop.parameters.points)]
    return ["XYPos:0"]


class FrameLayout:
    """How the planes of a scene sit in nd2's frames.

    `loops` are nd2's non-frame dimensions with their sizes, in nd2's order (the frame index is the
    position's `ravel_multi_index` over them); `scene_sizes` the dimensions of a scene (nd2's sizes
    without P); `channels` and `components` the raw frame's channel and component counts.
    """

    def __init__(self, sizes: dict[str, int], channels: int, components: int, dtype: np.dtype) -> None:
        self.sizes = sizes
        self.loops = {d: n for d, n in sizes.items() if d not in FRAME_DIMS}
        self.scene_sizes = {d: n for d, n in sizes.items() if d != POSITION}
        self.channels = channels
        self.components = components
        self.dtype = dtype
        #: whether nd2 shows the components as RGB samples (S) rather than as channels
        self.rgb = "S" in sizes

    @classmethod
    def of(cls, nd2file: Any) -> FrameLayout:
        attributes = nd2file.attributes
        return cls(
            {str(d): int(n) for d, n in nd2file.sizes.items()},
            int(attributes.channelCount or 1),
            int(nd2file.components_per_channel),
            np.dtype(nd2file.dtype),
        )

    def check_position(self, position: int) -> None:
        """bioio-nd2's check: a scene beyond the position loop (or any but 0 without one)."""
        available = self.sizes.get(POSITION, 1)
        if position >= available:
            raise IndexError(f"Position {position} is out of range. Only {available} positions available")

    def frame_index(self, scene: int, position: dict[str, int]) -> int:
        """The sequence index of the frame that holds the plane at `position` of scene `scene`."""
        index = 0
        for dim, size in self.loops.items():
            index = index * size + (scene if dim == POSITION else position[dim])
        return index

    def plane(self, frame: np.ndarray, channel: int) -> np.ndarray:
        """Channel `channel` of a frame as (Y, X, S)."""
        height, width = self.sizes.get("Y", 1), self.sizes.get("X", 1)
        raw = frame.reshape(self.channels, height, width, self.components)
        if self.rgb:
            return raw[channel]
        # components shown as channels (nd2's sizes): channel c is component c % n of channel c // n
        stored, component = divmod(channel, self.components)
        return raw[stored, :, :, component : component + 1]


class Nd2Scene:
    """Plane (t, c, z, extra): a channel of one frame, which nd2 reads whole (kept for the next
    channels while the frames of one Z fit in FRAME_CACHE_BYTES)."""

    readahead_planes = READAHEAD_PLANES
    chunk_rows = None  # a frame is read whole

    def __init__(self, info: SceneInfo, nd2file: Any, layout: FrameLayout, lock: threading.Lock) -> None:
        self.info = info
        self.nd2 = nd2file
        self.layout = layout
        self.lock = lock
        self.extra_dims = list(info.extra_dims)
        self.frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self.decoded_bytes = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        position = plane_position(t, c, z, self.extra_dims, extra)
        index = self.layout.frame_index(self.info.index, position)
        return self.layout.plane(self._frame(index), c)

    def _frame(self, index: int) -> np.ndarray:
        frame = self.frames.get(index)
        if frame is not None:
            return frame
        try:
            with self.lock, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = np.asarray(nd2_read_frame(self.nd2, index))  # compressed: inflated with a cap
        except Exception as exc:
            raise SceneError(f"frame {index}: {describe(exc)}") from exc
        self.decoded_bytes += frame.nbytes
        self.frames[index] = frame
        while len(self.frames) > 1 and len(self.frames) * frame.nbytes > FRAME_CACHE_BYTES:
            self.frames.popitem(last=False)
        return frame


def _nd2_cause(exc: Exception) -> str:
    """nd2's error in words: a cut file lacks the chunk map ND2 keeps at its end (nd2 shows the bytes
    it found there instead)."""
    if "ChunkMap signature" in str(exc):
        return "truncated or corrupt: the chunk map an ND2 file keeps at its end is not there"
    return describe(exc)
