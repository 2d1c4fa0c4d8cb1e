"""Thumbnails: a quick look at a scene (docs/views.md, section 9). Not used for any code.

A scene's thumbnail shows the middle Z plane at the first time point (extra dimensions at 0): one
channel in gray, or the first two or three channels as red, green (and blue), each stretched like a
view. Unlike views, thumbnails may read a pyramid's lower level: the smallest level whose long side
is at least THUMB_SIDE pixels (level 0 if none is), binned to at most THUMB_SIDE pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..scene import SceneInfo, Source
from ..sources.arrays import slice_rows
from .extract import bin_stored_plane
from .normalize import composite, stretch_of, to_uint8
from .reduce import Grid, bin_plane
from .select import COMPOSITE_CHANNELS

THUMB_SIDE = 512


def thumb_position(info: SceneInfo) -> tuple[int, int, list[int]]:
    """(t, z, effective channels) a thumbnail shows."""
    channels = info.dims["C"] * info.dims["S"]
    return 0, info.dims["Z"] // 2, list(range(min(COMPOSITE_CHANNELS, channels)))


def scene_thumbnail(src: Source, info: SceneInfo) -> np.ndarray:
    """The 8-bit thumbnail (gray or RGB) of one scene."""
    t, z, channels = thumb_position(info)
    samples = info.dims["S"]
    level = thumbnail_level(src, info)
    grids: list[Grid] = []
    if level is not None:
        array, axes = level
        for c in channels:
            plane = slice_rows(array, axes, {"T": t, "C": c // samples, "Z": z}, 0, _height(array, axes))
            grids.append(bin_plane(plane[:, :, c % samples]))
    else:
        reader = src.open_scene(info)
        extra = tuple(0 for _ in info.extra_dims)
        for stored in sorted({c // samples for c in channels}):
            wanted = [c % samples for c in channels if c // samples == stored]
            grids.extend(bin_stored_plane(reader, t, stored, z, extra, wanted).values())
    return composite([to_uint8(g.mean, stretch_of(g.mean)) for g in grids])


def _height(array: Any, axes: list[str]) -> int:
    return int(array.shape[axes.index("Y")])


def _long_side(array: Any, axes: list[str]) -> int:
    return max(int(array.shape[axes.index("Y")]), int(array.shape[axes.index("X")]))


def thumbnail_level(src: Source, info: SceneInfo) -> tuple[Any, list[str]] | None:
    """The smallest pyramid level below level 0 whose long side is at least THUMB_SIDE, or None."""
    chosen = None
    for array, axes in lower_levels(src, info):
        if _long_side(array, axes) >= THUMB_SIDE:
            chosen = (array, axes)
    return chosen


def lower_levels(src: Source, info: SceneInfo) -> list[tuple[Any, list[str]]]:
    """The pyramid levels below level 0 (largest first) as (array, axis names); [] if none or unknown."""
    from ..sources.omezarr import OmeZarrSource
    from ..sources.tiff import TiffSource

    try:
        if isinstance(src, TiffSource):
            return _tiff_levels(src, info)
        if isinstance(src, OmeZarrSource):
            return _zarr_levels(src, info)
    except Exception:
        return []
    return []


def _tiff_levels(src: Any, info: SceneInfo) -> list[tuple[Any, list[str]]]:
    import zarr

    series = src.series[info.index]
    axes = list(series.axes)
    levels = []
    for number in range(1, len(series.levels)):
        array = zarr.open_array(series.aszarr(level=number), mode="r")
        if len(array.shape) == len(axes):
            levels.append((array, axes))
    return levels


def _zarr_levels(src: Any, info: SceneInfo) -> list[tuple[Any, list[str]]]:
    return src.lower_levels(info.index)  # type: ignore[no-any-return]
