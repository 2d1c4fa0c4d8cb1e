"""CZI mosaics (tile scans, slide scans) read one stitched plane, or one band of rows, at a time.

IMAGEWALK walks a mosaic as the reader's stitched image. bioio-czi 3 (its default aicspylibczi
backend) builds that image plane by plane: for each plane it calls aicspylibczi's
`CziFile.read_mosaic(region=<the scene's bounding box>, scale_factor=1.0, **plane)`, in which libCZI
draws the plane's tiles that intersect the region over a black background (0) in M-index order
(the highest M on top), and stacks the planes into one in-memory array (`mosaic_xarray_data`).
This module makes the same libCZI call for one plane at a time, or for a band of its rows (libCZI
then reads only the tiles that intersect the band), so that the pixels are bioio-czi's stitched
pixels while memory holds one plane, whatever the size of the scene:

- the scene's planes are the reader's dimensions other than M, Y, X and S, each index offset by
  where that dimension starts in the scene (`CziFile.get_dims_shape`), as bioio-czi does;
- the region is `CziFile.get_mosaic_scene_bounding_box` of the scene's CZI index;
- samples come as stored (B, G, R for Bgr* pixel types); `bioio_file` puts them in R, G, B order;
- a plane with no stored subblock is walked as zeros and counted in `absent_planes`, as the planes
  of other CZI scenes are (`bioio_file._CziSubblocks`). Such a plane is never asked of libCZI:
  aicspylibczi 4.0.1 takes the pixel type of the first subblock of the plane without checking that
  there is one, and so raises or crashes the process (bioio-czi failed such a scene, or worse).

tests/test_mosaic.py checks, on every mosaic sample and on synthetic mosaics, that the planes and the
scene codes equal those of bioio-czi's `mosaic_xarray_data`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import SceneError, describe
from ..scene import SceneInfo, plane_position
from .czi_pixels import to_rgb
from .integrity import CziInflation

#: CZI dimensions that are not plane indices: mosaic tile, pixels, samples (A), scene, block
NOT_PLANE_DIMS = ("M", "Y", "X", "S", "A", "B")
#: planes the walk may read ahead in a thread (libCZI releases the GIL while it composes a plane)
READAHEAD_PLANES = 1


class CziFile:
    """One CZI file opened with aicspylibczi, shared by the mosaic scenes of a source.

    Reads are serialized: a walk may read ahead in a thread, and libCZI's reader of one file is not
    documented as safe to use from two threads at once.
    """

    def __init__(self, path: Path) -> None:
        import aicspylibczi

        self.czi = aicspylibczi.CziFile(path)
        self.lock = threading.Lock()
        self.inflation = CziInflation(path)  # checked before libCZI inflates a plane's subblocks

    def scene(self, scene_index: int, reader_dims: str, reader_shape: tuple[int, ...]) -> CziMosaic:
        """The mosaic scene at `scene_index` in the bioio reader's scene list, whose dims (with M and
        the tiles' Y and X) the reader gives as `reader_dims` and `reader_shape`."""
        with self.lock:
            return CziMosaic(self, scene_index, reader_dims, reader_shape)


class CziMosaic:
    """The stitched geometry of one mosaic scene of a CZI file, and libCZI's reader of its planes."""

    def __init__(
        self, file: CziFile, scene_index: int, reader_dims: str, reader_shape: tuple[int, ...]
    ) -> None:
        self.file = file
        czi = file.czi
        dims_shape = czi.get_dims_shape()
        consistent = bool(czi.shape_is_consistent)
        # bioio-czi's scene selection (aicspylibczi_reader.Reader._dims_shape_to_scene_dims_shape and
        # ._adjust_scene_index): one dims entry for all scenes when their shapes agree, else one each
        entry = dict(dims_shape[0 if consistent else scene_index])
        scene_range = entry.pop("S", None)
        if scene_range is None or not consistent:
            self.czi_scene = scene_index
        else:
            self.czi_scene = int(scene_range[0]) + scene_index
        self.has_scenes = "S" in czi.dims
        #: where each plane dimension starts in this scene
        self.starts = {d: int(start) for d, (start, _) in entry.items()}
        box = czi.get_mosaic_scene_bounding_box(index=self.czi_scene)
        self.x, self.y, self.width, self.height = int(box.x), int(box.y), int(box.w), int(box.h)
        sizes = dict(zip(reader_dims, reader_shape, strict=True))
        #: the stitched scene's dimensions, in reader order, as bioio-czi's mosaic_xarray_data has them
        self.order = "".join(d for d in reader_dims if d != "M")
        self.sizes = {
            d: (self.height if d == "Y" else self.width if d == "X" else sizes[d]) for d in self.order
        }
        self.plane_dims = [d for d in self.order if d not in NOT_PLANE_DIMS]
        self.samples = self.sizes.get("S", 1)
        #: the tiles' height (rows of one row of tiles), the granularity of row bands
        self.tile_rows = int(sizes["Y"])
        self._stored: dict[tuple[tuple[tuple[str, int], ...], bool], bool] = {}

    def plane(self, position: Mapping[str, int]) -> dict[str, int]:
        """The CZI coordinates of the plane at `position` (scene-relative indices)."""
        return {d: self.starts.get(d, 0) + int(position[d]) for d in self.plane_dims}

    def read(self, plane: Mapping[str, int], y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 (y1 > y0) of a stitched plane as (rows, X, S), samples as stored."""
        region = (self.x, self.y + y0, self.width, y1 - y0)
        self.file.inflation.check(plane, None)  # libCZI composes the tiles of every scene
        with self.file.lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = self.file.czi.read_mosaic(region=region, scale_factor=1.0, **plane)
        return np.asarray(data).reshape(y1 - y0, self.width, self.samples)

    def stored(self, plane: Mapping[str, int], in_scene: bool) -> bool:
        """Whether the file stores a tile of this plane: in this scene, or in any (as libCZI composes
        a plane from the tiles of every scene, within the region)."""
        key = (tuple(plane.items()), in_scene and self.has_scenes)
        found = self._stored.get(key)
        if found is None:
            dims = dict(plane)
            if key[1]:
                dims["S"] = self.czi_scene
            czi = self.file.czi
            try:
                with self.file.lock:
                    found = len(czi.get_all_mosaic_tile_bounding_boxes(**dims)) > 0
            except czi.czilib.PylibCZI_CDimCoordinatesOverspecifiedException:  # "no matching tiles"
                found = False
            self._stored[key] = found
        return found


class CziMosaicScene:
    """A CZI mosaic scene read with libCZI one stitched plane (or row band) per call."""

    readahead_planes = READAHEAD_PLANES
    #: tiles overlap, so row bands would decode some twice: the hash reads whole stitched planes
    rows_decode_once = False

    def __init__(self, info: SceneInfo, mosaic: CziMosaic, bgr: bool) -> None:
        self.info = info
        self.mosaic = mosaic
        self.bgr = bgr
        self.extra_dims = list(info.extra_dims)
        #: planes the file does not store, walked as zeros
        self.absent_planes = 0

    @property
    def chunk_rows(self) -> int:
        return self.mosaic.tile_rows

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        return self._rows(t, c, z, extra, 0, self.mosaic.height, count_absent=True)

    def read_rows(self, t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of a stitched plane as (rows, X, S): libCZI reads the tiles under them only."""
        return self._rows(t, c, z, extra, y0, y1, count_absent=False)

    def _rows(
        self, t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int, count_absent: bool
    ) -> np.ndarray:
        y1 = min(y1, self.mosaic.height)
        shape = (max(0, y1 - y0), self.mosaic.width, self.info.dims["S"])
        if shape[0] == 0:
            return np.empty(shape, dtype=self.info.dtype)
        position = plane_position(t, c, z, self.extra_dims, extra)
        plane = self.mosaic.plane(position)
        try:
            if count_absent and not self.mosaic.stored(plane, in_scene=True):
                self.absent_planes += 1
            if not self.mosaic.stored(plane, in_scene=False):
                return np.zeros(shape, dtype=self.info.dtype)
            rows = self.mosaic.read(plane, y0, y1)
        except Exception as exc:
            raise SceneError(f"mosaic plane {plane} cannot be stitched: {describe(exc)}") from exc
        return to_rgb(rows, self.bgr)
