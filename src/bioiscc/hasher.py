"""ISCC-SUM over a canonical stream: in this thread, or in two threads while this one reads.

`iscc_sum`'s `update()` holds the GIL for as long as it hashes, so a reader in another thread of the
same process got the GIL back only between two updates. iscc-lib's hashers (the same Data-Code and
Instance-Code, ISO 24138) release it while they hash. A scene of at least THREAD_MIN_BYTES is
therefore hashed by two threads while the calling thread reads and decodes (`ThreadHasher`):

- One thread makes the Data-Code (and, when asked, each plane's Data-Code digest: the simprints),
  the other the Instance-Code (BLAKE3). They are independent hashes of the same bytes; with the
  reader that makes three busy threads, which the system spreads over the cores. `compose_sum`
  makes the ISCC-SUM and its units of the two digests exactly as `iscc_sum` does (tested on random
  streams and every vector).
- The calling thread hands each piece of the stream to both threads through queues of QUEUE_DEPTH
  pieces (of up to HANDED_BYTES): a reader that runs ahead waits. What the walk itself reads
  ahead comes on top (its `readahead_planes`: up to 256 MiB of planes for a Zarr block reader).
  The hashers take `bytes`: `bytes` of up to HANDED_BYTES (written in place by the walk:
  `bioiscc.handoff`) are handed on as they are, anything else is copied once, into `bytes` of up
  to PIECE_BYTES.
- A hash that fails stops both threads and is raised in the calling thread; an error or interrupt
  there stops them too, and none is left running.

This replaces two child processes fed through shared memory (three copies of every byte, two
interpreters to start, about 110 MB more memory): on 2 cores the threads hash 512 MiB with
0.1-0.23 s less CPU and in up to 22 % less time (benchmarks/README.md).

Where threads are not wanted or not worth it (one thread: `--threads 1` or one usable core, a scene
under THREAD_MIN_BYTES), `LocalHasher` hashes in the calling thread with `iscc_sum`'s own processor.
`BIOISCC_HASH_THREADS=0` keeps every hash there; `=always` uses the threads for any scene (tests,
diagnosis).
"""

from __future__ import annotations

import base64
import functools
import importlib.machinery
import importlib.util
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from . import handoff

#: scenes smaller than this are hashed in the calling thread (their hash takes a few ms)
THREAD_MIN_BYTES = 16 * 1024 * 1024
#: the hashing threads take the stream in `bytes` of at most this size...
PIECE_BYTES = 4 * 1024 * 1024
#: `bytes` up to this size are taken as they are (a plane decoded into one: bioiscc.handoff)
HANDED_BYTES = handoff.HANDED_PLANE_BYTES
#: ...and each holds at most this many pieces waiting
QUEUE_DEPTH = 8
#: how often a waiting hash thread looks whether the hash was stopped
STOP_POLL_SECONDS = 0.1
#: a digest's length in the 256-bit codes iscc-lib returns (the ISCC header comes before it)
DIGEST_BYTES = 32


@dataclass(frozen=True)
class StreamDigest:
    """What hashing a canonical stream gives: the ISCC-SUM, its units, the datahash and, when asked
    for, each plane's 256-bit Data-Code digest with the plane's size."""

    iscc: str
    units: list[str]
    datahash: str
    plane_digests: list[tuple[bytes, int]] | None


def hashes_in_threads(stream_bytes: int, threads: int) -> bool:
    """True when a stream of this size is worth hashing in two threads, and that may be done."""
    wanted = os.environ.get("BIOISCC_HASH_THREADS", "1")
    if wanted == "0" or threads < 2:
        return False
    return wanted == "always" or stream_bytes >= THREAD_MIN_BYTES


@functools.cache
def core() -> Any:
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


def compose_sum(data: bytes, instance: bytes, wide: bool) -> tuple[str, list[str]]:
    """The ISCC-SUM and its two units from the 256-bit Data-Code and Instance-Code digests, exactly
    as `iscc_sum` composes them: each unit is its ISCC header and digest; the code is the ISCC-SUM
    header and the digests' 128-bit (wide) or 64-bit heads. The headers are taken from what
    `iscc_sum` itself makes of an empty stream, so they follow it should it ever change them."""
    code_header, unit_headers, head = _sum_layout(wide)
    units = [_text(header + digest) for header, digest in zip(unit_headers, (data, instance), strict=True)]
    return _text(code_header + data[:head] + instance[:head]), units


@functools.cache
def _sum_layout(wide: bool) -> tuple[bytes, tuple[bytes, bytes], int]:
    """(code header, (Data-Code header, Instance-Code header), bytes of each digest in the code)."""
    processors = core()
    result = processors.IsccSumProcessor().result(wide=wide, add_units=True)
    digests = (
        processors.DataCodeProcessor().result()["digest"],
        processors.InstanceCodeProcessor().result()["digest"],
    )
    head = 16 if wide else 8
    code = _bytes(result.iscc)
    units = tuple(_bytes(unit) for unit in result.units)
    code_header = code[: len(code) - 2 * head]
    unit_headers = tuple(unit[: len(unit) - len(digest)] for unit, digest in zip(units, digests, strict=True))
    if (
        len(units) != 2
        or code[len(code_header) :] != digests[0][:head] + digests[1][:head]
        or any(unit[len(h) :] != d for unit, h, d in zip(units, unit_headers, digests, strict=True))
    ):
        raise RuntimeError("iscc_sum composes the ISCC-SUM in a way bioiscc does not know")
    return code_header, (unit_headers[0], unit_headers[1]), head


def _bytes(code: str) -> bytes:
    body = code.removeprefix("ISCC:")
    return base64.b32decode(body + "=" * (-len(body) % 8))


def _text(code: bytes) -> str:
    return "ISCC:" + base64.b32encode(code).decode("ascii").rstrip("=")


class LocalHasher:
    """Hashes in this process; `update` takes `bytes` (what `iscc_sum` accepts)."""

    def __init__(self, *, simprints: bool, wide: bool) -> None:
        self.wide = wide
        self.processor = core().IsccSumProcessor()
        self.planes = _PlaneDigests(_sum_data_processor, _sum_digest) if simprints else None

    def update(self, pieces: Sequence[Any], ends_plane: bool) -> None:
        for piece in pieces:
            self.processor.update(piece)
        if self.planes is not None:
            self.planes.update(pieces, ends_plane)

    def finish(self) -> StreamDigest:
        result = self.processor.result(wide=self.wide, add_units=True)
        digests = self.planes.digests if self.planes is not None else None
        return StreamDigest(result.iscc, list(result.units or []), result.datahash, digests)

    def close(self) -> None:
        pass


class _PlaneDigests:
    """The Data-Code digest and size of each plane of a stream that arrives in pieces, with either
    library's Data-Code hasher (`new_hasher`; `digest_of` reads its 256-bit digest)."""

    def __init__(self, new_hasher: Callable[[], Any], digest_of: Callable[[Any], bytes]) -> None:
        self.new_hasher = new_hasher
        self.digest_of = digest_of
        self.digests: list[tuple[bytes, int]] = []
        self.processor: Any = None
        self.size = 0

    def update(self, pieces: Sequence[Any], ends_plane: bool) -> None:
        self.processor = self.processor or self.new_hasher()
        for piece in pieces:
            self.processor.update(piece)
            self.size += len(piece)
        if ends_plane:
            self.digests.append((self.digest_of(self.processor), self.size))
            self.processor, self.size = None, 0


def _sum_data_processor() -> Any:
    return core().DataCodeProcessor()


def _sum_digest(processor: Any) -> bytes:
    return bytes(processor.result()["digest"])


class ThreadHasher:
    """Hashes in two threads with iscc-lib. `update` takes `bytes` up to HANDED_BYTES by reference
    (the caller never writes them again: `bytes` are immutable, and handed memory is read-only,
    see bioiscc.handoff) and any other buffer as a copy, made before it returns."""

    def __init__(self, *, simprints: bool, wide: bool) -> None:
        _hashers()  # an iscc-lib that cannot be imported is an ImportError here, not in a thread
        self.wide = wide
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self.queues: list[queue.Queue[Any]] = [queue.Queue(QUEUE_DEPTH) for _ in range(2)]
        self.threads = [
            threading.Thread(
                target=self._run,
                args=(role, pieces, simprints and role == "data"),
                name=f"bioiscc-hash-{role}",
                daemon=True,
            )
            for role, pieces in zip(("data", "instance"), self.queues, strict=True)
        ]
        try:
            for thread in self.threads:
                thread.start()
        except BaseException:
            self.close()
            raise

    def update(self, pieces: Sequence[Any], ends_plane: bool) -> None:
        for piece in pieces:
            if isinstance(piece, bytes) and len(piece) <= HANDED_BYTES:
                self._put(piece)
                continue
            data = memoryview(piece).cast("B")
            for start in range(0, data.nbytes, PIECE_BYTES):
                self._put(bytes(data[start : start + PIECE_BYTES]))
        if ends_plane:
            self._put(_PLANE_END)

    def _put(self, item: Any) -> None:
        for pieces in self.queues:
            if self.stop.is_set():
                self._raise()
            pieces.put(item)  # waits while the hash is QUEUE_DEPTH pieces behind

    def finish(self) -> StreamDigest:
        self._put(_END)
        for thread in self.threads:
            thread.join()
        if self.failure is not None:
            self._raise()
        data, instance = self.results["data"], self.results["instance"]
        iscc, units = compose_sum(data["digest"], instance["digest"], self.wide)
        return StreamDigest(iscc, units, instance["datahash"], data["planes"])

    def close(self) -> None:
        """Stop the threads (they drop what is queued) and wait for them; nothing keeps running.

        A thread ends once the stop is set and its queue is empty, with or without an _END: Ctrl-C
        during `Thread.start()` leaves a thread running that `is_alive()` does not report yet (it
        then waited forever for an _END nobody sent, and the command with it).
        """
        self.stop.set()
        for pieces in self.queues:
            try:
                pieces.put_nowait(_END)  # wakes a waiting thread at once
            except queue.Full:  # a busy thread empties its queue and then sees the stop
                pass
        for thread in self.threads:
            if thread.ident is not None:
                thread.join()

    def _raise(self) -> NoReturn:
        raise self.failure or RuntimeError("the hash was stopped")

    def _run(self, role: str, pieces: queue.Queue[Any], simprints: bool) -> None:
        ended = False
        try:
            digests = _Digests(role, simprints)
            while (item := self._next(pieces)) is not _END:
                if not self.stop.is_set():  # once stopped, the queue is only emptied
                    digests.add(item)
            ended = True
            if not self.stop.is_set():
                self.results[role] = digests.result()
        except BaseException as exc:  # raised in the calling thread
            if self.failure is None:
                self.failure = exc
            self.stop.set()
            while not ended and self._next(pieces) is not _END:  # the reader never waits on a full queue
                pass

    def _next(self, pieces: queue.Queue[Any]) -> Any:
        """The next item of a queue; _END once the hash is stopped and the queue is empty."""
        while True:
            try:
                return pieces.get(timeout=STOP_POLL_SECONDS)
            except queue.Empty:
                if self.stop.is_set():
                    return _END


_END = object()  # the end of the stream
_PLANE_END = object()  # the end of a plane


class _Digests:
    """One role's hash of a stream of pieces: the 256-bit digest and, for the Instance-Code, the
    datahash; for the Data-Code with `simprints`, also each plane's digest and size."""

    def __init__(self, role: str, simprints: bool) -> None:
        new_hasher = _hashers()[role]
        self.whole = new_hasher()
        self.planes = _PlaneDigests(new_hasher, _lib_digest) if simprints else None

    def add(self, item: Any) -> None:
        if item is _PLANE_END:
            if self.planes is not None:
                self.planes.update([], True)
            return
        self.whole.update(item)  # releases the GIL while it hashes
        if self.planes is not None:
            self.planes.update([item], False)

    def result(self) -> dict[str, Any]:
        result = self.whole.finalize(bits=256)
        return {
            "digest": _code_digest(result),
            "datahash": result.get("datahash"),
            "planes": self.planes.digests if self.planes is not None else None,
        }


def _lib_digest(hasher: Any) -> bytes:
    return _code_digest(hasher.finalize(bits=256))


def _code_digest(result: Any) -> bytes:
    """The 256-bit digest of an iscc-lib result: its code without the ISCC header."""
    return _bytes(result["iscc"])[-DIGEST_BYTES:]


@functools.cache
def _hashers() -> dict[str, Any]:
    """iscc-lib's streaming hashers by role."""
    import iscc_lib

    return {"data": iscc_lib.DataHasher, "instance": iscc_lib.InstanceHasher}
