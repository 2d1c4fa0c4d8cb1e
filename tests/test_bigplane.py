"""Planes larger than memory: hashed in row bands, later samples spilled to an unnamed temporary file.

The canonical stream of a plane is row-major, so bands in order are the same bytes; the samples of an
interleaved plane are walked one after the other, so samples 1..S-1 are spilled while sample 0 is
hashed. Codes, simprints and views must be those of the whole-plane path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bioiscc
from bioiscc import imagewalk
from bioiscc.sources import open_source
from bioiscc.sumcode import hash_planes
from tests.conftest import REPO

BENCH = REPO / "benchmarks" / "bench_bigplane.py"
SIDE = 8000  # 192 MB of RGB pixels: over BAND_PLANE_BYTES, hashed in a few seconds


def hash_with_simprints(path: Path) -> list[dict[str, object]]:
    return [
        {"code": r["iscc_code"], "prints": [s["simprint"] for s in r["simprints"]], "bytes": r["bytes"]}
        for r in bioiscc.hash_scenes(path, simprints=True)
    ]


def force_bands(patch: pytest.MonkeyPatch, band_bytes: int) -> None:
    patch.setattr(imagewalk, "BAND_PLANE_BYTES", 0)
    patch.setattr(imagewalk, "BAND_BYTES", band_bytes)
    patch.setattr(imagewalk, "CHUNK_ROW_LIMIT", 0)  # bands of BAND_BYTES, not of whole chunk rows
    patch.setattr(imagewalk, "PIECE_BYTES", 100)


@pytest.mark.parametrize("readahead", ["0", "1"])
@pytest.mark.parametrize(
    "name", ["rgb_t2c2.ome.tif", "rgb.ome.tif", "img5d_u16.ome.tif", "img5d_digits.ome.zarr"]
)
def test_bands_give_the_codes_and_simprints_of_whole_planes(
    vectors_dir: Path, expected: dict, monkeypatch: pytest.MonkeyPatch, name: str, readahead: str
) -> None:
    """Bands of odd heights (a row of 7 bytes, bands of 5 rows), T and C around the samples."""
    whole = hash_with_simprints(vectors_dir / name)
    with monkeypatch.context() as patch:
        patch.setenv("BIOISCC_READAHEAD", readahead)
        force_bands(patch, 97)
        banded = hash_with_simprints(vectors_dir / name)
    assert banded == whole
    assert [b["code"] for b in banded] == [e["iscc_code"] for e in expected[name]]


def test_the_banded_walk_reads_rows_not_planes(vectors_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_source(vectors_dir / "rgb_t2c2.ome.tif") as source:
        info = source.scenes()[0]
        reader = source.open_scene(info)
        want = hash_planes(imagewalk.iter_planes(reader)).iscc_code
        force_bands(monkeypatch, 4096)
        monkeypatch.setattr(reader, "read", None)
        monkeypatch.setattr(reader, "read_transient", None)
        assert imagewalk.band_height(reader) > 0
        assert hash_planes(imagewalk.iter_planes(reader)).iscc_code == want


def test_views_and_sum_from_bands_equal_those_of_whole_planes(
    vectors_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagecode` reads a scene once for both codes: the views are binned from the same bands."""
    from bioiscc.views import api

    def outcome() -> tuple[str, list[tuple[str, str | None]]]:
        with api.opened(vectors_dir / "rgb_t2c2.ome.tif") as src:
            done = api.scene_views(src, src.scenes()[0], with_sum=True)
        assert done.code is not None and done.views is not None, done.error
        return done.code.iscc_code, [(v.id, v.code) for v in done.views.selection.views]

    whole = outcome()
    with monkeypatch.context() as patch:
        force_bands(patch, 97)
        assert outcome() == whole


def open_files_in(directory: Path) -> list[str]:
    """Files this process has open in `directory` (an unnamed temporary file shows as "(deleted)")."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor of the listing itself
            continue
    return [t for t in targets if t.startswith(str(directory))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_spill_file_is_gone_after_success_and_failure(
    vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    force_bands(monkeypatch, 97)
    with open_source(vectors_dir / "rgb_t2c2.ome.tif") as source:
        reader = source.open_scene(source.scenes()[0])
        rows = reader.read_rows
        seen: list[list[str]] = []

        def failing(t: int, c: int, z: int, extra: tuple[int, ...], y0: int, y1: int) -> np.ndarray:
            seen.append(open_files_in(tmp_path))
            if t == 1:
                raise OSError("the disk went away")
            return rows(t, c, z, extra, y0, y1)

        hash_planes(imagewalk.iter_planes(reader))
        assert open_files_in(tmp_path) == []
        monkeypatch.setattr(reader, "read_rows", failing)
        with pytest.raises(OSError, match="the disk went away"):
            hash_planes(imagewalk.iter_planes(reader))
    assert seen and len(seen[-1]) == 2  # samples 1 and 2 were being spilled
    assert open_files_in(tmp_path) == [] and list(tmp_path.iterdir()) == []


# --- a plane of 192 MB in a fresh process ----------------------------------------------------------

PEAK = """
import json, resource, sys
import bioiscc
bioiscc.hash_scenes(sys.argv[1])  # imports, buffers and threads in place
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(record,) = bioiscc.hash_scenes(sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # no process is started
print(json.dumps([record["status"], record["iscc_code"], (after - before) * 1024, child * 1024]))
"""
#: starts argv[1:] from a small process: a child forked from this (large) test process would count
#: this process's pages in its peak RSS
LAUNCH = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


@pytest.fixture(scope="module")
def big_plane(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8,000 x 8,000 RGB TIFF in zstd 512 x 512 tiles, written tile by tile by the benchmark."""
    path = tmp_path_factory.mktemp("bigplane") / "rgb.tif"
    subprocess.run([sys.executable, str(BENCH), "write", str(path), "--side", str(SIDE)], check=True)
    return path


def whole_plane_code(path: Path) -> str:
    """The reference: the whole plane read by tifffile, samples in turn, hashed by iscc_sum."""
    import tifffile
    from iscc_sum import IsccSumProcessor

    plane = tifffile.imread(path)
    assert plane.shape == (SIDE, SIDE, 3)
    processor = IsccSumProcessor()
    for sample in range(3):
        processor.update(np.ascontiguousarray(plane[:, :, sample]).tobytes())
    return str(processor.result(wide=True, add_units=True).iscc)


@pytest.mark.parametrize("threads", ["1", "0"])
def test_a_large_interleaved_plane_hashes_in_a_fraction_of_its_size(
    big_plane: Path, vectors_dir: Path, threads: str
) -> None:
    """Hashed in the calling thread (with a read-ahead thread) or in two hashing threads: either
    holds a few bands, and no process is started."""
    # a fixed mmap threshold: freed bands go back to the system, the peak shows what is held at once
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20), "BIOISCC_HASH_THREADS": threads}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
            sys.executable,
            "-c",
            PEAK,
            str(vectors_dir / "rgb.ome.tif"),
            str(big_plane),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    status, code, growth, child_peak = json.loads(done.stdout)
    plane_bytes = SIDE * SIDE * 3
    print(f"{plane_bytes / 1e6:.0f} MB plane, threads={threads}: peak RSS grew by {growth / 1e6:.0f} MB")
    assert status == "ok"
    assert growth < plane_bytes / 2  # the whole-plane path grew by 350 MB
    assert child_peak == 0
    assert code == whole_plane_code(big_plane)


def test_zarr_chunks_spanning_planes_are_not_read_in_bands(
    vectors_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bands of a chunk that holds several planes would decode it once per plane: such scenes keep
    reading whole planes through the block cache (read amplification 1)."""
    monkeypatch.setattr(imagewalk, "BAND_PLANE_BYTES", 0)
    with open_source(vectors_dir / "img5d_v04_chunky.ome.zarr") as source:  # chunks (2, 2, 3, 32, 32)
        reader = source.open_scene(source.scenes()[0])
        assert imagewalk.band_height(reader) == 0
    with open_source(vectors_dir / "img5d_digits.ome.zarr") as source:  # one plane per chunk
        reader = source.open_scene(source.scenes()[0])
        assert imagewalk.band_height(reader) > 0


def test_plane_limit_spares_sources_that_read_in_bands() -> None:
    """A whole-slide TIFF plane over BIOISCC_MAX_PLANE_MB is hashed in bands, not refused; a source
    that holds whole planes is refused at the same size."""
    from bioiscc.scene import SceneInfo, make_dims
    from bioiscc.sources.integrity import over_limits

    huge = SceneInfo(
        index=0,
        name="slide",
        dims=make_dims({"Y": 100_000, "X": 80_000, "S": 3}),
        dtype="uint8",
    )
    assert over_limits(huge, reads_planes_in_bands=True).ok
    refused = over_limits(huge)
    assert not refused.ok and "too large: a plane of 24000000000 bytes" in (refused.error or "")
