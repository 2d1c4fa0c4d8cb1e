"""Reading and decoding in a forked process while this one hashes (readers that allow it).

The hash (`iscc_sum`'s `update()`) holds the GIL. A read-ahead *thread* needs the GIL back after
every strip or tile it decodes, and waits for it up to a switch interval each time, so on a zstd-
tiled TIFF reading and hashing barely overlap. A forked child has its own interpreter: it runs the
walk's canonical stream (read, decode, byte order) and writes the bytes into a pipe; this process
reads them (the GIL released while it waits) and hashes. Each stored byte is still decoded once.

Used only where it is safe and pays: on Linux, for readers that set `fork_readahead` (TIFF pages
decoded by tifffile and imagecodecs, no threads of their own), for scenes of at least
FORK_MIN_BYTES, when read-ahead is on and this process runs no other thread (a fork copies no
threads, so a lock another thread held would stay locked in the child).

Stream on the pipe: per item, a header (kind, ends_plane, length) and `length` bytes. Kinds: data;
end (length = the reader's `decoded_bytes`, or -1); error (a pickled exception, re-raised here).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any

from .imagewalk import PlanePart

#: scenes smaller than this are not worth a fork
FORK_MIN_BYTES = 64 * 1024 * 1024
#: bytes per read from the pipe (each one `bytes` object handed to the hash)
READ_BYTES = 256 * 1024
PIPE_BYTES = 1024 * 1024

HEADER = struct.Struct("<BBq")
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


def read_ahead_forked(chunks: Iterator[list[bytes]], reader: Any) -> Generator[list[bytes], None, None]:
    """The items of `chunks`, produced in a forked child; same order, same bytes, same plane ends."""
    readable, writable = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(writable, 1031, PIPE_BYTES)  # F_SETPIPE_SZ: a deeper pipe, fewer wake-ups
    except OSError:
        pass
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(readable)
        _produce(chunks, reader, writable)
    os.close(writable)
    finished = False
    try:
        with os.fdopen(readable, "rb", buffering=0) as pipe:
            while True:
                kind, ends, length = HEADER.unpack(_exactly(pipe, HEADER.size))
                if kind == DATA:
                    yield PlanePart(_pieces(pipe, length), bool(ends))
                elif kind == END:
                    if length >= 0 and hasattr(reader, "decoded_bytes"):
                        reader.decoded_bytes += length
                    finished = True
                    return
                else:
                    raise pickle.loads(b"".join(_pieces(pipe, length)))
    finally:
        if not finished:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)


def _produce(chunks: Iterator[list[bytes]], reader: Any, fd: int) -> None:
    """The child: write each item, then the end (or the error), and exit without any cleanup."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent reports the interrupt
        before = getattr(reader, "decoded_bytes", None)
        for chunk in chunks:
            _write(fd, HEADER.pack(DATA, int(getattr(chunk, "ends_plane", True)), sum(map(len, chunk))))
            for piece in chunk:
                _write(fd, piece)
        after = getattr(reader, "decoded_bytes", None)
        decoded = after - before if isinstance(after, int) and isinstance(before, int) else -1
        _write(fd, HEADER.pack(END, 0, decoded))
    except BrokenPipeError:
        code = 1  # the parent stopped reading
    except BaseException as exc:
        try:
            message = pickle.dumps(exc)
        except Exception:
            message = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        try:
            _write(fd, HEADER.pack(ERROR, 0, len(message)))
            _write(fd, message)
        except OSError:
            pass
        code = 1
    finally:
        os._exit(code)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _exactly(pipe: Any, size: int) -> bytes:
    return b"".join(_pieces(pipe, size))


def _pieces(pipe: Any, size: int) -> list[bytes]:
    """`size` bytes from the pipe as pieces of at most READ_BYTES; EOF before that is an error."""
    pieces = []
    while size:
        piece = pipe.read(min(READ_BYTES, size))
        if not piece:
            raise OSError("the reading process ended unexpectedly")
        pieces.append(piece)
        size -= len(piece)
    return pieces
