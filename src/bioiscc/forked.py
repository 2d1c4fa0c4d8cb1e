"""Reading and decoding in a forked process while this one hashes (readers that allow it).

The hash (`iscc_sum`'s `update()`) holds the GIL. A read-ahead *thread* needs the GIL back after
every strip or tile it decodes, and waits for it up to a switch interval each time, so on a zstd-
tiled TIFF reading and hashing barely overlap. A forked child has its own interpreter: it runs the
walk's canonical stream (read, decode, byte order); this process only hashes (and waits, without
the GIL, when the child is behind). Each stored byte is still decoded once.

Used only where it is safe and pays: on Linux, for readers that set `fork_readahead` (TIFF pages
decoded by tifffile and imagecodecs, no threads of their own), for scenes of at least
FORK_MIN_BYTES, when read-ahead is on and this process runs no other thread (a fork copies no
threads, so a lock another thread held would stay locked in the child).

The bytes travel through a ring of shared slots: the child copies the canonical bytes of a plane
into free slots and announces each on a pipe (kind, ends_plane, slot, length); this process copies a
slot into the `bytes` the hash needs and hands the slot back on a second pipe. Kinds: data; end
(length = the reader's `decoded_bytes`, or -1); error (a pickled exception follows, re-raised here).
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any

from .errors import SceneError, describe
from .imagewalk import PlanePart

#: scenes smaller than this are not worth a fork
FORK_MIN_BYTES = 64 * 1024 * 1024
#: the shared ring: SLOTS slots of SLOT_BYTES, filled by the child, hashed from here
SLOTS = 4
SLOT_BYTES = 4 * 1024 * 1024
#: bytes per `bytes` object handed to the hash
PIECE_BYTES = 256 * 1024

HEADER = struct.Struct("<BBBq")  # kind, ends_plane, slot, length
DATA, END, ERROR = 0, 1, 2


def can_fork(reader: Any, stream_bytes: int) -> bool:
    """True when the reader's stream may be produced in a forked child."""
    return (
        sys.platform.startswith("linux")
        and bool(getattr(reader, "fork_readahead", False))
        and stream_bytes >= FORK_MIN_BYTES
        and os.environ.get("BIOISCC_FORK", "1") != "0"
        and threading.active_count() == 1
    )


def read_ahead_forked(chunks: Iterator[list[Any]], reader: Any) -> Generator[list[bytes], None, None]:
    """The items of `chunks` (lists of buffers), produced in a forked child, as lists of `bytes`:
    same order, same bytes, same plane ends."""
    ring = mmap.mmap(-1, SLOTS * SLOT_BYTES)  # shared with the child, anonymous
    messages, to_parent = os.pipe()
    from_parent, free = os.pipe()
    os.write(free, bytes(range(SLOTS)))
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(messages)
        os.close(free)
        _produce(chunks, reader, ring, from_parent, to_parent)
    os.close(to_parent)
    os.close(from_parent)
    finished = False
    view = memoryview(ring)
    try:
        with os.fdopen(messages, "rb", buffering=0) as pipe:
            while True:
                kind, ends, slot, length = HEADER.unpack(_exactly(pipe, HEADER.size))
                if kind == DATA:
                    start = slot * SLOT_BYTES
                    pieces = [
                        bytes(view[start + offset : start + min(length, offset + PIECE_BYTES)])
                        for offset in range(0, length, PIECE_BYTES)
                    ]
                    try:
                        os.write(free, bytes([slot]))  # copied out: the child may fill it again
                    except BrokenPipeError:
                        pass  # the child has sent everything and is gone
                    yield PlanePart(pieces, bool(ends))
                elif kind == END:
                    if length >= 0 and hasattr(reader, "decoded_bytes"):
                        reader.decoded_bytes += length
                    finished = True
                    return
                else:
                    raise pickle.loads(_exactly(pipe, length))
    finally:
        if not finished:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, _, usage = os.wait4(pid, 0)
        if os.environ.get("BIOISCC_STATS") == "1":
            import resource

            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(
                f"bioiscc: stats: forked reader peak_rss_kib={usage.ru_maxrss} hashing process "
                f"peak_rss_kib={own}",
                file=sys.stderr,
            )
        os.close(free)
        view.release()
        ring.close()


def _produce(chunks: Iterator[list[Any]], reader: Any, ring: mmap.mmap, free: int, fd: int) -> None:
    """The child: copy each item into free slots, announce them, then the end (or the error), and
    exit without any cleanup of the parent's state."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent reports the interrupt
        before = getattr(reader, "decoded_bytes", None)
        for chunk in chunks:
            views = [memoryview(piece).cast("B") for piece in chunk]
            ends = int(getattr(chunk, "ends_plane", True))
            _send(views, ends, ring, free, fd)
        after = getattr(reader, "decoded_bytes", None)
        decoded = after - before if isinstance(after, int) and isinstance(before, int) else -1
        _write(fd, HEADER.pack(END, 0, 0, decoded))
    except BrokenPipeError:
        code = 1  # the parent stopped reading
    except BaseException as exc:
        message = _portable(exc)
        try:
            _write(fd, HEADER.pack(ERROR, 0, 0, len(message)))
            _write(fd, message)
        except OSError:
            pass
        code = 1
    finally:
        os._exit(code)


def _portable(exc: BaseException) -> bytes:
    """The exception pickled so that the parent can raise it; if it does not survive the round
    trip (it holds something unpicklable, or its constructor takes other arguments than its
    `args`), a `SceneError` with its one-line description."""
    try:
        message = pickle.dumps(exc)
        pickle.loads(message)
        return message
    except Exception:
        return pickle.dumps(SceneError(describe(exc)))


def _send(views: list[memoryview], ends: int, ring: mmap.mmap, free: int, fd: int) -> None:
    """Fill slots with the bytes of `views` in order; the last slot carries `ends`."""
    pending = [(view, 0) for view in views if view.nbytes]
    while True:
        slot = os.read(free, 1)
        if not slot:
            raise BrokenPipeError("the parent stopped reading")
        start = slot[0] * SLOT_BYTES
        filled = 0
        while pending and filled < SLOT_BYTES:
            view, offset = pending[0]
            take = min(view.nbytes - offset, SLOT_BYTES - filled)
            ring[start + filled : start + filled + take] = view[offset : offset + take]
            filled += take
            if offset + take == view.nbytes:
                pending.pop(0)
            else:
                pending[0] = (view, offset + take)
        _write(fd, HEADER.pack(DATA, ends if not pending else 0, slot[0], filled))
        if not pending:
            return


def _write(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def _exactly(pipe: Any, size: int) -> bytes:
    """`size` bytes from the pipe; EOF before that is an error."""
    parts = []
    while size:
        part = pipe.read(size)
        if not part:
            raise OSError("the reading process ended unexpectedly")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)
