"""Compressed TIFF pages: decoded straight into big-endian planes.

Codes must be those of the uncompressed vectors, hashed in this process or in threads; the
decoder must give tifffile's own pixels for every codec, and a broken tile the same error either way.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import bioiscc
from bioiscc import hasher, imagewalk
from bioiscc.sources import open_source, tiff_segments
from bioiscc.sources import tiff as tiff_source
from bioiscc.sources.tiff_segments import decodable
from tests.conftest import HANDOFF_MODES, use_handoff

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


@pytest.fixture(params=HANDOFF_MODES)
def threads_always(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Hash every scene in threads, in pieces smaller than a plane."""
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "always")
    monkeypatch.setattr(hasher, "PIECE_BYTES", 1000)  # planes of 6,144 bytes in several pieces
    monkeypatch.setattr(hasher, "QUEUE_DEPTH", 2)
    use_handoff(monkeypatch, request.param)


def codes(path: Path) -> list[tuple[str, list[str]]]:
    return [
        (r["iscc_code"], [s["simprint"] for s in r["simprints"]])
        for r in bioiscc.hash_scenes(path, simprints=True)
    ]


@pytest.mark.parametrize("name", [name for name, _ in CODECS])
def test_compressed_pages_give_the_vector_code_in_threads_and_here(
    compressed: dict[str, Path], vectors_dir: Path, expected: dict, threads_always: None, name: str
) -> None:
    want = codes(vectors_dir / "img5d_u16.ome.tif")  # uncompressed: asarray
    assert want[0][0] == expected["img5d_u16.ome.tif"][0]["iscc_code"]
    assert codes(compressed[name]) == want
    os.environ["BIOISCC_HASH_THREADS"] = "0"
    try:
        assert codes(compressed[name]) == want
    finally:
        os.environ["BIOISCC_HASH_THREADS"] = "always"


@pytest.mark.parametrize("bytes_from", ["mapped", "mapped in small windows", "read"])
@pytest.mark.parametrize("name", [name for name, _ in CODECS])
def test_mapped_and_read_compressed_bytes_give_the_vector_code(
    compressed: dict[str, Path],
    expected: dict,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    bytes_from: str,
) -> None:
    monkeypatch.setenv("BIOISCC_MMAP", "0" if bytes_from == "read" else "1")
    if bytes_from == "mapped in small windows":  # a page's tiles are in one window or the next
        monkeypatch.setattr(tiff_segments, "MAP_WINDOW", 2 * mmap.ALLOCATIONGRANULARITY)
    mapped: list[int] = []
    real_mmap = tiff_segments.mmap.mmap
    monkeypatch.setattr(tiff_segments.mmap, "mmap", lambda *a, **k: mapped.append(a[1]) or real_mmap(*a, **k))
    assert codes(compressed[name])[0][0] == expected["img5d_u16.ome.tif"][0]["iscc_code"]
    size = compressed[name].stat().st_size
    if bytes_from == "read":
        assert not mapped
    elif bytes_from == "mapped":
        assert len(mapped) == 1  # a small file: one window
    else:
        assert len(mapped) > 3 and max(mapped) < size


def test_compressed_bytes_are_read_unless_mapping_is_asked_for(
    compressed: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOISCC_MMAP", raising=False)
    assert not tiff_segments.mapping_allowed()
    with open_source(compressed["zstd"]) as source:
        reader = source.open_scene(source.scenes()[0])
        list(imagewalk.iter_planes(reader))
        assert reader.segments.window is None


def test_source_close_unmaps_its_windows(
    compressed: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOISCC_MMAP", "1")
    with open_source(compressed["zstd"]) as source:
        reader = source.open_scene(source.scenes()[0])
        planes = list(imagewalk.iter_planes(reader))
        window = reader.segments.window
        assert window is not None and not window.mapped.closed
    assert reader.segments.window is None and window.mapped.closed
    assert planes[-1].data.any()  # decoded planes are not views of the mapping


def test_a_mapped_file_cut_short_after_opening_is_an_error_not_a_crash(
    compressed: dict[str, Path], tmp_path: Path
) -> None:
    """Mapped bytes past the end of a file fault (SIGBUS) instead of failing: the size is checked
    before every page. In a child process, so that a fault could not end the test run."""
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(compressed["zstd"].read_bytes())
    script = (
        "import os, sys\n"
        "from bioiscc import imagewalk\n"
        "from bioiscc.sources import open_source\n"
        "with open_source(sys.argv[1]) as source:\n"
        "    planes = imagewalk.iter_planes(source.open_scene(source.scenes()[0]))\n"
        "    next(planes)  # the window over the whole file is mapped now\n"
        "    os.truncate(sys.argv[1], 4096)  # the pages still to come are past the end\n"
        "    try:\n"
        "        list(planes)\n"
        "    except Exception as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(cut)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BIOISCC_MMAP": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "the file ends early" in done.stdout


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


def test_a_decode_error_is_the_same_in_threads_and_here(
    compressed: dict[str, Path], tmp_path: Path, threads_always: None
) -> None:
    broken = tmp_path / "broken.ome.tif"
    data = bytearray(compressed["zstd"].read_bytes())
    with tifffile.TiffFile(compressed["zstd"]) as tiff:
        page = tiff.pages[20]
        offset, count = page.dataoffsets[2], page.databytecounts[2]
    data[offset : offset + count] = bytes(count)  # a tile of zeros: not a zstd frame
    broken.write_bytes(bytes(data))
    in_threads = bioiscc.hash_scenes(broken)[0]
    os.environ["BIOISCC_HASH_THREADS"] = "0"
    try:
        here = bioiscc.hash_scenes(broken)[0]
    finally:
        os.environ["BIOISCC_HASH_THREADS"] = "always"
    assert in_threads["status"] == here["status"] == "failed"
    assert in_threads["error"] == here["error"]
    assert "page 20" in in_threads["error"]


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
