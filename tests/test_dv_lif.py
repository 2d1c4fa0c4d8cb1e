"""DV (mrc header, positioned plane reads) and LIF (liffile, one frame per read).

Synthetic files are written here: DV with mrc's own writer (`mrc.Mrc2`), LIF with the small writer
below (the LIF container: an XML header and one memory block per image, as liffile reads them). The
real samples are compared with whole-array reads (mrc's memory map, liffile's `asarray`), with the
codes they had before (bioio-dv; bioio-lif for the mosaic) and with Bio-Formats.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from iscc_sum import IsccSumProcessor

import bioiscc
from bioiscc import records
from bioiscc.sources.lif import PlaneLayout
from tests.conftest import json_lines, run_cli
from tests.test_samples import lif_reference, reference_code

mrc = pytest.importorskip("mrc")
liffile = pytest.importorskip("liffile")

# ---- writers -------------------------------------------------------------------------------------

#: mrc's DVFile reads ImgSequence 0, 1, 2 as these orders of the planes (outermost first)
DV_SEQUENCES = {0: "CTZ", 1: "TZC", 2: "TCZ"}


def write_dv(path: Path, data: np.ndarray, sequence: int = 0) -> Path:
    """`data` in the file's order (DV_SEQUENCES[sequence] + "YX"), written plane by plane."""
    order = DV_SEQUENCES[sequence]
    sizes = dict(zip(order, data.shape[:3], strict=True))
    planes = data.reshape(-1, *data.shape[-2:])
    writer = mrc.Mrc2(str(path), mode="w")
    writer.initHdrForArr(np.broadcast_to(np.zeros((), data.dtype), planes.shape), "z")
    writer.hdr.NumWaves, writer.hdr.NumTimes, writer.hdr.ImgSequence = sizes["C"], sizes["T"], sequence
    writer.writeHeader()
    for plane in planes:
        writer.writeSec(np.ascontiguousarray(plane))
    writer.close()
    return path


def pattern(index: int, side: int) -> np.ndarray:
    """A cheap, non-constant uint16 plane, different for each index."""
    pixels = np.arange(side * side, dtype=np.uint32).reshape(side, side)
    return ((pixels * 2654435761 >> 16) ^ (index * 40503)).astype(np.uint16)


def write_big_dv(path: Path, planes: int, side: int = 1024) -> Path:
    """A uint16 DV of `planes` Z planes (side x side), written one plane at a time."""
    writer = mrc.Mrc2(str(path), mode="w")
    writer.initHdrForArr(np.broadcast_to(np.zeros((), np.uint16), (planes, side, side)), "z")
    writer.writeHeader()
    for i in range(planes):
        writer.writeSec(pattern(i, side))
    writer.close()
    return path


LIF_DIM_ID = {"X": 1, "Y": 2, "Z": 3, "T": 4, "λ": 5, "A": 6, "Λ": 9}


def write_lif(
    path: Path, dims: str, shape: tuple[int, ...], dtype: Any, frame: Callable[[int], np.ndarray]
) -> Path:
    """A version-2 LIF with one image `dims` (stored order, outermost first; C is the channels).

    `frame(i)` gives the i-th stored frame (the two innermost dimensions), in stored order.
    """
    dtype = np.dtype(dtype)
    sizes = dict(zip(dims, shape, strict=True))
    increments: dict[str, int] = {}
    step = dtype.itemsize
    for d in reversed(dims):
        increments[d] = step
        step *= sizes[d]
    total = step
    channels = "".join(
        f'<ChannelDescription DataType="0" ChannelTag="0" Resolution="{8 * dtype.itemsize}" '
        'NameOfMeasuredQuantity="" Min="0" Max="255" Unit="" LUTName="Gray" IsLUTInverted="0" '
        f'BytesInc="{c * increments.get("C", 0)}" BitInc="0"/>'
        for c in range(sizes.get("C", 1))
    )
    dimensions = "".join(
        f'<DimensionDescription DimID="{LIF_DIM_ID[d]}" NumberOfElements="{sizes[d]}" Origin="0" '
        f'Length="1e-05" Unit="m" BitInc="0" BytesInc="{increments[d]}"/>'
        for d in reversed(dims)
        if d != "C"
    )
    xml = (
        '<LMSDataContainerHeader Version="2"><Element Name="root"><Data><Experiment/></Data>'
        '<Memory Size="0" MemoryBlockID="MemBlock_0"/><Children>'
        f'<Element Name="synthetic"><Data><Image><ImageDescription><Channels>{channels}</Channels>'
        f"<Dimensions>{dimensions}</Dimensions></ImageDescription></Image></Data>"
        f'<Memory Size="{total}" MemoryBlockID="MemBlock_1"/><Children/></Element>'
        "</Children></Element></LMSDataContainerHeader>"
    ).encode("utf-16-le")
    frame_bytes = sizes[dims[-1]] * sizes[dims[-2]] * dtype.itemsize
    with path.open("wb") as handle:
        handle.write(struct.pack("<IIBI", 0x70, len(xml) + 5, 0x2A, len(xml) // 2) + xml)
        for block, size in (("MemBlock_0", 0), ("MemBlock_1", total)):
            name = block.encode("utf-16-le")
            handle.write(struct.pack("<IIBQBI", 0x70, 0, 0x2A, size, 0x2A, len(name) // 2) + name)
            for i in range(size // frame_bytes):
                handle.write(np.ascontiguousarray(frame(i), dtype=dtype).tobytes())
    return path


def frames_of(data: np.ndarray) -> Callable[[int], np.ndarray]:
    flat = data.reshape(-1, *data.shape[-2:])
    return lambda i: flat[i]


# ---- independent references ----------------------------------------------------------------------


def dv_memmap_codes(path: Path) -> list[str]:
    """mrc's memory map of the whole file, arranged in IMAGEWALK order."""
    dv = mrc.DVFile(str(path))
    try:
        return [reference_code(np.asarray(dv.data), "".join(dv.axes))]
    finally:
        dv.close()


def bioio_plugin_codes(path: Path, plugin: str) -> list[str]:
    """The codes through a bioio plugin (bioio-dv, bioio-lif), the path bioiscc took before."""
    from bioiscc.api import hash_scene
    from bioiscc.sources.bioio_file import BioioSource

    with BioioSource(str(path), path, plugin) as source:
        return [hash_scene(source, info)["iscc_code"] for info in source.scenes()]


def datahash(stream: bytes) -> str:
    processor = IsccSumProcessor()
    processor.update(stream)
    return "1e20" + processor.result(wide=True, add_units=True).datahash[4:]


def codes(path: Path, **kwargs: Any) -> list[str]:
    got = bioiscc.hash_scenes(path, **kwargs)
    for record in got:
        records.validate(record)
        assert record["status"] == "ok", record["error"]
    return [r["iscc_code"] for r in got]


# ---- DV ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sequence", sorted(DV_SEQUENCES))
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "complex64"])
def test_dv_planes_in_every_sequence_order(sequence: int, dtype: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(sequence)
    data = (rng.normal(size=(2, 3, 4, 5, 7)) * 1000).astype(dtype)  # 2 x 3 x 4 planes, in file order
    if dtype == "float32":
        data.reshape(-1)[:3] = np.array([0x7FC00123, 0x80000000, 0x7F800000], "<u4").view("<f4")
    path = write_dv(tmp_path / "synthetic.dv", data, sequence)
    (record,) = bioiscc.hash_scenes(path)
    records.validate(record)
    order = DV_SEQUENCES[sequence]
    sizes = dict(zip(order, data.shape[:3], strict=True))
    assert record["format"] == "dv" and record["reader"] == f"mrc {mrc.__version__}"
    assert record["dims"] == {**{d: sizes[d] for d in "TCZ"}, "Y": 5, "X": 7, "S": 1}
    assert record["iscc_code"] == reference_code(data, order + "YX") == dv_memmap_codes(path)[0]


def test_dv_equals_the_bioio_dv_path(tmp_path: Path) -> None:
    """The codes bioiscc gave through bioio-dv, one plane per get_image_data call, before."""
    pytest.importorskip("bioio_dv")
    data = np.random.default_rng(5).integers(0, 60000, (2, 3, 4, 6, 5), dtype=np.uint16)
    path = write_dv(tmp_path / "x.dv", data, 1)
    assert codes(path) == bioio_plugin_codes(path, "dv")


def test_truncated_dv_is_an_error_not_a_smaller_image(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 8 * 8, dtype=np.uint16).reshape(1, 3, 4, 8, 8)
    whole = write_dv(tmp_path / "whole.dv", data).read_bytes()
    plane = 8 * 8 * 2
    for keep in (len(whole) - 1, len(whole) - plane, 1024 + plane, 1000, 200):
        path = tmp_path / f"cut{keep}.dv"
        path.write_bytes(whole[:keep])
        result = run_cli("hash", str(path))
        assert result.returncode == 1 and result.stdout == "", keep
        assert result.stderr.count("\n") == 1 and str(path) in result.stderr
        assert "truncated" in result.stderr


def test_dv_manifest_reopens_the_same_way(tmp_path: Path) -> None:
    path = write_dv(tmp_path / "x.dv", np.ones((1, 2, 2, 4, 4), np.uint8))
    walked = tmp_path / "walk.json"
    run_cli("walk", str(path), "-o", str(walked), check=True)
    assert json.loads(walked.read_text())["source_kind"] == "bioio"
    again = run_cli("hash", "--manifest", str(walked), check=True)
    assert [r["iscc_code"] for r in json_lines(again.stdout)] == codes(path)


PEAK_RSS = """
import resource, sys
import bioiscc
bioiscc.hash_scenes(sys.argv[1])  # imports, buffers and threads in place
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
record = bioiscc.hash_scenes(sys.argv[2])[0]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(record["status"], record["bytes"], (after - before) * 1024)
"""


def peak_growth(small: Path, large: Path) -> tuple[int, int]:
    """Bytes of the large file's scene, and how much the peak RSS grew while hashing it."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(small), str(large)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    status, scene_bytes, growth = done.stdout.split()
    assert status == "ok"
    return int(scene_bytes), int(growth)


#: the peak RSS may grow by this much while a 192 MiB scene of 2 MiB planes is hashed: a few
#: planes (the one read, its big-endian copy, the ones read ahead), never the scene
GROWTH_LIMIT = 40 * 1024 * 1024


def test_dv_memory_is_bounded_by_planes(tmp_path: Path) -> None:
    small = write_big_dv(tmp_path / "small.dv", 2, side=64)
    large = write_big_dv(tmp_path / "large.dv", 96)
    scene_bytes, growth = peak_growth(small, large)
    assert scene_bytes == 96 * 2 * 1024 * 1024
    assert growth < GROWTH_LIMIT, f"peak RSS grew by {growth / 2**20:.0f} MiB"


# ---- LIF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dims", "shape", "walked", "extra"),
    [
        ("TCZYX", (2, 3, 4, 5, 6), {"T": 2, "C": 3, "Z": 4, "Y": 5, "X": 6}, {}),
        ("CZYX", (2, 3, 5, 6), {"C": 2, "Z": 3, "Y": 5, "X": 6}, {}),
        ("TλZYX", (2, 3, 4, 5, 6), {"T": 2, "Z": 4, "Y": 5, "X": 6}, {"λ": 3}),
        ("ΛYX", (4, 5, 6), {"Y": 5, "X": 6}, {"Λ": 4}),
        # XZ scans: the (Z, X) frame is the plane; a Y series of them walks as Z
        ("TCZX", (3, 2, 5, 6), {"T": 3, "C": 2, "Y": 5, "X": 6}, {}),
        ("YCZX", (4, 2, 5, 6), {"Z": 4, "C": 2, "Y": 5, "X": 6}, {}),
        ("ZX", (5, 6), {"Y": 5, "X": 6}, {}),
    ],
)
def test_lif_layouts(dims: str, shape: tuple[int, ...], walked: dict, extra: dict, tmp_path: Path) -> None:
    data = np.random.default_rng(len(dims)).integers(0, 65535, shape, dtype=np.uint16)
    path = write_lif(tmp_path / "synthetic.lif", dims, shape, np.uint16, frames_of(data))
    (record,) = bioiscc.hash_scenes(path)
    records.validate(record)
    assert record["format"] == "lif" and record["reader"] == f"liffile {liffile.__version__}"
    assert record["scene"]["name"] == "synthetic"
    assert record["dims"] == {d: walked.get(d, 1) for d in "TCZYXS"} and record["extra_dims"] == extra
    assert [record["iscc_code"]] == lif_reference(path)


def test_lif_equals_the_bioio_lif_path(tmp_path: Path) -> None:
    """For what bioio-lif reads (T, C, Z, Y, X), the codes bioiscc gave through it before."""
    pytest.importorskip("bioio_lif")
    data = np.random.default_rng(9).integers(0, 255, (2, 3, 4, 5, 6), dtype=np.uint8)
    path = write_lif(tmp_path / "x.lif", "TCZYX", data.shape, np.uint8, frames_of(data))
    assert codes(path) == bioio_plugin_codes(path, "lif")


def test_lif_memory_is_bounded_by_planes(tmp_path: Path) -> None:
    large = write_lif(tmp_path / "large.lif", "ZYX", (96, 1024, 1024), np.uint16, lambda i: pattern(i, 1024))
    small = write_lif(tmp_path / "small.lif", "ZYX", (2, 8, 8), np.uint16, lambda i: pattern(i, 8))
    scene_bytes, growth = peak_growth(small, large)
    assert scene_bytes == 96 * 2 * 1024 * 1024
    assert growth < GROWTH_LIMIT, f"peak RSS grew by {growth / 2**20:.0f} MiB"


def test_truncated_lif_is_an_error(tmp_path: Path) -> None:
    data = np.zeros((3, 8, 8), np.uint8)
    whole = write_lif(tmp_path / "whole.lif", "ZYX", data.shape, np.uint8, frames_of(data)).read_bytes()
    for keep in (len(whole) - 1, len(whole) - 64, len(whole) // 2, 40):
        path = tmp_path / f"cut{keep}.lif"
        path.write_bytes(whole[:keep])
        result = run_cli("hash", str(path))
        assert result.returncode == 1 and result.stdout == "", keep
        assert result.stderr.count("\n") == 1 and str(path) in result.stderr


def test_plane_layout_names() -> None:
    layout = PlaneLayout(["Y", "C", "Z", "X"], {"Y": 23, "C": 2, "Z": 128, "X": 64})
    assert layout.sizes == {"Z": 23, "C": 2, "Y": 128, "X": 64} and layout.extra == {}
    assert layout.plane == ("Z", "X") and layout.outer == {"Z": "Y", "C": "C"}
    rgb = PlaneLayout(["T", "λ", "Y", "X", "S"], {"T": 2, "λ": 3, "Y": 4, "X": 5, "S": 3})
    assert rgb.plane == ("Y", "X", "S") and rgb.extra == {"λ": 3}
    line = PlaneLayout(["C", "X"], {"C": 2, "X": 9})
    assert line.plane == ("X",) and line.sizes == {"C": 2, "X": 9}


# ---- the real samples ----------------------------------------------------------------------------

#: the codes of the samples readable before this reader change (bioio-dv, bioio-lif 2.0.1)
UNCHANGED = {
    "dv/toxo.dv": ["ISCC:K4AHP3I73Z4OV63WZYCUG6RI5FGVWQDT5ZPDIJID4HZ5QIPECE3NXKY"],
    "lif/PR2729_frameOrderCombinedScanTypes.lif": [
        "ISCC:K4ABPCITXCOHRXA4YU3BLOLTCGOEOSBC6YZM35PW2DPUT7LDOB4YNXY"
    ],
}

#: datahashes Bio-Formats 7.3.1 gives for the two LIFs bioio-lif 2.0.1 cannot read (measured
#: 2026-11-25 with `bioiscc hash --reader bioformats`); it shows their wavelengths as T
BIOFORMATS_DATAHASHES = {
    "lif/LeicaLASX_wavelength-sweep_example.lif": [
        "1e20e2a28cdf85b66ca04f6c7bc3c3feb68acd716dfc60efcfd9990e4fde7c2c2af7",
        "1e20c6b26c559512781f47bb0a59faf0f4dfcc3f6c9bf40f1efbe8fe46dde857f3b2",
        "1e2020aff690d73f60d4acb464a422c38fe90ceea9d3bdcf4287583411cb579ecfe7",
    ],
    "lif/testdata_2channel_xz.lif": [
        "1e206d9d88ea12c7141b10a6487ab60df2405eaf14df50d28468141a73446eecf236",
        "1e20eeeebe18e0a6d3c9a5e7dbdbb239648a41c452edaef1f2e4fd86679c5973f767",
        "1e202460884728c56dd421223010dcdd77b2469d1b455a87751ed3936cd557a79148",
    ],
}
#: Bio-Formats' datahash of toxo.dv, whose planes it shows flipped in Y (same date and version)
TOXO_BIOFORMATS_DATAHASH = "1e2002adaa5e659a467e5baf3e93e5210132b86dc262d119daaf142ac0864e34f887"


@pytest.mark.samples
@pytest.mark.parametrize("name", sorted(UNCHANGED))
def test_samples_readable_before_keep_their_codes(name: str, samples: Path) -> None:
    assert codes(samples / name) == UNCHANGED[name]


def test_bundled_dv_keeps_its_code() -> None:
    path = Path(__file__).resolve().parent.parent / "resources" / "sample-data" / "dv" / "toxo.dv"
    assert codes(path) == UNCHANGED["dv/toxo.dv"] == dv_memmap_codes(path)


@pytest.mark.samples
def test_toxo_is_bioformats_flipped_in_y(samples: Path) -> None:
    dv = mrc.DVFile(str(samples / "dv/toxo.dv"))
    try:
        data = np.asarray(dv.data)  # C, T, Z, Y, X
        stream = np.ascontiguousarray(np.transpose(data, (2, 0, 1, 3, 4))[..., ::-1, :]).astype(">u2")
    finally:
        dv.close()
    assert datahash(stream.tobytes()) == TOXO_BIOFORMATS_DATAHASH


@pytest.mark.samples
@pytest.mark.parametrize("name", sorted(BIOFORMATS_DATAHASHES))
def test_lifs_bioio_lif_cannot_read_equal_bioformats(name: str, samples: Path) -> None:
    got = bioiscc.hash_scenes(samples / name)
    for record in got:
        records.validate(record)
        assert record["status"] == "ok" and record["reader"].startswith("liffile ")
    assert [r["datahash"] for r in got] == BIOFORMATS_DATAHASHES[name]
    assert [r["iscc_code"] for r in got] == lif_reference(samples / name)


@pytest.mark.samples
def test_lif_wavelengths_and_xz_frames(samples: Path) -> None:
    sweep = bioiscc.hash_scenes(samples / "lif/LeicaLASX_wavelength-sweep_example.lif")
    assert [r["extra_dims"] for r in sweep] == [{"λ": 20}, {"Λ": 15}, {"λ": 10}]
    assert [r["dims"]["T"] for r in sweep] == [1, 1, 2]
    xz = bioiscc.hash_scenes(samples / "lif/testdata_2channel_xz.lif")
    assert [(r["dims"]["T"], r["dims"]["Z"], r["dims"]["Y"], r["dims"]["X"]) for r in xz] == [
        (20, 1, 128, 128),
        (1, 23, 128, 128),
        (1, 1, 512, 512),
    ]


@pytest.mark.samples
def test_lifs_equal_bioformats_live(samples: Path) -> None:
    """The same comparison, with Bio-Formats run now (skipped where Java or the jar is absent)."""
    from tests.test_bioformats import bioformats_available

    reason = bioformats_available()
    if reason:
        pytest.skip(reason)
    names = sorted(BIOFORMATS_DATAHASHES)
    script = (
        "import json, sys, bioiscc\n"
        "print(json.dumps({n: [r['datahash'] for r in bioiscc.hash_scenes(sys.argv[1] + '/' + n,"
        " reader='bioformats')] for n in sys.argv[2:]}))\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = subprocess.run(
            [sys.executable, "-c", script, str(samples), *names], capture_output=True, text=True, timeout=600
        )
    assert done.returncode == 0, done.stderr
    bioformats = json.loads(done.stdout.splitlines()[-1])
    for name in names:
        assert [r["datahash"] for r in bioiscc.hash_scenes(samples / name)] == bioformats[name]
