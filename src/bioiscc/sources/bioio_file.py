"""Files read by bioio reader plugins: LIF mosaics (native) and, on request, Bio-Formats.

CZI, ND2, DV and LIF files are read plane by plane by their own modules (`czi`, with aicspylibczi;
`nd2`, with nd2; `dv`, with mrc; `lif`, with liffile), which do not import bioio; a LIF mosaic
scene comes here to be stitched by bioio-lif. The bioio-czi, bioio-nd2, bioio-dv and bioio-lif
plugins stay usable through this class (`BioioSource(location, path, "czi")`), for comparisons.

What the plugins return was checked against independent readers on real files (see
shared/samples/READERS.md); the paths used here are the ones that return the true pixels:

- planes are read one at a time with explicit dimensions (`reader.get_image_data("YX", T=..)`),
  never through `.data`, `.dask_data` or a dims-less call: the lazy paths give wrong samples for RGB
  CZIs, and the full eager read of bioio-czi repeats phase 0 for every Airyscan phase H;
- the reader object (not `BioImage`) is used, so that extra dimensions such as H stay visible;
- mosaics (an M dimension) are walked as the reader's stitched image: CZI mosaics one stitched
  plane (or row band) at a time, with the libCZI call bioio-czi stitches with (`czi_mosaic`);
  other mosaics (LIF tile scans, through bioio-lif) as the reader's `mosaic_xarray_data`, which
  holds the whole stitched scene in memory;
- CZI samples stored as BGR (pixel types Bgr24, Bgr48, Bgra32) are put in RGB(A) order.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, MissingPluginError, SceneError, describe
from ..scene import SceneInfo, SceneReader, Source, make_dims, plane_position
from .czi_pixels import names_bgr as _names_bgr
from .czi_pixels import to_rgb as _to_rgb

if TYPE_CHECKING:
    from .czi_mosaic import CziFile, CziMosaic

# format -> (plugin module, pip package, bioiscc extra); "lif" is used for LIF mosaics; "czi", "nd2" and
# "dv" only to compare with bioio-czi, bioio-nd2 and bioio-dv (those files are read by sources.czi,
# sources.nd2 and sources.dv, and their extras no longer install the plugins; the test extra does);
# the TIFF plugins only under `--source bioio` (no extra installs them: bioiscc reads TIFF itself)
PLUGINS: Mapping[str, tuple[str, str, str]] = {
    "czi": ("bioio_czi", "bioio-czi", "test"),
    "nd2": ("bioio_nd2", "bioio-nd2", "test"),
    "lif": ("bioio_lif", "bioio-lif", "lif"),
    "dv": ("bioio_dv", "bioio-dv", "dv"),
    "ome-tiff": ("bioio_ome_tiff", "bioio-ome-tiff", ""),
    "tiff": ("bioio_tifffile", "bioio-tifffile", ""),
    "bioformats": ("bioio_bioformats", "bioio-bioformats", "bioformats"),
}

STANDARD = ("T", "C", "Z", "Y", "X", "S")
MOSAIC = "M"


def load_reader_class(location: str, plugin: str) -> Any:
    module_name, package, extra = PLUGINS[plugin]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingPluginError(location, package, extra) from exc
    return module.Reader


class BioioSource(Source):
    """One file opened with one named bioio reader plugin (never bioio's own plugin guessing)."""

    def __init__(self, location: str, path: Path, plugin: str) -> None:
        self.location = location
        self.path = path
        self.plugin = plugin
        self.format = plugin
        self.kind = "bioformats" if plugin == "bioformats" else "bioio"
        reader_class = load_reader_class(location, plugin)
        if plugin == "bioformats":
            from .bioformats import BioformatsSetupError, configure_offline

            try:
                configure_offline()
            except BioformatsSetupError as exc:
                raise InputError(location, exc.cause) from exc
        self._module = PLUGINS[plugin][0]
        self.open_reader(reader_class, plugin.upper())

    def open_reader(self, reader_class: Any, format_label: str) -> None:
        """Open the file with the plugin's reader class and list its scenes."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.reader = reader_class(str(self.path))
                self._scene_ids = list(self.reader.scenes)
        except Exception as exc:
            raise InputError(self.location, f"not a readable {format_label} file: {describe(exc)}") from exc
        if not self._scene_ids:
            raise InputError(self.location, "file without images")
        self._czi: CziFile | None = None  # libCZI's view of the file, for its mosaic scenes

    @property
    def reader_name(self) -> str:
        from importlib.metadata import version

        return f"{self._module} {version(PLUGINS[self.plugin][1])}"

    def scenes(self) -> list[SceneInfo]:
        return [self.describe_scene(index, str(name)) for index, name in enumerate(self._scene_ids)]

    def close(self) -> None:
        self._czi = None  # libCZI closes the file with its last reader

    def _select(self, index: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.reader.set_scene(index)

    def _layout(self, index: int) -> tuple[_Layout, CziMosaic | None]:
        """Select a scene; its layout, and libCZI's reader of it when it is a CZI mosaic."""
        self._select(index)
        if self.plugin == "czi" and MOSAIC in self.reader.dims.order:
            from .czi_mosaic import CziFile

            if self._czi is None:
                self._czi = CziFile(self.path)
            dims = self.reader.dims
            mosaic = self._czi.scene(index, dims.order, tuple(dims.shape))
            return _Layout(mosaic.order, tuple(mosaic.sizes.values()), mosaic=True), mosaic
        return _Layout.of(self.reader), None

    def describe_scene(self, index: int, name: str) -> SceneInfo:
        """The geometry of one scene (an error record when the reader cannot give it)."""
        try:
            layout, _ = self._layout(index)
        except Exception as exc:
            return SceneInfo(index=index, name=name, error=describe(exc))
        return SceneInfo(
            index=index,
            name=name,
            dims=make_dims(layout.standard),
            extra_dims=layout.extra,
            dtype=str(np.dtype(self.reader.dtype)),
        )

    def open_scene(self, info: SceneInfo) -> SceneReader:
        try:
            layout, czi_mosaic = self._layout(info.index)
        except Exception as exc:
            raise SceneError(describe(exc)) from exc
        if czi_mosaic is not None:
            from .czi_mosaic import CziMosaicScene

            # the same XML as reader.metadata, which would build the reader's lazy array of every tile
            return CziMosaicScene(info, czi_mosaic, _names_bgr(czi_mosaic.file.czi.meta))
        bgr = self.plugin == "czi" and _is_bgr(self.reader)
        if layout.mosaic:
            return MosaicScene(info, self.reader, bgr)
        absent = _CziSubblocks(self.path, info.index) if self.plugin == "czi" else None
        return PlaneScene(info, self.reader, layout, bgr, absent)


class _Layout:
    """The reader's dimensions split into standard sizes, extras (in reader order) and mosaic."""

    def __init__(self, order: str, shape: tuple[int, ...], mosaic: bool) -> None:
        self.order = order
        self.sizes = dict(zip(order, shape, strict=True))
        self.mosaic = mosaic
        self.standard = {d: n for d, n in self.sizes.items() if d in STANDARD}
        self.extra = {d: n for d, n in self.sizes.items() if d not in STANDARD and d != MOSAIC}

    @classmethod
    def of(cls, reader: Any) -> _Layout:
        order = reader.dims.order
        if MOSAIC in order:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stitched = reader.mosaic_xarray_dask_data  # shape only: no pixels are read
            return cls("".join(stitched.dims), tuple(stitched.shape), mosaic=True)
        return cls(order, tuple(reader.dims.shape), mosaic=False)


def _is_bgr(reader: Any) -> bool:
    """CZI metadata names the stored pixel type; Bgr* types hold samples in B, G, R(, A) order."""
    try:
        return _names_bgr(reader.metadata)
    except Exception:
        return False


class _CziSubblocks:
    """Tells whether a CZI stores any subblock for a plane.

    A CZI may leave planes out: an Airyscan file stores its 32 phases (H) for some channels and
    only phase 0 for others. Bio-Formats and pylibCZIrw return such a plane as zeros; bioio-czi
    raises. A plane with no subblock is walked as zeros, so that both readers give one stream.
    """

    def __init__(self, path: Path, scene: int) -> None:
        self.path = path
        self.scene = scene
        self._czi: Any = None

    def absent(self, selection: Mapping[str, int]) -> bool:
        try:
            if self._czi is None:
                import aicspylibczi

                self._czi = aicspylibczi.CziFile(self.path)
            dims = dict(selection)
            if "S" in self._czi.dims:
                dims["S"] = self.scene
            return len(self._czi.read_subblock_metadata(**dims)) == 0
        except Exception:
            return False


class PlaneScene:
    """Reads one plane per call with explicit dimension indices (the eager, true-pixel path)."""

    def __init__(
        self,
        info: SceneInfo,
        reader: Any,
        layout: _Layout,
        bgr: bool,
        subblocks: _CziSubblocks | None = None,
    ) -> None:
        self.info = info
        self.reader = reader
        self.layout = layout
        self.bgr = bgr
        self.subblocks = subblocks
        self.out = "YXS" if "S" in layout.order else "YX"
        self.index_dims = [d for d in layout.order if d not in ("Y", "X", "S")]
        self.extra_dims = list(info.extra_dims)
        #: planes the file does not store, walked as zeros
        self.absent_planes = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        position = plane_position(t, c, z, self.extra_dims, extra)
        selection = {d: position[d] for d in self.index_dims}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                plane = np.asarray(self.reader.get_image_data(self.out, **selection))
        except Exception as exc:
            if self.subblocks is None or not self.subblocks.absent(selection):
                raise SceneError(describe(exc)) from exc
            self.absent_planes += 1
            d = self.info.dims
            return np.zeros((d["Y"], d["X"], d["S"]), dtype=self.info.dtype)
        if plane.ndim == 2:
            plane = plane[:, :, np.newaxis]
        return _to_rgb(plane, self.bgr)


class MosaicScene:
    """A mosaic walked as the reader's stitched image, which the reader builds in memory.

    Used for the mosaics of plugins other than bioio-czi (LIF tile scans through bioio-lif); CZI
    mosaics are read a plane at a time by `czi_mosaic.CziMosaicScene`.
    """

    def __init__(self, info: SceneInfo, reader: Any, bgr: bool) -> None:
        self.info = info
        self.bgr = bgr
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stitched = reader.mosaic_xarray_data
        except Exception as exc:
            raise SceneError(f"mosaic cannot be stitched: {describe(exc)}") from exc
        self.dims = list(stitched.dims)
        self.data = np.asarray(stitched.data)
        self.extra_dims = list(info.extra_dims)

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        position = plane_position(t, c, z, self.extra_dims, extra)
        index = tuple(position[d] if d not in ("Y", "X", "S") else slice(None) for d in self.dims)
        plane = self.data[index]
        kept = [d for d in self.dims if d in ("Y", "X", "S")]
        plane = np.transpose(plane, [kept.index(d) for d in ("Y", "X", "S") if d in kept])
        if plane.ndim == 2:
            plane = plane[:, :, np.newaxis]
        return _to_rgb(plane, self.bgr)
