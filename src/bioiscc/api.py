"""The Python API: walk a source, hash its scenes, build the biocode container, iterate planes.

    >>> import bioiscc
    >>> manifest = bioiscc.walk("cells.czi")                 # reads no pixels
    >>> records = bioiscc.hash_scenes("cells.czi", simprints=True)
    >>> for plane in bioiscc.iter_planes("cells.czi", scene=0):
    ...     my_hash.update(plane.data.tobytes())             # (z, c, t) in plane.z, plane.c, plane.t

Errors a user can cause raise `bioiscc.InputError` with a one-line cause. A scene that fails inside
a readable source does not raise: its record has status "failed".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from . import records
from .errors import BioisccError, InputError, SceneSelectionError, describe
from .fingerprint import raw_chunks
from .imagewalk import iter_planes as _walk_planes
from .locations import is_omero_uri, redact
from .scene import Plane, SceneInfo, Source
from .sources import open_source
from .sumcode import hash_planes, raw_sum

PathLike = str | os.PathLike[str]
#: called with (scene index, bytes hashed so far in the scene, bytes of the scene)
Progress = Callable[[int, int, int], None]


@contextmanager
def opened(location: PathLike, source: str = "auto", reader: str = "native") -> Iterator[Source]:
    """Open a source and close it afterwards; errors while opening become `InputError`."""
    location = str(location)
    try:
        opened_source = open_source(location, source=source, reader=reader)
    except BioisccError:
        raise
    except Exception as exc:  # a reader library failing on a corrupt file
        raise InputError(location, describe(exc)) from exc
    try:
        yield opened_source
    finally:
        opened_source.close()


def source_kind_of(src: Source) -> str:
    """The `--source` value that reopens this source the same way."""
    return src.kind


def _list_scenes(src: Source) -> list[SceneInfo]:
    from .sources.integrity import over_limits

    try:
        return [over_limits(info, src.reads_planes_in_bands) for info in src.scenes()]
    except BioisccError:
        raise
    except Exception as exc:
        raise InputError(src.location, describe(exc)) from exc


def walk(location: PathLike, *, source: str = "auto", reader: str = "native") -> dict[str, Any]:
    """The `bioiscc.walk` manifest of a source: its scenes and their geometry. Reads no pixels."""
    with opened(location, source, reader) as src:
        scenes = _list_scenes(src)
        record = records.walk_record(
            src.location,
            format=src.format,
            reader=src.reader_name,
            fingerprint=src.fingerprint(),
            scenes=scenes,
        )
        record["source_kind"] = source_kind_of(src)
        return record


def failed_walk(location: PathLike, error: str) -> dict[str, Any]:
    """The walk record of an input that cannot be read (for --record-errors)."""
    return records.walk_record(
        redact(str(location)), format=None, reader=None, fingerprint=None, scenes=[], error=error
    )


def hash_scenes(
    location: PathLike,
    *,
    scenes: Sequence[int] | None = None,
    simprints: bool = False,
    narrow: bool = False,
    source: str = "auto",
    reader: str = "native",
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """One `bioiscc.scene` record per selected scene (all by default), in scene order."""
    with opened(location, source, reader) as src:
        infos = _list_scenes(src)
        return _hash_selected(src, infos, scenes, simprints=simprints, narrow=narrow, progress=progress)


def hash_manifest(
    manifest: Mapping[str, Any],
    *,
    scenes: Sequence[int] | None = None,
    simprints: bool = False,
    narrow: bool = False,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Hash scenes of the source a walk manifest describes, checking it has not changed since."""
    location = str(manifest["source"])
    if manifest.get("status") != "ok":
        raise InputError(location, str(manifest.get("error") or "the walk of this input failed"))
    kind = str(manifest.get("source_kind", "auto"))
    reader = "bioformats" if kind == "bioformats" else "native"
    with opened(location, "bioio" if kind == "bioformats" else kind, reader) as src:
        if manifest.get("fingerprint") and src.fingerprint() != manifest["fingerprint"]:
            raise InputError(location, "changed since it was walked (fingerprint differs); walk it again")
        infos = _list_scenes(src)
        return _hash_selected(src, infos, scenes, simprints=simprints, narrow=narrow, progress=progress)


def _hash_selected(
    src: Source,
    infos: list[SceneInfo],
    selection: Sequence[int] | None,
    *,
    simprints: bool,
    narrow: bool,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    chosen = list(range(len(infos))) if not selection else list(dict.fromkeys(selection))  # once each
    for index in chosen:
        if not 0 <= index < len(infos):
            raise SceneSelectionError(
                f"{src.location}: no scene {index} (the source has {len(infos)} scene(s))"
            )
    return [hash_scene(src, infos[i], simprints=simprints, narrow=narrow, progress=progress) for i in chosen]


def hash_scene(
    src: Source,
    info: SceneInfo,
    *,
    simprints: bool = False,
    narrow: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The `bioiscc.scene` record of one scene; a failure becomes a failed record."""
    make_record = functools.partial(
        records.scene_record,
        src.location,
        format=src.format,
        reader=src.reader_name,
        info=info,
        simprints=simprints,
    )
    if not info.ok:
        return make_record(error=info.error)
    done = 0

    def advance(size: int) -> None:
        nonlocal done
        done += size
        if progress is not None:
            progress(info.index, done, info.bytes)

    try:
        reader = src.open_scene(info)
        code = hash_planes(_walk_planes(reader), simprints=simprints, wide=not narrow, progress=advance)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        return make_record(error=describe_scene_error(exc))
    record = make_record(code=code)
    absent = getattr(reader, "absent_planes", 0)
    if absent:
        record["absent_planes"] = absent  # planes the file does not store, walked as zeros
    return record


def describe_scene_error(exc: Exception) -> str:
    from .errors import SceneError

    return str(exc) if isinstance(exc, (SceneError, InputError)) else describe(exc)


def biocode(
    location: PathLike,
    *,
    simprints: bool = False,
    raw: bool = True,
    narrow: bool = False,
    source: str = "auto",
    reader: str = "native",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The container iscc-bio users know: raw-bytes ISCC-SUM on top, scene records as parts."""
    parts = hash_scenes(
        location, simprints=simprints, narrow=narrow, source=source, reader=reader, progress=progress
    )
    # OMERO serves pixels, not the bytes of a file: no raw-bytes code (RECORDS.md)
    local = not is_omero_uri(str(location))
    raw_code = raw_sum(raw_chunks(location), wide=not narrow) if raw and local else None
    return records.biocode_record(str(location), raw=raw_code, parts=parts)


def failed_biocode(location: PathLike, error: str) -> dict[str, Any]:
    return records.biocode_record(redact(str(location)), raw=None, parts=[], error=error)


def iter_planes(
    location: PathLike, scene: int = 0, *, source: str = "auto", reader: str = "native"
) -> Iterator[Plane]:
    """The planes of one scene in IMAGEWALK order, for people who bring their own hash.

    Each `Plane` has `z`, `c` (samples folded in), `t`, `extra` and `data`, a 2D array in the
    pixels' own dtype; `bioiscc.imagewalk.canonical_bytes(plane.data)` gives its canonical bytes.
    """
    with opened(location, source, reader) as src:
        infos = _list_scenes(src)
        if not 0 <= scene < len(infos):
            raise SceneSelectionError(f"{location}: no scene {scene} (the source has {len(infos)})")
        info = infos[scene]
        if not info.ok:
            raise InputError(str(location), f"scene {scene}: {info.error}")
        yield from _walk_planes(src.open_scene(info))


def scenes(location: PathLike, *, source: str = "auto", reader: str = "native") -> list[SceneInfo]:
    """The scenes of a source with their geometry (reads no pixels)."""
    with opened(location, source, reader) as src:
        return _list_scenes(src)


__all__ = [
    "biocode",
    "hash_manifest",
    "hash_scenes",
    "iter_planes",
    "scenes",
    "walk",
]
