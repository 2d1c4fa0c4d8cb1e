"""TIFF and OME-TIFF read with tifffile directly (no bioio, dask or xarray on this path).

Scenes are tifffile's series (for OME-TIFF, the OME images in order); only level 0 of a pyramid is
walked. When every page of a series holds exactly one plane, a plane is one page read. Any other
layout is read through tifffile's chunked zarr view of the series.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SceneError, describe, import_reader, one_line
from ..imagewalk import canonical_dtype
from ..scene import SceneInfo, SceneReader, Source, make_dims, plane_position
from . import tiff_format
from .arrays import PLANE_AXES, ChunkedArrayScene, slice_rows, split_axes
from .integrity import ome_tiff_damage, tiff_page_damage
from .tiff_segments import SegmentDecoder, decodable, page_decodable, segment_rows

# tifffile axis letters that IMAGEWALK treats as extra dimensions keep their letter.
TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.btf", ".tif", ".tiff", ".btf", ".tf8", ".tf2")


class TiffSource(Source):
    kind = "tiff"
    reads_planes_in_bands = True

    def __init__(self, location: str, path: Path) -> None:
        tifffile = import_reader(location, "tifffile", "tifffile")
        self.location = location
        self.path = path
        self._tifffile = tifffile
        self._decoders: weakref.WeakSet[SegmentDecoder] = weakref.WeakSet()
        with _TiffWarnings() as warned:
            try:
                self.tiff = tifffile.TiffFile(path)
                damage = ome_tiff_damage(self.tiff)  # before tifffile lists the planes it lacks
                self.series = [] if damage else list(self.tiff.series)
            except Exception as exc:
                raise InputError(location, f"not a readable TIFF: {describe(exc)}") from exc
            try:
                _check_complete(location, self.tiff, path.stat().st_size)
            except InputError:
                self.tiff.close()
                raise
        if damage:
            self.tiff.close()
            raise InputError(location, damage)
        if warned.messages:
            # tifffile reads on past broken offsets and would describe a different image
            self.tiff.close()
            raise InputError(location, f"corrupt or truncated TIFF: {warned.messages[0]}")
        if not self.series:
            raise InputError(location, "TIFF without images")
        self.format = tiff_format(self.tiff)

    @property
    def reader_name(self) -> str:
        return f"tifffile {self._tifffile.__version__}"

    def scenes(self) -> list[SceneInfo]:
        return [self._describe(index, series) for index, series in enumerate(self.series)]

    def _describe(self, index: int, series: Any) -> SceneInfo:
        name = series.name or f"Image:{index}"
        try:
            standard, extra = split_axes(list(series.axes), series.shape)
        except ValueError as exc:
            return SceneInfo(index=index, name=name, error=str(exc))
        return SceneInfo(
            index=index,
            name=name,
            dims=make_dims(standard),
            extra_dims=extra,
            dtype=str(np.dtype(series.dtype)),
        )

    def open_scene(self, info: SceneInfo) -> SceneReader:
        series = self.series[info.index]
        if _one_plane_per_page(series):
            scene = PageScene(info, series)
            self._decoders.add(scene.segments)  # so that close() unmaps what it mapped
            return scene
        try:
            import zarr

            array = zarr.open_array(series.aszarr(level=0), mode="r")
        except Exception as exc:
            raise SceneError(f"cannot read series {info.index}: {describe(exc)}") from exc
        return ChunkedArrayScene(info, array, list(series.axes))

    def close(self) -> None:
        for decoder in list(self._decoders):
            decoder.close()
        self.tiff.close()


class _TiffWarnings(logging.Handler):
    """Collects what tifffile logs while opening a file: it logs, not raises, on broken offsets."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.logger = logging.getLogger("tifffile")

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(one_line(record.getMessage()))

    def __enter__(self) -> _TiffWarnings:
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.WARNING)
        self.logger.propagate = False
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]


def _check_complete(location: str, tiff: Any, size: int) -> None:
    """A truncated TIFF keeps its first IFDs; its image data then points past the end of the file."""
    try:
        pages = list(tiff.pages)
    except Exception as exc:
        raise InputError(location, f"corrupt or truncated TIFF: {describe(exc)}") from exc
    for page in pages:
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
            if count and offset + count > size:
                raise InputError(
                    location,
                    f"truncated TIFF: image data of page {page.index} ends at byte {offset + count}, "
                    f"the file has {size}",
                )
        if damage := tiff_page_damage(page):
            raise InputError(location, damage)


def _one_plane_per_page(series: Any) -> bool:
    """True when the series is a stack of pages that each hold one (Y, X[, S]) plane."""
    page_axes = series.keyframe.axes
    if not page_axes or set(page_axes) - set(PLANE_AXES) or not series.axes.endswith(page_axes):
        return False
    outer = series.shape[: len(series.shape) - len(page_axes)]
    pages = series.pages
    return len(pages) == math.prod(outer) and all(page is not None for page in pages)


class PageScene:
    """Planes of a one-plane-per-page series: plane (t, c, z, extra) is one page read.

    Each page holds one plane and is decoded once. `decoded_bytes` counts the pixels decoded, as
    ChunkedArrayScene does (the padding of edge tiles is not counted). Compressed pages are decoded
    by `SegmentDecoder` into big-endian planes (the canonical bytes, without a second pass).
    """

    #: planes the walk may read ahead in a thread (tifffile reads under its own file lock)...
    readahead_planes = 2
    #: ...but none when the hash runs in threads: a page is one plane, which their queues hold
    readahead_with_hash_threads = 0

    def __init__(self, info: SceneInfo, series: Any) -> None:
        self.info = info
        self.series = series
        axes = list(series.axes)
        page_axes = list(series.keyframe.axes)
        self.outer_axes = axes[: len(axes) - len(page_axes)]
        self.outer_shape = series.shape[: len(self.outer_axes)]
        self.to_yxs = [page_axes.index(a) for a in PLANE_AXES if a in page_axes]
        self.extra_axes = list(info.extra_dims)
        self.decoded_bytes = 0
        self.buffer: np.ndarray | None = None
        self._rows_view: Any = None  # tifffile's zarr view of the series, opened for read_rows
        self.segments = SegmentDecoder(series.parent.filehandle)

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        page = self._page(t, c, z, extra)
        return self._read(page, None, page_decodable(page))

    def _zarr_view(self) -> Any:
        if self._rows_view is None:
            import zarr

            self._rows_view = zarr.open_array(self.series.aszarr(level=0), mode="r")
        return self._rows_view

    @property
    def chunk_rows(self) -> int | None:
        """Rows per stored strip or tile (what tifffile decodes at a time)."""
        keyframe = self.series.keyframe
        if decodable(keyframe) and segment_rows(keyframe):
            return segment_rows(keyframe)  # without opening the zarr view (and zarr's thread)
        try:
            return int(self._zarr_view().chunks[list(self.series.axes).index("Y")])
        except Exception:  # no zarr view of this series: read_rows reads whole pages
            return None

    def read_rows(self, t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of a plane as (rows, X, S), decoding only the strips or tiles they lie in."""
        page = self._page(t, c, z, extra)
        if page_decodable(page):
            try:
                rows = self.segments.decode_rows(page, y0, y1)
            except Exception as exc:
                raise SceneError(f"page {page.index}, rows {y0}-{y1}: {describe(exc)}") from exc
            if rows is not None:
                self.decoded_bytes += rows.nbytes
                return rows
        position = plane_position(t, c, z, self.extra_axes, extra)
        try:
            view = self._zarr_view()
        except Exception:
            return self.read(t, c, z, extra)[y0:y1]
        try:
            rows = slice_rows(view, list(self.series.axes), position, y0, y1)
        except Exception as exc:
            raise SceneError(f"rows {y0}-{y1} of plane t={t} c={c} z={z}: {describe(exc)}") from exc
        self.decoded_bytes += rows.nbytes
        return rows

    def read_transient(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        """Like `read`, decoded into one reused buffer (valid until the next call)."""
        page = self._page(t, c, z, extra)
        segments = page_decodable(page)
        shape, dtype = tuple(page.shape), np.dtype(page.dtype)
        if segments:
            dtype = canonical_dtype(dtype)
        if self.buffer is None or self.buffer.shape != shape or self.buffer.dtype != dtype:
            self.buffer = np.empty(shape, dtype=dtype)
        return self._read(page, self.buffer, segments)

    def read_owned(
        self, t: int, c: int, z: int, extra: tuple[int, ...], new_array: Callable[..., np.ndarray]
    ) -> np.ndarray:
        """Like `read`, for a caller that hands planes on (bioiscc.handoff): a compressed page is
        decoded big-endian into `new_array(shape, dtype)`, which is never written again (read-only
        once decoded); other pages as `read_transient` (valid until the next call)."""
        page = self._page(t, c, z, extra)
        if not page_decodable(page):
            return self.read_transient(t, c, z, extra)
        out = new_array(tuple(page.shape), canonical_dtype(np.dtype(page.dtype)))
        plane = self._read(page, out, True)
        out.flags.writeable = False
        plane.flags.writeable = False  # a view made before `out` was frozen: frozen on its own
        return plane

    def _page(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> Any:
        position = plane_position(t, c, z, self.extra_axes, extra)
        index = [position[a] for a in self.outer_axes]
        number = int(np.ravel_multi_index(index, self.outer_shape)) if index else 0
        return self.series.pages[number]

    def _read(self, page: Any, out: np.ndarray | None, segments: bool) -> np.ndarray:
        try:
            data = self.segments.decode(page, out) if segments else page.asarray(out=out)
        except Exception as exc:
            raise SceneError(f"page {page.index}: {describe(exc)}") from exc
        self.decoded_bytes += data.nbytes
        data = data.reshape(page.shape)
        plane = np.transpose(data, self.to_yxs)
        return plane if plane.ndim == 3 else plane[:, :, np.newaxis]
