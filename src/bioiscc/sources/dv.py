"""DeltaVision (DV, R3D) files: mrc reads the header, each plane is one positioned read.

DV pixels are stored uncompressed after the header: one Y×X plane after the other, the planes in the
file's sequence order (mrc's `DVFile.axes`, e.g. "CTZYX"). mrc maps the whole file; here its map is
only used to learn where the pixels start and then dropped, and every plane is read with `os.pread`
into memory of its own, so the memory a walk needs is a plane, whatever the file's size. (Mapped
pages that were read count as resident memory until the map is closed: reading through the map
would grow with the file.)

Planes keep the file's native orientation, as mrc and bioio-dv give them (Bio-Formats shows them
flipped in Y). A file shorter than its header says is an error, never a smaller image.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SceneError, describe, import_reader
from ..scene import SceneInfo, SceneReader, Source, make_dims

SCENE_NAME = "Image:0"  # the one scene, named as bioio-dv names it
#: planes the walk may read ahead in a thread (positioned reads share no file position)
READAHEAD_PLANES = 2


class DvSource(Source):
    """A DV file: one scene, dimensions and pixel type from mrc's header."""

    format = "dv"
    kind = "bioio"  # a vendor file, opened by its suffix

    def __init__(self, location: str, path: Path) -> None:
        mrc = import_reader(location, "mrc", "dv")
        self.location = location
        self.path = path
        self._version = str(getattr(mrc, "__version__", "?"))
        layout = _read_layout(location, path, mrc)
        self.axes, self.shape, self.dtype, self.offset = layout
        self.plane_bytes = self.shape[-1] * self.shape[-2] * self.dtype.itemsize
        end = self.offset + math.prod(self.shape[:-2]) * self.plane_bytes
        size = path.stat().st_size
        if end > size:
            raise InputError(
                location, f"truncated DV file: its pixels end at byte {end}, the file has {size}"
            )
        if not all(self.shape):
            raise InputError(location, f"DV file without pixels (dimensions {self.axes} {self.shape})")
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise InputError(location, f"cannot be read: {exc.strerror or exc}") from exc

    @property
    def reader_name(self) -> str:
        return f"mrc {self._version}"

    def scenes(self) -> list[SceneInfo]:
        sizes = dict(zip(self.axes, self.shape, strict=True))
        return [SceneInfo(index=0, name=SCENE_NAME, dims=make_dims(sizes), dtype=str(self.dtype))]

    def open_scene(self, info: SceneInfo) -> SceneReader:
        if self._fd is None:
            raise SceneError("the file is closed")
        return DvScene(info, self._fd, self.axes, self.shape, self.dtype, self.offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_layout(location: str, path: Path, mrc: Any) -> tuple[str, tuple[int, ...], np.dtype, int]:
    """Axes, shape, pixel type and pixel offset, from mrc's header; its memory map is closed at once."""
    if not mrc.DVFile.is_supported_file(str(path)):
        raise InputError(location, "not a readable DV file: no DeltaVision id in its header")
    try:
        dv = mrc.DVFile(str(path))
    except Exception as exc:
        # the DV id is there, the rest of the header or the pixels mrc maps are not: a short file
        size = path.stat().st_size
        cause = (
            "its header describes more pixels than the file holds"
            if "mmap length is greater than file size" in str(exc)
            else describe(exc)
        )
        raise InputError(location, f"truncated or corrupt DV file ({size} bytes): {cause}") from exc
    try:
        return str(dv.axes), tuple(int(n) for n in dv.shape), np.dtype(dv.dtype), int(dv.data.offset)
    except Exception as exc:
        raise InputError(location, f"not a readable DV file: {describe(exc)}") from exc
    finally:
        dv.close()


class DvScene:
    """Plane (t, c, z) is `plane_bytes` read at its offset in the file's plane order."""

    readahead_planes = READAHEAD_PLANES
    chunk_rows = None  # any rows can be read: the pixels are not chunked

    def __init__(
        self, info: SceneInfo, fd: int, axes: str, shape: tuple[int, ...], dtype: np.dtype, offset: int
    ) -> None:
        self.info = info
        self.fd = fd
        self.outer_axes = axes[:-2]
        self.outer_shape = shape[:-2]
        self.rows, self.columns = shape[-2], shape[-1]
        self.dtype = dtype
        self.offset = offset
        self.row_bytes = self.columns * dtype.itemsize
        self.buffer: np.ndarray | None = None
        self.decoded_bytes = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        return self.read_rows(t, c, z, extra, 0, self.rows)

    def read_transient(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        """Like `read`, into one reused buffer (valid until the next call)."""
        if self.buffer is None:
            self.buffer = np.empty((self.rows, self.columns, 1), dtype=self.dtype)
        return self._read_into(self.buffer, t, c, z, 0)

    def read_rows(self, t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of a plane as (rows, X, 1): one positioned read."""
        out = np.empty((max(0, y1 - y0), self.columns, 1), dtype=self.dtype)
        return self._read_into(out, t, c, z, y0)

    def _read_into(self, out: np.ndarray, t: int, c: int, z: int, y0: int) -> np.ndarray:
        position = {"T": t, "C": c, "Z": z}
        plane = int(np.ravel_multi_index([position[a] for a in self.outer_axes], self.outer_shape))
        start = self.offset + (plane * self.rows + y0) * self.row_bytes
        try:
            read_exactly(self.fd, memoryview(out.reshape(-1).view(np.uint8).data), start)
        except OSError as exc:
            raise SceneError(f"plane t={t} c={c} z={z}: {describe(exc)}") from exc
        self.decoded_bytes += out.nbytes
        return out


def read_exactly(fd: int, target: memoryview, offset: int) -> None:
    """Fill `target` from `offset` with positioned reads; a short file is an error, not fewer bytes."""
    done = 0
    while done < len(target):
        got = os.preadv(fd, [target[done:]], offset + done)
        if got == 0:
            raise OSError(f"unexpected end of file at byte {offset + done} (the file was truncated)")
        done += got
