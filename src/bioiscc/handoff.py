"""Arrays whose memory is a new `bytes` object, so that the hash takes the bytes without a copy.

iscc-lib's hashers take `bytes` only (a `bytearray` or `memoryview` they copy themselves, holding
the GIL), so every canonical byte used to be copied once more, from the walk's buffer into a new
`bytes`, before the hash threads saw it: 512 MiB of memmove per 512 MiB hashed, in the reading
thread, which is the busiest one. Here the decoder or the byte-swapping copy writes straight into
the storage of a new `bytes` object, and that object is what the hash threads get.

This is the C API's own way of building a `bytes` (`PyBytes_FromStringAndSize(NULL, n)` gives one
whose contents are "uninitialized", to be filled before it is shared), called through ctypes. The
rule that makes it safe: an array from `new_array` is written only until `handed_bytes` takes its
bytes, and never after; the walk asks for a new array for every plane or piece.

Where ctypes cannot reach the C API (not CPython) or `BIOISCC_HANDOFF=0`, `available()` is False
and the walk copies as before.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

import numpy as np

#: the walk cuts a converted plane into pieces of at most this size...
PIECE_BYTES = 4 * 1024 * 1024
#: ...and a reader decodes a whole plane into one new `bytes` up to this size; the hash threads take
#: `bytes` up to this size as they are (each queues at most hasher.QUEUE_DEPTH of them)
PLANE_BYTES = 8 * 1024 * 1024


class _Storage(ctypes.Array):  # type: ignore[type-arg]
    """Base of the ctypes views over a `bytes` object's storage; keeps the object alive."""

    _type_ = ctypes.c_char
    _length_ = 0
    owner: bytes


@functools.cache
def _bytes_api() -> tuple[Any, Any] | None:
    """(PyBytes_FromStringAndSize, PyBytes_AsString) of this interpreter, or None."""
    try:
        new, address = ctypes.pythonapi.PyBytes_FromStringAndSize, ctypes.pythonapi.PyBytes_AsString
    except (AttributeError, OSError):
        return None
    new.restype, new.argtypes = ctypes.py_object, (ctypes.c_void_p, ctypes.c_ssize_t)
    address.restype, address.argtypes = ctypes.c_void_p, (ctypes.py_object,)
    return new, address


def available() -> bool:
    """True when arrays can be handed to the hash as `bytes` without a copy."""
    return os.environ.get("BIOISCC_HANDOFF", "1") != "0" and _bytes_api() is not None


def new_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A writable C-contiguous array of `shape` and `dtype` in the storage of a new `bytes`.

    Contents are undefined until written. Only for `available()` interpreters.
    """
    api = _bytes_api()
    if api is None:
        raise RuntimeError("this Python has no C API reachable through ctypes")
    new, address = api
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not size:
        return np.empty(shape, dtype)  # the empty `bytes` is a shared object
    owner = new(None, size)
    storage = _storage_type(size).from_address(address(owner))
    if os.environ.get("XHUGE") == "1" and size >= 4 * 1024 * 1024:
        _huge(address(owner), size)
    storage.owner = owner  # the array keeps the view alive, and the view the bytes
    buffer: Any = storage  # numpy's stubs do not list ctypes arrays, which export the buffer protocol
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


@functools.cache
def _storage_type(size: int) -> type[_Storage]:
    return type(f"Storage{size}", (_Storage,), {"_length_": size})


def handed_bytes(array: np.ndarray) -> bytes | None:
    """The `bytes` whose storage `array` is, when it is all of it (from `new_array`), else None.

    Once called, the array must not be written again: the bytes may be read by another thread.
    """
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    owner = getattr(base, "owner", None) if isinstance(base, _Storage) else None
    if (
        isinstance(owner, bytes)
        and len(owner) == array.nbytes
        and array.flags.c_contiguous
        and array.__array_interface__["data"][0] == ctypes.addressof(base)
    ):
        return owner
    return None


_libc = ctypes.CDLL(None)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def _huge(start: int, size: int) -> None:
    page = 2 * 1024 * 1024
    first = (start + page - 1) // page * page
    last = (start + size) // page * page
    if last > first:
        _libc.madvise(first, last - first, 14)
