"""Planes handed to the hash threads as `bytes` written in place (bioiscc.handoff).

The one rule that keeps this correct: memory handed over is never written again. These tests keep
every item a walk hands out until the walk has ended and compare them with the canonical stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import bioiscc
from bioiscc import handoff, hasher
from bioiscc.imagewalk import CanonicalWriter, canonical_bytes, iter_planes


def test_an_array_written_is_the_bytes_handed() -> None:
    array = handoff.new_array((3, 4), ">u2")
    array[...] = np.arange(12).reshape(3, 4)
    handed = handoff.handed_bytes(array)
    assert isinstance(handed, bytes)
    assert handed == np.arange(12, dtype=">u2").tobytes()
    assert handoff.handed_bytes(array.reshape(12)) is handed  # a view of all of it
    del array
    assert handed == np.arange(12, dtype=">u2").tobytes()  # outlives the array


def test_only_all_of_a_new_array_is_handed() -> None:
    array = handoff.new_array((4, 4), "u1")
    assert handoff.handed_bytes(array[1:]) is None
    assert handoff.handed_bytes(array.T) is None
    assert handoff.handed_bytes(array[:, ::2]) is None
    assert handoff.handed_bytes(np.zeros((4, 4), "u1")) is None
    assert handoff.handed_bytes(handoff.new_array((0, 4), "u1")) is None  # the empty bytes is shared


def test_every_new_array_has_its_own_bytes() -> None:
    handed = []
    for value in range(50):
        array = handoff.new_array((1000,), "u1")
        array[...] = value
        handed.append(handoff.handed_bytes(array))
    assert [h == bytes([v]) * 1000 for v, h in enumerate(handed)] == [True] * 50


def test_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIOISCC_HANDOFF", "0")
    assert not handoff.available()


def test_converted_planes_are_handed_in_pieces() -> None:
    plane = np.arange(7 * 13, dtype="<f4").reshape(7, 13)
    pieces = CanonicalWriter(100, handoff=True).buffers(plane)
    assert all(isinstance(p, bytes) and len(p) <= 104 for p in pieces)
    assert b"".join(pieces) == canonical_bytes(plane)
    flags = np.array([[0, 1, 2], [3, 0, 255]], dtype=np.uint8).view(bool)  # bool stored as 02: 01
    assert CanonicalWriter(100, handoff=True).buffers(flags) == [bytes([0, 1, 1, 1, 0, 1])]


def test_a_canonical_plane_not_handed_is_copied_never_viewed() -> None:
    """Handed items may be read ahead in a thread: a view of a reader's buffer would change under
    the hash, so such a plane is copied into new `bytes` (without handoff it is a view)."""
    plane = np.arange(12, dtype=">u2").reshape(3, 4)
    pieces = CanonicalWriter(100, handoff=True).buffers(plane)
    assert all(isinstance(p, bytes) for p in pieces) and b"".join(pieces) == plane.tobytes()
    plane[...] = 0
    assert b"".join(pieces) == np.arange(12, dtype=">u2").tobytes()
    (view,) = CanonicalWriter(100).buffers(np.arange(12, dtype=">u2").reshape(3, 4))
    assert isinstance(view, memoryview)


def image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 65536, size=(3, 4, 40, 24), dtype=np.uint16)


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zstd", "tile": (16, 16)},  # decoded by the reader into new bytes
        {},  # uncompressed little-endian: converted into new bytes
        {"byteorder": ">"},  # tifffile reads it in native order: converted too
    ],
    ids=["zstd-tiles", "plain", "big-endian"],
)
def test_every_item_of_an_in_place_walk_stays_valid(tmp_path: Path, options: dict[str, object]) -> None:
    path = tmp_path / "image.ome.tif"
    tifffile.imwrite(path, image(), ome=True, metadata={"axes": "CZYX"}, **options)
    with bioiscc.open_source(path) as source:
        (info,) = source.scenes()
        walk = iter_planes(source.open_scene(info))
        items = list(walk.canonical(in_place=True))
    handed = [piece for item in items for piece in item if isinstance(piece, bytes)]
    assert len(handed) == sum(len(item) for item in items)  # every piece was handed, none copied
    expected = b"".join(canonical_bytes(p) for p in np.moveaxis(image(), 1, 0).reshape(-1, 40, 24))
    assert b"".join(handed) == expected


def test_codes_are_the_same_with_and_without(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "image.ome.tif"
    tifffile.imwrite(path, image(), ome=True, metadata={"axes": "CZYX"}, compression="zstd", tile=(16, 16))
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "always")
    monkeypatch.setattr(hasher, "QUEUE_DEPTH", 2)
    results = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("BIOISCC_HANDOFF", setting)
        (record,) = bioiscc.hash_scenes(path, simprints=True)
        simprints = [s["simprint"] for s in record["simprints"]]
        results[setting] = (record["iscc_code"], record["units"], simprints)
    assert results["1"] == results["0"]


def test_handed_memory_is_read_only() -> None:
    array = handoff.new_array((2, 3), "u1")
    array[...] = 5
    view = array[:, ::-1]  # a view made before, too: it shares the flag's owner chain
    assert handoff.handed_bytes(array) == bytes([5] * 6)
    with pytest.raises(ValueError, match="read-only"):
        array[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        array.reshape(6)[0] = 1
    assert view.flags.writeable  # only what the walk hands is frozen; the reader freezes its own


def zarr_store(path: Path, data: np.ndarray, chunks: tuple[int, ...]) -> Path:
    zarr = pytest.importorskip("zarr")
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = root.create_array("0", shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    names = "tczyx"[-data.ndim :]
    axes = [{"name": n, "type": "time" if n == "t" else "channel" if n == "c" else "space"} for n in names]
    scale = [{"type": "scale", "scale": [1.0] * data.ndim}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    return path


@pytest.mark.parametrize("chunks", [(1, 1, 40, 24), (2, 3, 16, 16), (3, 4, 40, 24)])
def test_zarr_blocks_of_planes_are_handed_and_stay_valid(tmp_path: Path, chunks: tuple[int, ...]) -> None:
    """Chunks of one plane, and chunks spanning several planes in C and Z (blocks of planes)."""
    store = zarr_store(tmp_path / "image.ome.zarr", image().astype("<u2"), chunks)
    with bioiscc.open_source(store) as source:
        (info,) = source.scenes()
        items = list(iter_planes(source.open_scene(info)).canonical(in_place=True))
    pieces = [piece for item in items for piece in item]
    assert all(isinstance(piece, bytes) for piece in pieces)
    assert len(pieces) == len(items) == 3 * 4  # each plane handed whole, as decoded
    expected = b"".join(canonical_bytes(p) for p in np.moveaxis(image(), 1, 0).reshape(-1, 40, 24))
    assert b"".join(pieces) == expected


@pytest.mark.parametrize("mode", ["copied", "handed", "handed-pieces"])
@pytest.mark.parametrize("shape", [(2, 0, 5), (2, 5, 0)])
def test_planes_without_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, shape: tuple[int, ...]
) -> None:
    """A plane of no pixels has no bytes: the code of the empty stream, whichever path hashes it."""
    from bioiscc.hasher import core
    from tests.conftest import use_handoff

    store = zarr_store(tmp_path / "empty.ome.zarr", np.zeros(shape, "<u2"), (1, 1, 5))
    use_handoff(monkeypatch, mode)
    empty = core().IsccSumProcessor().result(wide=True, add_units=True).iscc
    for threads in ("0", "always"):
        monkeypatch.setenv("BIOISCC_HASH_THREADS", threads)
        (record,) = bioiscc.hash_scenes(store, simprints=True)
        assert (record["status"], record["iscc_code"], len(record["simprints"])) == ("ok", empty, 2)


def test_a_plane_read_owned_is_read_only(tmp_path: Path) -> None:
    """What a reader decoded into handed memory cannot be written, through the plane it returns
    either (a view made before the memory was frozen)."""
    path = tmp_path / "image.ome.tif"
    tifffile.imwrite(path, image(), ome=True, metadata={"axes": "CZYX"}, compression="zstd", tile=(16, 16))
    with bioiscc.open_source(path) as source:
        (info,) = source.scenes()
        plane = source.open_scene(info).read_owned(0, 1, 2, (), new_array=handoff.new_array)
    assert np.array_equal(plane[:, :, 0], image()[1, 2])
    with pytest.raises(ValueError, match="read-only"):
        plane[0, 0, 0] = 1
