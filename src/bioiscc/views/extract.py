"""Reading the planes a scene's views need, and nothing else (docs/views.md, section 2).

Two ways to feed a `ViewPlan`:

- `read_views`: read only the planes the plan needs, each stored plane once (its samples together),
  in IMAGEWALK order. A stored plane larger than BAND_PLANE_BYTES is read in row bands when its
  reader can deliver them, so it is never in memory whole.
- `ViewTap`: wrap the scene reader an IMAGEWALK hashes from (in `imagecode`), feeding the plan the
  planes it needs as they are read, so that the scene is read once for both codes.

Both give identical grids: a grid depends only on the pixel values.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..scene import SceneInfo, SceneReader
from . import reduce
from .reduce import Grid, GridBuilder, band_rows, bands, bin_plane, row_source
from .render import Selection, select
from .select import STRATEGIES, PlaneKey, ViewPlan

DEFAULT_MAX_VIEWS = 5
DEFAULT_STRATEGIES: tuple[str, ...] = STRATEGIES


@dataclass
class SceneViews:
    """The views of one scene and how they were chosen."""

    info: SceneInfo
    strategies: tuple[str, ...]
    max_views: int
    planned: int
    planes_binned: int
    selection: Selection


def finish(plan: ViewPlan, strategies: Sequence[str], max_views: int, planes_binned: int) -> SceneViews:
    selection = select(plan.candidates(), max_views)
    if not selection.views:
        raise ValueError("no view could be made (no strategy applies to this scene)")
    return SceneViews(plan.info, tuple(strategies), max_views, len(plan.specs), planes_binned, selection)


def read_views(
    reader: SceneReader,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    max_views: int = DEFAULT_MAX_VIEWS,
) -> SceneViews:
    """The views of the scene `reader` reads, reading only the planes they need."""
    info = reader.info
    plan = ViewPlan(info, strategies, max_views)
    samples = info.dims["S"]
    extra = tuple(0 for _ in info.extra_dims)
    read = 0
    for (z, stored, t), keys in itertools.groupby(plan.needed(), key=lambda k: (k.z, k.c // samples, k.t)):
        wanted = [k.c % samples for k in keys]
        for sample, grid in bin_stored_plane(reader, t, stored, z, extra, wanted).items():
            plan.feed(PlaneKey(z=z, c=stored * samples + sample, t=t), grid)
        read += len(wanted)
    return finish(plan, strategies, max_views, read)


def bin_stored_plane(
    reader: SceneReader, t: int, c: int, z: int, extra: tuple[int, ...], samples: Sequence[int]
) -> dict[int, Grid]:
    """The grids of some samples of one stored plane, read in row bands when it is large."""
    info = reader.info
    height, width, count = info.dims["Y"], info.dims["X"], info.dims["S"]
    if info.plane_bytes * count > reduce.BAND_PLANE_BYTES:
        rows = row_source(reader, t, c, z, extra)
        if rows is not None:
            builders = {s: GridBuilder(height, width) for s in samples}
            step = band_rows(rows, height, width * count * np.dtype(info.dtype).itemsize)
            for start, stop in bands(height, step):
                band = _checked(rows.read(start, stop), (stop - start, width, count))
                for sample, builder in builders.items():
                    builder.add(band[:, :, sample])
            return {sample: builder.result() for sample, builder in builders.items()}
    plane = _checked(reader.read(t, c, z, extra), (height, width, count))
    return {sample: bin_plane(plane[:, :, sample]) for sample in samples}


def _checked(array: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    if array.shape != shape:
        raise ValueError(f"reader returned shape {array.shape}, expected {shape}")
    return array


class ViewTap:
    """Feeds a plan from the planes a reader reads while an IMAGEWALK hashes them.

    `reader()` wraps the scene reader: each stored plane it reads (with `read`, or `read_transient`
    or `read_owned` when the wrapped reader has them) is binned for the plan, if the plan wants it,
    before it is handed on. The walk may read in a background thread; the plan is then fed from that
    one thread, in walk order. (A thread of its own for the binning was tried: with the hash holding
    the GIL while it updates, it was slower.)
    """

    def __init__(self, info: SceneInfo, strategies: Sequence[str], max_views: int) -> None:
        self.plan = ViewPlan(info, strategies, max_views)
        self.strategies = tuple(strategies)
        self.max_views = max_views
        self.zero_extra = tuple(0 for _ in info.extra_dims)
        self.samples = info.dims["S"]
        self.fed: set[PlaneKey] = set()  # a walk may read a plane again (one sample at a time)
        self.building: dict[PlaneKey, GridBuilder] = {}  # planes the walk reads in row bands

    def reader(self, reader: SceneReader) -> SceneReader:
        return _TappedReader(reader, self)

    def feed(self, t: int, c: int, z: int, extra: tuple[int, ...], stored: np.ndarray) -> None:
        """Bin the wanted samples of a stored plane (before the reader may reuse its buffer)."""
        if extra != self.zero_extra:
            return
        for sample in range(self.samples):
            key = PlaneKey(z=z, c=c * self.samples + sample, t=t)
            if self.plan.wants(key) and key not in self.fed:
                self.plan.feed(key, bin_plane(stored[:, :, sample]))
                self.fed.add(key)

    def feed_rows(self, t: int, c: int, z: int, extra: tuple[int, ...], y0: int, band: np.ndarray) -> None:
        """Bin the wanted samples of a row band of a large stored plane; bands come in row order."""
        if extra != self.zero_extra:
            return
        height, width = self.plan.info.dims["Y"], self.plan.info.dims["X"]
        for sample in range(self.samples):
            key = PlaneKey(z=z, c=c * self.samples + sample, t=t)
            if not self.plan.wants(key) or key in self.fed:
                continue
            if y0 == 0:
                self.building[key] = GridBuilder(height, width)
            builder = self.building.get(key)
            if builder is None:
                continue
            builder.add(band[:, :, sample])
            if y0 + band.shape[0] == height:
                self.plan.feed(key, self.building.pop(key).result())
                self.fed.add(key)

    def result(self) -> SceneViews:
        return finish(self.plan, self.strategies, self.max_views, len(self.fed))


class _TappedReader:
    """A scene reader that shows every plane it reads to a `ViewTap`."""

    def __init__(self, reader: SceneReader, tap: ViewTap) -> None:
        self.wrapped = reader
        self.info = reader.info
        self.view_tap = tap
        transient = getattr(reader, "read_transient", None)
        if callable(transient):
            self.read_transient = self._tapped(transient)
        owned = getattr(reader, "read_owned", None)
        if callable(owned):
            self.read_owned = self._tapped(owned)
        rows = getattr(reader, "read_rows", None)
        if callable(rows):
            self.read_rows = self._tapped_rows(rows)

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        return self._tapped(self.wrapped.read)(t, c, z, extra)

    def _tapped(self, read: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def tapped(t: int, c: int, z: int, extra: tuple[int, ...], **options: Any) -> np.ndarray:
            stored = read(t, c, z, extra, **options)
            if stored.ndim == 3:
                self.view_tap.feed(t, c, z, extra, stored)
            return stored

        return tapped

    def _tapped_rows(self, read_rows: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def tapped(t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int) -> np.ndarray:
            band = read_rows(t, c, z, extra, y0, y1)
            if band.ndim == 3:
                self.view_tap.feed_rows(t, c, z, extra, y0, band)
            return band

        return tapped

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
