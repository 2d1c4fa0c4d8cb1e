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

from ..errors import InputError, MissingPluginError, SceneError, describe
from ..scene import SceneInfo, SceneReader, Source, make_dims
from .arrays import ChunkedArrayScene, split_axes
from .integrity import bound_chunks, guard_zarr_codecs
from .sparse import sparse_view
from .zarr_folder import FolderGroup, GroupNotFound, open_direct

ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json", ".zarray")
DEFAULT_AXES = ("t", "c", "z", "y", "x")  # NGFF 0.1/0.2 had no axes metadata


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_MARKERS)


@dataclass(frozen=True)
class _ImageRef:
    """Where one scene lives: the group path of a multiscales image inside the store."""

    group: str
    name: str


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
        return ", ".join(sorted(self._readers)) or f"zarr {_package_version('zarr')}"

    def _open_group(self, group: str) -> FolderGroup:
        with _reading_metadata(self.location):
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
        attrs = self._attrs(self.root)
        if "multiscales" in attrs:
            return [_ImageRef("", _multiscales_name(attrs, "image"))]
        layout = attrs.get("bioformats2raw.layout", dict(self.root.attrs).get("bioformats2raw.layout"))
        if layout is not None:
            with _reading_metadata(self.location):
                children = [name for name, _ in self.root.groups()]
            series = sorted((name for name in children if name.isdigit()), key=int)
            if not series:
                raise InputError(self.location, "bioformats2raw layout without series groups")
            return [_ImageRef(name, self._series_name(name)) for name in series]
        if "plate" in attrs:
            return self._plate_fields(attrs["plate"])
        raise InputError(
            self.location,
            "not an OME-Zarr image: no multiscales, plate or bioformats2raw.layout metadata",
        )

    def _series_name(self, name: str) -> str:
        try:
            return _multiscales_name(self._attrs(self._open_group(name)), name)
        except InputError:
            return name

    def _plate_fields(self, plate: Mapping[str, Any]) -> list[_ImageRef]:
        refs: list[_ImageRef] = []
        for well in plate.get("wells", []):
            well_path = str(well["path"]).strip("/")
            well_attrs = self._attrs(self._open_group(well_path))
            images = well_attrs.get("well", {}).get("images", [])
            for image in images:
                path = f"{well_path}/{str(image['path']).strip('/')}"
                refs.append(_ImageRef(path, path))
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
            dtype=str(array.dtype),
        )

    def _multiscale(self, ref: _ImageRef) -> tuple[FolderGroup, Mapping[str, Any]]:
        """The image's group and its first multiscales entry (which has datasets)."""
        group = self.root if ref.group == "" else self._open_group(ref.group)
        multiscales = self._attrs(group).get("multiscales")
        if not multiscales:
            raise SceneError(f"{ref.group or '/'}: no multiscales metadata")
        if not multiscales[0].get("datasets"):
            raise SceneError(f"{ref.group or '/'}: multiscales without datasets")
        return group, multiscales[0]

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
    """Axis names, upper-cased for the standard ones; extra dimensions keep their names."""
    if axes is None:
        names = list(DEFAULT_AXES[-ndim:])
    else:
        names = [a["name"] if isinstance(a, Mapping) else str(a) for a in axes]
    if len(names) != ndim:
        raise SceneError(f"{len(names)} axes in metadata but the array has {ndim} dimensions")
    return [n.upper() if n.lower() in ("t", "c", "z", "y", "x") else n for n in names]


def _multiscales_name(attrs: Mapping[str, Any], default: str) -> str:
    name = attrs["multiscales"][0].get("name") if attrs.get("multiscales") else None
    return str(name) if name else default


@contextlib.contextmanager
def _reading_metadata(location: str) -> Iterator[None]:
    """Group metadata that cannot be read (not JSON, missing, unreadable) is the input's one-line
    error."""
    try:
        yield
    except json.JSONDecodeError as exc:
        raise InputError(location, f"invalid Zarr metadata (not JSON): {exc}") from exc
    except (GroupNotFound, OSError, UnicodeDecodeError) as exc:
        raise InputError(location, f"not a readable Zarr group: {describe(exc)}") from exc


def _cause(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return exc.cause
    return str(exc) if isinstance(exc, SceneError) else describe(exc)


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
