"""Hostile file contents: truncated and corrupt vendor files, lying headers, decompression bombs.

The contract (issue 16): `walk`, `thumb` and `scenes` agree with `hash` — a file whose pixels cannot
all be read is never `ok` anywhere; the error is one line naming the file and the cause, the exit
code 1 (3 when other scenes of the file are fine), and nothing is written. A header that claims
enormous dimensions is refused before anything is allocated, and a chunk or tile that inflates
beyond its size is an error, both in bounded memory (peak RSS measured from a small launcher).

Damage that only decoding finds (a cut or overwritten Zarr chunk file, a broken compressed tile) is
found by `hash` (and `thumb` when it decodes that chunk); `walk` reads no pixels and stays cheap.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import bioiscc
from bioiscc.cli import main
from bioiscc.errors import describe
from bioiscc.sources import integrity
from tests.conftest import json_lines, require_samples

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "resources" / "sample-data"
COMMANDS = ("walk", "hash", "thumb", "scenes")
#: peak RSS a refused or failed input may take (a bare `bioiscc hash` of a small file takes ~50 MB)
BOUNDED_MB = 300
#: the measuring launcher: runs the command with its address space capped (a regression fails
#: with MemoryError instead of taking the machine), and writes the child's peak RSS in KiB
MEASURE = """
import os, resource, sys
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
pid = os.fork()
if pid == 0:
    cap()
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


# --- helpers ---------------------------------------------------------------------------------------


def cut(source: Path, target: Path, keep: float | int) -> Path:
    """A copy of `source` with its first `keep` bytes (a fraction of its size when below 1)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    return target


def invoke(command: str, path: Path, out: Path, *extra: str) -> Result:
    """One command in process; walk and hash write `out`, thumb and scenes the folder `out`."""
    return CliRunner().invoke(main, [command, str(path), "-o", str(out), *extra])


def outputs(out: Path) -> list[str]:
    """What a command left: the output file, its temporaries, or the files of an output folder."""
    if out.is_dir():
        return sorted(p.name for p in out.iterdir())
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith((out.name, ".")))


def assert_fails_everywhere(path: Path, cause: str, tmp: Path) -> None:
    """walk, hash, thumb and scenes: exit 1, one line naming the file and the cause, nothing written."""
    for command in COMMANDS:
        out = tmp / f"out-{command}" / ("result.json" if command in ("walk", "hash") else "thumbs")
        out.parent.mkdir(exist_ok=True)
        result = invoke(command, path, out)
        lines = result.stderr.splitlines()
        assert result.exit_code == 1, (command, result.stderr, result.stdout)
        assert len(lines) == 1 and str(path) in lines[0] and cause in lines[0], (command, lines)
        assert "Traceback" not in result.stderr
        assert not out.exists() or outputs(out) == [], (command, outputs(out))
        assert [p.name for p in out.parent.iterdir()] == [], command


def assert_recorded(path: Path, cause: str, tmp: Path) -> None:
    """With --record-errors, walk and hash write a failed record naming the cause and exit 0."""
    for command in ("walk", "hash"):
        out = tmp / f"record-{command}.json"
        result = invoke(command, path, out, "--record-errors")
        assert result.exit_code == 0, result.stderr
        records = json_lines(out.read_text()) if command == "hash" else [_json(out)]
        failed = [r for r in records if r["status"] == "failed"] + [
            s for r in records for s in r.get("scenes", []) if s.get("status") == "failed"
        ]
        assert failed and all(cause in str(r["error"]) for r in failed), records


def _json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def peak_run(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float, float]:
    """Run `bioiscc ARGS` from a launcher: (exit code, stderr, peak RSS in MB, seconds)."""
    peak = tmp / "peak.txt"
    command = [sys.executable, "-c", MEASURE, str(peak), sys.executable, "-m", "bioiscc", *args]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    return result.returncode, result.stderr, int(peak.read_text()) / 1024, seconds


# --- truncated and corrupt vendor files --------------------------------------------------------------


@pytest.mark.samples
def test_czi_cut_to_1_5_mb_fails_everywhere(tmp_path: Path) -> None:
    """The issue's case: walked as ok, thumb succeeded, hash failed with libCZI's raw text."""
    sample = require_samples() / "czi" / "CellDivision_T3_Z5_CH2_X240_Y170.czi"
    path = cut(sample, tmp_path / "cut.czi", 1_500_000)
    assert_fails_everywhere(
        path, "truncated: subblock 11 ends at byte 1519280, beyond the file's 1500000", tmp_path
    )
    assert_recorded(path, "truncated: subblock 11", tmp_path)


@pytest.mark.samples
@pytest.mark.parametrize("keep", [0.2, 0.6, 0.9, 0.995])
@pytest.mark.parametrize(
    "name", ["czi/Airyscan.czi", "czi/mosaic_test.czi", "czi/LSM880_AiryScan.czi", "czi/DAPI_GFP.czi"]
)
def test_cut_czis_agree_with_hash(name: str, keep: float, tmp_path: Path) -> None:
    """Cut anywhere: walk fails exactly where hash fails (the tail of a file may be attachments)."""
    path = cut(require_samples() / name, tmp_path / "cut.czi", keep)
    statuses = {}
    for command in ("walk", "hash"):
        out = tmp_path / f"{command}.json"
        result = invoke(command, path, out, "--record-errors")
        assert result.exit_code == 0, result.stderr
        text = out.read_text()
        records = json_lines(text) if command == "hash" else _json(out).get("scenes") or [_json(out)]
        statuses[command] = [r["status"] for r in records] if records else ["failed"]
        assert all("truncated: " in r["error"] for r in records if r["status"] != "ok"), records
        assert "Not enough data" not in text
    assert statuses["walk"] == statuses["hash"] or statuses["walk"] == ["failed"], statuses


@pytest.mark.samples
def test_czi_with_one_cut_scene_fails_that_scene_alone(tmp_path: Path) -> None:
    path = cut(require_samples() / "czi" / "WellD6-7_S2.czi", tmp_path / "two-scenes.czi", 0.9)
    cause = "scene 1: truncated: subblock 3 ends at byte 1819464"
    for command in COMMANDS:
        out = tmp_path / command / ("result.json" if command in ("walk", "hash") else "thumbs")
        out.parent.mkdir()
        result = invoke(command, path, out)
        assert result.exit_code == 3, (command, result.stderr)  # written, but a scene failed
        assert result.stderr.splitlines() == [f"bioiscc: {path}: {cause}, beyond the file's 1639094 bytes"]
    assert [s["status"] for s in _json(tmp_path / "walk" / "result.json")["scenes"]] == ["ok", "failed"]
    assert [r["status"] for r in json_lines((tmp_path / "hash" / "result.json").read_text())] == [
        "ok",
        "failed",
    ]
    assert outputs(tmp_path / "thumb" / "thumbs") == ["two-scenes.czi.thumb.png"]
    assert outputs(tmp_path / "scenes" / "thumbs") == ["two-scenes.czi.scene_000.thumb.png"]


def write_czi(path: Path, planes: int) -> Path:
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    with pyczi.create_czi(str(path), exist_ok=True) as czi:
        for z in range(planes):
            czi.write(data=np.full((8, 12, 1), z, np.uint16), plane={"T": 0, "Z": z, "C": 0}, scene=0)
    return path


def czi_entry_positions(data: bytes) -> list[int]:
    """Where each subblock directory entry keeps its file position (byte offsets into `data`)."""
    directory = integrity.FILE_HEADER_POSITIONS.unpack_from(data, integrity.FILE_HEADER_POSITIONS_AT)[0]
    at = directory + integrity.SEGMENT.size + integrity.DIRECTORY_HEAD.size
    (count,) = integrity.DIRECTORY_HEAD.unpack_from(data, directory + integrity.SEGMENT.size)
    found = []
    for _ in range(count):
        dims = integrity.ENTRY.unpack_from(data, at)[-1]
        found.append(at + 6)  # after the schema ("DV") and the pixel type
        at += integrity.ENTRY.size + dims * integrity.DIMENSION.size
    return found


def test_czi_whose_directory_points_past_its_end_fails_everywhere(tmp_path: Path) -> None:
    path = write_czi(tmp_path / "lying.czi", 3)
    data = bytearray(path.read_bytes())
    struct.pack_into("<q", data, czi_entry_positions(bytes(data))[1], len(data) + 4096)
    path.write_bytes(bytes(data))
    assert_fails_everywhere(path, f"truncated: subblock 1 starts at byte {len(data) + 4096}", tmp_path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_czi_cut_in_its_directory_says_truncated(keep: float, tmp_path: Path) -> None:
    """pylibCZIrw writes the directory last: libCZI's words were 'Not enough data read at offset'."""
    path = cut(write_czi(tmp_path / "whole.czi", 3), tmp_path / "cut.czi", keep)
    assert_fails_everywhere(path, "truncated: the ", tmp_path)


def test_libczi_short_read_in_words() -> None:
    raw = RuntimeError(
        "Not enough data read at offset 2677376 -> requested: 880 bytes, actually got 0 bytes."
    )
    assert describe(raw) == (
        "truncated: the file ends at byte 2677376, inside data that reaches byte 2678256 "
        "(libCZI read 0 of 880 bytes at byte 2677376)"
    )


def test_nd2_whose_chunk_map_points_past_its_end_fails_everywhere(tmp_path: Path) -> None:
    """nd2 reads a frame past the end of the file as zeros: the hash said ok."""
    data = bytearray((BUNDLED / "nd2" / "example-zstack.nd2").read_bytes())
    key = b"ImageDataSeq|3!"
    struct.pack_into("<Q", data, data.rindex(key) + len(key), len(data) + 4096)  # the chunk map entry
    path = tmp_path / "lying.nd2"
    path.write_bytes(bytes(data))
    assert_fails_everywhere(path, "truncated: frame 3 ends at byte", tmp_path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.999])
def test_cut_nd2_fails_everywhere(keep: float, tmp_path: Path) -> None:
    path = cut(BUNDLED / "nd2" / "example-zstack.nd2", tmp_path / "cut.nd2", keep)
    assert_fails_everywhere(path, "not a readable ND2 file", tmp_path)  # its chunk map is at the end


def test_cut_lif_fails_everywhere(tmp_path: Path) -> None:
    from tests.test_dv_lif import write_lif

    whole = write_lif(tmp_path / "whole.lif", "ZYX", (3, 16, 16), np.uint8, lambda i: np.full((16, 16), i))
    assert_fails_everywhere(cut(whole, tmp_path / "cut.lif", 0.9), "truncated LIF file", tmp_path)


@pytest.mark.parametrize(
    "lie",
    [
        ('NumberOfElements="16"', 'NumberOfElements="99"'),  # more columns than the block holds
        ('BytesInc="256"', 'BytesInc="999"'),  # planes spaced wider than the block
    ],
)
def test_lif_whose_xml_places_pixels_beyond_its_block_fails_everywhere(
    lie: tuple[str, str], tmp_path: Path
) -> None:
    """liffile reads a frame where the XML's increments point, unchecked: such a file would hash
    the bytes after its memory block (the next image's, in a real file)."""
    from tests.test_dv_lif import write_lif

    whole = write_lif(tmp_path / "whole.lif", "ZYX", (3, 16, 16), np.uint8, lambda i: np.full((16, 16), i))
    data = whole.read_bytes()
    lying = data.replace(lie[0].encode("utf-16-le"), lie[1].encode("utf-16-le"), 1)
    assert lying != data and len(lying) == len(data)
    path = tmp_path / "lying.lif"
    path.write_bytes(lying)
    assert_fails_everywhere(path, "corrupt: the XML places pixels up to byte", tmp_path)


@pytest.mark.samples
def test_a_lying_lif_image_fails_alone(tmp_path: Path) -> None:
    """In a real file of three images, the first one's XML made to claim 99 x 99 pixels a frame
    (its block holds 64 x 64): that scene fails, the other two hash as before."""
    sample = require_samples() / "lif" / "LeicaLASX_wavelength-sweep_example.lif"
    data = sample.read_bytes()
    old, new = ('NumberOfElements="64"'.encode("utf-16-le"), 'NumberOfElements="99"'.encode("utf-16-le"))
    path = tmp_path / "lying.lif"
    path.write_bytes(data.replace(old, new, 2))  # X and Y of the first image
    first, *others = bioiscc.hash_scenes(path)
    assert first["status"] == "failed"
    assert first["error"].startswith("corrupt: the XML places pixels up to byte 196020 of a memory block")
    assert [r["iscc_code"] for r in others] == [r["iscc_code"] for r in bioiscc.hash_scenes(sample)[1:]]


@pytest.mark.parametrize("keep", [0.3, 0.999])
def test_cut_dv_fails_everywhere(keep: float, tmp_path: Path) -> None:
    assert_fails_everywhere(cut(BUNDLED / "dv" / "toxo.dv", tmp_path / "cut.dv", keep), "truncated", tmp_path)


@pytest.mark.parametrize("keep", [0.4, 0.999])
def test_cut_ome_tiff_fails_everywhere(keep: float, tmp_path: Path, vectors_dir: Path) -> None:
    path = cut(vectors_dir / "img5d_u16.ome.tif", tmp_path / "cut.ome.tif", keep)
    assert_fails_everywhere(path, "TIFF", tmp_path)


def test_zarr_chunk_cut_is_found_when_decoded(tmp_path: Path, vectors_dir: Path) -> None:
    """Decided: walk does not decode chunks (it stays cheap); hash and a thumb that decodes the chunk fail."""
    store = shutil.copytree(vectors_dir / "img5d_v04.ome.zarr", tmp_path / "cut.ome.zarr")
    chunks = sorted(p for p in store.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert chunks
    for chunk in chunks:  # every chunk of every level cut: the thumbnail's plane is among them
        chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 3])
    assert invoke("walk", store, tmp_path / "walk.json").exit_code == 0
    for command in ("hash", "thumb"):
        out = tmp_path / command / "out"
        out.parent.mkdir()
        result = invoke(command, store, out)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.stderr
        assert str(store) in result.stderr and "cannot" in result.stderr
        assert not out.exists() or outputs(out) == []


# --- lying headers -----------------------------------------------------------------------------------


def lying_tiff(path: Path, compression: str | None) -> Path:
    """16 x 16 pixels stored, 100,000 x 100,000 declared (no tifffile shape description to betray it)."""
    import tifffile

    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    tifffile.imwrite(path, pixels, compression=compression, rowsperstrip=16, metadata=None)
    with tifffile.TiffFile(path, mode="r+b") as tiff:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tiff.pages[0].tags[tag].overwrite(100_000)
    return path


@pytest.mark.parametrize("compression", [None, "zlib", "zstd"])
def test_tiff_claiming_enormous_dimensions_is_refused(compression: str | None, tmp_path: Path) -> None:
    path = lying_tiff(tmp_path / "lying.tif", compression)
    assert_fails_everywhere(path, "corrupt: page 0 declares 10000000000 bytes of pixels in", tmp_path)
    code, stderr, peak_mb, _ = peak_run(tmp_path, "hash", str(path))
    assert code == 1 and "corrupt: page 0" in stderr and peak_mb < BOUNDED_MB, (stderr, peak_mb)


@pytest.mark.parametrize("planes", [10_000, 300_000_000])
def test_ome_tiff_claiming_more_planes_than_it_has_is_refused(planes: int, tmp_path: Path) -> None:
    """tifffile listed every missing plane first: 3 x 10^8 of them took 4.6 GB and 33 s."""
    import tifffile

    path = tmp_path / "lying.ome.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), metadata={"axes": "YX"}, ome=True)
    with tifffile.TiffFile(path, mode="r+b") as tiff:
        xml = tiff.ome_metadata.replace('SizeZ="1"', f'SizeZ="{planes}"')
        tiff.pages[0].tags["ImageDescription"].overwrite(xml.encode())
    cause = f"corrupt: its OME metadata declares {planes} planes, the file holds 1 images"
    assert_fails_everywhere(path, cause, tmp_path)
    code, stderr, peak_mb, seconds = peak_run(tmp_path, "walk", str(path))
    assert code == 1 and cause in stderr and peak_mb < BOUNDED_MB and seconds < 30, (stderr, peak_mb)


def test_dv_claiming_enormous_dimensions_is_refused(tmp_path: Path) -> None:
    data = bytearray((BUNDLED / "dv" / "toxo.dv").read_bytes())
    struct.pack_into("<3i", data, 0, 100_000, 100_000, 10_000)  # nx, ny, sections
    path = tmp_path / "lying.dv"
    path.write_bytes(bytes(data))
    assert_fails_everywhere(path, "truncated or corrupt DV file", tmp_path)
    code, stderr, peak_mb, _ = peak_run(tmp_path, "hash", str(path))
    assert code == 1 and peak_mb < BOUNDED_MB, (stderr, peak_mb)


def ome_zarr(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], zarr_format: int = 3) -> object:
    """An OME-Zarr image (z, y, x) with no chunk written yet; returns its level-0 array."""
    import zarr

    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    array = group.create_array("0", shape=shape, chunks=chunks, dtype="uint8", fill_value=0)
    multiscales = [
        {
            "axes": [{"name": n, "type": "space"} for n in "zyx"],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}],
        }
    ]
    if zarr_format == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    else:
        group.attrs["multiscales"] = [{"version": "0.4", **multiscales[0]}]
    return array


def test_zarr_claiming_enormous_dimensions_is_refused_at_once(tmp_path: Path) -> None:
    """10^4 x 10^5 x 10^5 declared, nothing stored: refused by the plane limit, in bounded memory."""
    store = tmp_path / "lying.ome.zarr"
    ome_zarr(store, (10_000, 100_000, 100_000), (1, 1024, 1024))
    for command in ("walk", "hash", "thumb"):
        code, stderr, peak_mb, seconds = peak_run(tmp_path, command, str(store), "-o", str(tmp_path / "o"))
        assert code == 1 and len(stderr.splitlines()) == 1, stderr
        assert f"{store}: scene 0: too large: a plane of 10000000000 bytes" in stderr
        assert "BIOISCC_MAX_PLANE_MB" in stderr
        assert peak_mb < BOUNDED_MB and seconds < 30, (command, peak_mb, seconds)
    assert not (tmp_path / "o").exists()


def test_sparse_zarr_over_the_scene_limit_is_refused(tmp_path: Path) -> None:
    """Missing chunks are the fill value, which is hashed like stored pixels: the scene limit caps it."""
    store = tmp_path / "sparse.ome.zarr"
    ome_zarr(store, (300, 2048, 2048), (1, 2048, 2048))  # 1.2 GB declared, nothing stored
    code, stderr, _, seconds = peak_run(tmp_path, "hash", str(store), env={"BIOISCC_MAX_SCENE_GB": "1"})
    assert code == 1 and "too large: 1258291200 bytes of pixels in 300 planes" in stderr, stderr
    assert "BIOISCC_MAX_SCENE_GB" in stderr and seconds < 30


@pytest.mark.parametrize("chunk", [64, 8])
def test_sparse_zarr_hashes_as_its_fill_value(chunk: int, tmp_path: Path) -> None:
    """Within the limits a store with missing chunks hashes as if they held the fill value (zeros)."""
    sparse = ome_zarr(tmp_path / "sparse.ome.zarr", (8, 64, 64), (1, chunk, chunk))
    dense = ome_zarr(tmp_path / "dense.ome.zarr", (8, 64, 64), (8, 64, 64))
    pixels = np.zeros((8, 64, 64), np.uint8)
    pixels[3] = np.arange(64 * 64, dtype=np.uint64).reshape(64, 64) % 251
    sparse[3] = pixels[3]  # one plane of eight stored
    dense[:] = pixels
    codes = []
    for store in ("sparse", "dense"):
        out = tmp_path / f"{store}.jsonl"
        assert invoke("hash", tmp_path / f"{store}.ome.zarr", out).exit_code == 0
        codes.append(json_lines(out.read_text())[0]["iscc_code"])
    assert codes[0] == codes[1]


def test_missing_zarr_chunks_are_not_asked_of_zarr(tmp_path: Path) -> None:
    """What the store holds is listed once; reads of missing chunks never reach zarr."""
    from bioiscc.sources.sparse import SparseArray, sparse_view

    array = ome_zarr(tmp_path / "sparse.ome.zarr", (4, 64, 64), (1, 16, 16))
    array[1, :16, :16] = 9  # one chunk of 64 stored
    view = sparse_view(array)
    assert isinstance(view, SparseArray) and len(view.stored) == 1

    class Refusing:
        def __getattr__(self, name: str) -> object:
            return getattr(array, name)

        def __getitem__(self, selection: object) -> object:
            raise AssertionError(f"zarr asked for {selection}")

    view.array = Refusing()
    assert not view[0, :, :].any() and view[2:4, 10:40, :].shape == (2, 30, 64)
    with pytest.raises(AssertionError):
        view[1, :16, :]  # a stored chunk: read through zarr
    dense = ome_zarr(tmp_path / "dense.ome.zarr", (2, 8, 8), (1, 8, 8))
    dense[:] = 1
    assert sparse_view(dense) is dense


# --- decompression bombs -----------------------------------------------------------------------------

#: what a bomb claims to inflate to (kept moderate so that a regression is seen, not fatal)
BOMB_BYTES = 512 << 20


def zlib_bomb(gzip: bool = False) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | (16 if gzip else 0))
    block = bytes(1 << 24)
    return b"".join([compressor.compress(block) for _ in range(BOMB_BYTES >> 24)] + [compressor.flush()])


def zstd_bomb() -> bytes:
    imagecodecs = pytest.importorskip("imagecodecs")
    return bytes(imagecodecs.zstd_encode(np.zeros(BOMB_BYTES, np.uint8), level=3))


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_tiff_tile_bomb_fails_in_bounded_memory(compression: str, tmp_path: Path) -> None:
    """A 64 KiB tile whose stream inflates to 512 MiB: tifffile decodes into the tile's buffer."""
    import tifffile

    path = tmp_path / "bomb.tif"
    tifffile.imwrite(
        path, np.zeros((512, 512), np.uint8), tile=(256, 256), compression=compression, metadata=None
    )
    payload = zlib_bomb() if compression == "zlib" else zstd_bomb()
    end = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(payload)
    with tifffile.TiffFile(path, mode="r+b") as tiff:
        page = tiff.pages[0]
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)
        offsets[0], counts[0] = end, len(payload)
        page.tags["TileOffsets"].overwrite(offsets)
        page.tags["TileByteCounts"].overwrite(counts)
    code, stderr, peak_mb, _ = peak_run(tmp_path, "hash", str(path), "-o", str(tmp_path / "out.json"))
    assert code == 1 and len(stderr.splitlines()) == 1, stderr
    assert f"{path}: scene 0: page 0: corrupt: compressed data inflates beyond the size its header" in stderr
    assert peak_mb < BOUNDED_MB, peak_mb
    assert not (tmp_path / "out.json").exists()


def test_czi_zstd_subblock_bomb_fails_in_bounded_memory(tmp_path: Path) -> None:
    """libCZI inflated a zstd subblock whole, as large as its frame said, and the hash said ok."""
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    path = tmp_path / "bomb.czi"
    with pyczi.create_czi(str(path), exist_ok=True, compression_options="zstd0:ExplicitLevel=1") as czi:
        for z in range(2):
            czi.write(data=np.full((256, 256, 1), z, np.uint16), plane={"T": 0, "Z": z, "C": 0}, scene=0)
    data = bytearray(path.read_bytes())
    first = data.index(b"ZISRAWSUBBLOCK")  # subblock 0: its sizes, then its 256-byte head, metadata
    metadata, _, _ = integrity.SUBBLOCK_SIZES.unpack_from(data, first + integrity.SEGMENT.size)
    head = bytearray(data[first : first + integrity.SEGMENT.size + integrity.SUBBLOCK_HEAD + metadata])
    bomb = zstd_bomb()
    integrity.SUBBLOCK_SIZES.pack_into(head, integrity.SEGMENT.size, metadata, 0, len(bomb))
    length = len(head) - integrity.SEGMENT.size + len(bomb)
    struct.pack_into("<qq", head, 16, length, length)
    struct.pack_into("<q", data, czi_entry_positions(bytes(data))[0], len(data))  # a copy at the end
    path.write_bytes(bytes(data + head + bomb))
    code, stderr, peak_mb, _ = peak_run(tmp_path, "hash", str(path), "-o", str(tmp_path / "out.json"))
    assert code == 1 and len(stderr.splitlines()) == 1, stderr
    assert (
        f"{path}: scene 0: corrupt: subblock 0 inflates to {BOMB_BYTES} bytes, more than its 131072" in stderr
    )
    assert peak_mb < BOUNDED_MB, peak_mb
    assert not (tmp_path / "out.json").exists()


def lossless_nd2(path: Path) -> tuple[Path, dict[int, int]]:
    """The bundled ND2 with its frames stored zlib-compressed ("lossless"), and its frame offsets."""
    import nd2

    source = BUNDLED / "nd2" / "example-zstack.nd2"
    data = bytearray(source.read_bytes())
    flag = "eCompression".encode("utf-16-le") + bytes(2)  # 2: none, 0: lossless
    struct.pack_into("<I", data, data.index(flag) + len(flag), 0)
    with nd2.ND2File(source) as stored:
        offsets = dict(stored._rdr._frame_offsets)
        for frame, offset in offsets.items():
            packed = zlib.compress(np.asarray(stored.read_frame(frame)).tobytes())
            data[offset : offset + len(packed)] = packed
    path.write_bytes(bytes(data))
    return path, offsets


def test_nd2_frame_bomb_is_an_error(tmp_path: Path) -> None:
    """nd2 inflated a compressed frame whole and kept its first bytes: the hash said ok."""
    path, offsets = lossless_nd2(tmp_path / "lossless.nd2")
    plain = invoke("hash", BUNDLED / "nd2" / "example-zstack.nd2", tmp_path / "plain.jsonl")
    packed = invoke("hash", path, tmp_path / "packed.jsonl")
    assert plain.exit_code == packed.exit_code == 0, packed.stderr
    codes = [json_lines((tmp_path / f"{n}.jsonl").read_text())[0]["iscc_code"] for n in ("plain", "packed")]
    assert codes[0] == codes[1]  # the capped inflation reads the same pixels
    data = bytearray(path.read_bytes())
    bomb = zlib.compress(bytes(30 << 20), 9)  # fits the frame's 32 KiB chunk, inflates to 30 MiB
    data[offsets[4] : offsets[4] + len(bomb)] = bomb
    path.write_bytes(bytes(data))
    out = tmp_path / "bomb.jsonl"
    result = invoke("hash", path, out)
    assert result.exit_code == 1 and not out.exists(), result.stderr
    assert result.stderr.splitlines() == [
        f"bioiscc: error: {path}: scene 0: frame 4: corrupt: frame 4 does not inflate to its 32768 bytes"
    ]


ZARR_BOMBS: dict[str, tuple[int, str, Callable[[], bytes]]] = {
    "v2 zlib": (2, "zlib", zlib_bomb),
    "v2 gzip": (2, "gzip", lambda: zlib_bomb(gzip=True)),
    "v2 zstd": (2, "zstd", zstd_bomb),
    "v3 zstd": (3, "zstd", zstd_bomb),
    "v3 gzip": (3, "gzip", lambda: zlib_bomb(gzip=True)),
}


@pytest.mark.parametrize("case", sorted(ZARR_BOMBS))
def test_zarr_chunk_bomb_fails_in_bounded_memory(case: str, tmp_path: Path) -> None:
    """A 64 KiB chunk whose compressed stream inflates to 512 MiB (zarr inflated it whole)."""
    import numcodecs
    import zarr

    zarr_format, codec, bomb = ZARR_BOMBS[case]
    store = tmp_path / "bomb.ome.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
    if zarr_format == 2:
        compressor = {"zlib": numcodecs.Zlib(), "gzip": numcodecs.GZip(), "zstd": numcodecs.Zstd()}[codec]
        group.attrs["multiscales"] = [_multiscales("0.4")]
    else:
        compressor = zarr.codecs.ZstdCodec() if codec == "zstd" else zarr.codecs.GzipCodec()
        group.attrs["ome"] = {"version": "0.5", "multiscales": [_multiscales(None)]}
    array = group.create_array(
        "0", shape=(2, 256, 256), chunks=(1, 256, 256), dtype="uint8", compressors=compressor
    )
    array[:] = 1
    chunk = next(
        p
        for p in sorted((store / "0").rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name != "zarr.json"
    )
    chunk.write_bytes(bomb())
    code, stderr, peak_mb, _ = peak_run(tmp_path, "hash", str(store), "-o", str(tmp_path / "out.json"))
    assert code == 1 and len(stderr.splitlines()) == 1, stderr
    assert f"corrupt: a {codec} chunk " in stderr and "the chunk's 65536 bytes" in stderr
    assert peak_mb < BOUNDED_MB, peak_mb
    assert not (tmp_path / "out.json").exists()


def _multiscales(version: str | None) -> dict:
    found: dict = {
        "axes": [{"name": n, "type": "space"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}],
    }
    return {"version": version, **found} if version else found


def compressor(case: str) -> tuple[int, object]:
    """(Zarr format, compressor) of a case such as "v2 zlib"; "none": v3 without compression."""
    import numcodecs
    import zarr

    if case == "none":
        return 3, None
    version, name = case.split()
    if version == "v2":
        return 2, {
            "zlib": numcodecs.Zlib,
            "gzip": numcodecs.GZip,
            "zstd": numcodecs.Zstd,
            "blosc": numcodecs.Blosc,
            "lz4": numcodecs.LZ4,
        }[name]()
    return 3, {"zstd": zarr.codecs.ZstdCodec, "gzip": zarr.codecs.GzipCodec, "blosc": zarr.codecs.BloscCodec}[
        name
    ]()


CASES = ("none", "v2 zlib", "v2 gzip", "v2 zstd", "v2 blosc", "v2 lz4", "v3 zstd", "v3 gzip", "v3 blosc")


def test_capped_decoding_reads_every_compressor_as_before(tmp_path: Path) -> None:
    """Whole chunks and edge chunks of every compressor decode to the same pixels as no compression."""
    import zarr

    pixels = (np.arange(3 * 50 * 70, dtype=np.uint32).reshape(3, 50, 70) * 2654435761 % 65521).astype(">u2")
    codes = set()
    for case in CASES:
        store = tmp_path / f"{case.replace(' ', '-')}.ome.zarr"
        zarr_format, codec = compressor(case)
        group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
        array = group.create_array(
            "0", shape=pixels.shape, chunks=(2, 32, 32), dtype=pixels.dtype, compressors=codec
        )
        array[:] = pixels
        multiscales = _multiscales("0.4" if zarr_format == 2 else None)
        if zarr_format == 2:
            group.attrs["multiscales"] = [multiscales]
        else:
            group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscales]}
        out = tmp_path / f"{store.name}.jsonl"
        result = invoke("hash", store, out)
        assert result.exit_code == 0, (case, result.stderr)
        codes.add(json_lines(out.read_text())[0]["iscc_code"])
    assert len(codes) == 1
