"""A Zarr store in a local folder, read without the zarr package where it is plain.

Groups are JSON files (`.zgroup` and `.zattrs` in Zarr v2, `zarr.json` in v3), read here. An array
whose layout is plain is read chunk file by chunk file and decoded here (Zstandard by imagecodecs,
zlib and gzip by Python's zlib, Blosc and LZ4 by numcodecs, the codec library zarr itself uses):
numeric dtype, one file per chunk, no filters, and no compressor or one of the bounded ones (Zarr
v2: C or F order, zlib, gzip, zstd, blosc or lz4, as nearly every NGFF 0.4 store has; Zarr v3: a
regular grid, the `bytes` codec, then zstd, gzip or blosc, as NGFF 0.5 stores have, the chunks in
files of their own or in shards). A shard's index (the offset and size of each inner chunk, at its
end or start, little-endian, with or without its CRC32C, as the Zarr v3 sharding codec defines it)
is read once per shard, and only the inner chunks a read needs are read. Every other array
(transposes, chunk checksums, filters, object dtypes) is opened with zarr.

Why: importing zarr takes 0.25-0.4 s, and its asynchronous read path spent more CPU on event-loop
bookkeeping, fresh chunk buffers and a copy per chunk than on decoding. `bioiscc hash` of 512 MiB of
zstd chunks on the 2-core VM: 1.75 s with zarr, 1.26 s here (medians of 7); in shards, zarr read
each 55 MB shard whole into fresh memory: 2.15 s and 367 MB, here about 0.9 s and 229 MB
(benchmarks/README.md).
`BIOISCC_ZARR_DIRECT=0` reads every array with zarr, to compare.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .integrity import BOUNDED_V2, BOUNDED_V3, inflate_bounded
from .sparse import stored_chunk_keys

#: numeric kinds the direct path reads (bool, signed, unsigned, float)
DIRECT_KINDS = "biuf"
#: the (offset, size) a shard's index gives an inner chunk it does not hold
EMPTY_INNER_CHUNK = 2**64 - 1
#: shard indexes kept per array (a block's chunks come from a few shards)
SHARD_TABLES = 64
#: fill values Zarr v2 writes as strings
SPECIAL_FILLS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def direct_reads_enabled() -> bool:
    return os.environ.get("BIOISCC_ZARR_DIRECT", "1") != "0"


class GroupNotFound(ValueError):
    """The folder holds no Zarr group metadata."""


class MetadataShapeError(ValueError):
    """Zarr metadata that is JSON, but not of the shape Zarr defines (an object where one belongs)."""


class FolderGroup:
    """A Zarr group in a local folder: its attributes, child groups and arrays."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if (folder / "zarr.json").is_file():
            meta = _read_json(folder / "zarr.json")
            if meta.get("node_type") != "group":
                raise GroupNotFound(
                    f"{folder.name}/zarr.json is not a group's (node_type {meta.get('node_type')!r})"
                )
            self.zarr_format = 3
            attrs = meta.get("attributes") or {}
            if not isinstance(attrs, Mapping):
                raise MetadataShapeError(f"{folder.name}/zarr.json: its attributes are not a JSON object")
            self.attrs: Mapping[str, Any] = attrs
        elif (folder / ".zgroup").is_file():
            _read_json(folder / ".zgroup")
            self.zarr_format = 2
            attrs_file = folder / ".zattrs"
            self.attrs = _read_json(attrs_file) if attrs_file.is_file() else {}
        else:
            raise GroupNotFound("no group metadata (.zgroup or zarr.json)")  # the caller names the folder

    def groups(self) -> Iterator[tuple[str, FolderGroup]]:
        """The child groups, by name (folders that hold group metadata; arrays and other folders
        are passed over, metadata that is not JSON is an error)."""
        for child in sorted(self.folder.iterdir()):
            if not child.is_dir():
                continue
            try:
                group = FolderGroup(child)
            except GroupNotFound:
                if (child / ".zgroup").is_file():  # a v2 group whose zarr.json says otherwise
                    raise
                continue
            yield child.name, group

    def folders(self) -> list[str]:
        """The names of the folders in this group, whatever they hold: a child whose group metadata
        is lost or broken is still listed (its caller reports it, rather than passing it over)."""
        return sorted(child.name for child in self.folder.iterdir() if child.is_dir())


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        value = json.load(file)
    if not isinstance(value, dict):
        raise MetadataShapeError(f"{path.name} is not a JSON object")
    return value


@dataclass(frozen=True)
class ChunkLayout:
    """What reading an array's chunk files needs, from its Zarr v2 or v3 metadata."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]  # as zarr reports it: v2 keeps the stored byte order, v3 gives the native one
    stored: np.dtype[Any]  # as the decoded chunks hold it
    fill_value: Any
    order: str  # "C" or "F": the order of a chunk's decoded bytes
    key_prefix: str  # "c" + separator for Zarr v3's default chunk keys, else ""
    separator: str
    compressor: Any  # a codec (`_codec`), or None
    #: Zarr v3 shards: the shape of a shard (one file of `chunks`-sized inner chunks), else None
    shards: tuple[int, ...] | None = None
    index_at_end: bool = True  # where a shard keeps its index of inner chunks
    index_checksum: bool = True  # the index ends with its CRC32C


def open_direct(folder: Path) -> ChunkFileArray | None:
    """The Zarr array in `folder` when its layout is read here, else None (zarr reads it)."""
    if not direct_reads_enabled():
        return None
    try:
        if (folder / ".zarray").is_file():
            layout = _v2_layout(_read_json(folder / ".zarray"))
        elif (folder / "zarr.json").is_file():
            layout = _v3_layout(_read_json(folder / "zarr.json"))
        else:
            return None
        return ChunkFileArray(folder, layout) if layout is not None else None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, ImportError):
        return None  # zarr reads it, and says what is wrong with it (or that it is not installed)


def _v2_layout(meta: Mapping[str, Any]) -> ChunkLayout | None:
    """Plain Zarr v2: a numeric dtype, C or F order, no filters, a fill value, and no compressor or
    a bounded one."""
    compressor = meta.get("compressor")
    plain = (
        meta.get("zarr_format") == 2
        and isinstance(meta.get("dtype"), str)
        and np.dtype(meta["dtype"]).kind in DIRECT_KINDS
        and meta.get("order", "C") in ("C", "F")
        and not meta.get("filters")
        and meta.get("fill_value") is not None
        and (compressor is None or compressor.get("id") in BOUNDED_V2)
    )
    if not plain:
        return None
    dtype = np.dtype(meta["dtype"])
    return ChunkLayout(
        shape=_sizes(meta["shape"]),
        chunks=_sizes(meta["chunks"]),
        dtype=dtype,
        stored=dtype,
        fill_value=_fill(meta["fill_value"], dtype),
        order=str(meta.get("order", "C")),
        key_prefix="",
        separator=str(meta.get("dimension_separator") or "."),
        compressor=_codec(compressor),
    )


def _v3_layout(meta: Mapping[str, Any]) -> ChunkLayout | None:
    """Plain Zarr v3: a numeric data type, a regular grid, the `bytes` codec and at most one of the
    bounded compressors (no transposes or checksums), no storage transformers; the chunks alone or
    in shards whose index is plain (`bytes` little-endian, then optionally CRC32C)."""
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "array" or meta.get("storage_transformers"):
        return None
    if not isinstance(meta.get("data_type"), str) or meta["chunk_grid"]["name"] != "regular":
        return None
    grid = _sizes(meta["chunk_grid"]["configuration"]["chunk_shape"])
    chunks: tuple[int, ...] = grid
    shards: tuple[int, ...] | None = None
    index: dict[str, bool] | None = {}
    codecs = [_named(codec) for codec in meta["codecs"]]
    if len(codecs) == 1 and codecs[0][0] == "sharding_indexed":
        sharding = codecs[0][1]
        index = _shard_index(sharding)
        chunks, shards = _sizes(sharding["chunk_shape"]), grid
        codecs = [_named(codec) for codec in sharding["codecs"]]
        if len(chunks) != len(shards) or any(s % c for s, c in zip(shards, chunks, strict=True)):
            return None
    if index is None:
        return None
    if not codecs or codecs[0][0] != "bytes" or len(codecs) > 2:
        return None
    compressor = codecs[1][0] if len(codecs) == 2 else None
    if compressor is not None and compressor not in BOUNDED_V3:
        return None
    dtype = np.dtype(meta["data_type"])
    if dtype.kind not in DIRECT_KINDS or meta.get("fill_value") is None:
        return None
    stored = dtype
    if dtype.itemsize > 1:
        stored = dtype.newbyteorder(">" if codecs[0][1].get("endian", "little") == "big" else "<")
    encoding, options = _named(meta.get("chunk_key_encoding") or {"name": "default"})
    if encoding not in ("default", "v2"):
        return None
    separator = str(options.get("separator", "/" if encoding == "default" else "."))
    return ChunkLayout(
        shape=_sizes(meta["shape"]),
        chunks=chunks,
        dtype=dtype,
        stored=stored,
        fill_value=_fill(meta["fill_value"], dtype),
        order="C",
        key_prefix="c" + separator if encoding == "default" else "",
        separator=separator,
        compressor=_codec({"id": compressor}) if compressor else None,
        shards=shards,
        **index,
    )


def _shard_index(sharding: Mapping[str, Any]) -> dict[str, bool] | None:
    """Where a shard's index is and whether it has a checksum, when it is plain, else None."""
    default = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    codecs = [_named(codec) for codec in sharding.get("index_codecs", default)]
    location = sharding.get("index_location", "end")
    plain = (
        location in ("start", "end")
        and codecs[:1] == [("bytes", codecs[0][1])]
        and codecs[0][1].get("endian", "little") == "little"
        and [name for name, _ in codecs[1:]] in ([], ["crc32c"])
    )
    return {"index_at_end": location == "end", "index_checksum": len(codecs) == 2} if plain else None


def _named(entry: Any) -> tuple[str, Mapping[str, Any]]:
    """A Zarr v3 extension point (a name, or {"name", "configuration"}) as (name, configuration)."""
    if isinstance(entry, str):
        return entry, {}
    return str(entry["name"]), entry.get("configuration") or {}


def _sizes(values: Sequence[Any]) -> tuple[int, ...]:
    sizes = tuple(int(n) for n in values)
    if not sizes:
        raise ValueError("a zero-dimensional array")  # zarr reads those
    return sizes


def _fill(value: Any, dtype: np.dtype[Any]) -> Any:
    """The fill value as a scalar of `dtype`: numbers, booleans, and the strings Zarr writes for
    NaN and the infinities, or (v3) a float's bits in hexadecimal."""
    if isinstance(value, str) and value.startswith("0x") and dtype.kind == "f":
        bits = np.array(int(value, 16), dtype=f">u{dtype.itemsize}")
        return bits.view(f">f{dtype.itemsize}").astype(dtype)[()]
    if isinstance(value, str):
        value = SPECIAL_FILLS[value]
    return dtype.type(value)


class ChunkFileArray:
    """A read-only Zarr array read from its chunk files: `array[selection]` with integers and
    slices, and `read_into` a caller's buffer. A chunk the store does not hold is the fill value."""

    def __init__(self, folder: Path, layout: ChunkLayout) -> None:
        self.folder = folder
        self.shape = layout.shape
        self.chunks = layout.chunks
        self.dtype = layout.dtype
        self.stored = layout.stored
        self.fill_value = layout.fill_value
        self.order = layout.order
        self.key_prefix = layout.key_prefix
        self.separator = layout.separator
        self.compressor = layout.compressor
        self.shards = layout.shards
        self.per_shard = tuple(s // c for s, c in zip(layout.shards or self.chunks, self.chunks, strict=True))
        self.index_at_end = layout.index_at_end
        self.index_checksum = layout.index_checksum
        self.chunk_bytes = math.prod(self.chunks) * self.dtype.itemsize
        self._local = threading.local()
        self._tables: OrderedDict[tuple[int, ...], tuple[np.ndarray, int] | None] = OrderedDict()
        self._tables_lock = threading.Lock()
        if len(self.shape) != len(self.chunks) or any(n < 1 for n in self.chunks) or min(self.shape) < 0:
            raise ValueError(f"invalid shape {self.shape} or chunks {self.chunks}")

    @functools.cached_property
    def stored_keys(self) -> set[str] | None:
        """The chunk keys the folder holds, listed once: a sparse array's missing chunks (millions,
        maybe) then cost neither a file lookup nor a decode job each. None: it cannot be listed."""
        return stored_chunk_keys(self.folder)

    @property
    def reader(self) -> str:
        """The library that decodes the chunks, and its version."""
        if self.compressor is None:
            from .._version import __version__

            return f"bioiscc {__version__} (uncompressed chunks)"
        return str(getattr(self.compressor, "library", None) or _numcodecs_name())

    def __getitem__(self, selection: Any) -> np.ndarray:
        parts = selection if isinstance(selection, tuple) else (selection,)
        parts = parts + (slice(None),) * (len(self.shape) - len(parts))
        ranges: list[slice] = []
        for part, n in zip(parts, self.shape, strict=True):
            if isinstance(part, (int, np.integer)):
                index = int(part) + n if part < 0 else int(part)
                if not 0 <= index < n:
                    raise IndexError(f"index {part} is out of bounds for an axis of {n}")
                ranges.append(slice(index, index + 1))
            elif isinstance(part, slice) and part.step in (None, 1):
                start, stop, _ = part.indices(n)
                ranges.append(slice(start, max(start, stop)))
            else:
                raise IndexError(f"unsupported selection {selection!r}")
        out = np.empty(tuple(s.stop - s.start for s in ranges), dtype=self.dtype)
        self.read_into(tuple(ranges), out)
        squeeze = tuple(axis for axis, part in enumerate(parts) if not isinstance(part, slice))
        return out.squeeze(axis=squeeze) if squeeze else out

    def read_into(self, region: Sequence[slice], out: np.ndarray) -> None:
        """Decode the chunks that `region` (slices with steps of 1) touches into `out`, in threads."""
        if 0 in out.shape:
            return
        region = [slice(*s.indices(n)[:2]) for s, n in zip(region, self.shape, strict=True)]
        starts = [s.start for s in region]
        grid = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(region, self.chunks, strict=True)]
        touched = [tuple(r[i] for r, i in zip(grid, key, strict=True)) for key in np.ndindex(*map(len, grid))]
        listed = self.stored_keys
        stored = (
            touched if listed is None else [index for index in touched if self._file_key(index) in listed]
        )
        if len(stored) < len(touched):  # the chunks not stored are the fill value
            out[...] = self.fill_value
        jobs = [(index, region, starts, out) for index in stored]
        pool = _pool()
        if pool is None or len(jobs) == 1:
            for job in jobs:
                self._copy_chunk(*job)
        else:
            for _ in pool.map(lambda job: self._copy_chunk(*job), jobs):
                pass

    def _copy_chunk(
        self, index: tuple[int, ...], region: Sequence[slice], starts: list[int], out: np.ndarray
    ) -> None:
        chunk = self._chunk(index)
        inside: list[slice] = []
        target: list[slice] = []
        for axis, (i, c, s) in enumerate(zip(index, self.chunks, region, strict=True)):
            lo, hi = max(s.start, i * c), min(s.stop, (i + 1) * c, self.shape[axis])
            inside.append(slice(lo - i * c, hi - i * c))
            target.append(slice(lo - starts[axis], hi - starts[axis]))
        if chunk is None:
            out[tuple(target)] = self.fill_value
        else:
            out[tuple(target)] = chunk[tuple(inside)]

    def chunk_path(self, index: tuple[int, ...]) -> Path:
        return self.folder / self._key(index)

    def _chunk(self, index: tuple[int, ...]) -> np.ndarray | None:
        """The decoded chunk at `index` (valid until this thread's next chunk), None when not stored."""
        try:
            data = self._read(self.chunk_path(index)) if self.shards is None else self._inner_chunk(index)
        except FileNotFoundError:
            return None
        if data is None:
            return None
        if self.compressor is None:
            if len(data) != self.chunk_bytes:
                raise ValueError(f"chunk {self._key(index)} holds {len(data)} bytes, not {self.chunk_bytes}")
            decoded: Any = data
        else:
            decoded = inflate_bounded(
                self.compressor, data, self.chunk_bytes, out=self._buffer("decoded", self.chunk_bytes)
            )
        flat = np.frombuffer(decoded, dtype=self.stored, count=math.prod(self.chunks))
        return flat.reshape(self.chunks, order=self.order)  # type: ignore[call-overload]

    def _read(self, path: Path) -> memoryview:
        """The chunk file's bytes, read into this thread's buffer (valid until its next chunk)."""
        with open(path, "rb", buffering=0) as file:
            view = self._buffer("read", os.fstat(file.fileno()).st_size).data
            count = file.readinto(view)
        return view[:count]

    def _buffer(self, role: str, size: int) -> np.ndarray:
        """`size` bytes of a buffer per thread and role, used again for every chunk: no fresh pages
        for each one."""
        buffer = getattr(self._local, role, None)
        if buffer is None or len(buffer) < size:
            buffer = np.empty(max(size, self.chunk_bytes), dtype=np.uint8)
            setattr(self._local, role, buffer)
        return buffer[:size]

    def _key(self, index: tuple[int, ...]) -> str:
        return self.key_prefix + self.separator.join(str(i) for i in index)

    def _file_key(self, index: tuple[int, ...]) -> str:
        """The key of the file that holds chunk `index`: its own, or its shard's."""
        return self._key(tuple(i // n for i, n in zip(index, self.per_shard, strict=True)))

    def _inner_chunk(self, index: tuple[int, ...]) -> memoryview | None:
        """The encoded bytes of chunk `index` inside its shard (None: the shard or chunk is empty)."""
        shard = tuple(i // n for i, n in zip(index, self.per_shard, strict=True))
        found = self._shard_table(shard)
        if found is None:
            return None
        table, length = found
        offset, size = (
            int(v) for v in table[tuple(i % n for i, n in zip(index, self.per_shard, strict=True))]
        )
        if offset == size == EMPTY_INNER_CHUNK:
            return None
        if offset + size > length:
            raise ValueError(
                f"shard {self._key(shard)}: chunk {index} lies beyond the shard's {length} bytes"
            )
        with open(self.folder / self._key(shard), "rb", buffering=0) as file:
            view = self._buffer("read", size).data
            file.seek(offset)
            count = file.readinto(view)
        return view[:count]

    def _shard_table(self, shard: tuple[int, ...]) -> tuple[np.ndarray, int] | None:
        """The (offset, size) of each inner chunk of `shard` and the shard's length, read once (for
        the SHARD_TABLES shards used last); None when the shard is not stored."""
        with self._tables_lock:
            if shard in self._tables:
                self._tables.move_to_end(shard)
                return self._tables[shard]
        found = self._read_shard_table(shard)
        with self._tables_lock:
            self._tables[shard] = found
            while len(self._tables) > SHARD_TABLES:
                self._tables.popitem(last=False)
        return found

    def _read_shard_table(self, shard: tuple[int, ...]) -> tuple[np.ndarray, int] | None:
        key = self._key(shard)
        size = math.prod(self.per_shard) * 16 + (4 if self.index_checksum else 0)
        try:
            with open(self.folder / key, "rb", buffering=0) as file:
                length = os.fstat(file.fileno()).st_size
                if length < size:
                    raise ValueError(f"shard {key} has {length} bytes, fewer than its index's {size}")
                file.seek(length - size if self.index_at_end else 0)
                raw = file.read(size)
        except FileNotFoundError:
            return None
        if self.index_checksum:
            try:
                raw = bytes(_crc32c().decode(raw))
            except Exception as exc:
                raise ValueError(f"shard {key}: its index fails its CRC32C checksum ({exc})") from exc
        return np.frombuffer(raw, dtype="<u8").reshape(*self.per_shard, 2), length


@functools.cache
def _crc32c() -> Any:
    """A checker of data that ends with its CRC32C (little-endian), as Zarr's sharding index does:
    `decode(data)` gives the data without it, or raises."""
    try:
        import google_crc32c  # what zarr itself requires: about 4 ms to import, numcodecs 50
    except ImportError:
        from numcodecs import CRC32C

        return CRC32C()
    return _TrailingCrc32c(google_crc32c.value)


@dataclass(frozen=True)
class _TrailingCrc32c:
    checksum: Any

    def decode(self, data: bytes) -> bytes:
        body, stored = data[:-4], int.from_bytes(data[-4:], "little")
        if len(data) < 4 or self.checksum(body) != stored:
            raise ValueError("the stored CRC32C does not match the data")
        return body


def _codec(config: Mapping[str, Any] | None) -> Any:
    """The compressor of an array's chunks. Zstandard (most NGFF stores), zlib and gzip are decoded
    without numcodecs, whose import (with its registry of entry points) took about 50 ms of every
    hash of a store: Zstandard by imagecodecs, zlib and gzip by Python's zlib (`inflate_bounded`)."""
    if config is None:
        return None
    codec_id = config.get("id")
    if codec_id in ("zlib", "gzip"):
        return _Inflated(codec_id)
    if codec_id == "zstd":
        try:
            import imagecodecs

            return _ImagecodecsZstd(imagecodecs.zstd_decode, f"imagecodecs {imagecodecs.__version__}")
        except (ImportError, AttributeError):
            pass
    import numcodecs

    return numcodecs.get_codec(dict(config))


@dataclass(frozen=True)
class _Inflated:
    """zlib or gzip chunks: `inflate_bounded` inflates them with Python's zlib, by `codec_id`."""

    codec_id: str

    @property
    def library(self) -> str:
        import zlib

        return f"zlib {zlib.ZLIB_RUNTIME_VERSION}"

    def decode(self, data: Any, out: Any = None) -> Any:
        raise NotImplementedError("inflate_bounded inflates zlib and gzip chunks")


@dataclass(frozen=True)
class _ImagecodecsZstd:
    """Zstandard chunks decoded by imagecodecs into the caller's buffer (which it will not overrun:
    a chunk that would is an error that `inflate_bounded` reports)."""

    zstd_decode: Any
    library: str
    codec_id: str = "zstd"

    def decode(self, data: Any, out: Any = None) -> Any:
        return self.zstd_decode(data, out=out)


def _numcodecs_name() -> str:
    from importlib.metadata import version

    return f"numcodecs {version('numcodecs')}"


_pools: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child (batch.py) has none of its parent's threads
    os.register_at_fork(after_in_child=_pools.clear)


def _pool() -> ThreadPoolExecutor | None:
    """Threads that decode a block's chunks side by side (None when the walk may use one thread)."""
    from ..imagewalk import thread_budget

    workers = thread_budget()
    if workers < 2:
        return None
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="bioiscc-zarr")
    return _pools[workers]
