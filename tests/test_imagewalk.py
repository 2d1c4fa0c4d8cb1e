"""IMAGEWALK section 3 (order) and 4 (canonical bytes), checked against the spec's own tables."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from bioiscc.imagewalk import canonical_bytes, iter_planes, plane_order
from bioiscc.scene import SceneInfo, make_dims


@pytest.mark.parametrize(
    ("plane", "hexbytes"),
    [
        (np.array([[1, 2], [3, 4]], dtype=np.uint8), "01020304"),
        (np.array([[256, 512], [768, 1024]], dtype=np.uint16), "0100020003000400"),
        (np.array([[-1, 1000]], dtype=np.int16), "ffff03e8"),
        (np.array([[0x12345678]], dtype=np.uint32), "12345678"),
        (np.array([[1.0, 2.0]], dtype=np.float32), "3f80000040000000"),
        (np.array([[1.0]], dtype=np.float64), "3ff0000000000000"),
    ],
)
def test_spec_table(plane: np.ndarray, hexbytes: str) -> None:
    assert canonical_bytes(plane).hex() == hexbytes


def test_big_endian_input_is_not_swapped_twice() -> None:
    plane = np.array([[256, 512]], dtype=">u2")
    assert canonical_bytes(plane).hex() == "01000200"


def test_float_bits_are_kept() -> None:
    nan_payload = np.frombuffer(struct.pack("<I", 0x7FC00001), dtype="<f4")[0]
    plane = np.array([[nan_payload, -0.0, np.inf]], dtype="<f4")
    assert canonical_bytes(plane).hex() == "7fc00001" + "80000000" + "7f800000"
    assert canonical_bytes(np.array([[np.nan]], dtype="<f4")).hex() == "7fc00000"


@pytest.mark.parametrize(
    ("plane", "hexbytes"),
    [
        (np.array([[True, False]]), "0100"),
        (np.array([[-2]], dtype=np.int8), "fe"),
        (np.array([[1.0]], dtype=np.float16), "3c00"),
        (np.array([[-1]], dtype=np.int64), "ff" * 8),
        (np.array([[2**64 - 2]], dtype=np.uint64), "ff" * 7 + "fe"),
        (np.array([[1 + 2j]], dtype=np.complex64), "3f800000" + "40000000"),
    ],
)
def test_other_types(plane: np.ndarray, hexbytes: str) -> None:
    assert canonical_bytes(plane).hex() == hexbytes


def test_a_bool_stored_as_another_byte_is_01() -> None:
    stored = np.frombuffer(bytes([2, 0, 1, 255, 0, 1]), dtype=np.bool_).reshape(2, 3)
    assert canonical_bytes(stored).hex() == "010001010001"
    assert canonical_bytes(stored[:, ::2]).hex() == "01010101"


def test_a_zarr_bool_chunk_holding_02_hashes_as_true(tmp_path: Path) -> None:
    """A Zarr chunk may hold any byte for True; IMAGEWALK's byte is 01 (and views count it as 1)."""
    import bioiscc
    from tests.test_views import write_ome_zarr

    pixels = np.array([[True, False, True, True]])
    write_ome_zarr(tmp_path / "plain.ome.zarr", [pixels], "yx", (1, 4))
    write_ome_zarr(tmp_path / "odd.ome.zarr", [pixels], "yx", (1, 4))
    chunk = tmp_path / "odd.ome.zarr" / "0" / "0.0"
    import numcodecs

    codec = numcodecs.get_codec(json.loads((chunk.parent / ".zarray").read_text())["compressor"])
    chunk.write_bytes(codec.encode(bytes([2, 0, 1, 7])))
    (plain,) = bioiscc.hash_scenes(tmp_path / "plain.ome.zarr")
    (odd,) = bioiscc.hash_scenes(tmp_path / "odd.ome.zarr")
    assert odd["iscc_code"] == plain["iscc_code"]


def test_non_contiguous_plane() -> None:
    base = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert canonical_bytes(base.T) == np.ascontiguousarray(base.T).astype(">u2").tobytes()


def test_plane_must_be_2d() -> None:
    with pytest.raises(ValueError):
        canonical_bytes(np.zeros((2, 2, 2), dtype=np.uint8))


def _info(**sizes: int) -> SceneInfo:
    extra = {k: v for k, v in sizes.items() if k not in "TCZYXS"}
    return SceneInfo(0, "s", make_dims(sizes), extra, "uint8")


def test_spec_order_example() -> None:
    order = [(z, c, t) for z, c, t, _ in plane_order(_info(Z=2, C=3, T=2, Y=1, X=1))]
    assert order[:5] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (0, 2, 0)]
    assert order[6] == (1, 0, 0) and order[-1] == (1, 2, 1) and len(order) == 12


class FakeReader:
    """A reader whose pixel values encode their own position, counting its reads."""

    def __init__(self, info: SceneInfo) -> None:
        self.info = info
        self.reads = 0

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        self.reads += 1
        d = self.info.dims
        plane = np.zeros((d["Y"], d["X"], d["S"]), dtype=np.uint8)
        for s in range(d["S"]):
            plane[:, :, s] = 100 * z + 10 * (c * d["S"] + s) + t + 50 * sum(extra)
        return plane


def test_samples_fold_into_channels_with_t_innermost() -> None:
    reader = FakeReader(_info(T=2, C=2, S=3, Z=1, Y=2, X=2))
    planes = list(iter_planes(reader))
    assert [(p.c, p.t) for p in planes][:4] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [int(p.data[0, 0]) for p in planes] == [10 * c + t for c in range(6) for t in range(2)]
    # each stored (Y, X, S) plane is read once even though its samples are spread over the walk
    assert reader.reads == 4


def test_extra_dims_walk_innermost() -> None:
    reader = FakeReader(_info(T=2, Z=1, C=1, Y=1, X=1, H=3))
    planes = list(iter_planes(reader))
    assert [(p.t, p.extra) for p in planes] == [(t, (h,)) for t in range(2) for h in range(3)]


def test_reader_returning_wrong_shape_is_an_error() -> None:
    class Wrong(FakeReader):
        def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
            return np.zeros((1, 1, 1), dtype=np.uint8)

    with pytest.raises(ValueError, match="shape"):
        list(iter_planes(Wrong(_info(Y=2, X=2))))
