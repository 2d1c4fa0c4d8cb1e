"""The scene code: ISCC-SUM (Data-Code + Instance-Code) over the IMAGEWALK stream, and simprints.

Knows nothing of formats: it consumes `Plane`s from any source via `bioiscc.imagewalk`.
"""

from __future__ import annotations

import base64
import functools
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .imagewalk import PlaneWalk, canonical_bytes, ends_plane
from .scene import Plane

if TYPE_CHECKING:
    from iscc_sum import DataCodeProcessor, IsccSumProcessor


@dataclass(frozen=True)
class Simprint:
    """The 256-bit Data-Code of one plane's canonical bytes, with its place in the walk."""

    simprint: str
    offset: int
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"simprint": self.simprint, "offset": self.offset, "size": self.size}


@dataclass(frozen=True)
class SumCode:
    """The result of hashing one scene's canonical stream."""

    iscc_code: str
    units: list[str]
    datahash: str
    bytes: int
    planes: int
    simprints: list[Simprint] | None = field(default=None)


@functools.cache
def _iscc_sum_core() -> Any:
    """iscc_sum's compiled processors, without running the `iscc_sum` package's `__init__`.

    That `__init__` also imports iscc_sum's file reader, which imports upath and fsspec: about 0.1 s
    of a small file's hash, for nothing hashing needs. The compiled core is loaded as Python's import
    system would load it, under its own name, so that a later `import iscc_sum` reuses it. Should
    the package not be laid out as expected, it is imported whole.
    """
    loaded = sys.modules.get("iscc_sum._core") or sys.modules.get("iscc_sum")
    if loaded is not None:
        return loaded
    try:
        package = importlib.util.find_spec("iscc_sum")  # finds the package without importing it
        locations = list(package.submodule_search_locations or []) if package else []
        spec = importlib.machinery.PathFinder.find_spec("iscc_sum._core", locations)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules["iscc_sum._core"] = module
            return module
    except Exception:
        pass
    import iscc_sum

    return iscc_sum


def _data_code_processor() -> DataCodeProcessor:
    return _iscc_sum_core().DataCodeProcessor()


def _iscc_sum_processor() -> IsccSumProcessor:
    return _iscc_sum_core().IsccSumProcessor()


def plane_simprint(data: bytes | list[bytes]) -> str:
    """Standard base64 (padded) of the 32-byte Data-Code body of one plane (bytes, or its pieces)."""
    processor = _data_code_processor()
    for piece in [data] if isinstance(data, bytes) else data:
        processor.update(piece)
    return base64.b64encode(processor.result()["digest"]).decode("ascii")


def hash_planes(
    planes: Iterable[Plane],
    *,
    simprints: bool = False,
    wide: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SumCode:
    """ISCC-SUM over the canonical bytes of `planes`, in the order given.

    `progress`, if given, is called with the byte count of each plane (or row band of a large plane)
    once it is hashed. With BIOISCC_STATS=1 a line of statistics (bytes decoded and hashed, seconds)
    goes to stderr.
    """
    started = time.perf_counter()
    processor = _iscc_sum_processor()
    prints: list[Simprint] | None = [] if simprints else None
    total = 0
    count = 0
    stream = _canonical_stream(planes)
    plane_size = 0
    plane_prints: DataCodeProcessor | None = None
    try:
        for pieces in stream:
            # update() holds the GIL; reading and byte-swapping run in the walk's read-ahead thread.
            for piece in pieces:
                processor.update(piece)
            size = sum(len(piece) for piece in pieces)
            plane_size += size
            if prints is not None:
                plane_prints = plane_prints or _data_code_processor()
                for piece in pieces:
                    plane_prints.update(piece)
            if progress is not None:
                progress(size)
            if not ends_plane(pieces):
                continue  # a row band of a large plane: the plane goes on
            if plane_prints is not None and prints is not None:
                digest = plane_prints.result()["digest"]
                prints.append(Simprint(base64.b64encode(digest).decode("ascii"), count, plane_size))
            total += plane_size
            count += 1
            plane_size, plane_prints = 0, None
    finally:
        stream.close()  # stops the read-ahead thread when hashing fails
    result = processor.result(wide=wide, add_units=True)
    if os.environ.get("BIOISCC_STATS") == "1":
        _print_stats(planes, total, count, time.perf_counter() - started)
    return SumCode(
        iscc_code=result.iscc,
        units=list(result.units or []),
        datahash=result.datahash,
        bytes=total,
        planes=count,
        simprints=prints,
    )


def _canonical_stream(planes: Iterable[Plane]) -> Generator[list[bytes], None, None]:
    """A walk's own (read-ahead) stream, or the canonical bytes of any other planes, per plane."""
    if isinstance(planes, PlaneWalk):
        return planes.canonical()
    return ([canonical_bytes(plane.data)] for plane in planes)


def _print_stats(planes: Iterable[Plane], hashed: int, count: int, seconds: float) -> None:
    """Read amplification is bytes decoded / bytes hashed; readers that count set `decoded_bytes`."""
    reader = planes.reader if isinstance(planes, PlaneWalk) else None
    decoded = getattr(reader, "decoded_bytes", None)
    ratio = f"{decoded / hashed:.3f}" if decoded is not None and hashed else "n/a"
    print(
        f"bioiscc: stats: planes={count} hashed_bytes={hashed} decoded_bytes={decoded} "
        f"read_amplification={ratio} seconds={seconds:.3f}",
        file=sys.stderr,
    )


def raw_sum(chunks: Iterable[bytes], *, wide: bool = True) -> dict[str, object]:
    """The ISCC-SUM of raw bytes (a file, or a store's files in TREEWALK-ISCC order)."""
    processor = _iscc_sum_processor()
    size = 0
    for chunk in chunks:
        processor.update(chunk)
        size += len(chunk)
    result = processor.result(wide=wide, add_units=True)
    return {
        "iscc_code": result.iscc,
        "units": list(result.units or []),
        "datahash": result.datahash,
        "filesize": size,
    }
