"""Leica LIF files read with liffile, one stored frame (plane) per read.

Scenes are liffile's images, in its order, named by their path in the image tree (as bioio-lif,
which is built on liffile, names them). A plane is read with `LifImage.frame`: one seek and one read
of that plane's bytes, so a walk holds a plane, whatever the size of the scene.

- **The stored frame is the plane.** Its two innermost stored dimensions (other than C and S) are
  walked as Y and X. In an XZ or XT scan the frame is (Z, X) or (T, X): its vertical axis is walked
  as Y and the image's own Y, if it has one, takes that axis's name (a Y series of XZ frames walks
  as Z). This is what Bio-Formats shows, and so what an OME-TIFF export of such a file holds.
- **Other Leica dimensions are extra dimensions** under liffile's codes, in stored order: λ
  (emission wavelength), Λ (excitation wavelength), A (rotation), N, Q, L, …
- **Mosaics** (tile scans, an M dimension) are walked, as IMAGEWALK says, as the stitched image that
  bioio-lif builds. Their geometry comes from bioio-lif; their planes are stitched here one at a time
  from liffile's tiles, as bioio-lif 2 stitches them (`LifMosaicScene`), so that a walk holds one
  plane. A mosaic with dimensions other than T, C, Z, Y and X, or with tiles stored in several
  frames, is left to bioio-lif, which holds the whole stitched scene in memory.
- A file shorter than its images' memory blocks say is a truncated file, an error at open.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BioisccError, InputError, SceneError, describe, import_reader
from ..scene import STANDARD_DIMS, SceneInfo, SceneReader, Source, make_dims, plane_position
from .bioio_file import BioioSource

MOSAIC = "M"
SAMPLES = "S"
CHANNEL = "C"
#: planes the walk may read ahead in a thread (reads of one file are serialized by a lock)
READAHEAD_PLANES = 2


class LifSource(Source):
    """A LIF file: liffile's images as scenes; mosaic images through bioio-lif (stitched)."""

    format = "lif"
    kind = "bioio"  # a vendor file, opened by its suffix

    def __init__(self, location: str, path: Path) -> None:
        liffile = import_reader(location, "liffile", "lif")
        self.location = location
        self.path = path
        self._liffile_version = str(liffile.__version__)
        try:
            self.lif = liffile.LifFile(path)
            self.images = list(self.lif.images)
        except Exception as exc:
            cause = (
                f"truncated or corrupt: its XML header is not UTF-16 text ({exc.reason})"
                if isinstance(exc, UnicodeDecodeError)
                else describe(exc)
            )
            raise InputError(location, f"not a readable LIF file: {cause}") from exc
        try:
            if not self.images:
                raise InputError(location, "file without images")
            _check_complete(location, self.images, path.stat().st_size)
        except InputError:
            self.lif.close()
            raise
        self.lock = threading.Lock()
        self.mosaics = {i for i, image in enumerate(self.images) if _is_mosaic(image)}
        #: bioio-lif's source of this file, for its mosaic scenes (opened when first needed)
        self._stitcher: BioioSource | None = None

    @property
    def reader_name(self) -> str:
        name = f"liffile {self._liffile_version}"
        if not self.mosaics:
            return name
        stitcher = _package_version("bioio_lif", "bioio-lif")
        return stitcher if len(self.mosaics) == len(self.images) else f"{name}; mosaics {stitcher}"

    def scenes(self) -> list[SceneInfo]:
        return [self._describe(index, image) for index, image in enumerate(self.images)]

    def _describe(self, index: int, image: Any) -> SceneInfo:
        name = str(image.path)
        overrun = _overrun(image)
        if overrun:
            return SceneInfo(index=index, name=name, error=overrun)
        if index in self.mosaics:
            try:
                return self._mosaic_source().describe_scene(index, name)
            except BioisccError as exc:
                return SceneInfo(index=index, name=name, error=str(getattr(exc, "cause", exc)))
        try:
            layout = PlaneLayout.of(image)
            standard = {d: n for d, n in layout.sizes.items() if d in STANDARD_DIMS}
            return SceneInfo(
                index=index,
                name=name,
                dims=make_dims(standard),
                extra_dims=layout.extra,
                dtype=str(np.dtype(image.dtype)),
            )
        except Exception as exc:
            return SceneInfo(index=index, name=name, error=describe(exc))

    def open_scene(self, info: SceneInfo) -> SceneReader:
        image = self.images[info.index]
        if info.index in self.mosaics:
            if _stitchable(image, info, self.lock):
                return LifMosaicScene(info, image, self.lock)
            try:
                return self._mosaic_source().open_scene(info)
            except InputError as exc:
                raise SceneError(exc.cause) from exc
        try:
            layout = PlaneLayout.of(image)
        except Exception as exc:
            raise SceneError(describe(exc)) from exc
        return LifScene(info, image, layout, self.lock)

    def _mosaic_source(self) -> BioioSource:
        """bioio-lif's reader of this file, for the mosaic scenes it stitches."""
        if self._stitcher is None:
            self._stitcher = BioioSource(self.location, self.path, "lif")
        return self._stitcher

    def close(self) -> None:
        if self._stitcher is not None:
            self._stitcher.close()
        self.lif.close()


def _is_mosaic(image: Any) -> bool:
    try:
        return MOSAIC in image.sizes
    except Exception:  # its geometry is unreadable: reported when the scene is described
        return False


def _package_version(module: str, package: str) -> str:
    try:
        return f"{module} {version(package)}"
    except PackageNotFoundError:
        return f"{module} (not installed)"


def _check_complete(location: str, images: Sequence[Any], size: int) -> None:
    """A truncated LIF still lists its images; their memory blocks then end past the end of the file."""
    for image in images:
        try:
            block = image.memory_block
        except Exception as exc:
            raise InputError(location, f"corrupt or truncated LIF file: {describe(exc)}") from exc
        if block.offset >= 0 and block.offset + block.size > size:
            raise InputError(
                location,
                f"truncated LIF file: the pixels of image {image.path!r} end at byte "
                f"{block.offset + block.size}, the file has {size}",
            )


def _overrun(image: Any) -> str | None:
    """Why the image's XML places pixels beyond its memory block, or None when it does not.

    liffile reads a frame at the offset the XML's byte increments give, without checking it against
    the memory block, so an XML that claims more (or more widely spaced) pixels than the block holds
    would hash the bytes that follow it. The farthest byte is the sum of (elements - 1) x BytesInc
    over the dimensions, plus the last channel's offset and one sample; in every real sample here
    it equals the block's size. Images without a block in this file (XLIF frames) are left alone.
    """
    try:
        block = image.memory_block
        if block.offset < 0:
            return None
        xml = image.xml_element
        dims = xml.findall(".//Dimensions/DimensionDescription")
        channels = xml.findall(".//Channels/ChannelDescription")
        farthest = sum((int(d.attrib["NumberOfElements"]) - 1) * int(d.attrib["BytesInc"]) for d in dims)
        farthest += max((int(c.attrib["BytesInc"]) for c in channels), default=0)
        itemsize = np.dtype(image.dtype).itemsize
        needed = max(farthest + itemsize, math.prod(image.shape) * itemsize)
    except Exception:  # an unreadable geometry is reported when the scene is described
        return None
    if needed > block.size:
        return f"corrupt: the XML places pixels up to byte {needed} of a memory block of {block.size} bytes"
    return None


class PlaneLayout:
    """liffile's dimensions as IMAGEWALK sees them: the frame's two axes as Y and X.

    `names` maps each liffile dimension to its IMAGEWALK name; `sizes` and `extra` use those names
    (extra dimensions in stored order). `plane` holds the liffile names of the plane's rows,
    columns (and samples).
    """

    def __init__(self, dims: Sequence[str], sizes: Mapping[str, int]) -> None:
        spatial = [d for d in dims if d not in (SAMPLES, CHANNEL)]
        if not spatial:
            raise ValueError(f"image without a spatial dimension (dimensions {tuple(dims)})")
        rows = spatial[-2] if len(spatial) > 1 else None
        columns = spatial[-1]
        names = {d: d for d in dims}
        if rows is not None:
            _swap(names, rows, "Y")
        _swap(names, columns, "X")
        self.names = names
        self.plane = tuple(d for d in (rows, columns) if d is not None) + (
            (SAMPLES,) if SAMPLES in dims else ()
        )
        self.sizes = {names[d]: int(sizes[d]) for d in dims}
        self.extra = {names[d]: int(sizes[d]) for d in dims if names[d] not in STANDARD_DIMS}
        self.outer = {names[d]: d for d in dims if d not in self.plane}  # IMAGEWALK name -> liffile's

    @classmethod
    def of(cls, image: Any) -> PlaneLayout:
        return cls(list(image.dims), dict(image.sizes))


def _swap(names: dict[str, str], dim: str, target: str) -> None:
    """Give `dim` the name `target`; the dimension that had that name takes `dim`'s old name."""
    current = names[dim]
    for key, name in names.items():
        if name == target:
            names[key] = current
    names[dim] = target


class LifScene:
    """Plane (t, c, z, extra) of one liffile image: one frame read (or the frames of one plane)."""

    readahead_planes = READAHEAD_PLANES

    def __init__(self, info: SceneInfo, image: Any, layout: PlaneLayout, lock: threading.Lock) -> None:
        self.info = info
        self.image = image
        self.layout = layout
        self.lock = lock
        self.extra_dims = list(info.extra_dims)
        with lock:
            frame_dims = tuple(image.frames.frame_dims)
        #: one frame is one plane (the usual layout): read it with one `frame()` call
        self.whole_frames = frame_dims == layout.plane
        self.decoded_bytes = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        position = plane_position(t, c, z, self.extra_dims, extra)
        indices = {stored: position[name] for name, stored in self.layout.outer.items()}
        try:
            with self.lock:
                if self.whole_frames:
                    plane, dims = self.image.frame(**indices), self.layout.plane
                else:  # a plane stored in several frames: liffile assembles it
                    frames = self.image.frames(**indices)
                    plane, dims = frames.asarray(), tuple(frames.dims)
        except Exception as exc:
            where = " ".join(f"{k}={v}" for k, v in indices.items())
            raise SceneError(f"plane {where}: {describe(exc)}") from exc
        plane = np.asarray(plane)
        self.decoded_bytes += plane.nbytes
        rows_columns = [d for d in self.layout.plane if d != SAMPLES]
        order = [dims.index(d) for d in (*rows_columns, SAMPLES) if d in dims]
        plane = np.transpose(plane, order)
        if len(rows_columns) == 1:  # a single row
            plane = plane[np.newaxis]
        return plane if plane.ndim == 3 else plane[:, :, np.newaxis]


#: the dimensions of the mosaics stitched here: those bioio-lif's stitched image has, and M
STITCHED_DIMS = frozenset({MOSAIC, "T", "C", "Z", "Y", "X"})


def _stitchable(image: Any, info: SceneInfo, lock: threading.Lock) -> bool:
    """Whether `LifMosaicScene` stitches this mosaic as bioio-lif does: only T, C, Z, M, Y, X (bioio-lif's
    dimensions; it has no samples or extra dimensions), each tile one stored (Y, X) frame."""
    try:
        with lock:
            dims = tuple(image.dims)
            frame_dims = tuple(image.frames.frame_dims)
            tiles = image.tilescan.tiles
    except Exception:
        return False
    return (
        info.ok
        and set(dims) <= STITCHED_DIMS
        and frame_dims == ("Y", "X")
        and not info.extra_dims
        and info.dims["S"] == 1
        and len(tiles) == int(image.sizes[MOSAIC])
    )


class LifMosaicScene:
    """A LIF tile scan stitched one plane at a time from liffile's tiles, as bioio-lif 2 stitches it.

    bioio-lif (`Reader._stitch_tiles`, with its defaults: field x and y swapped, no flips) places the
    tiles on the grid of the tile scan's field positions, starting from the bottom right, drops the
    first row and the first column of every tile that is not in the last grid row or column (the
    tiles overlap by one pixel), and concatenates them. The same steps, on one plane's tiles.
    """

    readahead_planes = READAHEAD_PLANES

    def __init__(self, info: SceneInfo, image: Any, lock: threading.Lock) -> None:
        self.info = info
        self.image = image
        self.lock = lock
        with lock:
            tiles = image.tilescan.tiles
        x_fields = int(tiles["field_x"].max()) + 1
        y_fields = len(tiles) // x_fields
        # is_x_and_y_swapped (bioio-lif's default): field_x numbers the grid rows, field_y its columns
        self.grid = (x_fields, y_fields)  # rows, columns
        self.places = [(int(tile["field_y"]), int(tile["field_x"])) for tile in tiles]  # column, row
        self.decoded_bytes = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        rows, columns = self.grid
        grid = np.zeros((rows, columns), dtype=object)
        try:
            for index, (column, row) in enumerate(self.places):
                with self.lock:
                    tile = np.asarray(self.image.frame(M=index, T=t, C=c, Z=z))
                self.decoded_bytes += tile.nbytes
                if row + 1 < rows:
                    tile = tile[1:, :]
                if column + 1 < columns:
                    tile = tile[:, 1:]
                grid[-(row + 1), -(column + 1)] = tile
            plane = np.concatenate([np.concatenate(list(line), axis=-1) for line in grid], axis=-2)
        except Exception as exc:
            raise SceneError(f"mosaic plane t={t} c={c} z={z} cannot be stitched: {describe(exc)}") from exc
        return plane[:, :, np.newaxis]
