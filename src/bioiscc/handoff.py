"""Arrays whose memory is a new `bytes` object, so that the hash takes the bytes without a copy.

iscc-lib's hashers take `bytes` only (a `bytearray` or `memoryview` they copy themselves, holding
the GIL), so every canonical byte used to be copied once more, from the walk's buffer into a new
`bytes`, before the hash threads saw it: 512 MiB of memmove per 512 MiB hashed, in the reading
thread, which is the busiest one. Here the decoder or the byte-swapping copy writes straight into
the storage of a new `bytes` object, and that object is what the hash threads get.

This is the C API's own way of building a `bytes` (`PyBytes_FromStringAndSize(NULL, n)` gives one
whose contents are "uninitialized", to be filled before it is shared), called through ctypes. The
rule that makes it safe: an array from `new_array` is written only until `handed_bytes` takes its
bytes, and never after (`handed_bytes` makes the array read-only, so that a stray write raises);
the walk asks for a new array for every plane or piece.

Where ctypes cannot reach the C API (not CPython) or `BIOISCC_HANDOFF=0`, `available()` is False
and the walk copies as before.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

import numpy as np

#: a plane that needs converting is converted into new `bytes` of about this size (whole rows)
HANDED_PIECE_BYTES = 4 * 1024 * 1024
#: a reader decodes a one-sample plane into one new `bytes` up to this size; the hash threads take
#: `bytes` up to this size as they are (each queues at most hasher.QUEUE_DEPTH of them)
HANDED_PLANE_BYTES = 8 * 1024 * 1024


class _Storage:
    """The storage of one `bytes` object as numpy sees it (`np.asarray` of it is a uint8 array
    over that memory, whose base this is); keeps the `bytes` alive."""

    __slots__ = ("owner", "address", "__array_interface__")

    def __init__(self, owner: bytes, address: int) -> None:
        self.owner = owner
        self.address = address
        self.__array_interface__ = {
            "version": 3,
            "data": (address, False),  # writable
            "shape": (len(owner),),
            "typestr": "|u1",
        }


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
        return np.empty(shape, dtype)  # the empty `bytes` is a shared object: never written
    owner = new(None, size)
    return np.asarray(_Storage(owner, address(owner))).view(dtype).reshape(shape)


def handed_bytes(array: np.ndarray) -> bytes | None:
    """The `bytes` whose storage `array` is, when it is all of it (from `new_array`), else None.

    The array is made read-only first: from now on the bytes may be read by another thread, and
    a write through this array (or a view made of it later) raises rather than changes them.
    """
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, _Storage):
        return None
    owner = base.owner
    if (
        len(owner) != array.nbytes
        or not array.flags.c_contiguous
        or array.__array_interface__["data"][0] != base.address
    ):
        return None
    array.flags.writeable = False
    return owner
