"""Sources: open a path or URI as the right `Source`, by its form or as the user says.

| source     | what                                    | library                                  |
| ---------- | --------------------------------------- | ---------------------------------------- |
| `tiff`     | TIFF, OME-TIFF                          | tifffile                                 |
| `ome-zarr` | OME-Zarr store (directory)              | zarr                                     |
| `bioio`    | CZI (mosaics stitched plane by plane)   | aicspylibczi (libCZI)                    |
|            | ND2                                     | nd2                                      |
|            | LIF                                     | liffile (mosaics: bioio-lif, stitched)   |
|            | DV                                      | mrc (header), positioned plane reads     |
| `omero`    | omero:// image or fileset URI           | omero-py (Blitz API)                     |

The `bioio` kind is the vendor files, each opened by its suffix. CZI and ND2 are read with the
libraries the bioio plugins wrap, without bioio (whose imports take over a second); `BioioSource`
still reads them through bioio-czi and bioio-nd2 (`BioioSource(location, path, "czi")`), for
comparisons.

`--reader bioformats` reads any file through Bio-Formats instead (opt-in: it needs Java).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import InputError
from ..output import note_input
from ..scene import Source

SOURCE_KINDS = ("auto", "tiff", "ome-zarr", "bioio")
READERS = ("native", "bioformats")

BIOIO_SUFFIXES = {".czi": "czi", ".nd2": "nd2", ".lif": "lif", ".dv": "dv", ".r3d": "dv"}
TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.btf", ".tif", ".tiff", ".btf")

#: file name patterns of every format bioiscc reads natively (the workflow's default include)
NATIVE_PATTERNS = tuple(f"*{s}" for s in (*TIFF_SUFFIXES, *BIOIO_SUFFIXES)) + ("*.zarr",)


def detect(path: Path) -> str:
    """The source kind a local path needs, from its form: a Zarr directory or a file suffix."""
    if path.is_dir():
        from .omezarr import is_zarr_store

        return "ome-zarr" if is_zarr_store(path) else "not-zarr"
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if path.suffix.lower() in BIOIO_SUFFIXES:
        return "bioio"
    return "unknown"


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
    raise InputError(
        location,
        f"unsupported format '{path.suffix or path.name}' (native: TIFF, OME-TIFF, OME-Zarr, CZI, ND2, "
        "LIF, DV; others with --reader bioformats)",
    )


def open_vendor_file(location: str, path: Path) -> Source:
    """A CZI, ND2, LIF or DV file (or a TIFF through bioio), by its suffix."""
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
