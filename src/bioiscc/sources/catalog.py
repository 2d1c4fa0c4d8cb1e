"""What this installation reads: the native readers and the installed bioio reader plugins.

The native readers are listed from what `open_source` does (how a file is recognised, which library
reads it) with the installed version of that library, or null when it is not installed; the
plugins from their entry points (`sources.plugins`), with the suffixes they claim and whether the
fallback asks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..errors import describe
from . import BIOIO_SUFFIXES, TIFF_FAMILY_SUFFIXES, TIFF_MAGIC, TIFF_SUFFIXES
from .plugins import installed_plugins


@dataclass(frozen=True)
class NativeReader:
    format: str
    #: how `open_source` recognises the input, in words
    recognised_by: str
    suffixes: tuple[str, ...]
    #: the first bytes that identify the format, whatever the suffix
    magic: tuple[bytes, ...]
    library: str
    extra: str


def _suffixes(kind: str) -> tuple[str, ...]:
    return tuple(s for s, k in BIOIO_SUFFIXES.items() if k == kind)


NATIVE_READERS = (
    NativeReader(
        "TIFF family: TIFF, OME-TIFF, BigTIFF, SVS, NDPI, SCN, QPTIFF, BIF, LSM, ...",
        "TIFF or BigTIFF header, any name",
        TIFF_SUFFIXES + TIFF_FAMILY_SUFFIXES,
        TIFF_MAGIC,
        "tifffile",
        "tifffile",
    ),
    NativeReader(
        "OME-Zarr (chunk files read directly where the layout allows, else by zarr)",
        "directory with .zgroup, .zattrs or zarr.json",
        (".zarr",),
        (),
        "zarr",
        "ome-zarr",
    ),
    NativeReader("Zeiss CZI", "suffix", _suffixes("czi"), (), "aicspylibczi", "czi"),
    NativeReader("Nikon ND2", "suffix", _suffixes("nd2"), (), "nd2", "nd2"),
    NativeReader("Leica LIF", "suffix", _suffixes("lif"), (), "liffile", "lif"),
    NativeReader("DeltaVision", "suffix", _suffixes("dv"), (), "mrc", "dv"),
    NativeReader("OMERO image or fileset", "omero:// URI", (), (), "omero-py", "omero"),
    NativeReader(
        "anything Bio-Formats reads", "--reader bioformats (opt-in)", (), (), "bioio-bioformats", "bioformats"
    ),
)


def installed_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def native_formats() -> list[dict[str, Any]]:
    """The native readers, each with its library's installed version (null: not installed)."""
    return [
        {
            "format": reader.format,
            "recognised_by": reader.recognised_by,
            "suffixes": list(reader.suffixes),
            "magic": [m.hex() for m in reader.magic],
            "library": reader.library,
            "version": installed_version(reader.library),
            "extra": reader.extra,
        }
        for reader in NATIVE_READERS
    ]


def plugin_formats() -> list[dict[str, Any]]:
    """Every installed bioio reader plugin: name, version, the suffixes it claims, and its use here."""
    rows = []
    for plugin in installed_plugins():
        row: dict[str, Any] = {
            "name": plugin.name,
            "module": plugin.module,
            "version": plugin.version,
            "fallback": plugin.fallback,
            "use": plugin.note,
            "suffixes": [],
            "error": None,
        }
        try:
            row["suffixes"] = plugin.suffixes()
        except Exception as exc:  # a plugin that does not import is listed, with why
            row["error"] = describe(exc)
            row["fallback"] = False
            row["use"] = "does not import"
        rows.append(row)
    return rows
