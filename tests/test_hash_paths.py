"""The fast hashing path (read-ahead thread, pieces, reused buffers) never changes a code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bioiscc
from bioiscc import imagewalk
from bioiscc.imagewalk import CanonicalWriter, canonical_bytes, iter_planes, read_ahead
from bioiscc.scene import SceneInfo, make_dims
from bioiscc.sumcode import hash_planes
from tests.conftest import VECTORS

EXPECTED = json.loads((VECTORS / "expected.json").read_text())


@pytest.mark.parametrize("readahead", ["0", "1"])
def test_vectors_in_small_pieces_with_and_without_read_ahead(
    vectors_dir: Path, monkeypatch: pytest.MonkeyPatch, readahead: str
) -> None:
    monkeypatch.setenv("BIOISCC_READAHEAD", readahead)
    monkeypatch.setattr(imagewalk, "PIECE_BYTES", 100)  # many pieces per plane, odd sizes
    for name, want in EXPECTED.items():
        got = bioiscc.hash_scenes(vectors_dir / name, simprints=True)
        assert [r["iscc_code"] for r in got] == [w["iscc_code"] for w in want], name
        assert [r["simprints"][0]["simprint"] for r in got] == [w["first_simprints"][0] for w in want], name


def test_pieces_join_to_the_canonical_bytes() -> None:
    plane = np.arange(7 * 13, dtype="<f4").reshape(7, 13)[:, ::2]  # not contiguous
    for piece_bytes in (1, 28, 29, 10_000):
        pieces = CanonicalWriter(piece_bytes).pieces(plane)
        assert b"".join(pieces) == canonical_bytes(plane)
        assert all(isinstance(p, bytes) for p in pieces)


def test_planes_of_the_public_walk_are_not_overwritten(vectors_dir: Path) -> None:
    """Reused buffers are for the hash only: planes a caller keeps stay what they were."""
    kept = [p.data for p in bioiscc.iter_planes(vectors_dir / "img5d_u16.ome.tif")]
    again = [p.data.copy() for p in bioiscc.iter_planes(vectors_dir / "img5d_u16.ome.tif")]
    assert all(np.array_equal(a, b) for a, b in zip(kept, again, strict=True))
    assert len({a.tobytes() for a in kept}) > 1


class Failing:
    """A read-ahead reader that fails at one plane."""

    readahead_planes = 2

    def __init__(self, fail_at: int) -> None:
        self.info = SceneInfo(0, "s", make_dims({"Z": 6, "Y": 2, "X": 2}), {}, "uint16")
        self.fail_at = fail_at

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        if z == self.fail_at:
            raise OSError(f"cannot read plane {z}")
        return np.full((2, 2, 1), z, dtype=np.uint16)


def test_a_reader_error_in_the_read_ahead_thread_reaches_the_caller() -> None:
    with pytest.raises(OSError, match="cannot read plane 4"):
        hash_planes(iter_planes(Failing(4)))


def test_closing_the_read_ahead_early_stops_its_thread() -> None:
    produced = []

    def chunks() -> Iterator[list[bytes]]:
        for i in range(1000):
            produced.append(i)
            yield [bytes([i % 256])]

    stream = read_ahead(chunks(), 2)
    assert next(stream) == [b"\x00"]
    stream.close()
    assert len(produced) < 10


def test_read_ahead_gives_the_same_code_as_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = Failing(fail_at=-1)
    ahead = hash_planes(iter_planes(reader))
    monkeypatch.setenv("BIOISCC_READAHEAD", "0")
    here = hash_planes(iter_planes(reader))
    plain = hash_planes(list(iter_planes(reader)))  # any iterable of planes, not a walk
    assert ahead == here == plain


def test_one_thread_means_no_read_ahead_thread(vectors_dir: Path) -> None:
    """`--threads 1` (the workflow's truthful one-thread jobs) turns the read-ahead thread off."""
    from bioiscc.sources import open_source

    with open_source(vectors_dir / "img5d_u16.ome.tif") as source:
        reader = source.open_scene(source.scenes()[0])
        try:
            assert imagewalk.readahead_planes(reader) > 0
            imagewalk.use_threads(1)
            assert imagewalk.readahead_planes(reader) == 0
            imagewalk.use_threads(2)
            assert imagewalk.readahead_planes(reader) > 0
        finally:
            imagewalk.use_threads(None)
    from tests.conftest import run_cli

    one = run_cli("hash", "--threads", "1", str(vectors_dir / "img5d_u16.ome.tif"), check=True).stdout
    assert json.loads(one)["iscc_code"] == EXPECTED["img5d_u16.ome.tif"][0]["iscc_code"]


def test_tiff_pages_are_not_read_ahead_while_the_hash_runs_in_threads(vectors_dir: Path) -> None:
    """A TIFF page is one plane: the hash threads' queues hold the planes read ahead, and a
    read-ahead thread would only add a hand-over (benchmarks/README.md, tenth series). A hash in
    the calling thread still reads ahead."""
    from bioiscc.sources import open_source

    with open_source(vectors_dir / "img5d_u16.ome.tif") as source:
        reader = source.open_scene(source.scenes()[0])
        assert imagewalk.readahead_planes(reader) == 2
        assert imagewalk.readahead_planes(reader, hash_threads=True) == 0


def test_zarr_blocks_are_read_ahead_while_the_hash_runs_in_threads(vectors_dir: Path) -> None:
    """A Zarr block holds several planes at once: read ahead whichever way the hash runs."""
    from bioiscc.sources import open_source

    with open_source(vectors_dir / "img5d_v04.ome.zarr") as source:
        reader = source.open_scene(source.scenes()[0])
        ahead = imagewalk.readahead_planes(reader)
        assert ahead > 0 and imagewalk.readahead_planes(reader, hash_threads=True) == ahead


def test_diff_keeps_reading_tiff_pages_ahead(vectors_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`diff` takes a digest of every plane in the calling thread: TIFF pages are read ahead for it
    while the hash runs in threads (a plain hash reads them in the calling thread)."""
    from bioiscc import compare
    from bioiscc.sources import open_source

    depths: list[int] = []
    real = imagewalk.read_ahead
    monkeypatch.setattr(
        imagewalk, "read_ahead", lambda chunks, depth: depths.append(depth) or real(chunks, depth)
    )
    with open_source(vectors_dir / "img5d_u16.ome.tif") as source:
        info = source.scenes()[0]
        for walk in (imagewalk.PlaneWalk, compare._DigestingWalk):
            stream = walk(source.open_scene(info)).canonical(in_place=True)
            assert list(stream)
    assert depths == [2]  # the digesting walk only
