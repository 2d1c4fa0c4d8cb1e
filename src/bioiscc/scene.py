"""What a source exposes: scenes with their geometry, and a way to read one stored plane.

This module knows nothing of codes and nothing of file formats. A *source* (a file, an OME-Zarr
store, an OMERO image) lists its scenes as `SceneInfo` and opens a `SceneReader` per scene; the
IMAGEWALK layer (`bioiscc.imagewalk`) turns what the reader delivers into canonical bytes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

STANDARD_DIMS = ("T", "C", "Z", "Y", "X", "S")


@dataclass(frozen=True)
class SceneInfo:
    """The geometry of one scene: sizes of T, C, Z, Y, X, S, extra dimensions, pixel type.

    `extra_dims` keeps the reader's order, which is the walk order of those dimensions. `error` is
    set when the scene is listed by the source but its geometry could not be read.
    """

    index: int
    name: str
    dims: Mapping[str, int] = field(default_factory=dict)
    extra_dims: Mapping[str, int] = field(default_factory=dict)
    dtype: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def extra_count(self) -> int:
        return math.prod(self.extra_dims.values())

    @property
    def planes(self) -> int:
        """Number of 2D planes the walk emits: Z * C * S * T * extras."""
        d = self.dims
        return d["Z"] * d["C"] * d["S"] * d["T"] * self.extra_count

    @property
    def plane_bytes(self) -> int:
        return self.dims["Y"] * self.dims["X"] * np.dtype(self.dtype).itemsize

    @property
    def bytes(self) -> int:
        """Length of the canonical stream of the scene."""
        return self.planes * self.plane_bytes


def make_dims(sizes: Mapping[str, int]) -> dict[str, int]:
    """The six standard dimensions in record order, a missing one of size 1."""
    return {d: int(sizes.get(d, 1)) for d in STANDARD_DIMS}


def plane_position(
    t: int, c: int, z: int, extra_names: Sequence[str], extra: Sequence[int]
) -> dict[str, int]:
    """A plane's index along each dimension by name: T, C, Z and the extra dimensions."""
    return {"T": t, "C": c, "Z": z, **dict(zip(extra_names, extra, strict=True))}


class SceneReader(Protocol):
    """Reads stored planes of one scene.

    `read(t, c, z, extra)` returns the plane at those indices as an array of shape (Y, X, S) in its
    native dtype (any byte order), samples in R, G, B(, A) order. `c` is the stored channel index,
    before samples are folded in; `extra` holds one index per extra dimension, in reader order.

    Optional, for readers that can do better than `read` (callers check with getattr):
    `read_transient`, `read_owned` and `readahead_planes` (see bioiscc.imagewalk);
    `read_rows(t, c, z, extra, y0, y1)`, rows y0..y1 of a plane as (rows, X, S) without reading the
    plane whole, with `chunk_rows`, the height of the stored chunks or strips (None when unknown), so
    that the views can reduce a plane too large for memory band by band.
    """

    info: SceneInfo

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray: ...


class Source(ABC):
    """An opened input: lists scenes without reading pixels, opens a reader per scene."""

    #: the path or URI as the user gave it (credentials removed)
    location: str
    #: short format name recorded in the walk manifest ("czi", "ome-tiff", "ome-zarr", ...)
    format: str
    #: the `--source` value that opens this input the same way again ("tiff", "ome-zarr", "bioio",
    #: "omero"; "bioformats" for --reader bioformats), recorded in the walk manifest
    kind: str
    #: reads a plane in row bands when it is too large to hold (a whole-slide TIFF): the walk's
    #: plane limit (BIOISCC_MAX_PLANE_MB) does not apply, only the scene limit
    reads_planes_in_bands: bool = False

    @property
    @abstractmethod
    def reader_name(self) -> str:
        """The library that reads the pixels and its version, e.g. "bioio_czi 3.0.1"."""

    @abstractmethod
    def scenes(self) -> list[SceneInfo]:
        """Every scene the source exposes, in IMAGEWALK order; reads no pixels."""

    @abstractmethod
    def open_scene(self, info: SceneInfo) -> SceneReader:
        """A reader for one scene listed by `scenes()`."""

    def fingerprint(self) -> str | None:
        """Changes whenever the source's pixels may have: for a local path, its files' stat digest.

        Remote sources (OMERO) override it with what their server reports.
        """
        from .fingerprint import fingerprint

        return fingerprint(self.location)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles and connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Plane:
    """One 2D plane of the walk, with its position: z, c (samples folded in), t, extra indices."""

    z: int
    c: int
    t: int
    extra: tuple[int, ...]
    data: np.ndarray


PlaneIterator = Iterator[Plane]
