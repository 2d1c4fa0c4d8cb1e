"""One hashing process of `bioiscc.hasher.ChildHasher`; run as a script, with the standard library only.

    python -I -S hash_child.py CORE ROLE SIMPRINTS MEMORY SLOTS SLOT_BYTES MESSAGES RETURNS RESULTS

CORE is the file of iscc_sum's compiled core, loaded by its path (no site-packages scan, no package
imports: the process starts in about 20 ms). ROLE is `data` (the Data-Code, and with SIMPRINTS=1 each
plane's Data-Code digest) or `instance` (the Instance-Code). MEMORY is the descriptor of the shared
ring of SLOTS slots of SLOT_BYTES each; MESSAGES, RETURNS and RESULTS are pipe descriptors.

Each message on MESSAGES (kind, ends_plane, slot, length) names a filled slot: its bytes are copied
out, the slot number goes back on RETURNS, and the copy is hashed. An end message makes the digests,
pickled, go to RESULTS; then the process exits. When the parent goes away, MESSAGES ends and so does
this process. SIGINT is ignored: the parent hears it and kills this process.
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import pickle
import signal
import struct
import sys
from types import ModuleType

HEADER = struct.Struct("<BBBq")  # kind, ends_plane, slot, length (as bioiscc.hasher)
DATA, END = 0, 1


def load_core(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("iscc_sum._core", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    """Hash until the end message; on any failure send a one-line error instead of the digests."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    results = int(argv[8])
    try:
        result = hash_stream(argv)
    except BaseException as exc:  # the parent raises it, in one line
        send(results, {"error": f"{type(exc).__name__}: {exc}".strip()})
        return 1
    if result is None:
        return 1  # the parent is gone
    send(results, result)
    return 0


def send(results: int, result: dict[str, object]) -> None:
    payload = memoryview(pickle.dumps(result))
    while payload:
        payload = payload[os.write(results, payload) :]


def hash_stream(argv: list[str]) -> dict[str, object] | None:
    """The digests of the stream announced on MESSAGES; None when the parent went away."""
    core_file, role, simprints = argv[0], argv[1], argv[2] == "1"
    memory, slots, slot_bytes, messages, returns = (int(a) for a in argv[3:8])
    core = load_core(core_file)
    ring = memoryview(mmap.mmap(memory, slots * slot_bytes, access=mmap.ACCESS_READ))
    processor = core.DataCodeProcessor() if role == "data" else core.InstanceCodeProcessor()
    planes: list[tuple[bytes, int]] | None = [] if simprints and role == "data" else None
    plane = None
    plane_size = 0
    incoming = os.fdopen(messages, "rb", buffering=1 << 16)
    while True:
        header = incoming.read(HEADER.size)
        if len(header) < HEADER.size:
            return None  # the parent is gone
        kind, ends, slot, length = HEADER.unpack(header)
        if kind == END:
            break
        start = slot * slot_bytes
        piece = bytes(ring[start : start + length])
        os.write(returns, bytes([slot]))  # copied out: the parent may fill it again
        processor.update(piece)
        if planes is not None:
            plane = plane or core.DataCodeProcessor()
            plane.update(piece)
            plane_size += length
            if ends:
                planes.append((plane.result()["digest"], plane_size))
                plane, plane_size = None, 0
    result = dict(processor.result())
    if planes is not None:
        result["planes"] = planes
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
