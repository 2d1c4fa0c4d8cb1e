"""OME-Zarr stores (NGFF 0.4 on zarr v2, NGFF 0.5 on zarr v3): groups and plain arrays read by
`zarr_folder` (numcodecs decodes the chunks, in their own files or in shards), every other array
(filters, transposes) by zarr.

Scenes (IMAGEWALK section 1): one multiscales image at the root; or the series groups of a
bioformats2raw layout in ascending numeric order; or the fields of an HCS plate, wells in the
plate's order and fields in each well's order. Only level 0 of a pyramid is walked; label images
are never scenes. bioio is not imported on this path.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingPluginError, SceneError, describe
from ..scene import SceneInfo, SceneReader, Source, make_dims
from .arrays import ChunkedArrayScene, split_axes
from .integrity import bound_chunks, guard_zarr_codecs
from .sparse import sparse_view
from .zarr_folder import FolderGroup, GroupNotFound, MetadataShapeError, open_direct

ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json", ".zarray")
DEFAULT_AXES = ("t", "c", "z", "y", "x")  # NGFF 0.1/0.2 had no axes metadata
#: NGFF 0.4/0.5 axis types that name a standard dimension whatever the axis is called
TYPED_AXES = {"time": "T", "channel": "C"}
#: the dimensions of the space axes, from the last one back (NGFF: 2 or 3, in z, y, x order)
SPACE_FROM_LAST = ("X", "Y", "Z")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_MARKERS)


@dataclass(frozen=True)
class _ImageRef:
    """Where one scene lives: the group path of a multiscales image inside the store."""

    group: str
    name: str
    label: str = ""  # how its errors name it ("series 2", a field's path); "" for the root image

    def cause(self, text: str) -> str:
        return f"{self.label}: {text}" if self.label else text


def _ome_attrs(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """NGFF 0.5 nests its metadata under "ome"; 0.4 keeps it at the top level."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, Mapping) else attrs


class OmeZarrSource(Source):
    format = "ome-zarr"
    kind = "ome-zarr"

    def __init__(self, location: str, path: Path) -> None:
        self.location = location
        self.path = path
        self._zarr: Any = None  # imported for the arrays zarr_folder leaves to it
        self._readers: set[str] = set()
        self.root = self._open_group("")
        self.refs = self._find_images()

    @property
    def reader_name(self) -> str:
        """What read the arrays: numcodecs (chunk files read in `zarr_folder`) and/or zarr."""
        if self._readers:
            return ", ".join(sorted(self._readers))
        try:  # no array opened (yet), or none could be
            return f"zarr {_package_version('zarr')}"
        except ImportError:  # importlib.metadata's PackageNotFoundError is one
            return "zarr (not installed)"

    def _open_group(self, group: str, label: str = "") -> FolderGroup:
        with _reading_metadata(self.location, label):
            return FolderGroup(self.path / group)

    def _attrs(self, group: FolderGroup) -> Mapping[str, Any]:
        return _ome_attrs(dict(group.attrs))

    def _open_array(self, group: FolderGroup, path: str) -> Any:
        folder = group.folder / path
        array = open_direct(folder)
        if array is not None:
            self._readers.add(array.reader)
            return array
        zarr = self._zarr_module()
        array = zarr.open_array(store=str(folder), mode="r")
        self._readers.add(f"zarr {_package_version('zarr')}")
        bound_chunks(array)
        return array

    def _zarr_module(self) -> Any:
        if self._zarr is None:
            try:
                import zarr
            except ImportError as exc:  # pragma: no cover - zarr is part of the ome-zarr extra
                raise MissingPluginError(self.location, "zarr", "ome-zarr") from exc
            _limit_decode_threads(zarr)
            guard_zarr_codecs()  # a chunk that inflates beyond its size fails, not memory
            self._zarr = zarr
        return self._zarr

    def _find_images(self) -> list[_ImageRef]:
        """The scenes' groups. Metadata that leaves the list of scenes unknown (the root's, a
        plate's or a well's) fails the input; an image's own metadata fails its scene alone."""
        attrs = self._attrs(self.root)
        try:
            if "multiscales" in attrs:
                return [_ImageRef("", _image_name(_first_multiscale(attrs), "image"))]
            layout = attrs.get("bioformats2raw.layout", dict(self.root.attrs).get("bioformats2raw.layout"))
            if layout is not None:
                return self._series(layout)
            if "plate" in attrs:
                return self._plate_fields(attrs["plate"])
        except SceneError as exc:
            raise InputError(self.location, str(exc)) from exc
        raise InputError(
            self.location,
            "not an OME-Zarr image: no multiscales, plate or bioformats2raw.layout metadata",
        )

    def _series(self, layout: Any) -> list[_ImageRef]:
        """Every numbered folder is a series, listed even when its group metadata is lost or broken:
        a series that cannot be read is a failed scene at its index (IMAGEWALK section 1)."""
        if not isinstance(layout, int) or isinstance(layout, bool):
            raise _invalid("bioformats2raw.layout is not an integer")
        with _reading_metadata(self.location):
            folders = self.root.folders()
        series = sorted((name for name in folders if name.isascii() and name.isdigit()), key=int)
        if not series:
            raise InputError(self.location, "bioformats2raw layout without series groups")
        return [_ImageRef(name, self._series_name(name), f"series {name}") for name in series]

    def _series_name(self, name: str) -> str:
        try:
            return _image_name(_first_multiscale(self._attrs(self._open_group(name))), name)
        except (InputError, SceneError):
            return name  # its scene fails, and says why

    def _plate_fields(self, plate: Any) -> list[_ImageRef]:
        if not isinstance(plate, Mapping):
            raise _invalid("plate is not an object")
        refs: list[_ImageRef] = []
        for well_path in _paths(plate.get("wells"), "plate.wells"):
            well = self._attrs(self._open_group(well_path, f"well {well_path}")).get("well")
            if not isinstance(well, Mapping):
                raise _invalid(f"well {well_path}: well is not an object")
            for image_path in _paths(well.get("images"), f"well {well_path}: well.images"):
                path = f"{well_path}/{image_path}"
                refs.append(_ImageRef(path, path, path))
        if not refs:
            raise InputError(self.location, "HCS plate without fields of view")
        return refs

    def scenes(self) -> list[SceneInfo]:
        return [self._describe(index, ref) for index, ref in enumerate(self.refs)]

    def _describe(self, index: int, ref: _ImageRef) -> SceneInfo:
        try:
            array, axes = self._level0(ref)
            standard, extra = split_axes(axes, array.shape)
        except (InputError, SceneError, ValueError, KeyError) as exc:
            return SceneInfo(index=index, name=ref.name, error=_cause(exc))
        return SceneInfo(
            index=index,
            name=ref.name,
            dims=make_dims(standard),
            extra_dims=extra,
            dtype=_dtype_name(array.dtype),
        )

    def _multiscale(self, ref: _ImageRef) -> tuple[FolderGroup, Mapping[str, Any]]:
        """The image's group and its first multiscales entry (which has datasets)."""
        group = self.root if ref.group == "" else self._open_group(ref.group, ref.label)
        try:
            return group, _first_multiscale(self._attrs(group))
        except SceneError as exc:
            raise SceneError(ref.cause(str(exc))) from exc

    def _level(self, group: FolderGroup, multiscale: Mapping[str, Any], number: int) -> tuple[Any, list[str]]:
        path = str(multiscale["datasets"][number]["path"])
        try:
            array = self._open_array(group, path)
        except MissingPluginError:
            raise
        except Exception as exc:
            raise SceneError(f"level-{number} array {path!r} cannot be opened: {describe(exc)}") from exc
        return array, _axis_names(multiscale.get("axes"), len(array.shape))

    def _level0(self, ref: _ImageRef) -> tuple[Any, list[str]]:
        return self._level(*self._multiscale(ref), 0)

    def lower_levels(self, index: int) -> list[tuple[Any, list[str]]]:
        """Levels 1, 2, ... of scene `index`'s pyramid as (array, axis names), opened as level 0 is.

        A level that cannot be opened, or whose axes do not match the metadata, is left out: the
        others (and level 0) still serve a thumbnail.
        """
        group, multiscale = self._multiscale(self.refs[index])
        levels = []
        for number in range(1, len(multiscale["datasets"])):
            try:
                levels.append(self._level(group, multiscale, number))
            except SceneError:
                continue
        return levels

    def open_scene(self, info: SceneInfo) -> SceneReader:
        array, axes = self._level0(self.refs[info.index])
        blocks = getattr(array, "shards", None) or array.chunks
        return ChunkedArrayScene(info, sparse_view(array), axes, chunks=blocks)


def _limit_decode_threads(zarr: Any) -> None:
    """Decode chunks in as many threads as the walk may use, and keep as many chunk reads in flight,
    unless zarr's config (or its environment variables) says otherwise.

    zarr decodes the chunks of a read in a thread pool of its own (by default, cores + 4 threads),
    with up to 10 chunks in flight. On a small machine the extra threads only contend for the cores
    with the hash, each keeps an allocator arena of its own, and each chunk in flight holds its
    compressed and decoded buffers (a 512 MiB zstd OME-Zarr on 2 cores, 6 runs each: peak RSS 288
    -> 253 MB with 2 in flight instead of 10, the same time). The pool is made at zarr's first read.
    """
    from ..imagewalk import thread_budget

    if zarr.config.get("threading.max_workers", None) is None:
        zarr.config.set({"threading.max_workers": thread_budget()})
    if "ZARR_ASYNC__CONCURRENCY" not in os.environ:
        zarr.config.set({"async.concurrency": max(2, thread_budget())})


def _axis_names(axes: Any, ndim: int) -> list[str]:
    """The dimension each array axis is: T, C, Z, Y or X, or the axis's own name (an extra one).

    NGFF 0.4/0.5 axes may be named freely: their type says what they are (time, channel, space;
    the space axes last, z before y before x). Axes without a type (NGFF 0.3 names, or none at all)
    are known by their names; an axis of any other type is an extra dimension.
    """
    entries = [{"name": name} for name in DEFAULT_AXES[-ndim:]] if axes is None else list(axes)
    if len(entries) != ndim:
        raise SceneError(f"{len(entries)} axes in metadata but the array has {ndim} dimensions")
    names = [_axis_by_name(entry) for entry in entries]
    types = [entry.get("type") if isinstance(entry, Mapping) else None for entry in entries]
    space = [i for i, kind in enumerate(types) if isinstance(kind, str) and kind.lower() == "space"]
    for i, kind in enumerate(types):
        if isinstance(kind, str) and kind.lower() != "space":
            names[i] = TYPED_AXES.get(kind.lower(), _axis_name(entries[i]))
    for i, dimension in zip(reversed(space), SPACE_FROM_LAST, strict=False):
        names[i] = dimension  # a 4th space axis and beyond (not NGFF) keep their names: extra
    return names


def _axis_name(entry: Any) -> str:
    return str(entry["name"]) if isinstance(entry, Mapping) else str(entry)


def _axis_by_name(entry: Any) -> str:
    name = _axis_name(entry)
    return name.upper() if name.lower() in DEFAULT_AXES else name


def _first_multiscale(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The first multiscales entry, checked to be of the shape NGFF defines (SceneError if not)."""
    multiscales = attrs.get("multiscales")
    if multiscales is None:
        raise SceneError("no multiscales metadata")
    if not _objects(multiscales):
        raise _invalid("multiscales is not a list of objects")
    if not multiscales:
        raise _invalid("multiscales is an empty list")
    multiscale = multiscales[0]
    datasets = multiscale.get("datasets")
    if datasets is None or datasets == []:
        raise SceneError("multiscales without datasets")
    if not _objects(datasets):
        raise _invalid("datasets is not a list of objects")
    if not all(isinstance(dataset.get("path"), str) and dataset["path"] for dataset in datasets):
        raise _invalid("a dataset's path is not a string")
    axes = multiscale.get("axes")
    if axes is not None and not (isinstance(axes, list) and all(map(_is_axis, axes))):
        raise _invalid("axes is not a list of names or of objects with a name and a type")
    return multiscale


def _is_axis(entry: Any) -> bool:
    """An NGFF 0.3 axis (a name) or a 0.4/0.5 one (an object with a name, and a type or none)."""
    if isinstance(entry, str):
        return bool(entry)
    if not isinstance(entry, Mapping):
        return False
    name, kind = entry.get("name"), entry.get("type")
    return isinstance(name, str) and bool(name) and (kind is None or isinstance(kind, str))


def _paths(entries: Any, what: str) -> list[str]:
    """The `path` of each object in a list of plate wells or well images."""
    if not _objects(entries):
        raise _invalid(f"{what} is not a list of objects")
    paths = [entry.get("path") for entry in entries]
    if not all(isinstance(path, str) and path.strip("/") for path in paths):
        raise _invalid(f"{what}: a path is not a string")
    return [path.strip("/") for path in paths]


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, Mapping) for item in value)


def _invalid(what: str) -> SceneError:
    return SceneError(f"invalid OME-Zarr metadata: {what}")


def _image_name(multiscale: Mapping[str, Any], default: str) -> str:
    name = multiscale.get("name")
    return str(name) if name else default


def _dtype_name(dtype: Any) -> str:
    """The dtype in native byte order ("uint16", as RECORDS.md and every other format name it): a
    big-endian Zarr v2 array's ">u2" is how its chunks are stored, not what its pixels are."""
    try:
        return str(np.dtype(dtype).newbyteorder("="))
    except TypeError:
        return str(dtype)  # not a NumPy dtype: as the array names it


@contextlib.contextmanager
def _reading_metadata(location: str, label: str = "") -> Iterator[None]:
    """Group metadata that cannot be read (not JSON, missing, unreadable) is a one-line error,
    prefixed with `label` (the series or well) when it is not the root's."""
    where = f"{label}: " if label else ""
    try:
        yield
    except json.JSONDecodeError as exc:
        raise InputError(location, f"{where}invalid Zarr metadata (not JSON): {exc}") from exc
    except MetadataShapeError as exc:
        raise InputError(location, f"{where}invalid Zarr metadata: {exc}") from exc
    except GroupNotFound as exc:  # its own words, without the class name
        raise InputError(location, f"{where}not a readable Zarr group: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(location, f"{where}not a readable Zarr group: {describe(exc)}") from exc


def _cause(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return exc.cause
    return str(exc) if isinstance(exc, SceneError) else describe(exc)


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
