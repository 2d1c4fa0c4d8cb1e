"""Compressed TIFF pages: decoded straight into big-endian planes, and in a forked process.

Codes must be those of the uncompressed vectors; the decoder must give tifffile's own pixels for
every codec; the forked read-ahead must give the same stream, report a reader's error as the
thread does, and leave no process behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import bioiscc
from bioiscc import forked, imagewalk
from bioiscc.sources import open_source
from bioiscc.sources import tiff as tiff_source
from bioiscc.sources.tiff_segments import decodable
from bioiscc.sumcode import hash_planes

CODECS: list[tuple[str, dict[str, Any]]] = [
    ("zstd", {"compression": "zstd", "tile": (32, 32)}),
    ("deflate", {"compression": "zlib", "predictor": True, "rowsperstrip": 5}),
    ("lzw", {"compression": "lzw", "predictor": True, "tile": (16, 32)}),
    ("packbits", {"compression": "packbits", "rowsperstrip": 7}),
]


def image() -> np.ndarray:
    """The img5d_u16 vector's pixels (make_vectors.py): TCZYX = (2, 3, 4, 64, 48)."""
    return np.random.default_rng(42).integers(0, 65536, size=(2, 3, 4, 64, 48), dtype=np.uint16)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("codecs")
    paths = {}
    for name, options in CODECS:
        paths[name] = folder / f"img5d_{name}.ome.tif"
        tifffile.imwrite(paths[name], image(), ome=True, metadata={"axes": "TCZYX"}, **options)
    return paths


@pytest.fixture
def fork_always(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fork for any scene size, whatever threads earlier tests left; returns the children's pids."""
    pids: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(forked, "FORK_MIN_BYTES", 0)
    monkeypatch.setattr(forked.threading, "active_count", lambda: 1)  # the child reads no zarr
    monkeypatch.setattr(forked.os, "fork", fork)
    monkeypatch.setattr(forked, "SLOT_BYTES", 1000)  # planes of 6,144 bytes over several slots
    monkeypatch.setattr(forked, "SLOTS", 2)
    return pids


def codes(path: Path) -> list[tuple[str, list[str]]]:
    return [
        (r["iscc_code"], [s["simprint"] for s in r["simprints"]])
        for r in bioiscc.hash_scenes(path, simprints=True)
    ]


@pytest.mark.parametrize("name", [name for name, _ in CODECS])
def test_compressed_pages_give_the_vector_code_with_and_without_fork(
    compressed: dict[str, Path], vectors_dir: Path, expected: dict, fork_always: list[int], name: str
) -> None:
    want = codes(vectors_dir / "img5d_u16.ome.tif")  # uncompressed: asarray, no fork
    assert fork_always == []
    assert want[0][0] == expected["img5d_u16.ome.tif"][0]["iscc_code"]
    assert codes(compressed[name]) == want
    assert len(fork_always) == 1
    os.environ["BIOISCC_FORK"] = "0"
    try:
        assert codes(compressed[name]) == want
    finally:
        del os.environ["BIOISCC_FORK"]
    assert len(fork_always) == 1


@pytest.mark.parametrize(
    "dtype, options",
    [
        ("uint8", {"compression": "jpeg", "photometric": "rgb", "tile": (64, 64)}),
        (
            "uint8",
            {"compression": "zstd", "photometric": "rgb", "planarconfig": "separate", "tile": (32, 32)},
        ),
        ("float32", {"compression": "zlib", "predictor": 3, "rowsperstrip": 9}),
        ("int16", {"compression": "lzw", "predictor": 2, "tile": (48, 16)}),
        ("uint32", {"compression": "zstd"}),
    ],
)
def test_the_decoder_gives_tifffiles_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, options: dict[str, Any]
) -> None:
    """JPEG (RGB), separate sample planes, float and integer predictors, edge tiles, one strip."""
    rng = np.random.default_rng(3)
    shape: tuple[int, ...] = (3, 70, 90)
    if options.get("photometric") == "rgb":
        shape = (3, 3, 70, 90) if options.get("planarconfig") == "separate" else (3, 70, 90, 3)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(size=shape).astype(dtype)
    else:
        data = rng.integers(0, 200, size=shape).astype(dtype)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, data, **{"photometric": "minisblack", **options})
    with tifffile.TiffFile(path) as tiff:
        assert decodable(tiff.series[0].keyframe)

    def planes() -> list[np.ndarray]:
        with open_source(path) as source:
            reader = source.open_scene(source.scenes()[0])
            return [plane.data.copy() for plane in imagewalk.iter_planes(reader)]

    ours = planes()
    assert ours[0].dtype.byteorder in (">", "|")  # decoded big-endian, for the hash
    monkeypatch.setattr(tiff_source, "page_decodable", lambda page: False)  # tifffile's asarray
    theirs = planes()
    assert theirs[0].dtype.byteorder in ("=", "<", "|")
    assert len(ours) == len(theirs) == data.size // (70 * 90)
    for mine, truth in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, truth)


def test_a_decode_error_in_the_child_is_the_error_of_the_thread(
    compressed: dict[str, Path], tmp_path: Path, fork_always: list[int]
) -> None:
    broken = tmp_path / "broken.ome.tif"
    data = bytearray(compressed["zstd"].read_bytes())
    with tifffile.TiffFile(compressed["zstd"]) as tiff:
        page = tiff.pages[20]
        offset, count = page.dataoffsets[2], page.databytecounts[2]
    data[offset : offset + count] = bytes(count)  # a tile of zeros: not a zstd frame
    broken.write_bytes(bytes(data))
    forked_record = bioiscc.hash_scenes(broken)[0]
    assert len(fork_always) == 1
    os.environ["BIOISCC_FORK"] = "0"
    try:
        thread_record = bioiscc.hash_scenes(broken)[0]
    finally:
        del os.environ["BIOISCC_FORK"]
    assert forked_record["status"] == thread_record["status"] == "failed"
    assert forked_record["error"] == thread_record["error"]
    assert "page 20" in forked_record["error"]
    assert not _alive(fork_always[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_closing_the_stream_early_ends_the_child(compressed: dict[str, Path], fork_always: list[int]) -> None:
    with open_source(compressed["zstd"]) as source:
        reader = source.open_scene(source.scenes()[0])
        stream = imagewalk.PlaneWalk(reader).canonical()
        first = next(stream)
        assert b"".join(first)
        stream.close()
    assert len(fork_always) == 1 and not _alive(fork_always[0])


def test_items_cross_slots_in_order_with_their_plane_ends(fork_always: list[int]) -> None:
    """Items larger and smaller than a slot, empty pieces, memoryviews: the same bytes come back."""
    rng = np.random.default_rng(0)
    items = [[rng.bytes(n) for n in sizes] for sizes in ([2500], [1, 0, 999], [1000, 1000], [7])]
    ends = [True, False, True, True]

    def chunks() -> Iterator[list[Any]]:
        for item, end in zip(items, ends, strict=True):
            yield imagewalk.PlanePart([memoryview(piece) for piece in item], end)

    class Reader:
        decoded_bytes = 5

    reader = Reader()
    got = list(forked.read_ahead_forked(chunks(), reader))
    joined: list[tuple[bytes, bool]] = []
    current = b""
    for part in got:
        current += b"".join(part)
        if part.ends_plane:
            joined.append((current, True))
            current = b""
    assert joined == [(b"".join(items[0]), True), (b"".join(items[1] + items[2]), True), (items[3][0], True)]
    assert reader.decoded_bytes == 5  # the child's reader counted nothing new


def test_the_views_tap_reads_in_this_process(compressed: dict[str, Path], fork_always: list[int]) -> None:
    from bioiscc.views import api

    with api.opened(compressed["zstd"]) as src:
        done = api.scene_views(src, src.scenes()[0], with_sum=True)
    assert done.code is not None and done.views is not None and done.views.planes_binned > 0
    assert fork_always == []
    with open_source(compressed["zstd"]) as source:
        reader = source.open_scene(source.scenes()[0])
        assert hash_planes(imagewalk.iter_planes(reader)).iscc_code == done.code.iscc_code


def test_the_child_leaves_the_shared_file_position_alone(
    compressed: dict[str, Path], fork_always: list[int]
) -> None:
    """The child shares the parent's file descriptor: it reads with pread, so the parent's buffered
    reader still finds the position it left (the next scene of a file reads the right bytes)."""
    with open_source(compressed["zstd"]) as source:
        handle = source.tiff.filehandle
        before = os.lseek(handle.fileno(), 0, os.SEEK_CUR)
        reader = source.open_scene(source.scenes()[0])
        code = hash_planes(imagewalk.iter_planes(reader)).iscc_code
        assert len(fork_always) == 1
        assert os.lseek(handle.fileno(), 0, os.SEEK_CUR) == before
    os.environ["BIOISCC_FORK"] = "0"
    try:
        assert codes(compressed["zstd"])[0][0] == code
    finally:
        del os.environ["BIOISCC_FORK"]


def test_a_page_with_missing_tiles_is_read_by_tifffile(tmp_path: Path) -> None:
    """Empty tiles (byte count 0) are tifffile's nodata, as before: the decoder leaves such pages."""
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    path = tmp_path / "sparse.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="zstd")
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        tags = [tiff.pages[0].tags[name] for name in ("TileOffsets", "TileByteCounts")]
    for tag in tags:  # tile 1 of 4: offset and byte count 0, as writers of sparse files leave it
        size = tag.valuebytecount // tag.count
        raw[tag.valueoffset + size : tag.valueoffset + 2 * size] = bytes(size)
    path.write_bytes(bytes(raw))
    with tifffile.TiffFile(path) as tiff:
        assert tiff.pages[0].databytecounts[1] == 0
        truth = tiff.asarray()
        assert (truth[:32, 32:] == 0).all() and truth.any()
    with open_source(path) as source:
        reader = source.open_scene(source.scenes()[0])
        (plane,) = list(imagewalk.iter_planes(reader))
    np.testing.assert_array_equal(plane.data, truth)


@pytest.mark.parametrize(
    "shape, options",
    [
        ((70, 90, 3), {"compression": "jpeg", "photometric": "rgb", "tile": (16, 32)}),
        (
            (3, 70, 90),
            {"compression": "zstd", "photometric": "rgb", "planarconfig": "separate", "tile": (32, 16)},
        ),
        ((70, 90), {"compression": "zlib", "predictor": True, "rowsperstrip": 9}),
        ((70, 90), {"compression": "lzw"}),  # one strip
    ],
)
def test_rows_decode_only_their_segments_and_equal_the_plane(
    tmp_path: Path, shape: tuple[int, ...], options: dict[str, Any]
) -> None:
    data = np.random.default_rng(5).integers(0, 250, size=shape).astype(np.uint8)
    path = tmp_path / "rows.tif"
    tifffile.imwrite(path, data, **{"photometric": "minisblack", **options})
    with open_source(path) as source:
        reader = source.open_scene(source.scenes()[0])
        plane = reader.read(0, 0, 0, ())
        want_rows = options["tile"][0] if "tile" in options else options.get("rowsperstrip", 70)
        assert reader.chunk_rows == want_rows
        for y0, y1 in [(0, 70), (0, 1), (15, 17), (31, 64), (69, 70), (9, 18)]:
            before = reader.decoded_bytes
            rows = reader.read_rows(0, 0, 0, (), y0, y1)
            np.testing.assert_array_equal(rows, plane[y0:y1])
            assert reader.decoded_bytes - before == rows.nbytes
        assert reader._rows_view is None  # tifffile's zarr view was never needed


class Unpicklable(Exception):
    """An error that holds a lock: it cannot be pickled (whatever pickling support is installed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def test_an_error_that_does_not_pickle_arrives_as_a_scene_error(fork_always: list[int]) -> None:
    from bioiscc.errors import SceneError

    def chunks() -> Iterator[list[Any]]:
        yield [b"x"]
        raise Unpicklable("went away")

    with pytest.raises(SceneError, match="Unpicklable: went away"):
        list(forked.read_ahead_forked(chunks(), object()))
