"""Any other format: the installed bioio reader plugins, asked when no native reader claims a file.

bioio finds its reader plugins through the `bioio.readers` entry points; each names a module with a
`ReaderMetadata` (the file suffixes it claims, its `Reader` class). bioiscc asks them as bioio's own
`BioImage.determine_plugin` does, without importing bioio: the plugins claiming the longest suffix
of the file name first, within a suffix the one claiming fewest suffixes first (then by name), and
the first whose `Reader.is_supported_image` accepts the file reads it. A file whose name no plugin
claims is not offered to every plugin.

The file is walked through the reader object as `bioio_file.BioioSource` walks it (one plane per
call with explicit dimensions, extra dimensions kept), and the records name the plugin and its
version (`reader`, e.g. "bioio_imageio 1.3.0") and the suffix it claimed (`format`, e.g. "png").

Never asked (`NOT_FALLBACK`): the plugins of formats with a native reader, which claims their files
first (shared/samples/READERS.md lists paths of those plugins that return wrong pixels), and
bioio-bioformats, which downloads Java and jars on first use: Bio-Formats stays opt-in
(`--reader bioformats`).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from ..errors import InputError, describe
from .bioio_file import BioioSource

ENTRY_POINTS = "bioio.readers"

#: plugins the fallback never uses, and why
NOT_FALLBACK = {
    "bioio-czi": "native reader (aicspylibczi)",
    "bioio-nd2": "native reader (nd2)",
    "bioio-lif": "native reader (liffile; bioio-lif for LIF mosaics)",
    "bioio-dv": "native reader (mrc)",
    "bioio-ome-tiff": "native reader (tifffile)",
    "bioio-tifffile": "native reader (tifffile)",
    "bioio-tiff-glob": "native reader (tifffile)",
    "bioio-ome-zarr": "native reader (zarr)",
    "bioio-bioformats": "opt-in: --reader bioformats",
}


@dataclass(frozen=True)
class Plugin:
    """One installed bioio reader plugin, known by its entry point (nothing imported yet)."""

    name: str
    module: str
    version: str

    @property
    def fallback(self) -> bool:
        return self.name not in NOT_FALLBACK

    @property
    def note(self) -> str:
        return NOT_FALLBACK.get(self.name, "fallback")

    def metadata(self) -> Any:
        """The plugin's `ReaderMetadata` (imports the plugin)."""
        return importlib.import_module(self.module).ReaderMetadata

    def suffixes(self) -> list[str]:
        """The suffixes the plugin claims, lower case with their dot, in its order, once each."""
        return list(dict.fromkeys(_dotted(s) for s in self.metadata().get_supported_extensions()))


def _dotted(suffix: str) -> str:
    suffix = suffix.lower()
    return suffix if suffix.startswith(".") else "." + suffix


def installed_plugins() -> list[Plugin]:
    """Every bioio reader plugin installed, by name (read from entry points: nothing is imported)."""
    found: dict[str, Plugin] = {}
    for point in entry_points(group=ENTRY_POINTS):
        module = point.value.split(":")[0].strip()
        dist = point.dist.name if point.dist is not None else point.name
        try:
            plugin_version = point.dist.version if point.dist is not None else version(dist)
        except PackageNotFoundError:
            plugin_version = "unknown"
        found.setdefault(point.name, Plugin(point.name, module, plugin_version))
    return [found[name] for name in sorted(found)]


@dataclass(frozen=True)
class _Candidate:
    plugin: Plugin
    suffixes: tuple[str, ...]


@functools.cache
def _fallback_candidates() -> tuple[_Candidate, ...]:
    """The fallback plugins that import, with their suffixes (once per process: a batch reuses it)."""
    candidates = []
    for plugin in installed_plugins():
        if not plugin.fallback:
            continue
        try:
            candidates.append(_Candidate(plugin, tuple(plugin.suffixes())))
        except Exception:  # a broken plugin is not asked; `bioiscc formats` shows why
            continue
    return tuple(candidates)


def claiming(name: str, candidates: Sequence[_Candidate]) -> list[tuple[str, Plugin]]:
    """(suffix, plugin) for the plugins claiming a file name, in the order bioio would ask them."""
    name = name.lower()
    claims = [
        (suffix, candidate)
        for candidate in candidates
        for suffix in candidate.suffixes
        if name.endswith(suffix)
    ]
    claims.sort(key=lambda c: (-len(c[0]), len(c[1].suffixes), c[1].plugin.name))
    chosen: dict[str, tuple[str, Plugin]] = {}
    for suffix, candidate in claims:
        chosen.setdefault(candidate.plugin.name, (suffix, candidate.plugin))
    return list(chosen.values())


def open_with_plugin(location: str, path: Path) -> BioioSource:
    """The file as the first installed bioio plugin that claims and accepts it reads it."""
    claims = claiming(path.name, _fallback_candidates())
    refusals = []
    for suffix, plugin in claims:
        try:
            reader_class = plugin.metadata().get_reader()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                accepted = reader_class.is_supported_image(str(path))
        except Exception as exc:
            refusals.append(f"{plugin.name}: {describe(exc)}")
            continue
        if accepted:
            return PluginSource(location, path, plugin, reader_class, suffix.lstrip("."))
        refusals.append(f"{plugin.name}: not accepted")
    if refusals:
        raise InputError(location, f"no installed bioio plugin reads this file ({'; '.join(refusals)})")
    raise InputError(
        location,
        f"{_format_named(path)} (native: TIFF and TIFF-based, OME-Zarr, CZI, "
        "ND2, LIF, DV; no installed bioio plugin claims it; see `bioiscc formats`; others with "
        "--reader bioformats)",
    )


class PluginSource(BioioSource):
    """A file read by a bioio plugin found through its entry point (not one of `bioio_file.PLUGINS`)."""

    kind = "bioio"

    def __init__(
        self, location: str, path: Path, plugin: Plugin, reader_class: Any, format_name: str
    ) -> None:
        self.location = location
        self.path = path
        self.plugin = plugin.name
        self.format = format_name
        self.installed = plugin
        self.open_reader(reader_class, f"{format_name.upper()} ({plugin.name})")

    @property
    def reader_name(self) -> str:
        return f"{self.installed.module} {self.installed.version}"


def _format_named(path: Path) -> str:
    """What the refusal calls the file: its suffix, or that it has none (and no known content)."""
    if path.suffix:
        return f"unsupported format '{path.suffix}'"
    return "unsupported format: the name has no suffix and the content is not TIFF"
