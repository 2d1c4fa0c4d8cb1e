"""IMAGEWALK: the order of planes and their canonical bytes (spec: docs/spec/IMAGEWALK.md).

    for z in Z:  for c in C*S:  for t in T:  for e in extras:  emit plane(t, c, z, e)

Each plane is written row-major, every pixel big-endian in its own type, nothing else.

Hashing consumes `PlaneWalk.canonical()`: per plane, its canonical bytes as a few pieces. A large
scene is hashed in two other threads (`bioiscc.hasher`, `in_place`); a smaller one in the calling
thread. Either way the pieces are `bytes`, and optional reader attributes make that fast; the
stream is the same whichever path is taken:

- `readahead_planes: int`: planes the walk may read and convert in a background thread while the
  caller hashes. Reading, decompressing and byte-swapping release the GIL, so on two cores they
  overlap the hash. Readers without it are read in the calling thread (their libraries are not
  known to be thread-safe). `BIOISCC_READAHEAD=0`, or `use_threads(1)` (the commands' `--threads 1`),
  turns the thread off, so that a job that declares one thread uses one core.
- `readahead_with_hash_threads: int`: planes to read ahead in that thread when the hash runs in
  threads of its own and the calling thread only hands planes over (default: `readahead_planes`).
  The TIFF page reader, which decodes one plane per call, sets 0: the hash threads' queues already
  hold the planes it reads ahead, and a read-ahead thread would only add a hand-over between
  threads (benchmarks/README.md, tenth series).
- `read_transient(t, c, z, extra)`: like `read`, but into a buffer the next call may overwrite,
  which saves allocating (and page-faulting) every plane.

Hashed in other threads, the canonical bytes reach them as `bytes` written in place where the
interpreter allows (`bioiscc.handoff`), not copied again: a plane that needs converting (or that
is the reader's reused buffer) is converted or copied, piece by piece, into new `bytes`, and a
reader with `read_owned(t, c, z, extra, new_array)` may decode a one-sample plane of at most
handoff.HANDED_PLANE_BYTES, already big-endian, into memory from `new_array(shape, dtype)`, which is
then handed over whole, never to be written again. Handed `bytes` stay valid, so the walk reads
ahead for this hash too (`readahead_planes`); where handing is not available
(`BIOISCC_HANDOFF=0`), the walk runs in the calling thread and hands out byte views of its reused
buffers, which the hash copies before it asks for the next item.

A stored plane larger than BAND_PLANE_BYTES (a whole-slide image) is hashed in row bands when its
reader has `read_rows`: the canonical stream is row-major per plane, so bands in order are the same
bytes. Its samples are interleaved (Y, X, S) but walked one after the other, so the bands of samples
1..S-1 are spilled, as canonical bytes, to a temporary file (in TMPDIR, deleted when closed, and by
the system should the process die) while sample 0 is hashed, then hashed from there: each stored
byte is decoded once and memory stays at a few bands. Such a plane then reaches the hash as several
`PlanePart`s, the last one marked `ends_plane`.

Hashed in the calling thread, iscc_sum's `update()` holds the GIL while it hashes, so the read-ahead
thread gets the GIL back only between two updates. Hashing a plane in pieces lets it in after a
piece rather than after a whole plane; it needs the GIL after every tile or chunk it decodes.
"""

from __future__ import annotations

import functools
import itertools
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any

import numpy as np

from . import handoff
from .allocator import tune_allocator
from .scene import Plane, SceneInfo, SceneReader

IMAGEWALK_VERSION = "1"

#: Above this many bytes, samples of interleaved planes are re-read rather than cached across T.
SAMPLE_CACHE_BYTES = 512 * 1024 * 1024
#: Size of the pieces a plane's canonical bytes are hashed in.
PIECE_BYTES = 256 * 1024
#: A stored plane (all its samples) larger than this is hashed in row bands, if the reader can.
BAND_PLANE_BYTES = 128 * 1024 * 1024
#: Target size of one row band (of all samples).
BAND_BYTES = 16 * 1024 * 1024
#: A band grows to whole stored chunk rows (each chunk decoded once) up to this size.
CHUNK_ROW_LIMIT = 192 * 1024 * 1024

ReadPlane = Callable[[int, int, int, tuple[int, ...]], np.ndarray]


def plane_order(info: SceneInfo) -> Iterator[tuple[int, int, int, tuple[int, ...]]]:
    """Yield (z, c_effective, t, extra) in walk order; c_effective = c * S + s."""
    d = info.dims
    extras = list(itertools.product(*(range(n) for n in info.extra_dims.values())))
    for z in range(d["Z"]):
        for c in range(d["C"] * d["S"]):
            for t in range(d["T"]):
                for e in extras:
                    yield z, c, t, e


def iter_planes(reader: SceneReader) -> PlaneWalk:
    """The planes of one scene in IMAGEWALK order, each a 2D (Y, X) array in its native dtype.

    A stored plane of interleaved samples (Y, X, S) is read once and its samples handed out in
    turn; since T and extras walk inside the samples, those planes are kept until the channel is
    done, unless they would exceed SAMPLE_CACHE_BYTES (then they are read again).
    """
    return PlaneWalk(reader)


class PlaneWalk(Iterator[Plane]):
    """The walk of one scene: iterate it for `Plane`s, or take `canonical()` for the byte stream."""

    def __init__(self, reader: SceneReader) -> None:
        self.reader = reader
        self._planes: Iterator[Plane] | None = None

    def __next__(self) -> Plane:
        if self._planes is None:
            self._planes = _walk(self.reader, self.reader.read, _keeps_samples(self.reader.info))
        return next(self._planes)

    def canonical(self, in_place: bool = False, busy: bool = False) -> Generator[list[Any], None, None]:
        """Each plane's canonical bytes, as pieces, in walk order (instead of iterating, not as well).

        `busy`: the caller does work of its own on each item besides handing it to the hash threads
        (a digest of every plane), so the reader's read-ahead thread is kept for it.

        The pieces are `bytes`, read ahead in a thread where the reader allows. With `in_place`,
        for a hash that runs in other threads (`bioiscc.hasher`), they are `bytes` handed over for
        good (`bioiscc.handoff`), read ahead likewise; or, where handing is not available, byte
        views that the next item may overwrite, read in this thread, which the hash copies before
        it asks for the next.
        """
        if self._planes is not None:
            raise RuntimeError("the walk has already been iterated plane by plane")
        self._planes = iter(())
        tune_allocator()  # decode buffers are reused rather than faulted in again for every plane
        info = self.reader.info
        keep = _keeps_samples(info)
        # Kept sample planes must outlive the next read, so they cannot share a buffer.
        read: ReadPlane = (
            self.reader.read if keep else getattr(self.reader, "read_transient", self.reader.read)
        )
        handing = in_place and handoff.available()
        if handing and not keep and _reads_owned(self.reader):
            read = functools.partial(self.reader.read_owned, new_array=handoff.new_array)  # type: ignore[attr-defined]
        writer = CanonicalWriter(handoff.HANDED_PIECE_BYTES if handing else PIECE_BYTES, handoff=handing)
        pieces = writer.buffers if in_place else writer.pieces
        rows = band_height(self.reader)
        chunks: Generator[list[Any], None, None]
        if rows:
            chunks = _banded(self.reader, rows, pieces)
        else:
            chunks = (pieces(plane.data) for plane in _walk(self.reader, read, keep))
        # Views are valid only until the next item, so they are read in this thread; handed `bytes`
        # stay valid, and may be read ahead.
        depth = (
            0
            if in_place and not handing
            else readahead_planes(self.reader, hash_threads=in_place and not busy)
        )
        if rows:
            depth = min(2, depth)
        return read_ahead(chunks, depth) if depth else chunks


class PlanePart(list[bytes]):
    """Canonical pieces of part of a plane (a row band); `ends_plane` is set on its last part.

    Whole planes reach the hash as plain lists: `ends_plane()` is True for them.
    """

    def __init__(self, pieces: list[bytes], ends_plane: bool) -> None:
        super().__init__(pieces)
        self.ends_plane = ends_plane


def ends_plane(chunk: list[bytes]) -> bool:
    """True when an item of `PlaneWalk.canonical()` completes a plane."""
    return bool(getattr(chunk, "ends_plane", True))


def _reads_owned(reader: SceneReader) -> bool:
    """True when the reader can decode a plane into memory the walk gives it (`read_owned`) and
    that memory is the plane's canonical bytes as they are: one sample, within handoff.HANDED_PLANE_BYTES."""
    info = reader.info
    return (
        callable(getattr(reader, "read_owned", None))
        and info.dims["S"] == 1
        and info.plane_bytes <= handoff.HANDED_PLANE_BYTES
    )


def band_height(reader: SceneReader) -> int:
    """Rows per band when the stored planes of this reader are hashed in bands, else 0.

    Whole stored chunk rows (each chunk decoded once) up to CHUNK_ROW_LIMIT, else BAND_BYTES.
    """
    info = reader.info
    stored_bytes = info.plane_bytes * info.dims["S"]
    if stored_bytes <= BAND_PLANE_BYTES or not callable(getattr(reader, "read_rows", None)):
        return 0
    if not getattr(reader, "rows_decode_once", True):
        return 0  # bands would decode chunks that span several planes again for each plane
    height = info.dims["Y"]
    row_bytes = max(1, stored_bytes // height)
    rows = max(1, BAND_BYTES // row_bytes)
    chunk = getattr(reader, "chunk_rows", None)
    if chunk and chunk * row_bytes <= CHUNK_ROW_LIMIT:
        rows = max(1, rows // chunk) * chunk
    return min(height, rows)


def _banded(
    reader: SceneReader, rows: int, pieces: Callable[[np.ndarray], list[Any]]
) -> Generator[list[Any], None, None]:
    """The canonical stream of a scene whose planes are read `rows` rows at a time; `pieces` makes
    the canonical pieces of sample 0 of a band (`CanonicalWriter.pieces`, or `.buffers`)."""
    spilled = CanonicalWriter()
    info = reader.info
    d = info.dims
    height, samples = d["Y"], d["S"]
    read_rows: Callable[..., np.ndarray] = reader.read_rows  # type: ignore[attr-defined]
    extras = list(itertools.product(*(range(n) for n in info.extra_dims.values())))
    inner = [(t, e) for t in range(d["T"]) for e in extras]
    for z in range(d["Z"]):
        for c in range(d["C"]):
            with _Spill(samples - 1) as spill:
                for t, e in inner:
                    for y0 in range(0, height, rows):
                        y1 = min(height, y0 + rows)
                        band = _checked_rows(read_rows(t, c, z, e, y0, y1), info, y1 - y0)
                        for s in range(1, samples):
                            spill.write(s - 1, spilled.contiguous(band[:, :, s]))
                        yield PlanePart(pieces(band[:, :, 0]), ends_plane=y1 == height)
                for s in range(1, samples):
                    for _ in inner:
                        yield from spill.read_plane(
                            s - 1, info.plane_bytes, rows * info.plane_bytes // height
                        )


class _Spill:
    """One temporary file per spilled sample, written in walk order, then read back once in order."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.files: list[IO[bytes]] = []
        self.rewound: set[int] = set()

    def __enter__(self) -> _Spill:
        # unnamed (O_TMPFILE or unlinked at once): its space is freed on close, on any exit
        self.files = [tempfile.TemporaryFile() for _ in range(self.count)]
        return self

    def __exit__(self, *exc: object) -> None:
        for file in self.files:
            file.close()

    def write(self, index: int, data: np.ndarray) -> None:
        self.files[index].write(data.data.cast("B"))

    def read_plane(self, index: int, size: int, part_bytes: int) -> Iterator[PlanePart]:
        """The next `size` bytes (one plane) of spilled sample `index`, in parts of about `part_bytes`."""
        file = self.files[index]
        if index not in self.rewound:
            file.seek(0)
            self.rewound.add(index)
        per_part = max(1, part_bytes // PIECE_BYTES)
        left = size
        while left:
            pieces: list[bytes] = []
            while left and len(pieces) < per_part:
                data = file.read(min(PIECE_BYTES, left))
                if not data:
                    raise OSError("the temporary file of an interleaved plane ended early")
                pieces.append(data)
                left -= len(data)
            yield PlanePart(pieces, ends_plane=not left)


def _checked_rows(band: np.ndarray, info: SceneInfo, rows: int) -> np.ndarray:
    want = (rows, info.dims["X"], info.dims["S"])
    if band.shape != want:
        raise ValueError(f"reader returned rows of shape {band.shape}, expected {want}")
    if band.dtype.newbyteorder("=") != np.dtype(info.dtype).newbyteorder("="):
        raise ValueError(f"reader returned dtype {band.dtype}, expected {info.dtype}")
    return band


#: threads a walk may use (None: as many as help, today 2); set by use_threads
_thread_budget: int | None = None


def use_threads(threads: int | None) -> None:
    """Limit the threads of later walks in this process: 1 reads and hashes in turn."""
    global _thread_budget
    _thread_budget = threads


def thread_budget() -> int:
    """Threads a walk may keep busy: the `use_threads` limit, else the cores this process may run on
    (a Slurm job or `taskset` may allow fewer than the machine has)."""
    return max(1, _thread_budget or usable_cores())


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on every system
        return os.cpu_count() or 1


def readahead_planes(reader: SceneReader, hash_threads: bool = False) -> int:
    """Planes to prepare in a background thread: what the reader allows (with `hash_threads`, while
    the hash runs in threads of its own), 0 when turned off."""
    if os.environ.get("BIOISCC_READAHEAD", "1") == "0" or _thread_budget == 1:
        return 0
    planes = getattr(reader, "readahead_planes", 0)
    if hash_threads:
        planes = getattr(reader, "readahead_with_hash_threads", planes)
    return max(0, int(planes))


def _keeps_samples(info: SceneInfo) -> bool:
    d = info.dims
    inner = d["T"] * info.extra_count
    return d["S"] > 1 and inner * info.plane_bytes * d["S"] <= SAMPLE_CACHE_BYTES


def _walk(reader: SceneReader, read: ReadPlane, keep: bool) -> Iterator[Plane]:
    info = reader.info
    d = info.dims
    samples = d["S"]
    extras = list(itertools.product(*(range(n) for n in info.extra_dims.values())))
    inner = [(t, e) for t in range(d["T"]) for e in extras]
    for z in range(d["Z"]):
        for c in range(d["C"]):
            cache: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
            for s in range(samples):
                for t, e in inner:
                    stored = cache.get((t, e))
                    if stored is None:
                        stored = _checked(read(t, c, z, e), info)
                        if keep:
                            cache[(t, e)] = stored
                    yield Plane(z=z, c=c * samples + s, t=t, extra=e, data=stored[:, :, s])


def _checked(stored: np.ndarray, info: SceneInfo) -> np.ndarray:
    """Guard against a reader that returns something other than the plane it announced."""
    want = (info.dims["Y"], info.dims["X"], info.dims["S"])
    if stored.shape != want:
        raise ValueError(f"reader returned a plane of shape {stored.shape}, expected {want}")
    if stored.dtype.newbyteorder("=") != np.dtype(info.dtype).newbyteorder("="):
        raise ValueError(f"reader returned dtype {stored.dtype}, expected {info.dtype}")
    return stored


def canonical_dtype(dtype: np.dtype) -> np.dtype:
    """The big-endian twin of a pixel type; bool is one byte 00/01 (numpy's own layout)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b" or dtype.itemsize == 1:
        return dtype
    if dtype.kind not in "uifc":
        raise TypeError(f"pixel type {dtype} has no canonical bytes in IMAGEWALK")
    return dtype.newbyteorder(">")


def canonical_bytes(plane: np.ndarray) -> bytes:
    """Row-major, big-endian bytes of a 2D plane, bit-exact (NaN payloads and -0.0 kept)."""
    return CanonicalWriter()(plane)


class CanonicalWriter:
    """Canonical bytes of planes through one reused big-endian buffer.

    Reusing the buffer spares a fresh allocation (and its page faults) per plane; numpy's copy
    into it releases the GIL, and `tobytes()` is the one copy `bytes` requires. `pieces()` cuts a
    plane into row ranges of about `piece_bytes`, each one `bytes`.
    """

    def __init__(self, piece_bytes: int = 0, handoff: bool = False) -> None:
        self.buffer: np.ndarray | None = None
        self.piece_bytes = piece_bytes
        self.handoff = handoff

    def __call__(self, plane: np.ndarray) -> bytes:
        return self._canonical(plane).tobytes()

    def contiguous(self, plane: np.ndarray) -> np.ndarray:
        """The plane's canonical bytes as an array (valid until the next call)."""
        return self._canonical(plane)

    def pieces(self, plane: np.ndarray) -> list[bytes]:
        if not plane.size:  # a plane of no pixels has no bytes (and no first row to measure)
            return []
        rows = self._canonical(plane)
        step = self._rows_per_piece(rows)
        return [rows[start : start + step].tobytes() for start in range(0, len(rows), step)]

    def buffers(self, plane: np.ndarray) -> list[Any]:
        """The plane's canonical bytes without a copy made for `bytes`: one byte view (valid until
        the next call) or, with `handoff`, only `bytes` written in place (see bioiscc.handoff): the
        plane's own when it was decoded into one, else pieces the conversion writes into."""
        if not plane.size:
            return []
        if self.handoff:
            if self._is_canonical(plane) and (owned := handoff.handed_bytes(plane)) is not None:
                return [owned]
            return self._handed_pieces(plane)
        return [self._canonical(plane).data.cast("B")]

    def _handed_pieces(self, plane: np.ndarray) -> list[bytes]:
        """The plane converted (or copied, when it is canonical already), row range by row range,
        straight into new `bytes`."""
        self._check_2d(plane)
        target = canonical_dtype(plane.dtype)
        step = self._rows_per_piece(plane, target.itemsize)
        handed: list[bytes] = []
        for start in range(0, len(plane), step):
            rows = plane[start : start + step]
            piece = handoff.new_array(rows.shape, target)
            _convert(rows, piece)
            handed.append(handoff.handed_bytes(piece) or piece.tobytes())
        return handed

    def _canonical(self, plane: np.ndarray) -> np.ndarray:
        """The plane as a C-contiguous array of its canonical dtype (the plane itself if it is one)."""
        self._check_2d(plane)
        if self._is_canonical(plane):
            return plane
        target = canonical_dtype(plane.dtype)
        if self.buffer is None or self.buffer.shape != plane.shape or self.buffer.dtype != target:
            self.buffer = np.empty(plane.shape, dtype=target)
        _convert(plane, self.buffer)
        return self.buffer

    def _rows_per_piece(self, plane: np.ndarray, itemsize: int | None = None) -> int:
        """Whole rows of about `piece_bytes` (all of them without a piece size), at least one;
        `itemsize`: the bytes of a canonical pixel, when the plane is not canonical yet."""
        if not self.piece_bytes:
            return len(plane)
        row_bytes = plane.shape[1] * (itemsize or plane.itemsize)
        return max(1, self.piece_bytes // max(1, row_bytes))

    @staticmethod
    def _check_2d(plane: np.ndarray) -> None:
        if plane.ndim != 2:
            raise ValueError(f"a plane is 2D, got shape {plane.shape}")

    @staticmethod
    def _is_canonical(plane: np.ndarray) -> bool:
        """True when the plane's memory is its canonical bytes as they are (bool never: see _convert)."""
        target = canonical_dtype(plane.dtype)
        return plane.dtype == target and plane.flags.c_contiguous and target.kind != "b"


def _convert(plane: np.ndarray, out: np.ndarray) -> None:
    """Write the plane's canonical values into `out` (of its canonical dtype and shape)."""
    if out.dtype.kind == "b":  # a stored bool byte may be other than 00/01 (a Zarr chunk may hold 02): 01
        np.not_equal(plane.view(np.uint8), 0, out=out)
    else:
        # casting="equiv" allows a change of byte order only: bytes move, values never convert,
        # so float bit patterns (NaN payloads, -0.0) survive.
        np.copyto(out, plane, casting="equiv")


def read_ahead(chunks: Iterator[list[bytes]], depth: int) -> Generator[list[bytes], None, None]:
    """Run `chunks` in a background thread, up to `depth` items ahead of the consumer.

    Order is kept; an exception in the producer is raised here at its place in the stream. Closing
    this generator early stops the producer.
    """
    items: queue.Queue[tuple[list[bytes] | None, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: tuple[list[bytes] | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put((chunk, None)):
                    return
            put((None, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((None, exc))

    worker = threading.Thread(target=produce, name="bioiscc-readahead", daemon=True)
    worker.start()
    try:
        while True:
            chunk, error = items.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        worker.join()
