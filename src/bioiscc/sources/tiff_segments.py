"""Compressed TIFF pages decoded straight into a big-endian plane, for the hash.

tifffile's `TiffPage.asarray` reads a page's strips or tiles into freshly allocated buffers (about
one page fault per 4 KiB decoded: half its CPU time on a zstd-tiled OME-TIFF), decodes into the
native byte order, and the hash then byte-swaps in a second pass. Here the page's compressed bytes
are read with one `preadv` into a reused buffer (or mapped, below), each strip or tile is
decoded by tifffile's own decode function (codec, predictor, JPEG tables: all tifffile's), and the
copy into the output also writes the big-endian bytes the canonical stream needs.

With `BIOISCC_MMAP=1` the codec reads the compressed bytes from a read-only mapping of the file
instead, MAP_WINDOW bytes at a time (so the resident memory the mapping adds is bounded by that,
not by the file): reading copies every compressed byte out of the page cache, in the thread that
also decodes, the busiest one of a hash (`perf`: 9 % of its time on a zstd-tiled OME-TIFF; 2-5 %
less CPU mapped). It is not the default because a file rewritten in place while it is hashed
(`cp` over it, a writer that truncates and writes again) unmaps the page being decoded: the
process ends with SIGBUS, not an error naming the file (35 of 36 runs truncated to zero, 10 of 10
`cp` over the file; reading gave the one-line error every time). Every page's bytes are still
checked against the file's size first, so a file already cut short is an error, not a fault.

`decode_rows` does the same for the strips or tiles that hold some rows of a page, for planes too
large to decode whole.

Used for compressed pages only; uncompressed ones, NDPI's whole-strip JPEG and pages with missing
strips or tiles are left to `asarray`.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..imagewalk import canonical_dtype

#: the compressed bytes of a page are mapped (or read) at once up to this size, else strip by strip
READ_AT_ONCE = 64 * 1024 * 1024
#: the file is mapped this many bytes at a time (resident memory from the mapping stays below it;
#: unmapping costs every thread of the process a TLB flush, so not after every page)
MAP_WINDOW = 16 * 1024 * 1024


def mapping_allowed() -> bool:
    """Whether compressed bytes are mapped rather than read (`BIOISCC_MMAP=1`; see above)."""
    return os.environ.get("BIOISCC_MMAP") == "1"


def decodable(keyframe: Any) -> bool:
    """True for pages this module decodes: compressed strips or tiles of a whole-byte pixel type."""
    try:
        dtype = np.dtype(keyframe.dtype)
    except TypeError:
        return False
    return (
        keyframe.compression != 1
        and keyframe.jpegheader is None
        and dtype.kind in "uif"
        and keyframe.bitspersample == dtype.itemsize * 8
        and math.prod(keyframe.shaped) == math.prod(keyframe.shape)
    )


def page_decodable(page: Any) -> bool:
    """True when this page is decoded here: `decodable`, and none of its strips or tiles is missing
    (tifffile fills missing ones with the nodata value)."""
    return decodable(page.keyframe) and all(page.databytecounts)


def segment_rows(keyframe: Any) -> int | None:
    """Rows per strip or tile row of a 2D page whose segments `SegmentDecoder.decode_rows` can pick
    (strips or tiles in the order samples, rows, columns), else None."""
    if keyframe.imagedepth != 1:
        return None
    length = keyframe.imagelength
    rows = keyframe.tilelength if keyframe.is_tiled else (keyframe.rowsperstrip or length)
    return max(1, min(int(rows), length))


class _Window:
    """A read-only mapping of part of a file, from byte `start` on."""

    def __init__(self, mapped: mmap.mmap, start: int) -> None:
        self.mapped = mapped
        self.start = start
        self.view = memoryview(mapped)

    def holds(self, start: int, span: int) -> bool:
        return self.start <= start and start + span <= self.start + len(self.view)

    def close(self) -> None:
        self.view.release()
        with contextlib.suppress(BufferError):  # a slice still in use: unmapped when freed
            self.mapped.close()


class SegmentDecoder:
    """Decodes pages of one TIFF into big-endian arrays, reusing its read buffer."""

    def __init__(self, filehandle: Any) -> None:
        self.filehandle = filehandle
        self.raw = bytearray()
        self.window: _Window | None = None

    def decode(self, page: Any, out: np.ndarray | None = None) -> np.ndarray:
        """The page as an array of `page.shape` in the big-endian twin of its dtype.

        `out`, if given, must be a C-contiguous array of that shape and dtype; it is decoded into.
        """
        keyframe = page.keyframe
        if out is None:
            out = np.empty(keyframe.shape, dtype=canonical_dtype(np.dtype(keyframe.dtype)))
        self._decode_into(page, out.reshape(keyframe.shaped), range(len(page.dataoffsets)), 0)
        return out

    def decode_rows(self, page: Any, y0: int, y1: int) -> np.ndarray | None:
        """Rows y0..y1 of a 2D page as (rows, X, S), big-endian, decoding only the strips or tiles
        they lie in; None when the page's segments are not laid out as `segment_rows` expects."""
        keyframe = page.keyframe
        rows = segment_rows(keyframe)
        if rows is None:
            return None
        separate, _, length, width, contig = keyframe.shaped
        across = math.ceil(width / keyframe.tilewidth) if keyframe.is_tiled else 1
        down = math.ceil(length / rows)
        if len(page.dataoffsets) != separate * down * across:
            return None
        first, last = y0 // rows, (y1 - 1) // rows
        indices = [
            (sample * down + row) * across + column
            for sample in range(separate)
            for row in range(first, last + 1)
            for column in range(across)
        ]
        top = first * rows
        band = np.empty(
            (separate, 1, min(length, (last + 1) * rows) - top, width, contig),
            dtype=canonical_dtype(np.dtype(keyframe.dtype)),
        )
        self._decode_into(page, band, indices, top)
        wanted = band[:, 0, y0 - top : y1 - top]  # (separate, rows, X, contig)
        return np.moveaxis(wanted[..., 0], 0, -1) if separate > 1 else wanted[0]

    def _decode_into(self, page: Any, result: np.ndarray, indices: Any, top: int) -> None:
        """Decode the segments `indices` of `page` into `result` (tifffile's `shaped` layout, its
        rows starting at row `top` of the page)."""
        keyframe = page.keyframe
        decode_args: dict[str, Any] = {"_fullsize": False}
        if keyframe.compression in (6, 7, 34892, 33007):  # the JPEG family
            decode_args["jpegtables"] = page.jpegtables
            decode_args["jpegheader"] = keyframe.jpegheader
        depth, length, width = keyframe.imagedepth, keyframe.imagelength, keyframe.imagewidth
        offsets, counts = page.dataoffsets, page.databytecounts
        for index, data in self._segments([(i, offsets[i], counts[i]) for i in indices]):
            segment, (s, d, h, w, _), shape = keyframe.decode(data, index, **decode_args)
            result[s, d : d + shape[0], h - top : h - top + shape[1], w : w + shape[2]] = segment[
                : depth - d, : length - h, : width - w
            ]

    def _segments(self, wanted: list[tuple[int, int, int]]) -> Any:
        """(index, bytes) of each (index, offset, count) in file order: one read when they lie
        together."""
        wanted = sorted(wanted, key=lambda item: item[1])
        start = wanted[0][1]
        span = max(offset + count for _, offset, count in wanted) - start
        together = span <= READ_AT_ONCE and span <= 2 * sum(count for _, _, count in wanted)
        if not together:
            for index, offset, count in wanted:
                data = bytearray(count)
                self._read_into(memoryview(data), offset)
                yield index, data
            return
        with self._span(start, span) as view:
            for index, offset, count in wanted:
                segment = view[offset - start : offset - start + count]
                yield index, segment
                with contextlib.suppress(BufferError):  # a decoded array over it: freed later
                    segment.release()  # so that the mapping can be closed

    @contextlib.contextmanager
    def _span(self, start: int, span: int) -> Iterator[memoryview]:
        """The `span` bytes of the file at `start`: in the mapped window when the file can be
        mapped, else read into the reused buffer."""
        window = self._window_over(start, span)
        if window is None:
            if len(self.raw) < span:
                self.raw = bytearray(span)
            view = memoryview(self.raw)[:span]
            self._read_into(view, start)
        else:
            view = window.view[start - window.start : start - window.start + span]
        try:
            yield view
        finally:
            view.release()

    def _window_over(self, start: int, span: int) -> _Window | None:
        """The mapped window holding `span` bytes at `start` (mapping the next one when needed);
        None where mapping is off or the file system cannot map."""
        handle = self.filehandle
        if not (mapping_allowed() and handle.is_file and getattr(handle, "_offset", 0) == 0):
            return None
        size = os.fstat(handle.fileno()).st_size  # checked for every span: it may have shrunk
        if start + span > size:  # touching a mapping past the end faults (SIGBUS), not fails
            raise OSError(f"{span} bytes at offset {start} wanted: the file ends early, at {size}")
        if self.window is not None and self.window.holds(start, span):
            return self.window
        self.close()
        base = start - start % mmap.ALLOCATIONGRANULARITY
        length = min(size, max(start + span, base + MAP_WINDOW)) - base
        try:
            mapped = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ, offset=base)
        except (OSError, ValueError):  # e.g. a FUSE or /proc file: read instead
            return None
        self.window = _Window(mapped, base)
        return self.window

    def close(self) -> None:
        """Unmap the window (a slice still in use keeps it mapped until that is freed)."""
        if self.window is not None:
            self.window.close()
            self.window = None

    def _read_into(self, buffer: memoryview, offset: int) -> None:
        """Fill `buffer` from the file at `offset`.

        A plain file is read with `preadv`: one call, and the file position (tifffile's own
        buffered reads rely on it) is left alone.
        """
        handle = self.filehandle
        if handle.is_file and getattr(handle, "_offset", 0) == 0 and hasattr(os, "preadv"):
            got = 0
            while got < len(buffer):
                read = os.preadv(handle.fileno(), [buffer[got:]], offset + got)
                if not read:
                    break
                got += read
        else:
            with handle.lock:
                handle.seek(offset)
                got = handle.readinto(buffer)
        if got != len(buffer):
            raise OSError(f"read {got} of {len(buffer)} bytes at offset {offset}: the file ends early")
