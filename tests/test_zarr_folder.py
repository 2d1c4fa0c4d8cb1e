"""Zarr v2 arrays read from their chunk files without zarr (`bioiscc.sources.zarr_folder`).

Every layout is written by zarr itself and read back both ways: the pixels must be zarr's, and the
codes those of the same store read through zarr (`BIOISCC_ZARR_DIRECT=0`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from click.testing import CliRunner, Result

import bioiscc
from bioiscc.cli import main
from bioiscc.sources.zarr_folder import ChunkFileArray, FolderGroup, GroupNotFound, open_direct

COMPRESSORS: dict[str, Any] = {
    "none": None,
    "zstd": numcodecs.Zstd(level=1),
    "blosc": numcodecs.Blosc(cname="lz4", shuffle=numcodecs.Blosc.SHUFFLE),
    "zlib": numcodecs.Zlib(level=1),
    "gzip": numcodecs.GZip(level=1),
    "lz4": numcodecs.LZ4(),
}


def v2_array(
    folder: Path,
    data: np.ndarray,
    chunks: tuple[int, ...],
    *,
    compressor: Any = None,
    order: str = "C",
    separator: str = ".",
    fill_value: Any = 0,
    skip: tuple[int, ...] = (),
) -> Any:
    """`data` written by zarr as a v2 array; the chunks whose flat index is in `skip` are not written
    (they read as the fill value)."""
    array = zarr.create_array(
        str(folder),
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        compressors=compressor,
        fill_value=fill_value,
        order=order,  # type: ignore[arg-type]
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": separator},
    )
    return write_chunks(array, data, chunks, skip)


def v3_array(
    folder: Path,
    data: np.ndarray,
    chunks: tuple[int, ...],
    *,
    compressor: Any = None,
    encoding: str = "default",
    separator: str = "/",
    fill_value: Any = 0,
    skip: tuple[int, ...] = (),
) -> Any:
    """`data` written by zarr as a v3 array (its byte order kept by the `bytes` codec)."""
    endian = "big" if data.dtype.byteorder == ">" else "little"
    array = zarr.create_array(
        str(folder),
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype.newbyteorder("="),
        serializer=zarr.codecs.BytesCodec(endian=endian if data.dtype.itemsize > 1 else None),
        compressors=compressor,
        fill_value=fill_value,
        zarr_format=3,
        chunk_key_encoding={"name": encoding, "separator": separator},
    )
    return write_chunks(array, data, chunks, skip)


def write_chunks(array: Any, data: np.ndarray, chunks: tuple[int, ...], skip: tuple[int, ...]) -> Any:
    grid = [range(0, n, c) for n, c in zip(data.shape, chunks, strict=True)]
    for flat, corner in enumerate(np.ndindex(*(len(r) for r in grid))):
        if flat in skip:
            continue
        region = tuple(
            slice(r[i], min(r[i] + c, n)) for r, i, c, n in zip(grid, corner, chunks, data.shape, strict=True)
        )
        array[region] = data[region]
    return array


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def pixels(shape: tuple[int, ...], dtype: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


SELECTIONS = [
    (slice(None),),
    (1, slice(None), slice(3, 17)),
    (-1, 4),
    (slice(1, 3), slice(5, 6), slice(0, 1)),
    (0, slice(9, 2)),  # empty
]


def assert_reads_like_zarr(folder: Path, written: Any) -> ChunkFileArray:
    direct = open_direct(folder)
    assert isinstance(direct, ChunkFileArray)
    assert direct.shape == written.shape and direct.chunks == written.chunks
    assert direct.dtype == written.dtype
    for selection in SELECTIONS:
        ours, theirs = direct[selection], np.asarray(written[selection])
        assert ours.shape == theirs.shape, selection
        np.testing.assert_array_equal(ours, theirs, err_msg=str(selection))
    return direct


@pytest.mark.parametrize("compressor", sorted(COMPRESSORS))
def test_compressors(compressor: str, tmp_path: Path) -> None:
    data = pixels((3, 21, 19), "<u2")
    written = v2_array(tmp_path / "a", data, (2, 8, 8), compressor=COMPRESSORS[compressor])
    assert_reads_like_zarr(tmp_path / "a", written)


@pytest.mark.parametrize("dtype", ["|u1", "<u2", ">u2", "<i4", ">f4", "<f8", "|b1"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_dtypes_and_orders(dtype: str, order: str, tmp_path: Path) -> None:
    data = pixels((3, 21, 19), dtype)
    written = v2_array(tmp_path / "a", data, (2, 8, 8), compressor=COMPRESSORS["zstd"], order=order)
    direct = assert_reads_like_zarr(tmp_path / "a", written)
    assert direct.order == order


@pytest.mark.parametrize("separator", [".", "/"])
def test_missing_chunks_are_the_fill_value(separator: str, tmp_path: Path) -> None:
    data = pixels((3, 21, 19), "<f4")
    written = v2_array(
        tmp_path / "a",
        data,
        (2, 8, 8),
        compressor=COMPRESSORS["blosc"],
        separator=separator,
        fill_value=float("nan"),
        skip=(0, 4, 5),
    )
    assert json.loads((tmp_path / "a" / ".zarray").read_text())["fill_value"] == "NaN"
    direct = assert_reads_like_zarr(tmp_path / "a", written)
    assert np.isnan(direct[0, 0, 0])


@pytest.mark.parametrize("threads", [1, 2])
def test_blocks_decoded_in_threads_equal_zarr(
    threads: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`read_into` a big-endian buffer, as the walk does, with one decode thread and with two."""
    import bioiscc.imagewalk as imagewalk

    monkeypatch.setattr(imagewalk, "_thread_budget", threads)
    data = pixels((4, 50, 70), "<u2")
    written = v2_array(tmp_path / "a", data, (3, 16, 16), compressor=COMPRESSORS["zstd"], skip=(2,))
    direct = open_direct(tmp_path / "a")
    assert direct is not None
    out = np.empty((3, 50, 70), dtype=">u2")
    direct.read_into((slice(1, 4), slice(None), slice(None)), out)
    np.testing.assert_array_equal(out, np.asarray(written[1:4]))


V3_COMPRESSORS: dict[str, Any] = {
    "none": None,
    "zstd": zarr.codecs.ZstdCodec(level=1, checksum=True),
    "gzip": zarr.codecs.GzipCodec(level=1),
    "blosc": zarr.codecs.BloscCodec(cname="zstd", shuffle="bitshuffle"),
}


@pytest.mark.parametrize("compressor", sorted(V3_COMPRESSORS))
@pytest.mark.parametrize("dtype", ["|u1", "<u2", ">u2", ">f4", "|b1"])
def test_v3_compressors_and_dtypes(compressor: str, dtype: str, tmp_path: Path) -> None:
    data = pixels((3, 21, 19), dtype)
    written = v3_array(tmp_path / "a", data, (2, 8, 8), compressor=V3_COMPRESSORS[compressor], skip=(1,))
    direct = assert_reads_like_zarr(tmp_path / "a", written)
    assert direct.stored == np.dtype(dtype)  # decoded in the stored byte order, reported as zarr does


@pytest.mark.parametrize(
    ("encoding", "separator"), [("default", "/"), ("default", "."), ("v2", "."), ("v2", "/")]
)
def test_v3_chunk_key_encodings(encoding: str, separator: str, tmp_path: Path) -> None:
    data = pixels((3, 21, 19), "<f8")
    written = v3_array(
        tmp_path / "a",
        data,
        (2, 8, 8),
        encoding=encoding,
        separator=separator,
        fill_value=float("-inf"),
        skip=(0, 7),
    )
    direct = assert_reads_like_zarr(tmp_path / "a", written)
    assert direct[0, 0, 0] == -np.inf


def sharded(
    folder: Path, data: np.ndarray, shards: tuple[int, ...], chunks: tuple[int, ...], **options: Any
) -> Any:
    """`data` in a v3 array of `shards`, each of inner `chunks` (zstd unless `codecs` is given)."""
    codec = zarr.codecs.ShardingCodec(
        chunk_shape=chunks,
        codecs=options.pop("codecs", [zarr.codecs.BytesCodec(), zarr.codecs.ZstdCodec()]),
        **options,
    )
    array = zarr.create_array(
        str(folder),
        shape=data.shape,
        chunks=shards,
        dtype=data.dtype,
        serializer=codec,
        compressors=None,
        fill_value=7,
    )
    return array


@pytest.mark.parametrize("location", ["end", "start"])
@pytest.mark.parametrize("checksum", [True, False])
def test_v3_shards(location: str, checksum: bool, tmp_path: Path) -> None:
    """Inner chunks read through the shard's index; an inner chunk or a shard not stored is the fill
    value."""
    data = pixels((4, 37, 29), "<u2")
    index = [zarr.codecs.BytesCodec(), zarr.codecs.Crc32cCodec()] if checksum else [zarr.codecs.BytesCodec()]
    written = sharded(
        tmp_path / "a", data, (2, 16, 16), (1, 8, 8), index_codecs=index, index_location=location
    )
    written[:2] = data[:2]
    written[2, :8, :8] = data[2, :8, :8]  # one inner chunk of the shards of z=2..3
    direct = assert_reads_like_zarr(tmp_path / "a", written)
    assert direct.shards == (2, 16, 16) and direct.chunks == (1, 8, 8)
    assert direct[3, 0, 0] == 7  # an inner chunk the shard does not hold
    assert not (tmp_path / "a" / "c" / "1" / "1" / "1").exists()  # a shard not stored
    assert direct[3, 20, 20] == 7


@pytest.mark.parametrize("compressor", ["none", "gzip", "blosc"])
def test_v3_shards_compressors(compressor: str, tmp_path: Path) -> None:
    data = pixels((3, 20, 20), ">f4")
    inner = [zarr.codecs.BytesCodec(endian="big")]
    inner += [V3_COMPRESSORS[compressor]] if V3_COMPRESSORS[compressor] else []
    written = sharded(tmp_path / "a", data.astype("=f4"), (3, 20, 20), (1, 10, 10), codecs=inner)
    written[:] = data
    assert_reads_like_zarr(tmp_path / "a", written)


def test_v3_shard_with_a_corrupt_index(tmp_path: Path) -> None:
    written = sharded(tmp_path / "a", pixels((2, 16, 16), "<u2"), (2, 16, 16), (1, 8, 8))
    written[:] = pixels((2, 16, 16), "<u2")
    shard = tmp_path / "a" / "c" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index: its checksum no longer matches
    shard.write_bytes(bytes(raw))
    direct = open_direct(tmp_path / "a")
    assert direct is not None
    with pytest.raises(ValueError, match=r"shard c/0/0/0: its index fails its CRC32C checksum"):
        direct[0]


def test_v3_shard_index_pointing_beyond_the_file(tmp_path: Path) -> None:
    """An index that claims more bytes than the shard has fails before anything is allocated."""
    import struct

    written = sharded(
        tmp_path / "a",
        pixels((1, 8, 8), "<u2"),
        (1, 8, 8),
        (1, 8, 8),
        index_codecs=[zarr.codecs.BytesCodec()],
    )
    written[:] = pixels((1, 8, 8), "<u2")
    shard = tmp_path / "a" / "c" / "0" / "0" / "0"
    raw = shard.read_bytes()
    shard.write_bytes(raw[:-16] + struct.pack("<QQ", 0, 2**40))
    direct = open_direct(tmp_path / "a")
    assert direct is not None
    with pytest.raises(ValueError, match=r"lies beyond the shard's"):
        direct[0]


def test_v3_hexadecimal_fill_value(tmp_path: Path) -> None:
    """Zarr v3 may write a float fill value as its bits in hexadecimal."""
    written = v3_array(tmp_path / "a", pixels((2, 8, 8), "<f4"), (1, 8, 8), skip=(1,))
    meta = json.loads((tmp_path / "a" / "zarr.json").read_text())
    (tmp_path / "a" / "zarr.json").write_text(json.dumps({**meta, "fill_value": "0x3fc00000"}))
    direct = open_direct(tmp_path / "a")
    assert direct is not None and direct[1, 0, 0] == np.float32(1.5)
    np.testing.assert_array_equal(direct[0], np.asarray(written[0]))


def test_layouts_left_to_zarr(tmp_path: Path) -> None:
    """Filters, a missing fill value, a big-endian shard index, checksums and transposes are read
    with zarr, not here."""
    data = pixels((2, 8, 8), "<u2")
    filtered = zarr.create_array(
        str(tmp_path / "filtered"),
        shape=data.shape,
        chunks=(1, 8, 8),
        dtype=data.dtype,
        filters=[numcodecs.Delta(dtype="<u2")],
        zarr_format=2,
    )
    filtered[:] = data
    sharded(
        tmp_path / "big-endian-index",
        data,
        (1, 8, 8),
        (1, 4, 4),
        index_codecs=[zarr.codecs.BytesCodec(endian="big")],
    )
    v3_array(tmp_path / "checksummed", data, (1, 8, 8), compressor=[zarr.codecs.Crc32cCodec()])
    transposed = zarr.create_array(
        str(tmp_path / "transposed"),
        shape=data.shape,
        chunks=(1, 8, 8),
        dtype=data.dtype,
        filters=[zarr.codecs.TransposeCodec(order=(2, 1, 0))],
    )
    transposed[:] = data
    no_fill = v2_array(tmp_path / "nofill", data, (1, 8, 8))
    meta = json.loads((tmp_path / "nofill" / ".zarray").read_text())
    (tmp_path / "nofill" / ".zarray").write_text(json.dumps({**meta, "fill_value": None}))
    assert no_fill is not None
    for name in ("filtered", "nofill", "big-endian-index", "checksummed", "transposed"):
        assert open_direct(tmp_path / name) is None, name


def test_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v2_array(tmp_path / "a", pixels((2, 8, 8), "<u2"), (1, 8, 8))
    assert open_direct(tmp_path / "a") is not None
    monkeypatch.setenv("BIOISCC_ZARR_DIRECT", "0")
    assert open_direct(tmp_path / "a") is None


def test_short_uncompressed_chunk_is_an_error(tmp_path: Path) -> None:
    v2_array(tmp_path / "a", pixels((2, 8, 8), "<u2"), (1, 8, 8))
    chunk = tmp_path / "a" / "1.0.0"
    chunk.write_bytes(chunk.read_bytes()[:-3])
    direct = open_direct(tmp_path / "a")
    assert direct is not None
    with pytest.raises(ValueError, match=r"chunk 1\.0\.0 holds 125 bytes, not 128"):
        direct[1]


def test_groups(tmp_path: Path) -> None:
    root = zarr.open_group(str(tmp_path / "v2"), mode="w", zarr_format=2)
    root.attrs["a"] = 1
    root.create_group("1")
    root.create_group("0")
    (tmp_path / "v2" / "not-a-group").mkdir()
    group = FolderGroup(tmp_path / "v2")
    assert (group.zarr_format, dict(group.attrs)) == (2, {"a": 1})
    assert [name for name, _ in group.groups()] == ["0", "1"]
    v3 = zarr.open_group(str(tmp_path / "v3"), mode="w", zarr_format=3)
    v3.attrs["ome"] = {"version": "0.5"}
    v3.create_group("0")
    v3.create_array("x", shape=(1,), dtype="u1")
    group3 = FolderGroup(tmp_path / "v3")
    assert (group3.zarr_format, dict(group3.attrs)) == (3, {"ome": {"version": "0.5"}})
    assert [name for name, _ in group3.groups()] == ["0"]
    with pytest.raises(GroupNotFound, match="node_type 'array'"):
        FolderGroup(tmp_path / "v3" / "x")
    with pytest.raises(GroupNotFound, match="no group metadata"):
        FolderGroup(tmp_path / "v2" / "not-a-group")


def ngff(store: Path, data: np.ndarray, chunks: tuple[int, ...], zarr_format: int = 2) -> None:
    """A one-level NGFF image: 0.4 on Zarr v2 or 0.5 on Zarr v3, zstd chunks, one chunk not stored."""
    root = zarr.open_group(str(store), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    multiscales = [
        {
            "axes": [{"name": a, "type": "space" if a in "zyx" else "channel"} for a in "czyx"],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * 4}]}],
        }
    ]
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscales[0]}]
        v2_array(store / "0", data, chunks, compressor=COMPRESSORS["zstd"], separator="/", skip=(1,))
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
        v3_array(store / "0", data, chunks, compressor=V3_COMPRESSORS["zstd"], skip=(1,))


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_hash_equals_the_zarr_read(
    threads: str, zarr_format: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bioiscc.imagewalk as imagewalk

    monkeypatch.setattr(imagewalk, "_thread_budget", None)  # `--threads` sets it; undone after the test
    store = tmp_path / "image.ome.zarr"
    ngff(store, pixels((2, 5, 40, 30), ">u2"), (1, 2, 16, 16), zarr_format)
    records = {}
    for direct in ("1", "0"):
        monkeypatch.setenv("BIOISCC_ZARR_DIRECT", direct)
        out = tmp_path / f"direct{direct}.json"
        result = invoke("hash", "--threads", threads, "--simprints", store, "-o", out)
        assert result.exit_code == 0, result.output
        records[direct] = json.loads(out.read_text())
    assert records["1"]["reader"].startswith("imagecodecs ")  # zstd chunks
    assert records["0"]["reader"].startswith("zarr ")
    for field in ("iscc_code", "units", "datahash", "dtype", "simprints"):
        assert records["1"][field] == records["0"][field], field


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_is_not_imported_for_a_plain_store(zarr_format: int, tmp_path: Path) -> None:
    """Neither zarr (0.25-0.4 s to import) nor, for zstd chunks, numcodecs (about 50 ms)."""
    store = tmp_path / "image.ome.zarr"
    ngff(store, pixels((2, 3, 20, 20), "<u2"), (1, 3, 20, 20), zarr_format)
    script = (
        "import sys; from bioiscc.cli import main\n"
        f"try: main(['hash', {str(store)!r}, '-o', {str(tmp_path / 'h.json')!r}])\n"
        "except SystemExit as exit: assert not exit.code, exit.code\n"
        "print('zarr' in sys.modules, 'numcodecs' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


@pytest.mark.parametrize(
    ("codec", "library"),
    [
        ("zstd", "imagecodecs"),
        ("zlib", "zlib"),
        ("gzip", "zlib"),
        ("blosc", "numcodecs"),
        ("lz4", "numcodecs"),
    ],
)
def test_the_record_names_the_library_that_decodes_the_chunks(
    codec: str, library: str, tmp_path: Path
) -> None:
    store = tmp_path / "image.ome.zarr"
    data = pixels((2, 3, 20, 20), "<u2")
    ngff(store, data, (1, 3, 20, 20), 2)
    shutil.rmtree(store / "0")
    v2_array(store / "0", data, (1, 3, 20, 20), compressor=COMPRESSORS[codec], separator="/")
    (record,) = bioiscc.hash_scenes(store)
    assert record["reader"].split()[0] == library
    plain = tmp_path / "plain.ome.zarr"
    ngff(plain, data, (1, 3, 20, 20), 2)
    shutil.rmtree(plain / "0")
    v2_array(plain / "0", data, (1, 3, 20, 20), compressor=None, separator="/")
    (uncompressed,) = bioiscc.hash_scenes(plain)
    assert uncompressed["reader"].startswith("bioiscc ") and "uncompressed" in uncompressed["reader"]
    assert record["iscc_code"] == uncompressed["iscc_code"]


def test_a_forked_child_decodes_in_threads_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch forks after its parent may have decoded: the child must not wait on the parent's
    (absent) pool threads."""
    import os
    import time

    import bioiscc.imagewalk as imagewalk

    monkeypatch.setattr(imagewalk, "_thread_budget", 2)
    data = pixels((4, 40, 40), "<u2")
    v2_array(tmp_path / "a", data, (1, 16, 16), compressor=COMPRESSORS["zstd"])
    direct = open_direct(tmp_path / "a")
    assert direct is not None
    np.testing.assert_array_equal(direct[:], data)  # the parent's pool is up
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if np.array_equal(direct[:], data) else 1)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on its parent's decode threads")
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_missing_chunks_cost_no_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the folder holds is listed once; only stored chunks are opened and decoded."""
    data = np.zeros((4, 64, 64), dtype="<u2")
    data[1, :16, :16] = 9
    v2_array(tmp_path / "a", data, (1, 16, 16), skip=tuple(i for i in range(64) if i != 16))
    direct = open_direct(tmp_path / "a")
    assert direct is not None
    opened: list[tuple[int, ...]] = []
    decode = ChunkFileArray._chunk

    def spy(self: ChunkFileArray, index: tuple[int, ...]) -> Any:
        opened.append(index)
        return decode(self, index)

    monkeypatch.setattr(ChunkFileArray, "_chunk", spy)
    np.testing.assert_array_equal(direct[:], data)
    assert opened == [(1, 0, 0)]


def test_folders_are_listed_whatever_they_hold(tmp_path: Path) -> None:
    """A bioformats2raw series whose group metadata is lost is still a folder of the store: it is
    listed (and reported as a failed scene), where `groups()` passes it over."""
    root = zarr.open_group(str(tmp_path / "v2"), mode="w", zarr_format=2)
    root.create_group("0")
    root.create_array("a", shape=(1,), dtype="u1")
    (tmp_path / "v2" / "2").mkdir()
    (tmp_path / "v2" / "10").mkdir()
    (tmp_path / "v2" / "notes.txt").write_text("a file, not a folder")
    group = FolderGroup(tmp_path / "v2")
    assert group.folders() == ["0", "10", "2", "a"]
    assert [name for name, _ in group.groups()] == ["0"]


@pytest.mark.parametrize(
    ("file", "content", "cause"),
    [
        (".zattrs", [1], r"^\.zattrs is not a JSON object$"),
        (".zgroup", "x", r"^\.zgroup is not a JSON object$"),
        ("zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": ["ome"]}, "attributes are not"),
    ],
)
def test_group_metadata_that_is_not_an_object(file: str, content: Any, cause: str, tmp_path: Path) -> None:
    """JSON, but not the object Zarr defines: its own error (not "not JSON", not a crash later)."""
    from bioiscc.sources.zarr_folder import MetadataShapeError

    zarr.open_group(str(tmp_path / "g"), mode="w", zarr_format=3 if file == "zarr.json" else 2)
    (tmp_path / "g" / file).write_text(json.dumps(content))
    with pytest.raises(MetadataShapeError, match=cause):
        FolderGroup(tmp_path / "g")
