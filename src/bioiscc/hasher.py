"""ISCC-SUM over a canonical stream: in this process, or in two child processes while this one reads.

`iscc_sum`'s `update()` holds the GIL for as long as it hashes. A reader in a thread of the same
process gets the GIL back only between two updates, after up to a switch interval, so reading,
decompressing and hashing barely overlap, and readers that run much Python (zarr 3, libCZI's
bindings, the views' binning) are slowed most. A scene of at least CHILD_MIN_BYTES is therefore
hashed by two child processes while this one reads and decodes with the GIL to itself:

- One child makes the Data-Code (and, when asked, each plane's Data-Code digest: the simprints),
  the other the Instance-Code (BLAKE3). They are independent hashes of the same bytes; with the
  reader that makes three processes, which the system spreads over the cores. `compose_sum` makes
  the ISCC-SUM and its units of the two digests exactly as `iscc_sum` does (tested on random
  streams and every vector).
- The children are fresh interpreters (`hash_child.py`, standard library only, about 20 ms to
  start), not forks: `iscc_sum` keeps a pool of threads, and a fork of a process that has used it
  would wait forever for threads it does not have.
- The canonical bytes travel through a ring of SLOTS shared slots (a memfd): this process copies
  them into a free slot and announces it on each child's pipe (kind, ends_plane, slot, length);
  each child copies the slot into the `bytes` its hash takes and hands the slot number back on a
  common pipe. A slot is free again once both children have handed it back. At the end each child
  sends its digests back, pickled.
- A child that dies makes this process fail with a one-line error; an error or interrupt here
  kills and reaps the children (they ignore SIGINT), and a child whose parent is gone sees its pipe
  end and exits.

Where children are not possible or not worth it (no memfd, a scene under CHILD_MIN_BYTES, one
thread: `--threads 1`), `LocalHasher` hashes in this process with `iscc_sum`'s own processor.
`BIOISCC_HASH_CHILDREN=0` keeps every hash in this process; `=always` uses children for any scene
(for tests and diagnosis).
"""

from __future__ import annotations

import base64
import functools
import importlib.machinery
import importlib.util
import mmap
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: scenes smaller than this are hashed in this process (two children cost about 40 ms to start)
CHILD_MIN_BYTES = 64 * 1024 * 1024
#: the shared ring: SLOTS slots of SLOT_BYTES each
SLOTS = 8
SLOT_BYTES = 4 * 1024 * 1024

HEADER = struct.Struct("<BBBq")  # kind, ends_plane, slot, length (as hash_child.py)
DATA, END = 0, 1
CHILD_SCRIPT = Path(__file__).with_name("hash_child.py")
#: glibc would map and unmap (and page-fault in) every slot-sized `bytes` a child makes; with these
#: thresholds it reuses the freed block (a 512 MiB scene: 0.65 s of system time down to 0.05 s)
CHILD_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


@dataclass(frozen=True)
class StreamDigest:
    """What hashing a canonical stream gives: the ISCC-SUM, its units, the datahash and, when asked
    for, each plane's 256-bit Data-Code digest with the plane's size."""

    iscc: str
    units: list[str]
    datahash: str
    plane_digests: list[tuple[bytes, int]] | None


def hashes_in_children(stream_bytes: int, threads: int) -> bool:
    """True when a stream of this size is worth hashing in child processes, and that may be done."""
    wanted = os.environ.get("BIOISCC_HASH_CHILDREN", "1")
    if wanted == "0" or threads < 2 or not hasattr(os, "memfd_create"):
        return False
    return wanted == "always" or stream_bytes >= CHILD_MIN_BYTES


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
        self.planes = _PlaneDigests() if simprints else None

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
    """The Data-Code digest of each plane of a stream that arrives in pieces."""

    def __init__(self) -> None:
        self.digests: list[tuple[bytes, int]] = []
        self.processor: Any = None
        self.size = 0

    def update(self, pieces: Sequence[Any], ends_plane: bool) -> None:
        self.processor = self.processor or core().DataCodeProcessor()
        for piece in pieces:
            self.processor.update(piece)
            self.size += len(piece)
        if ends_plane:
            self.digests.append((self.processor.result()["digest"], self.size))
            self.processor, self.size = None, 0


class ChildHasher:
    """Hashes in two child processes; `update` takes any buffers (copied into the shared ring)."""

    def __init__(self, *, simprints: bool, wide: bool) -> None:
        self.wide = wide
        self.memory = os.memfd_create("bioiscc-hash-ring")
        os.ftruncate(self.memory, SLOTS * SLOT_BYTES)
        self.ring = mmap.mmap(self.memory, SLOTS * SLOT_BYTES)
        self.view = memoryview(self.ring)
        self.returned, returns = os.pipe()
        self.children: list[_Child] = []
        self.peaks_kib: list[int] = []  # of the children, once reaped (BIOISCC_STATS)
        self.owed = [0] * SLOTS  # per slot, the children that have not yet handed it back
        self.free: list[int] = list(range(SLOTS))
        self.slot = -1  # the slot being filled (-1: none), and how far
        self.filled = 0
        try:
            for role in ("data", "instance"):
                self.children.append(_Child.start(role, simprints, self.memory, returns))
            # what a wait for a slot listens to: slots handed back, and a child's early end
            self.watch = select.poll()
            for fd in (self.returned, *(child.results for child in self.children)):
                self.watch.register(fd, select.POLLIN)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(returns)

    def update(self, pieces: Sequence[Any], ends_plane: bool) -> None:
        for piece in pieces:
            data = memoryview(piece).cast("B")
            while data.nbytes:
                if self.slot < 0:
                    self.slot, self.filled = self._take_slot(), 0
                take = min(data.nbytes, SLOT_BYTES - self.filled)
                start = self.slot * SLOT_BYTES + self.filled
                self.view[start : start + take] = data[:take]
                self.filled += take
                data = data[take:]
                if self.filled == SLOT_BYTES:
                    self._send(ends=False)
        if ends_plane:
            self._send(ends=True)

    def _send(self, ends: bool) -> None:
        """Announce the slot being filled (an empty one when it only marks the end of a plane)."""
        if self.slot < 0:
            self.slot, self.filled = self._take_slot(), 0
        message = HEADER.pack(DATA, int(ends), self.slot, self.filled)
        self.owed[self.slot] = len(self.children)
        for child in self.children:
            child.send(message)
        self.slot = -1

    def _take_slot(self) -> int:
        """A free slot, waiting for the children to hand slots back; a child that ends meanwhile
        (its result pipe turns readable before the end of the stream) is an error."""
        while not self.free:
            ready = {fd for fd, _ in self.watch.poll()}
            for child in self.children:
                if child.results in ready:
                    child.result()  # raises: what the child said, or that it died
            returned = os.read(self.returned, SLOTS * len(self.children)) if self.returned in ready else b""
            for slot in returned:
                self.owed[slot] -= 1
                if self.owed[slot] == 0:
                    self.free.append(slot)
        return self.free.pop()

    def finish(self) -> StreamDigest:
        if self.slot >= 0 and self.filled:
            self._send(ends=False)
        for child in self.children:
            child.send(HEADER.pack(END, 0, 0, 0))
        results = {child.role: child.result() for child in self.children}
        self.close()
        return self._compose(results["data"], results["instance"])

    def _compose(self, data: dict[str, Any], instance: dict[str, Any]) -> StreamDigest:
        iscc, units = compose_sum(data["digest"], instance["digest"], self.wide)
        return StreamDigest(iscc, units, instance["multihash"], data.get("planes"))

    def close(self) -> None:
        """Stop the children (killed unless they have finished), reap them, release the ring."""
        self.peaks_kib += [child.stop() for child in self.children]
        self.children = []
        for fd in (self.returned, self.memory):
            if fd >= 0:
                os.close(fd)
        self.returned = self.memory = -1
        self.view.release()
        self.ring.close()


class _Child:
    """One hashing process (`bioiscc/hash_child.py`), from this side: its process and pipes."""

    def __init__(self, role: str, process: subprocess.Popen[bytes], messages: int, results: int) -> None:
        self.role = role
        self.process = process
        self.messages = messages
        self.results = results
        self.done = False

    @classmethod
    def start(cls, role: str, simprints: bool, memory: int, returns: int) -> _Child:
        incoming, messages = os.pipe()
        results, outgoing = os.pipe()
        try:
            command = [
                sys.executable, "-I", "-S", str(CHILD_SCRIPT), core_path(), role, str(int(simprints)),
                str(memory), str(SLOTS), str(SLOT_BYTES), str(incoming), str(returns), str(outgoing),
            ]  # fmt: skip
            process = subprocess.Popen(
                command,
                pass_fds=(memory, incoming, returns, outgoing),
                stdin=subprocess.DEVNULL,
                env={**os.environ, **CHILD_MALLOC},
            )
        except BaseException:
            os.close(messages)
            os.close(results)
            raise
        finally:
            os.close(incoming)
            os.close(outgoing)
        return cls(role, process, messages, results)

    def send(self, message: bytes) -> None:
        try:
            os.write(self.messages, message)  # a few bytes: written whole
        except BrokenPipeError:
            self.result()  # raises, with the child's own error if it sent one
            raise OSError(f"the {self.role} hashing process ended unexpectedly") from None

    def result(self) -> dict[str, Any]:
        """The child's digests, once it has had the end of the stream; raises OSError when it ended
        without them (with its own one-line error, if it could send one)."""
        parts = []
        while part := os.read(self.results, 1 << 20):
            parts.append(part)
        try:
            result = pickle.loads(b"".join(parts)) if parts else {}
        except Exception:
            result = {}
        if not isinstance(result, dict) or "digest" not in result:
            why = f": {result['error']}" if isinstance(result, dict) and "error" in result else ""
            raise OSError(f"the {self.role} hashing process ended unexpectedly{why}")
        self.done = True
        return result

    def stop(self) -> int:
        """Kill the process unless it is done, reap it; its peak RSS in KiB."""
        peak = 0
        if self.process.returncode is None:  # not reaped yet (a zombie keeps its pid)
            if not self.done:
                os.kill(self.process.pid, signal.SIGKILL)  # Popen.kill would reap it unseen
            _, status, usage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            peak = int(usage.ru_maxrss)
        os.close(self.messages)
        os.close(self.results)
        return peak


def core_path() -> str:
    """The file of iscc_sum's compiled core, which the children load by its path."""
    core()  # loads it (alone, or with the whole package) under this name
    return str(sys.modules["iscc_sum._core"].__file__)
