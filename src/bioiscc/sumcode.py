"""The scene code: ISCC-SUM (Data-Code + Instance-Code) over the IMAGEWALK stream, and simprints.

Knows nothing of formats: it consumes `Plane`s from any source via `bioiscc.imagewalk`.
"""

from __future__ import annotations

import base64
import os
import resource
import sys
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from .hasher import LocalHasher, ThreadHasher, core, hashes_in_threads
from .imagewalk import PlaneWalk, canonical_bytes, ends_plane, thread_budget
from .scene import Plane


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


def hash_planes(
    planes: Iterable[Plane],
    *,
    simprints: bool = False,
    wide: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SumCode:
    """ISCC-SUM over the canonical bytes of `planes`, in the order given.

    A large scene's walk is hashed in two threads while this one reads (`bioiscc.hasher`).
    `progress`, if given, is called with the byte count of each plane (or row band of a large plane)
    once it is handed to the hash. With BIOISCC_STATS=1 a line of statistics (bytes decoded and
    hashed, seconds) goes to stderr.
    """
    started = time.perf_counter()
    digest_of = _hasher_for(planes, simprints=simprints, wide=wide)
    stream = _canonical_stream(planes, in_place=isinstance(digest_of, ThreadHasher))
    total = 0
    count = 0
    try:
        try:
            for pieces in stream:
                size = sum(len(piece) for piece in pieces)
                ends = ends_plane(pieces)
                digest_of.update(pieces, ends)
                total += size
                count += ends
                if progress is not None:
                    progress(size)
            digest = digest_of.finish()
        finally:
            stream.close()  # stops a read-ahead thread when hashing fails
    finally:
        digest_of.close()
    if os.environ.get("BIOISCC_STATS") == "1":
        seconds = time.perf_counter() - started
        _print_stats(planes, total, count, seconds)
    prints = None
    if digest.plane_digests is not None:
        prints = [
            Simprint(base64.b64encode(plane_digest).decode("ascii"), index, size)
            for index, (plane_digest, size) in enumerate(digest.plane_digests)
        ]
    return SumCode(
        iscc_code=digest.iscc,
        units=digest.units,
        datahash=digest.datahash,
        bytes=total,
        planes=count,
        simprints=prints,
    )


def _hasher_for(planes: Iterable[Plane], *, simprints: bool, wide: bool) -> LocalHasher | ThreadHasher:
    """Two hashing threads for a large scene's walk where they may run; this thread otherwise, and
    also when the system will not start them (a limit on threads, as some containers set) or
    iscc-lib is missing: the code is the same either way."""
    if isinstance(planes, PlaneWalk) and hashes_in_threads(planes.reader.info.bytes, thread_budget()):
        try:
            return ThreadHasher(simprints=simprints, wide=wide)
        except (RuntimeError, ImportError) as exc:  # "can't start new thread"; no iscc-lib
            if os.environ.get("BIOISCC_STATS") == "1":
                print(f"bioiscc: stats: hashing in this thread: {exc}", file=sys.stderr)
    return LocalHasher(simprints=simprints, wide=wide)


def _canonical_stream(planes: Iterable[Plane], in_place: bool) -> Generator[list[Any], None, None]:
    """A walk's own stream (`in_place`: for the hash threads; see `PlaneWalk.canonical`),
    or the canonical bytes of any other planes, per plane."""
    if isinstance(planes, PlaneWalk):
        return planes.canonical(in_place=in_place)
    return ([canonical_bytes(plane.data)] for plane in planes)


def _print_stats(planes: Iterable[Plane], hashed: int, count: int, seconds: float) -> None:
    """Read amplification is bytes decoded / bytes hashed; readers that count set `decoded_bytes`.
    Peak RSS (KiB) is this process's (the hashing threads included)."""
    reader = planes.reader if isinstance(planes, PlaneWalk) else None
    decoded = getattr(reader, "decoded_bytes", None)
    ratio = f"{decoded / hashed:.3f}" if decoded is not None and hashed else "n/a"
    print(
        f"bioiscc: stats: planes={count} hashed_bytes={hashed} decoded_bytes={decoded} "
        f"read_amplification={ratio} seconds={seconds:.3f} "
        f"peak_rss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}",
        file=sys.stderr,
    )


def raw_sum(chunks: Iterable[bytes], *, wide: bool = True) -> dict[str, object]:
    """The ISCC-SUM of raw bytes (a file, or a store's files in TREEWALK-ISCC order)."""
    processor = core().IsccSumProcessor()
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
