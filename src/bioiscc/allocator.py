"""Keep glibc's allocator from returning decode buffers to the kernel between planes.

Hashing decodes the same few sizes of buffer over and over: a chunk (a few MiB), a plane, a piece of
canonical bytes. glibc serves allocations above its mmap threshold (128 KiB, raised only as such
blocks are freed) with fresh mappings, and gives freed memory at the top of a heap back to the
kernel above its trim threshold; either way every buffer is page-faulted in again, zeroed by the
kernel. Hashing 512 MiB of zstd-tiled OME-TIFF took 0.40-0.57 s of system time for it (0.13 s
with the thresholds raised), a zstd OME-Zarr 0.5-0.97 s (0.2-0.4 s), on the 2-core development VM.
Raising both thresholds lets freed buffers be reused as they are. Memory stays
bounded: at most TRIM_BYTES of free memory is kept per heap, and blocks above MMAP_BYTES (larger
than any chunk or plane buffer is reused for) are still mapped and unmapped.

Only on glibc (found with ctypes); `BIOISCC_MALLOC_TUNE=0` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap, so they can be reused (glibc's maximum is 32 MiB)
MMAP_BYTES = 32 * 1024 * 1024
#: free memory a heap may keep before it is trimmed
TRIM_BYTES = 32 * 1024 * 1024


@functools.cache
def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; whether it was done."""
    if os.environ.get("BIOISCC_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; musl has none, and then nothing changes
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
