"""Sources: open a path or URI as the right `Source`, by its form or as the user says.

| source     | what                                    | library                                  |
| ---------- | --------------------------------------- | ---------------------------------------- |
| `tiff`     | TIFF, OME-TIFF, BigTIFF, and TIFF-based | tifffile                                 |
|            | whole-slide files (SVS, NDPI, SCN, ...) |                                          |
| `ome-zarr` | OME-Zarr store (directory)              | numcodecs for plain chunk files          |
|            |                                         | and shards (`zarr_folder`), else zarr    |
| `bioio`    | CZI (mosaics stitched plane by plane)   | aicspylibczi (libCZI)                    |
|            | ND2                                     | nd2                                      |
|            | LIF                                     | liffile (mosaics: bioio-lif, stitched)   |
|            | DV                                      | mrc (header), positioned plane reads     |
|            | any other file a bioio plugin reads     | that plugin (`sources.plugins`)          |
| `omero`    | omero:// image or fileset URI           | omero-py (Blitz API)                     |

A file is a TIFF by its first bytes (a classic or BigTIFF header), whatever its name: Aperio SVS,
Hamamatsu NDPI, Leica SCN, QPTIFF, Ventana BIF, Zeiss LSM, `.tf8` and files without a suffix are
walked as tifffile's series. A file named as a TIFF without a TIFF header is refused, not handed to
another reader. The `bioio` kind is the vendor files, each opened by its suffix, and, for a file no
native reader claims, the installed bioio reader plugin that reads it (`sources.plugins`).

CZI and ND2 are read with the libraries the bioio plugins wrap, without bioio (whose imports take
over a second); `BioioSource` still reads them through bioio-czi and bioio-nd2
(`BioioSource(location, path, "czi")`), for comparisons.

`--reader bioformats` reads any file through Bio-Formats instead (opt-in: it needs Java).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..output import note_input
from ..scene import Source

SOURCE_KINDS = ("auto", "tiff", "ome-zarr", "bioio")
READERS = ("native", "bioformats")

BIOIO_SUFFIXES = {".czi": "czi", ".nd2": "nd2", ".lif": "lif", ".dv": "dv", ".r3d": "dv"}
TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.btf", ".tif", ".tiff", ".btf")
#: names of TIFF-based formats (whole-slide and others); their files are recognised by content
TIFF_FAMILY_SUFFIXES = (".svs", ".ndpi", ".scn", ".qptiff", ".bif", ".lsm", ".tf8", ".tf2")
#: the first bytes of a TIFF: byte order, then 42 (classic TIFF) or 43 (BigTIFF)
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

#: file name patterns of every format bioiscc reads natively (the workflow's default include)
NATIVE_PATTERNS = tuple(f"*{s}" for s in (*TIFF_SUFFIXES, *TIFF_FAMILY_SUFFIXES, *BIOIO_SUFFIXES)) + (
    "*.zarr",
)


def detect(path: Path) -> str:
    """The source kind a local path needs: a Zarr directory, a TIFF by content, else by suffix.

    "not-zarr" is a directory that is not a store, "not-tiff" a file named as a TIFF without a TIFF
    header, "unknown" a file no native reader claims (left to the bioio plugins).
    """
    if path.is_dir():
        from .omezarr import is_zarr_store

        return "ome-zarr" if is_zarr_store(path) else "not-zarr"
    if has_tiff_header(path):
        return "tiff"
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES + TIFF_FAMILY_SUFFIXES):
        return "not-tiff"
    if path.suffix.lower() in BIOIO_SUFFIXES:
        return "bioio"
    return "unknown"


def has_tiff_header(path: Path) -> bool:
    """Whether a file starts as a classic TIFF or a BigTIFF does (in either byte order)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) in TIFF_MAGIC
    except OSError:
        return False


def bioio_plugin(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".ome.tif", ".ome.tiff", ".ome.btf")):
        return "ome-tiff"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    plugin = BIOIO_SUFFIXES.get(path.suffix.lower())
    if plugin is None:
        raise InputError(str(path), f"no native bioio reader for '{path.suffix}' files")
    return plugin


#: tifffile's series kinds of TIFF-based formats, as the walk records name them
TIFF_FLAVOURS = {
    "svs": "svs",
    "ndpi": "ndpi",
    "scn": "scn",
    "qpi": "qptiff",
    "bif": "bif",
    "philips": "philips-tiff",
    "lsm": "lsm",
}


def tiff_format(tiff: Any) -> str:
    """The format a tifffile.TiffFile records: "ome-tiff", a whole-slide flavour ("svs", ...) or "tiff"."""
    if tiff.is_ome:
        return "ome-tiff"
    series = tiff.series
    return TIFF_FLAVOURS.get(series[0].kind, "tiff") if series else "tiff"


def _missing(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "a broken symbolic link" if path.is_symlink() else "no such file or directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot be read: {exc.strerror or exc}"


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def check_readable(location: str, path: Path) -> None:
    """One clear cause for inputs that are not there, not readable or empty."""
    try:
        status = path.stat()
    except OSError as exc:
        raise InputError(location, _missing(path, exc)) from exc
    if not (stat.S_ISREG(status.st_mode) or stat.S_ISDIR(status.st_mode)):
        # opening a FIFO waits for a writer, a device may never end: neither is read
        raise InputError(location, f"not a regular file or directory ({_file_type(status.st_mode)})")
    note_input(path)
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise InputError(location, "permission denied")
    if path.is_file():
        try:
            with path.open("rb") as handle:
                first = handle.read(1)
        except PermissionError as exc:
            raise InputError(location, "permission denied") from exc
        except OSError as exc:
            raise InputError(location, f"cannot be read: {exc.strerror or exc}") from exc
        if not first:
            raise InputError(location, "empty file (0 bytes)")


def open_source(location: str | os.PathLike[str], source: str = "auto", reader: str = "native") -> Source:
    """Open a path (or URI) as a `Source`. Raises `InputError` with a one-line cause."""
    location = str(location)
    if location[:8].lower() == "omero://":  # before any local-path check
        from .omero import open_omero

        return open_omero(location, source, reader)
    if source not in SOURCE_KINDS:
        raise InputError(location, f"unknown source kind {source!r}; one of {', '.join(SOURCE_KINDS)}")
    if reader not in READERS:
        raise InputError(location, f"unknown reader {reader!r}; one of {', '.join(READERS)}")
    path = Path(location)
    check_readable(location, path)
    if reader == "bioformats":
        if path.is_dir():
            raise InputError(location, "Bio-Formats reads files, not directories")
        from .bioio_file import BioioSource

        return BioioSource(location, path, "bioformats")
    kind = detect(path) if source == "auto" else source
    if kind == "tiff":
        from .tiff import TiffSource

        return TiffSource(location, path)
    if kind == "ome-zarr":
        from .omezarr import OmeZarrSource

        if not path.is_dir():
            raise InputError(location, "an OME-Zarr store is a directory")
        return OmeZarrSource(location, path)
    if kind == "bioio":
        return open_vendor_file(location, path)
    if kind == "not-zarr":
        raise InputError(location, "a directory that is not a Zarr store (no .zgroup, .zattrs or zarr.json)")
    if kind == "not-tiff":
        raise InputError(
            location, f"not a readable TIFF: named '{path.suffix}' but the file has no TIFF header"
        )
    from .plugins import open_with_plugin

    return open_with_plugin(location, path)


def open_vendor_file(location: str, path: Path) -> Source:
    """A CZI, ND2, LIF or DV file (or a TIFF through bioio) by its suffix; else a bioio plugin's."""
    if path.suffix.lower() not in BIOIO_SUFFIXES and not path.name.lower().endswith(TIFF_SUFFIXES):
        from .plugins import open_with_plugin

        return open_with_plugin(location, path)
    plugin = bioio_plugin(path)
    if plugin == "czi":
        from .czi import CziSource

        return CziSource(location, path)
    if plugin == "nd2":
        from .nd2 import Nd2Source

        return Nd2Source(location, path)
    if plugin == "dv":
        from .dv import DvSource

        return DvSource(location, path)
    if plugin == "lif":
        from .lif import LifSource

        return LifSource(location, path)
    from .bioio_file import BioioSource

    return BioioSource(location, path, plugin)
