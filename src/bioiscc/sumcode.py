"""The scene code: ISCC-SUM (Data-Code + Instance-Code) over the IMAGEWALK stream, and simprints.

Knows nothing of formats: it consumes `Plane`s from any source via `bioiscc.imagewalk`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from iscc_sum import DataCodeProcessor, IsccSumProcessor

from .imagewalk import canonical_bytes
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


def plane_simprint(data: bytes) -> str:
    """Standard base64 (padded) of the 32-byte Data-Code body of one plane."""
    processor = DataCodeProcessor()
    processor.update(data)
    return base64.b64encode(processor.result()["digest"]).decode("ascii")


def hash_planes(
    planes: Iterable[Plane],
    *,
    simprints: bool = False,
    wide: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SumCode:
    """ISCC-SUM over the canonical bytes of `planes`, in the order given.

    `progress`, if given, is called with the byte count of each plane once it is hashed.
    """
    processor = IsccSumProcessor()
    prints: list[Simprint] | None = [] if simprints else None
    total = 0
    count = 0
    for plane in planes:
        data = canonical_bytes(plane.data)
        processor.update(data)
        if prints is not None:
            prints.append(Simprint(plane_simprint(data), count, len(data)))
        total += len(data)
        count += 1
        if progress is not None:
            progress(len(data))
    result = processor.result(wide=wide, add_units=True)
    return SumCode(
        iscc_code=result.iscc,
        units=list(result.units or []),
        datahash=result.datahash,
        bytes=total,
        planes=count,
        simprints=prints,
    )


def raw_sum(chunks: Iterable[bytes], *, wide: bool = True) -> dict[str, object]:
    """The ISCC-SUM of raw bytes (a file, or a store's files in TREEWALK-ISCC order)."""
    processor = IsccSumProcessor()
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
