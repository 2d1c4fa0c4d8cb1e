"""A Zarr store in a local folder, read without the zarr package where it is plain.

Groups are JSON files (`.zgroup` and `.zattrs` in Zarr v2, `zarr.json` in v3), read here. A Zarr v2
array whose layout is the plain one nearly every NGFF 0.4 store has (numeric dtype, C or F order, no
filters, no compressor or one of numcodecs' bounded ones, a file per chunk) is read chunk file by
chunk file and decoded with numcodecs, the codec library zarr itself uses. Every other array (Zarr
v3 codecs and shards, filters, object dtypes) is opened with zarr.

Why: importing zarr takes 0.25-0.4 s, and its asynchronous read path spent more CPU on event-loop
bookkeeping, fresh chunk buffers and a copy per chunk than on decoding. `bioiscc hash` of 512 MiB of
zstd chunks on the 2-core VM: 1.75 s with zarr, 1.26 s here (medians of 7; benchmarks/README.md).
`BIOISCC_ZARR_DIRECT=0` reads every array with zarr, to compare.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .integrity import BOUNDED_V2, inflate_bounded
from .sparse import stored_chunk_keys

#: numeric kinds the direct path reads (bool, signed, unsigned, float)
DIRECT_KINDS = "biuf"
#: fill values Zarr v2 writes as strings
SPECIAL_FILLS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def direct_reads_enabled() -> bool:
    return os.environ.get("BIOISCC_ZARR_DIRECT", "1") != "0"


class GroupNotFound(ValueError):
    """The folder holds no Zarr group metadata."""


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
            self.attrs: Mapping[str, Any] = meta.get("attributes") or {}
        elif (folder / ".zgroup").is_file():
            _read_json(folder / ".zgroup")
            self.zarr_format = 2
            attrs_file = folder / ".zattrs"
            self.attrs = _read_json(attrs_file) if attrs_file.is_file() else {}
        else:
            raise GroupNotFound(f"no group metadata (.zgroup or zarr.json) in {folder}")

    def groups(self) -> Iterator[tuple[str, FolderGroup]]:
        """The child groups, by name (folders that hold group metadata)."""
        for child in sorted(self.folder.iterdir()):
            if child.is_dir() and ((child / ".zgroup").is_file() or _is_v3_group(child)):
                yield child.name, FolderGroup(child)


def _is_v3_group(folder: Path) -> bool:
    meta = folder / "zarr.json"
    return meta.is_file() and _read_json(meta).get("node_type") == "group"


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        value = json.load(file)
    if not isinstance(value, dict):
        raise json.JSONDecodeError("not a JSON object", path.name, 0)
    return value


def open_direct(folder: Path) -> ChunkFileArray | None:
    """The Zarr v2 array in `folder` when its layout is read here, else None (zarr reads it)."""
    meta_file = folder / ".zarray"
    if not direct_reads_enabled() or not meta_file.is_file():
        return None
    meta = _read_json(meta_file)
    try:
        return ChunkFileArray(folder, meta) if _plain_layout(meta) else None
    except (TypeError, ValueError, KeyError, OverflowError, ImportError):
        return None  # zarr reads it, and says what is wrong with it (or that it is not installed)


def _plain_layout(meta: Mapping[str, Any]) -> bool:
    compressor = meta.get("compressor")
    return (
        meta.get("zarr_format") == 2
        and isinstance(meta.get("dtype"), str)
        and np.dtype(meta["dtype"]).kind in DIRECT_KINDS
        and meta.get("order", "C") in ("C", "F")
        and not meta.get("filters")
        and meta.get("fill_value") is not None
        and (compressor is None or compressor.get("id") in BOUNDED_V2)
        and len(meta["shape"]) == len(meta["chunks"]) > 0
    )


class ChunkFileArray:
    """A read-only Zarr v2 array read from its chunk files: `array[selection]` with integers and
    slices, and `read_into` a caller's buffer. A chunk the store does not hold is the fill value."""

    def __init__(self, folder: Path, meta: Mapping[str, Any]) -> None:
        self.folder = folder
        self.shape = tuple(int(n) for n in meta["shape"])
        self.chunks = tuple(int(n) for n in meta["chunks"])
        self.dtype = np.dtype(meta["dtype"])
        fill = meta["fill_value"]
        self.fill_value = self.dtype.type(SPECIAL_FILLS.get(fill, fill) if isinstance(fill, str) else fill)
        self.order = str(meta.get("order", "C"))
        self.separator = str(meta.get("dimension_separator") or ".")
        self.compressor = _codec(meta.get("compressor"))
        self.chunk_bytes = math.prod(self.chunks) * self.dtype.itemsize
        self._local = threading.local()
        if any(n < 1 for n in self.chunks) or any(n < 0 for n in self.shape):
            raise ValueError(f"invalid shape {self.shape} or chunks {self.chunks}")

    @functools.cached_property
    def stored_keys(self) -> set[str] | None:
        """The chunk keys the folder holds, listed once: a sparse array's missing chunks (millions,
        maybe) then cost neither a file lookup nor a decode job each. None: it cannot be listed."""
        return stored_chunk_keys(self.folder)

    @property
    def reader(self) -> str:
        from importlib.metadata import version

        return f"numcodecs {version('numcodecs')}"

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
        stored = touched if listed is None else [index for index in touched if self._key(index) in listed]
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
        return self.folder / self.separator.join(str(i) for i in index)

    def _chunk(self, index: tuple[int, ...]) -> np.ndarray | None:
        """The decoded chunk at `index` (valid until this thread's next chunk), None when not stored."""
        try:
            data = self._read(self.chunk_path(index))
        except FileNotFoundError:
            return None
        if self.compressor is None:
            if len(data) != self.chunk_bytes:
                raise ValueError(f"chunk {self._key(index)} holds {len(data)} bytes, not {self.chunk_bytes}")
            decoded: Any = data
        else:
            decoded = inflate_bounded(
                self.compressor, data, self.chunk_bytes, out=self._buffer("decoded", self.chunk_bytes)
            )
        flat = np.frombuffer(decoded, dtype=self.dtype, count=math.prod(self.chunks))
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
        return self.separator.join(str(i) for i in index)


def _codec(config: Mapping[str, Any] | None) -> Any:
    if config is None:
        return None
    import numcodecs

    return numcodecs.get_codec(dict(config))


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
