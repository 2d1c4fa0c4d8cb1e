"""Hostile file contents found before pixels are read: cut files, lying headers, bombs.

A file cut short (a copy that stopped, a full disk) often keeps its header and index, so a reader
lists its images as if nothing were missing and fails, or returns zeros, only when the pixels are
read. These checks compare what a file's index promises with the file's size, so that `walk`,
`thumb` and `scenes` reject what `hash` would reject, at the cost of reading the index:

- **CZI**: the segments libCZI reads at open (subblock directory, metadata, attachment directory)
  and every level-0 subblock lie inside the file. libCZI reads the directory but neither
  aicspylibczi nor pylibCZIrw shows where a subblock lies, so the ZISRAW file header and directory
  are read here (`czi_damage`; 100,000 entries in 0.6 s). Only the last subblock that starts inside
  the file can be cut in the middle: its segment header alone is read (one header per subblock
  would be a random read per subblock on a slide scan's disk).
- **ND2**: every image frame of nd2's chunk map lies inside the file (nd2 returns zeros for a frame
  past the end of the file, without a word).
- **TIFF**: strips and tiles past the end (`tiff._check_complete`), strips that cannot hold the
  pixels the page declares (`tiff_page_damage`), OME metadata that declares more planes than the
  file has images (`ome_tiff_damage`, before tifffile lists the missing ones). **LIF, DV**: memory
  blocks and plane bytes past the end (`lif._check_complete`, `dv.DvSource`).
- **OME-Zarr**: a chunk that is missing is the fill value (the format says so); a chunk that is there
  but cut or corrupt fails when it is decoded (`hash`, `thumb`): finding it earlier would mean
  decoding every chunk. A chunk that inflates beyond its size fails as it is decoded, with memory
  held to the chunk's size (`guard_zarr_codecs`).
- **Limits** (`over_limits`): a plane or a scene larger than a walk may read is refused in every
  command alike, before a reader allocates it.

Damage inside a file whose index and size agree (overwritten bytes, a broken compressed stream) is
found when the pixels are decoded, by `hash`.

Errors say "truncated: …", "corrupt: …" or "too large: …" and the cause; the file is named by the
message they are part of.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError
from ..scene import SceneInfo

# --- CZI (ZISRAW) --------------------------------------------------------------------------------

#: segment header: 16-byte id, allocated size, used size (little-endian int64)
SEGMENT = struct.Struct("<16sqq")
#: in the file header segment's data (after major, minor, two reserved int32, two 16-byte GUIDs and
#: the file part): the positions of the subblock directory, the metadata and (after a 4-byte flag)
#: the attachment directory, the segments libCZI reads when it opens a file
#: every CZI starts with its file header segment, named so in its first bytes
CZI_MAGIC = b"ZISRAWFILE"
FILE_HEADER_POSITIONS = struct.Struct("<qq4xq")
FILE_HEADER_POSITIONS_AT = SEGMENT.size + 4 * 4 + 2 * 16 + 4
HEADER_SEGMENTS = ("the subblock directory", "the metadata", "the attachment directory")
#: directory segment data: entry count, 124 reserved bytes, then the entries
DIRECTORY_HEAD = struct.Struct("<i124x")
#: a directory entry ("DV"): schema, pixel type, file position, file part, compression, pyramid
#: type, 5 spare bytes, dimension count; then that many 20-byte dimension entries
ENTRY = struct.Struct("<2siqiiB5xi")
DIMENSION = struct.Struct("<4siifi")
#: the key of damage that belongs to no scene (a subblock without S): it spoils every scene
ALL_SCENES = -1


def czi_damage(location: str, path: Path) -> dict[int, str]:
    """Scene (libCZI S index, or ALL_SCENES) -> why its pixels cannot all be read; {} for a whole file.

    Raises `InputError` when the file is not a CZI (it does not start with ZISRAWFILE) or its
    directory lies beyond the end of the file. Headers that cannot be parsed are left to libCZI to
    refuse (returns {}).
    """
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            return _czi_subblocks_beyond(handle, size)
    except InputError as exc:
        raise InputError(location, exc.cause) from exc
    except (OSError, struct.error, ValueError):
        return {}  # a header that cannot be parsed: libCZI says why


def czi_subblocks(path: Path) -> list[Subblock]:
    """The level-0 subblocks of a CZI's directory ([] when it cannot be read: libCZI says why)."""
    try:
        with path.open("rb") as handle:
            header = _read(handle, 0, FILE_HEADER_POSITIONS_AT + FILE_HEADER_POSITIONS.size)
            directory = FILE_HEADER_POSITIONS.unpack_from(header, FILE_HEADER_POSITIONS_AT)[0]
            _, allocated, used = SEGMENT.unpack(_read(handle, directory, SEGMENT.size))
            return _level0_entries(_read(handle, directory + SEGMENT.size, used or allocated))
    except (OSError, struct.error, ValueError):
        return []


def czi_scene_damage(damage: Mapping[int, str], czi_scene: int) -> str | None:
    """The damage that spoils the scene with libCZI S index `czi_scene`, if any."""
    return damage.get(czi_scene) or damage.get(ALL_SCENES)


def _czi_subblocks_beyond(handle: Any, size: int) -> dict[int, str]:
    handle.seek(0)
    if handle.read(len(CZI_MAGIC)) != CZI_MAGIC:  # a file named .czi that is not one: not "truncated"
        raise InputError("", f"not a CZI file: it does not start with a {CZI_MAGIC.decode()} segment")
    header = _read(handle, 0, FILE_HEADER_POSITIONS_AT + FILE_HEADER_POSITIONS.size)
    positions = FILE_HEADER_POSITIONS.unpack_from(header, FILE_HEADER_POSITIONS_AT)
    for what, position in zip(HEADER_SEGMENTS, positions, strict=True):
        if position > 0:  # 0: the file has no such segment
            _segment_inside(handle, what, position, size)
    directory = positions[0]
    if directory <= 0:
        raise InputError("", "not a readable CZI file: no subblock directory")
    _, allocated, used = SEGMENT.unpack(_read(handle, directory, SEGMENT.size))
    entries = _level0_entries(_read(handle, directory + SEGMENT.size, used or allocated))
    return _beyond(handle, entries, size)


def _segment_inside(handle: Any, what: str, position: int, size: int) -> None:
    """Raise `InputError` unless the segment at `position` lies inside the file's `size` bytes."""
    if position + SEGMENT.size > size:
        raise InputError("", f"truncated: {what} at byte {position} is beyond the file's {size} bytes")
    _, allocated, used = SEGMENT.unpack(_read(handle, position, SEGMENT.size))
    end = position + SEGMENT.size + (used or allocated)
    if end > size:
        raise InputError("", f"truncated: {what} ends at byte {end}, beyond the file's {size} bytes")


class Subblock(NamedTuple):
    """A directory entry: its number, where its segment starts, its dimensions (start, size, stored)."""

    number: int
    position: int
    dims: dict[str, tuple[int, int, int]]
    compression: int = 0
    pixel_type: int = 0


def _level0_entries(data: bytes) -> list[Subblock]:
    """The subblocks of pyramid level 0 in this file (not other parts of a multi-file CZI)."""
    (count,) = DIRECTORY_HEAD.unpack_from(data)
    found = []
    at = DIRECTORY_HEAD.size
    for number in range(count):
        schema, pixel_type, position, part, compression, _, ndims = ENTRY.unpack_from(data, at)
        start = at + ENTRY.size
        at = start + ndims * DIMENSION.size
        dims = {
            name.rstrip(b"\0").decode("ascii", "replace"): (first, extent, stored)
            for name, first, extent, _, stored in DIMENSION.iter_unpack(data[start:at])
        }
        if schema == b"DV" and part == 0 and not _is_pyramid(dims):
            found.append(Subblock(number, position, dims, compression, pixel_type))
    return found


def _is_pyramid(dims: Mapping[str, tuple[int, int, int]]) -> bool:
    """A subblock of a lower pyramid level: stored smaller than the region it covers (zoom < 1)."""
    return any(d in dims and dims[d][2] != dims[d][1] for d in ("X", "Y"))


def _beyond(handle: Any, subblocks: list[Subblock], size: int) -> dict[int, str]:
    """Scene -> the damage of its first unreadable subblock: one that lies beyond the end of the
    file (truncated), or the last one inside the file when it is cut or its segment header is not a
    subblock's (corrupt: the file may well be whole)."""
    found = [
        (b, f"truncated: subblock {b.number} starts at byte {b.position}, beyond the file's {size} bytes")
        for b in subblocks
        if b.position + SEGMENT.size > size
    ]
    inside = [b for b in subblocks if b.position + SEGMENT.size <= size]
    if inside:  # only the last subblock that starts inside the file can be cut in the middle
        last = max(inside, key=lambda b: b.position)
        cause = _last_subblock_damage(handle, last, size)
        if cause is not None:
            found.append((last, cause))
    damage: dict[int, str] = {}
    for subblock, cause in sorted(found, key=lambda f: f[0].number):
        scene = subblock.dims.get("S", (ALL_SCENES, 0, 0))[0]
        damage.setdefault(scene, cause)
    return damage


def _last_subblock_damage(handle: Any, subblock: Subblock, size: int) -> str | None:
    """Why the last subblock that starts inside the file cannot be read, or None. A segment id that
    is not ZISRAWSUBBLOCK is damage in place: its sizes are garbage too, so they say nothing about
    the file's end."""
    segment_id, allocated, used = SEGMENT.unpack(_read(handle, subblock.position, SEGMENT.size))
    if segment_id.rstrip(b"\0") != b"ZISRAWSUBBLOCK":
        return f"corrupt: subblock {subblock.number} at byte {subblock.position} has no ZISRAWSUBBLOCK header"
    end = subblock.position + SEGMENT.size + (used or allocated)
    if end > size:
        return f"truncated: subblock {subblock.number} ends at byte {end}, beyond the file's {size} bytes"
    return None


def _read(handle: Any, offset: int, length: int) -> bytes:
    handle.seek(offset)
    data = handle.read(length)
    if len(data) != length:
        raise ValueError("short read")
    return data


#: bytes per pixel of the CZI pixel types (libCZI's PixelType numbers)
CZI_PIXEL_BYTES = {0: 1, 1: 2, 2: 4, 3: 3, 4: 6, 8: 12, 9: 4, 10: 8, 11: 24, 12: 4, 13: 8}
#: CZI compressions whose data is a Zstandard frame: zstd0 (the frame), zstd1 (a header, then it)
CZI_ZSTD = {5: 0, 6: 1}
#: a subblock's data starts after the segment header, 16 bytes of sizes and at least 256 bytes
SUBBLOCK_SIZES = struct.Struct("<iiq")
SUBBLOCK_HEAD = 256


class CziInflation:
    """Refuses a plane whose Zstandard-compressed subblocks declare more bytes than their pixels.

    libCZI inflates a subblock's Zstandard frame whole, as large as the frame says, before it looks
    at the plane's size: a few kilobytes can claim gigabytes. The frame header states its content
    size; it is read (a few bytes per subblock) before libCZI reads the plane.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zstd: list[Subblock] | None = None  # read with the first plane: walks never need it
        #: the subblocks by the start of each plane dimension, for the dimensions planes are asked by
        self.by_plane: dict[tuple[str, ...], dict[tuple[int, ...], list[Subblock]]] = {}
        self.checked: set[int] = set()

    def check(self, plane: Mapping[str, int], scene: int | None) -> None:
        """Raise ValueError ("corrupt: …") when a subblock of this plane inflates beyond its pixels."""
        if self.zstd is None:
            self.zstd = [b for b in czi_subblocks(self.path) if b.compression in CZI_ZSTD]
        if not self.zstd:
            return
        names = tuple(sorted(plane))
        index = self.by_plane.get(names)
        if index is None:
            index = self.by_plane[names] = {}
            for subblock in self.zstd:
                key = tuple(subblock.dims.get(d, (0, 1, 1))[0] for d in names)  # absent: 0
                index.setdefault(key, []).append(subblock)
        candidates = index.get(tuple(plane[d] for d in names), [])
        wanted = [b for b in candidates if b.number not in self.checked and _holds(b, plane, scene)]
        if not wanted:
            return
        with self.path.open("rb") as handle:
            for subblock in wanted:
                declared, pixels = _czi_zstd_sizes(handle, subblock)
                if declared is not None and declared > pixels:
                    raise ValueError(
                        f"corrupt: subblock {subblock.number} inflates to {declared} bytes, more than "
                        f"its {pixels} bytes of pixels"
                    )
                self.checked.add(subblock.number)


def _holds(subblock: Subblock, plane: Mapping[str, int], scene: int | None) -> bool:
    """Whether a subblock holds pixels of the plane at these libCZI coordinates."""
    coordinates = dict(plane) if scene is None else {**plane, "S": scene}
    for dim, index in coordinates.items():
        found = subblock.dims.get(dim)
        if found is not None and not found[0] <= index < found[0] + max(1, found[1]):
            return False
    return True


def _czi_zstd_sizes(handle: Any, subblock: Subblock) -> tuple[int | None, int]:
    """(content size its Zstandard frame declares or None, bytes of its stored pixels)."""
    x, y = subblock.dims.get("X", (0, 1, 1))[2], subblock.dims.get("Y", (0, 1, 1))[2]
    pixels = x * y * CZI_PIXEL_BYTES.get(subblock.pixel_type, 24)
    entry_bytes = ENTRY.size + len(subblock.dims) * DIMENSION.size
    try:
        metadata, _, _ = SUBBLOCK_SIZES.unpack(_read(handle, subblock.position + SEGMENT.size, 16))
        start = subblock.position + SEGMENT.size + max(SUBBLOCK_HEAD, 16 + entry_bytes) + metadata
        head = _read(handle, start, 32)
    except (OSError, ValueError, struct.error):
        return None, pixels  # libCZI says what is wrong
    if CZI_ZSTD[subblock.compression] == 1:  # zstd1: a header of head[0] bytes precedes the frame
        head = head[head[0] :] if 0 < head[0] < len(head) else head[1:]
    return zstd_content_size(head), pixels


def zstd_content_size(frame: bytes) -> int | None:
    """The content size a Zstandard frame header declares (RFC 8878, 3.1.1.1), or None."""
    if len(frame) < 6 or frame[:4] != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = frame[4]
    single_segment = bool(descriptor & 0x20)
    size_bytes = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    at = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03]
    if size_bytes == 0 or len(frame) < at + size_bytes:
        return None
    size = int.from_bytes(frame[at : at + size_bytes], "little")
    return size + 256 if size_bytes == 2 else size


# --- ND2 -----------------------------------------------------------------------------------------

#: bytes before a frame's pixels in its chunk's data: the frame's timestamp (a float64)
ND2_FRAME_STAMP = 8
ND2_FRAME_CHUNK = b"ImageDataSeq|"


def nd2_damage(nd2file: Any, size: int) -> str | None:
    """Why the frames of an open `nd2.ND2File` cannot all be read, or None.

    nd2 finds frame k at `_frame_offsets[k]` (its chunk's data, past the timestamp) and reads
    `chunk size - 8` bytes there (the pixels, or their zlib stream); a frame past the end of the file
    it returns as zeros. Files of the legacy (JPEG 2000) format have no chunk map and are not checked.
    """
    reader = nd2file._rdr
    offsets = getattr(reader, "_frame_offsets", None)
    if offsets is None:
        return None
    chunks = reader.chunkmap
    for frame, offset in sorted(offsets.items()):
        chunk = chunks.get(ND2_FRAME_CHUNK + str(frame).encode() + b"!")
        if chunk is None:
            continue
        end = offset + chunk[1] - ND2_FRAME_STAMP
        if end > size:
            return f"truncated: frame {frame} ends at byte {end}, beyond the file's {size} bytes"
    return None


# --- TIFF: strips and tiles that cannot hold what the header says --------------------------------

#: the most a stored byte can inflate to, by TIFF compression: none 1; PackBits 128 (2 bytes make a
#: run of 128); LZW 4096 (a 12-bit code stands for a string of at most 4096 bytes); Deflate 1032
#: (zlib's bound); Zstandard 32768 (a 4-byte RLE block makes 128 KiB). Others (JPEG, LZMA, …) are
#: not bounded here.
TIFF_MAX_INFLATION = {1: 1, 32773: 128, 5: 4096, 8: 1032, 32946: 1032, 50000: 32768, 34926: 32768}


def tiff_page_damage(page: Any) -> str | None:
    """Why a TIFF page's strips or tiles cannot hold the pixels its header declares, or None.

    A header that claims enormous dimensions over a few stored bytes would make a reader allocate
    them and fail only after (or be killed). Empty strips or tiles (byte count 0) are the fill value.
    """
    ratio = TIFF_MAX_INFLATION.get(int(page.compression))
    counts = [int(n) for n in page.databytecounts]
    stored = [n for n in counts if n]
    if ratio is None or not stored:
        return None
    # edge tiles are stored whole: the page's bytes are at most what its chunks decode to; samples
    # of fewer bits than their decoded type (bilevel, 12-bit) are stored packed
    packed = page.nbytes * int(page.keyframe.bitspersample) // (8 * page.dtype.itemsize)
    declared = packed * len(stored) // len(counts)
    if sum(stored) * ratio < declared:
        return (
            f"corrupt: page {page.index} declares {declared} bytes of pixels in {sum(stored)} stored "
            f"bytes, more than its compression can hold ({page.compression.name}: at most {ratio}:1)"
        )
    return None


def ome_tiff_damage(tiff: Any) -> str | None:
    """Why an OME-TIFF's metadata promises planes the file does not have, or None.

    tifffile fills the planes an OME series lacks with zeros (and bioiscc refuses the file when it
    says so), after it has listed every missing plane: a few bytes of XML that claim 10^9 planes
    took gigabytes. Files that name other files (multi-file OME-TIFF) are left to tifffile.
    """
    from xml.etree import ElementTree

    if not tiff.is_ome:
        return None
    try:
        root = ElementTree.fromstring(tiff.ome_metadata)
    except Exception:  # tifffile says what is wrong with it
        return None
    declared = 0
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "UUID" and element.get("FileName"):
            return None
        if tag == "Pixels":
            channels = sum(1 for c in element if c.tag.rsplit("}", 1)[-1] == "Channel")
            sizes = [int(element.get(k, "1")) for k in ("SizeZ", "SizeT")]
            declared += sizes[0] * sizes[1] * (channels or int(element.get("SizeC", "1")))
    images = len(tiff.pages)
    if declared > images:
        return f"corrupt: its OME metadata declares {declared} planes, the file holds {images} images"
    return None


# --- limits: what a walk reads and hashes --------------------------------------------------------

#: the largest plane a walk reads whole (`BIOISCC_MAX_PLANE_MB`)
DEFAULT_MAX_PLANE_MB = 8 * 1024
#: the largest scene (its canonical bytes) a walk hashes (`BIOISCC_MAX_SCENE_GB`)
DEFAULT_MAX_SCENE_GB = 16 * 1024


def limit(name: str, default: int) -> int:
    """A limit from the environment: a whole number above 0; anything else is said once on stderr
    and the default used (a typo must not lift or silently keep a guard)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value > 0:
        return value
    _bad_limit(name, raw, default)
    return default


@functools.cache
def _bad_limit(name: str, raw: str, default: int) -> None:
    print(f"bioiscc: warning: {name}={raw!r} is not a whole number above 0; using {default}", file=sys.stderr)


def over_limits(info: SceneInfo, reads_planes_in_bands: bool = False) -> SceneInfo:
    """`info`, failed when the scene is larger than a walk may read: a header that claims enormous
    dimensions (or a sparse Zarr array that stores almost nothing of them) is refused before a reader
    allocates a plane, or the hash spends days on fill values. A source that reads large planes in
    row bands never holds one, so only the scene limit applies to it."""
    if not info.ok:
        return info
    plane = info.plane_bytes * info.dims["S"]  # a stored plane holds its samples
    max_plane = limit("BIOISCC_MAX_PLANE_MB", DEFAULT_MAX_PLANE_MB)
    max_scene = limit("BIOISCC_MAX_SCENE_GB", DEFAULT_MAX_SCENE_GB)
    if plane > max_plane * 2**20 and not reads_planes_in_bands:
        why = f"a plane of {plane} bytes is over the limit of {max_plane} MiB (BIOISCC_MAX_PLANE_MB)"
    elif info.bytes > max_scene * 2**30:
        why = (
            f"{info.bytes} bytes of pixels in {info.planes} planes are over the limit of {max_scene} GiB "
            "per scene (BIOISCC_MAX_SCENE_GB)"
        )
    else:
        return info
    sizes = " ".join(f"{d}={n}" for d, n in {**info.dims, **info.extra_dims}.items())
    return dataclasses.replace(info, error=f"too large: {why} ({sizes})")


# --- Zarr: chunks that inflate beyond their size -------------------------------------------------

#: the numcodecs compressors (Zarr v2 ids) and Zarr v3 codecs whose decoding is bounded here
BOUNDED_V2 = ("zlib", "gzip", "zstd", "blosc", "lz4")
BOUNDED_V3 = ("zstd", "gzip", "blosc")
_guarded = False


class ChunkBombError(ValueError):
    """A compressed chunk inflates beyond the chunk's size."""


def inflate_bounded(codec: Any, data: Any, expected: int, out: Any = None) -> Any:
    """`data` decoded by `codec` (numcodecs', or one with its `codec_id` and `decode`), never more
    than `expected` bytes held (decoded into `out`, `expected` bytes, where the codec decodes into a
    buffer).

    zlib and gzip streams are inflated with a cap; Zstandard, Blosc and LZ4 decode into a buffer of
    the chunk's size, which they refuse to overrun. A chunk that would inflate further is a
    `ChunkBombError` (a corrupt or hostile chunk), raised before memory is spent on it.
    """
    import zlib

    import numpy as np

    codec_id = getattr(codec, "codec_id", "")
    if codec_id in ("zlib", "gzip"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if codec_id == "gzip" else 0))
        out = inflater.decompress(np.ascontiguousarray(data).tobytes(), expected + 1)
        if len(out) > expected or inflater.unconsumed_tail:
            raise ChunkBombError(f"corrupt: a {codec_id} chunk inflates beyond the chunk's {expected} bytes")
        return out
    declared = _declared_size(codec_id, np.ascontiguousarray(data).reshape(-1).view(np.uint8)[:32].tobytes())
    if declared is not None and declared != expected:
        raise ChunkBombError(
            f"corrupt: a {codec_id} chunk declares {declared} bytes, not the chunk's {expected} bytes"
        )
    try:
        return codec.decode(data, out=np.empty(expected, dtype=np.uint8) if out is None else out)
    except (ValueError, RuntimeError) as exc:  # numcodecs raises ValueError, imagecodecs RuntimeError
        if "too small" in str(exc):
            raise ChunkBombError(
                f"corrupt: a {codec_id} chunk inflates beyond the chunk's {expected} bytes"
            ) from exc
        raise


def _declared_size(codec_id: str, head: bytes) -> int | None:
    """The decoded size a compressed chunk's header states (Zstandard, Blosc, numcodecs' LZ4)."""
    if codec_id == "zstd":
        return zstd_content_size(head)
    if codec_id == "blosc" and len(head) >= 8:
        return int.from_bytes(head[4:8], "little")
    if codec_id == "lz4" and len(head) >= 4:
        return int.from_bytes(head[:4], "little")
    return None


def guard_zarr_codecs() -> None:
    """Make zarr decode the usual compressors with a cap of the chunk's size (once per process).

    zarr inflates a chunk whole before it checks its size (numcodecs' zlib and gzip have no cap,
    and Zstandard allocates what the frame header claims), so a chunk of a few kilobytes can claim
    gigabytes. Zarr v2 compressors come from numcodecs' registry and learn their chunk's size from
    `bound_chunks`; Zarr v3 codecs are told the chunk's shape with every chunk.
    """
    global _guarded
    if _guarded:
        return
    import numcodecs
    import zarr
    import zarr.registry

    for codec_id in BOUNDED_V2:
        base = numcodecs.get_codec({"id": codec_id}).__class__
        numcodecs.register_codec(_bounded_v2(base), codec_id)
    for name in BOUNDED_V3:
        cls = _bounded_v3(zarr.registry.get_codec_class(name))
        zarr.registry.register_codec(name, cls)
        zarr.config.set({f"codecs.{name}": f"{cls.__module__}.{cls.__qualname__}"})
    _guarded = True


def bound_chunks(array: Any) -> None:
    """Tell a Zarr v2 array's compressor the size of its chunks (all the same size in v2)."""
    import numpy as np

    metadata = getattr(array, "metadata", None)
    compressor = getattr(metadata, "compressor", None)
    if compressor is None or getattr(metadata, "filters", None) or not hasattr(compressor, "expected"):
        return
    compressor.expected = math.prod(array.chunks) * np.dtype(array.dtype).itemsize


def _bounded_v2(base: Any) -> type:
    def decode(self: Any, buf: Any, out: Any = None) -> Any:
        if out is None and self.expected:
            return inflate_bounded(self, buf, self.expected)
        return base.decode(self, buf, out)

    return type(f"Bounded{base.__name__}", (base,), {"expected": None, "decode": decode})


def _bounded_v3(base: Any) -> type:
    from zarr.core.buffer.cpu import as_numpy_array_wrapper

    def _decode_sync(self: Any, chunk_bytes: Any, chunk_spec: Any) -> Any:
        dtype = chunk_spec.dtype.to_native_dtype()
        if dtype.kind not in "biufc":  # variable-size items: no size to hold the chunk to
            return base._decode_sync(self, chunk_bytes, chunk_spec)
        expected = math.prod(chunk_spec.shape) * dtype.itemsize
        numcodec = _numcodec_of(self)
        return as_numpy_array_wrapper(
            lambda data: inflate_bounded(numcodec, data, expected), chunk_bytes, chunk_spec.prototype
        )

    name = f"Bounded{base.__name__}"
    cls = type(name, (base,), {"_decode_sync": _decode_sync, "__module__": __name__, "__qualname__": name})
    globals()[name] = cls  # zarr's config names a codec class by its module and qualified name
    return cls


def _numcodec_of(codec: Any) -> Any:
    for attribute in ("_zstd_codec", "_gzip_codec", "_blosc_codec"):
        if hasattr(type(codec), attribute):
            return getattr(codec, attribute)
    raise TypeError(f"no numcodecs codec behind {type(codec).__name__}")


def nd2_read_frame(nd2file: Any, index: int) -> Any:
    """Frame `index` of an open `nd2.ND2File`; a losslessly compressed frame inflated with a cap.

    nd2 inflates a compressed frame whole with `zlib.decompress` and keeps the frame's first bytes:
    a frame's chunk of a few megabytes may inflate a thousandfold, and one that inflates beyond its
    frame was read as if nothing were wrong. Here it inflates to the frame's size at most, and a
    stream that does not end there is "corrupt: …".
    """
    import zlib

    import numpy as np

    reader = nd2file._rdr
    if nd2file.attributes.compressionType != "lossless" or not hasattr(reader, "_load_chunk"):
        return nd2file.read_frame(index)
    if index not in reader._frame_offsets:
        return nd2file.read_frame(index)  # not stored: nd2's zeros
    shape, dtype = reader._actual_frame_shape(), reader._dtype()
    expected = math.prod(shape) * dtype.itemsize
    chunk = reader._load_chunk(ND2_FRAME_CHUNK + str(index).encode() + b"!")
    inflater = zlib.decompressobj()
    pixels = inflater.decompress(bytes(chunk[ND2_FRAME_STAMP:]), expected + 1)
    if len(pixels) != expected or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"corrupt: frame {index} does not inflate to its {expected} bytes")
    return np.ndarray(shape=shape, dtype=dtype, buffer=pixels, strides=reader._strides)
