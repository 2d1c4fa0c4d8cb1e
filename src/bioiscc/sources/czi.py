"""Zeiss CZI files read with aicspylibczi (libCZI) directly, one plane (or row band) at a time.

bioio-czi 3 reads CZIs with the same library (its default aicspylibczi backend) but brings bioio,
dask, xarray and ome-types with it, over a second of start-up for a file of any size. This source
makes the calls bioio-czi makes for the pixels, and gives every scene the geometry bioio-czi's reader
object gives it, so that every code is the one the bioio-czi path (`BioioSource(.., "czi")`) gives:

- **scenes** are bioio-czi's scene list: the metadata's `Scene` elements, named `Name-ShapeName`, or
  `Name` (numbered when names repeat, `<file stem>-<index>` when unnamed), or `Image:0` when the
  metadata lists none; a file whose scenes share one shape keeps the names within its S range;
- **dimensions** are libCZI's (`CziFile.dims`) without B and S, A (samples) named S, each of the
  size bioio-czi gives (the end of its range in `get_dims_shape()`); dimensions other than T, C, Z,
  Y, X and S (the Airyscan phase H, a view V, …) are extra dimensions, in that order;
- **a plane** is `read_image(S=<scene>, **plane)` with every plane dimension fixed at its start in
  the scene plus its index, as bioio-czi's per-plane reads do;
- **a plane the file does not store** (sparse Airyscan phases) is walked as zeros and counted in
  `absent_planes`, as Bio-Formats and pylibCZIrw return it;
- **mosaics** (an M dimension) are stitched one plane, or band of rows, at a time by `czi_mosaic`;
- **samples** of the Bgr* pixel types are put in R, G, B order;
- **the pixel type** is the file's (`CziFile.pixel_type`), with bioio-czi's dtypes (`czi_pixels`).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, SceneError, describe, import_reader
from ..scene import STANDARD_DIMS, SceneInfo, SceneReader, Source, make_dims, plane_position
from .czi_pixels import PIXEL_TYPES, names_bgr, to_rgb
from .integrity import czi_damage, czi_scene_damage

if TYPE_CHECKING:
    from .czi_mosaic import CziFile, CziMosaic

MOSAIC = "M"
#: libCZI dimensions that are not dimensions of a scene's image: block, scene (samples A are S)
NOT_IMAGE_DIMS = ("B", "S")
#: dimensions of a plane as libCZI returns it: rows, columns, samples
PLANE_DIMS = ("Y", "X", "A")
#: the scene name when the metadata lists no scene (bioio's OME image id of scene 0)
IMPLICIT_SCENE = "Image:0"
SCENE_PATH = "./Metadata/Information/Image/Dimensions/S/Scenes/Scene"
#: planes the walk may read ahead in a thread (reads of one file are serialized by a lock); two, so
#: that a compressed subblock is decoded while the plane before it is hashed, with one plane of slack
READAHEAD_PLANES = 2


class CziSource(Source):
    """A CZI file opened once with aicspylibczi; its scenes as bioio-czi lists them."""

    format = "czi"
    kind = "bioio"  # a vendor file, opened by its suffix

    def __init__(self, location: str, path: Path) -> None:
        aicspylibczi = import_reader(location, "aicspylibczi", "czi")
        from .czi_mosaic import CziFile

        self.location = location
        self.path = path
        self._version = str(getattr(aicspylibczi, "__version__", "?"))
        self.damage = czi_damage(location, path)  # a truncated file: before libCZI's own words
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.file: CziFile | None = CziFile(path)
                czi = self.file.czi
                self.dims = str(czi.dims)
                self.dims_shape: list[dict[str, tuple[int, int]]] = czi.get_dims_shape()
                self.consistent = bool(czi.shape_is_consistent)
                pixel_type = str(czi.pixel_type).lower()
                self.metadata = czi.meta
        except Exception as exc:
            raise InputError(location, f"not a readable CZI file: {describe(exc)}") from exc
        if pixel_type not in PIXEL_TYPES:
            raise InputError(location, f"unsupported CZI pixel type {pixel_type!r}")
        self.dtype = np.dtype(PIXEL_TYPES[pixel_type])
        self.bgr = names_bgr(self.metadata)
        self.names = scene_names(self.metadata, path.stem, self.dims_shape, self.consistent)

    @property
    def reader_name(self) -> str:
        return f"aicspylibczi {self._version}"

    def scenes(self) -> list[SceneInfo]:
        return [self._describe(index, name) for index, name in enumerate(self.names)]

    def _describe(self, index: int, name: str) -> SceneInfo:
        try:
            layout, mosaic = self._layout(index)
        except Exception as exc:
            return SceneInfo(index=index, name=name, error=describe(exc))
        if damage := czi_scene_damage(self.damage, layout.czi_scene):
            return SceneInfo(index=index, name=name, error=damage)
        sizes = mosaic.sizes if mosaic is not None else layout.sizes
        return SceneInfo(
            index=index,
            name=name,
            dims=make_dims({d: n for d, n in sizes.items() if d in STANDARD_DIMS}),
            extra_dims={d: n for d, n in sizes.items() if d not in STANDARD_DIMS and d != MOSAIC},
            dtype=str(self.dtype),
        )

    def _layout(self, index: int) -> tuple[SceneLayout, CziMosaic | None]:
        """A scene's layout, and libCZI's stitched view of it when it is a mosaic."""
        file = self._open_file()
        layout = SceneLayout(self.dims, self.dims_shape, self.consistent, index)
        if MOSAIC not in layout.order:
            return layout, None
        return layout, file.scene(index, layout.order, tuple(layout.sizes.values()))

    def open_scene(self, info: SceneInfo) -> SceneReader:
        try:
            layout, mosaic = self._layout(info.index)
        except Exception as exc:
            raise SceneError(describe(exc)) from exc
        if mosaic is not None:
            from .czi_mosaic import CziMosaicScene

            return CziMosaicScene(info, mosaic, self.bgr)
        return CziPlaneScene(info, self._open_file(), layout, self.bgr)

    def _open_file(self) -> CziFile:
        if self.file is None:
            raise SceneError("the file is closed")
        return self.file

    def close(self) -> None:
        self.file = None  # libCZI closes the file with its last reader


def scene_names(
    metadata: Any, stem: str, dims_shape: Sequence[Mapping[str, tuple[int, int]]], consistent: bool
) -> list[str]:
    """The scenes of a CZI as bioio-czi 3 names them (see the module's docstring)."""
    names: list[str] = []
    seen: dict[str, list[int]] = {}  # a repeated name -> [index of its first scene, times seen]
    for index, scene in enumerate(metadata.findall(SCENE_PATH)):
        shape = scene.find("Shape")
        if shape is not None:
            names.append(f"{scene.get('Name')}-{shape.get('Name')}")
            continue
        name = scene.get("Name")
        if name is None:
            name = f"{stem}-{index}"
        if name not in seen:
            seen[name] = [index, 1]
        else:
            first, count = seen[name]
            if count == 1:
                names[first] += "-1"
            seen[name][1] = count + 1
            name = f"{name}-{count + 1}"
        names.append(name)
    if not names:
        return [IMPLICIT_SCENE]
    # one dims entry for all scenes: keep the scenes this file holds (a file of a split scan)
    if len(names) != len(dims_shape) and consistent:
        scene_range = dims_shape[0].get("S")
        if scene_range is not None:
            names = names[scene_range[0] : scene_range[1]]
    return names


class SceneLayout:
    """One scene's dimensions as bioio-czi's reader gives them, and where libCZI finds its planes.

    `order` is libCZI's dimension string without B and S, samples (A) as S; `sizes` the size of
    each; `starts` the libCZI index at which each dimension starts in this scene; `czi_scene` the
    libCZI scene index (S) of the scene.
    """

    def __init__(
        self, dims: str, dims_shape: Sequence[Mapping[str, tuple[int, int]]], consistent: bool, index: int
    ) -> None:
        entry = dict(dims_shape[0 if consistent else index])
        self.czi_scene = _czi_scene(entry.pop("S", None), consistent, index)
        self.order = "".join("S" if d == "A" else d for d in dims if d not in NOT_IMAGE_DIMS)
        # bioio-czi's size of a dimension is the end of its range (ranges start at 0 but for S)
        self.sizes = {d: int(entry[_czi_dim(d)][1]) for d in self.order}
        self.starts = {d: int(entry[_czi_dim(d)][0]) for d in self.order}
        #: the dimensions a plane is selected by, in reader order
        self.plane_dims = [d for d in self.order if d not in ("Y", "X", "S")]


def _czi_dim(dim: str) -> str:
    return "A" if dim == "S" else dim


def _czi_scene(scene_range: tuple[int, int] | None, consistent: bool, index: int) -> int:
    """The libCZI scene index of the scene at `index` in the scene list (bioio-czi's choice)."""
    if scene_range is None:
        return index
    if consistent:
        return int(scene_range[0]) + index
    if not scene_range[0] <= index < scene_range[1]:
        raise ValueError(f"scene {index} is not in the file's scene range {tuple(scene_range)}")
    return index


class CziPlaneScene:
    """Plane (t, c, z, extra) of a scene that is not a mosaic: one libCZI `read_image` call."""

    readahead_planes = READAHEAD_PLANES
    chunk_rows = None  # libCZI reads a plane's subblock whole

    def __init__(self, info: SceneInfo, file: CziFile, layout: SceneLayout, bgr: bool) -> None:
        self.info = info
        self.czi = file.czi
        self.lock: threading.Lock = file.lock
        self.inflation = file.inflation
        self.layout = layout
        self.bgr = bgr
        self.extra_dims = list(info.extra_dims)
        self.has_scenes = "S" in file.czi.dims
        #: planes the file does not store, walked as zeros
        self.absent_planes = 0
        self.decoded_bytes = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        position = plane_position(t, c, z, self.extra_dims, extra)
        plane = {d: self.layout.starts[d] + position[d] for d in self.layout.plane_dims}
        try:
            self.inflation.check(plane, self.layout.czi_scene if self.has_scenes else None)
            with self.lock, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, dims = self.czi.read_image(S=self.layout.czi_scene, **plane)
        except Exception as exc:
            if not self._absent(plane):
                raise SceneError(describe(exc)) from exc
            self.absent_planes += 1
            d = self.info.dims
            return np.zeros((d["Y"], d["X"], d["S"]), dtype=self.info.dtype)
        stored = _plane_of(np.asarray(data), [(str(n), int(s)) for n, s in dims])
        self.decoded_bytes += stored.nbytes
        return to_rgb(stored, self.bgr)

    def _absent(self, plane: Mapping[str, int]) -> bool:
        """Whether the file stores no subblock for this plane (then libCZI's read raises)."""
        dims = dict(plane)
        if self.has_scenes:  # libCZI refuses S for a file without scenes
            dims["S"] = self.layout.czi_scene
        try:
            with self.lock:
                return len(self.czi.read_subblock_metadata(**dims)) == 0
        except Exception:
            return False


def _plane_of(data: np.ndarray, dims: Sequence[tuple[str, int]]) -> np.ndarray:
    """(Y, X, S) from libCZI's array of one plane, whose other dimensions have size 1 (B: any)."""
    names = [name for name, _ in dims]
    for name, size in dims:
        if name not in PLANE_DIMS and name != "B" and size != 1:
            raise SceneError(f"libCZI returned {size} planes along {name} for one plane")
    plane = data[tuple(slice(None) if name in PLANE_DIMS else 0 for name in names)]
    kept = [name for name in names if name in PLANE_DIMS]
    plane = np.transpose(plane, [kept.index(d) for d in PLANE_DIMS if d in kept])
    return plane if plane.ndim == 3 else plane[:, :, np.newaxis]
