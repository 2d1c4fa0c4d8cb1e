"""CZI and ND2 files read without bioio (aicspylibczi, nd2) give the codes of the bioio plugin path.

bioiscc used to read CZI and ND2 files through bioio-czi and bioio-nd2 (`BioioSource`), whose
imports (bioio, dask, xarray, ome-types) took 1.2-2.6 s and 160 MB for a file of any size.
`sources.czi` and `sources.nd2` make the plugins' own library calls directly. The plugin path is
the reference here: every scene's name, geometry, pixel type and code must equal it, on every CZI
and ND2 sample, on the bundled ND2, on synthetic CZIs written with pylibCZIrw, and on synthetic
ND2 experiments (positions, time, Z, RGB, a custom loop) that both paths read through nd2.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest

from bioiscc import api, records
from bioiscc.scene import Source
from bioiscc.sources import open_source
from bioiscc.sources.czi import CziSource, scene_names
from bioiscc.sources.nd2 import Nd2Source
from tests.conftest import REPO, json_lines, require_samples, run_cli, samples_root

BUNDLED_ND2 = REPO / "resources" / "sample-data" / "nd2" / "example-zstack.nd2"
#: its code through bioio-nd2 2.6.0 (nd2 0.12.0), before sources.nd2
BUNDLED_ND2_CODE = "ISCC:K4APJA2RSTESPYRHVJY5AIHEE33IMTI3ZWBL5R4XT7XK5CVUR3FBF3A"
#: what the bioio plugins import and the native path must not
HEAVY = ("dask", "xarray", "bioio", "bioio_base", "ome_types")


def vendor_samples() -> list[str]:
    root = samples_root()
    found = sorted(
        p.relative_to(root).as_posix() for kind in ("czi", "nd2") for p in root.glob(f"{kind}/*.{kind}")
    )
    return found or ["(samples absent)"]


def outcome(source: Source) -> list[dict[str, Any]]:
    """Every scene as the walk lists it (name, dims, extra dims, dtype) and as the hash codes it."""
    rows = []
    for info in source.scenes():
        record = api.hash_scene(source, info)
        rows.append(
            {
                "walk": records.scene_entry(info),
                "status": record["status"],
                "iscc_code": record["iscc_code"],
                "units": record["units"],
                "datahash": record["datahash"],
                "absent_planes": record.get("absent_planes"),
            }
        )
    return rows


def native_outcome(path: Path) -> list[dict[str, Any]]:
    with open_source(str(path)) as source:
        assert isinstance(source, (CziSource, Nd2Source)), type(source)
        return outcome(source)


def plugin_outcome(path: Path) -> list[dict[str, Any]]:
    """The same file through the bioio plugin (bioio-czi or bioio-nd2)."""
    plugin = path.suffix[1:].lower()
    pytest.importorskip(f"bioio_{plugin}")
    from bioiscc.sources.bioio_file import BioioSource

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with BioioSource(str(path), path, plugin) as source:
            return outcome(source)


def assert_same_as_plugin(path: Path) -> list[dict[str, Any]]:
    got = native_outcome(path)
    assert got, f"{path.name}: no scene"
    assert got == plugin_outcome(path)
    return got


# --- the real samples ----------------------------------------------------------------------------


@pytest.mark.samples
@pytest.mark.parametrize("name", vendor_samples())
def test_sample_codes_equal_the_plugin_path(name: str) -> None:
    got = assert_same_as_plugin(require_samples() / name)
    assert all(row["status"] == "ok" for row in got), got


def test_bundled_nd2_keeps_its_code() -> None:
    """In the repository: never skipped, not even without bioio-nd2."""
    (row,) = native_outcome(BUNDLED_ND2)
    assert row["iscc_code"] == BUNDLED_ND2_CODE and row["status"] == "ok"
    assert row["walk"]["name"] == "XYPos:0" and row["walk"]["dims"]["Z"] == 11


def test_bundled_nd2_equals_the_plugin_path() -> None:
    assert_same_as_plugin(BUNDLED_ND2)


@pytest.mark.samples
def test_records_name_the_library_that_read_the_pixels(samples: Path) -> None:
    import aicspylibczi
    import nd2

    for name, reader in (
        ("czi/LSM880_AiryScan.czi", f"aicspylibczi {aicspylibczi.__version__}"),
        ("nd2/example-cerevisiae.nd2", f"nd2 {nd2.__version__}"),
    ):
        walked = json.loads(run_cli("walk", str(samples / name), check=True).stdout)
        hashed = json_lines(run_cli("hash", str(samples / name), check=True).stdout)
        assert walked["reader"] == reader and {r["reader"] for r in hashed} == {reader}
        assert walked["source_kind"] == "bioio"


# --- synthetic CZIs (pylibCZIrw) -----------------------------------------------------------------


def write_czi(
    path: Path,
    planes: dict[str, int],
    shape: tuple[int, int],
    dtype: Any,
    samples: int = 1,
    seed: int = 0,
) -> Path:
    """A CZI of one scene, one tile per plane (pylibCZIrw's writer), pixels random."""
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    rng = np.random.default_rng(seed)
    names = list(planes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pyczi.create_czi(str(path), exist_ok=True) as czi:
            for index in np.ndindex(*planes.values()):
                plane = {"T": 0, **dict(zip(names, (int(i) for i in index), strict=True))}
                if np.dtype(dtype).kind == "f":
                    data = rng.random((*shape, samples)).astype(dtype)
                else:
                    data = rng.integers(0, np.iinfo(dtype).max, (*shape, samples), dtype=dtype)
                czi.write(data=data, plane=plane, location=(0, 0), scene=0)
    return path


SYNTHETIC_CZIS: dict[str, tuple[dict[str, int], tuple[int, int], Any, int]] = {
    "gray16 T2 Z3 C2": ({"T": 2, "Z": 3, "C": 2}, (12, 17), np.uint16, 1),
    "gray8 one row": ({"C": 2}, (1, 23), np.uint8, 1),
    "float32": ({"Z": 2}, (9, 11), np.float32, 1),
    "bgr24": ({"Z": 2}, (9, 11), np.uint8, 3),
    "bgr48 C2": ({"C": 2}, (9, 11), np.uint16, 3),
}


@pytest.mark.parametrize("case", sorted(SYNTHETIC_CZIS))
def test_synthetic_czi_equals_the_plugin_path(case: str, tmp_path: Path) -> None:
    planes, shape, dtype, samples = SYNTHETIC_CZIS[case]
    path = write_czi(tmp_path / "image.czi", planes, shape, dtype, samples)
    (row,) = assert_same_as_plugin(path)
    assert row["status"] == "ok" and row["walk"]["dims"]["S"] == samples
    assert row["walk"]["dtype"] == str(np.dtype(dtype))


def test_bgr_czi_is_walked_in_rgb_order(tmp_path: Path) -> None:
    import aicspylibczi

    path = write_czi(tmp_path / "rgb.czi", {"Z": 1}, (5, 6), np.uint8, samples=3)
    stored, _ = aicspylibczi.CziFile(path).read_image(Z=0)  # B, G, R as stored
    stored = np.asarray(stored).reshape(5, 6, 3)
    with open_source(str(path)) as source:
        (info,) = source.scenes()
        plane = source.open_scene(info).read(0, 0, 0, ())
    np.testing.assert_array_equal(plane, stored[:, :, ::-1])


def scene_xml(scenes: list[tuple[str | None, str | None]]) -> ElementTree.Element:
    """CZI metadata listing scenes (name, shape name; None leaves the attribute or element out)."""
    root = ElementTree.fromstring(
        "<ImageDocument><Metadata><Information><Image><Dimensions><S><Scenes/>"
        "</S></Dimensions></Image></Information></Metadata></ImageDocument>"
    )
    parent = root.find(".//Scenes")
    assert parent is not None
    for name, shape in scenes:
        scene = ElementTree.SubElement(parent, "Scene", {"Name": name} if name is not None else {})
        if shape is not None:
            ElementTree.SubElement(scene, "Shape", {"Name": shape})
    return root


SCENE_CASES: dict[str, tuple[list[tuple[str | None, str | None]], list[dict[str, tuple[int, int]]], bool]] = {
    "none listed": ([], [{"S": (0, 1)}], True),
    "shapes": ([("P1", "A1"), ("P2", "A2")], [{"S": (0, 2)}], True),
    "repeated and unnamed": (
        [("A", None), ("B", None), ("A", None), (None, None), ("A", None), ("B", None), ("W", "B")],
        [{"S": (0, 7)}],
        True,
    ),
    "one of a split scan": ([("A", None), ("B", None), ("C", None)], [{"S": (1, 2)}], True),
    "scenes of different shapes": ([("A", None), ("B", None)], [{"S": (0, 1)}, {"S": (1, 2)}], False),
}


@pytest.mark.parametrize("case", sorted(SCENE_CASES))
def test_czi_scene_names_follow_bioio_czi(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """bioio-czi's own `scenes` (fed the same metadata) against `sources.czi.scene_names`."""
    reader_module = pytest.importorskip("bioio_czi.aicspylibczi_reader.reader")
    listed, dims_shape, consistent = SCENE_CASES[case]
    metadata = scene_xml(listed)
    fake = SimpleNamespace(
        meta=metadata,
        get_dims_shape=lambda: [dict(entry) for entry in dims_shape],
        shape_is_consistent=consistent,
    )

    @contextmanager
    def open_czi(fs: Any, path: str, options: Any = None) -> Iterator[Any]:
        yield fake

    monkeypatch.setattr(reader_module, "open_czi", open_czi)
    reader = SimpleNamespace(_scenes=None, _fs=None, _path="/data/plate.czi", _stream_options=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = list(reader_module.Reader.scenes.fget(reader))
    assert scene_names(metadata, "plate", dims_shape, consistent) == expected


# --- synthetic ND2 experiments -------------------------------------------------------------------


class SyntheticNd2Reader:
    """What nd2.ND2File asks of its reader, for frames in memory: nd2's own ND2File (and so
    bioio-nd2 and sources.nd2 alike) works out sizes, positions and frames from it."""

    _was_open = True
    _closed = False
    _path = None

    def __init__(self, frames: np.ndarray, channels: int, experiment: list[Any]) -> None:
        from nd2.structures import Attributes

        count, height, width, components = frames.shape
        self.frames = frames.reshape(count, height, width, channels, components // channels)
        self._attributes = Attributes(
            bitsPerComponentInMemory=frames.dtype.itemsize * 8,
            bitsPerComponentSignificant=frames.dtype.itemsize * 8,
            componentCount=components,
            heightPx=height,
            pixelDataType="float" if frames.dtype.kind == "f" else "unsigned",
            sequenceCount=count,
            widthBytes=width * components * frames.dtype.itemsize,
            widthPx=width,
            channelCount=channels,
        )
        self._experiment = experiment
        self._channels = channels

    def attributes(self) -> Any:
        return self._attributes

    def experiment(self) -> list[Any]:
        return self._experiment

    def metadata(self) -> Any:
        names = [SimpleNamespace(channel=SimpleNamespace(name=f"ch{i}")) for i in range(self._channels)]
        return SimpleNamespace(channels=names)

    def voxel_size(self) -> tuple[float, float, float]:
        return (1.0, 1.0, 1.0)

    def read_frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def _seq_count(self) -> int:
        return len(self.frames)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


def loops(**counts: int) -> list[Any]:
    """An nd2 experiment of the given loops, outermost first (T, P, Z, U)."""
    from nd2 import structures as s

    made: list[Any] = []
    for level, (kind, count) in enumerate(counts.items()):
        if kind == "T":
            params = s.TimeLoopParams(startMs=0, periodMs=100, durationMs=0, periodDiff=s.PeriodDiff())
            made.append(s.TimeLoop(count=count, nestingLevel=level, parameters=params))
        elif kind == "P":
            points = [
                s.Position(stagePositionUm=s.StagePosition(i, 0, 0), name="first" if i == 0 else None)
                for i in range(count)
            ]
            made.append(
                s.XYPosLoop(count=count, nestingLevel=level, parameters=s.XYPosLoopParams(False, points))
            )
        elif kind == "Z":
            params_z = s.ZStackLoopParams(homeIndex=0, stepUm=1.0, bottomToTop=True)
            made.append(s.ZStackLoop(count=count, nestingLevel=level, parameters=params_z))
        else:
            made.append(s.CustomLoop(count=count, nestingLevel=level))
    return made


ND2_CASES: dict[str, tuple[dict[str, int], int, int, Any]] = {
    # loops (outermost first), channels, components per channel, dtype
    "T3 P2 Z2, 2 channels": ({"T": 3, "P": 2, "Z": 2}, 2, 1, np.uint16),
    "P3, 3 channels": ({"P": 3}, 3, 1, np.uint8),
    "Z2 RGB": ({"Z": 2}, 1, 3, np.uint8),
    "T2 P2 RGB": ({"T": 2, "P": 2}, 1, 3, np.uint16),
    "T2 custom loop 3": ({"T": 2, "U": 3}, 1, 1, np.float32),
    "one frame": ({}, 1, 1, np.uint16),
}


@pytest.mark.parametrize("case", sorted(ND2_CASES))
def test_synthetic_nd2_equals_the_plugin_path(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nd2 = pytest.importorskip("nd2")
    from nd2 import _nd2file

    counts, channels, components, dtype = ND2_CASES[case]
    frames_count = int(np.prod(list(counts.values()))) if counts else 1
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 200, size=(frames_count, 5, 7, channels * components)).astype(dtype)
    experiment = loops(**counts)
    monkeypatch.setattr(
        _nd2file.ND2Reader,
        "create",
        staticmethod(lambda *args, **kwargs: SyntheticNd2Reader(frames, channels, experiment)),
    )
    path = tmp_path / "synthetic.nd2"
    path.write_bytes(b"\xda\xce\xbe\n" + bytes(60))  # the magic of a modern ND2 (bioio-nd2 checks it)

    got = assert_same_as_plugin(path)
    assert [row["status"] for row in got] == ["ok"] * counts.get("P", 1)
    with nd2.ND2File(str(path)) as f:
        sizes = dict(f.sizes)
    dims = got[0]["walk"]["dims"]
    assert dims["S"] == sizes.get("S", 1) and dims["C"] == sizes.get("C", 1)
    assert got[0]["walk"]["extra_dims"] == ({"U": 3} if "U" in counts else {})
    if "P" in counts:
        assert [row["walk"]["name"] for row in got][:2] == ["first", "XYPos:1"]
        assert len({row["iscc_code"] for row in got}) == len(got)  # each position its own pixels


def test_nd2_frame_of_4_components_walks_each_as_a_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nd2 shows 4 components per channel as C=4 (bioio-nd2 then fails: it adds S=4 as well); each
    component is walked as the channel nd2 names it."""
    pytest.importorskip("nd2")
    from nd2 import _nd2file

    frames = np.random.default_rng(3).integers(0, 60000, size=(2, 5, 7, 4)).astype(np.uint16)
    experiment = loops(Z=2)
    monkeypatch.setattr(
        _nd2file.ND2Reader,
        "create",
        staticmethod(lambda *args, **kwargs: SyntheticNd2Reader(frames, 1, experiment)),
    )
    path = tmp_path / "rgba.nd2"
    path.write_bytes(b"\xda\xce\xbe\n" + bytes(60))
    with open_source(str(path)) as source:
        (info,) = source.scenes()
        assert (info.dims["C"], info.dims["Z"], info.dims["S"]) == (4, 2, 1)
        reader = source.open_scene(info)
        for z in range(2):
            for c in range(4):
                np.testing.assert_array_equal(reader.read(0, c, z, ())[:, :, 0], frames[z, :, :, c])


# --- start-up: no bioio on the path --------------------------------------------------------------

IMPORTS = textwrap.dedent(
    """
    import atexit, json, sys
    heavy = {heavy!r}

    def report():
        loaded = {{name.split(".")[0] for name in sys.modules}}
        print(json.dumps(sorted(loaded & set(heavy))), file=sys.stderr)

    atexit.register(report)
    from bioiscc.cli import main
    main(sys.argv[1:], prog_name="bioiscc")
    """
)


def imported_heavy(*args: str) -> tuple[list[str], str]:
    """The heavy modules a `bioiscc` command imports in a fresh process, and its output."""
    script = IMPORTS.format(heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr.strip().splitlines()[-1]), result.stdout


@pytest.mark.parametrize("command", ["hash", "walk"])
@pytest.mark.parametrize("kind", ["czi", "nd2"])
def test_tiny_vendor_file_imports_no_bioio(kind: str, command: str, tmp_path: Path) -> None:
    if kind == "czi":
        path = write_czi(tmp_path / "tiny.czi", {"C": 2}, (8, 8), np.uint8)
    else:
        path = BUNDLED_ND2
    heavy, output = imported_heavy(command, str(path))
    assert heavy == []
    first = json_lines(output)[0] if command == "hash" else json.loads(output)
    assert first["status"] == "ok" and first["reader"].startswith(
        "aicspylibczi " if kind == "czi" else "nd2 "
    )


# --- damaged files -------------------------------------------------------------------------------


def assert_one_line_failure(path: Path, cause: str) -> None:
    out = path.parent / "out" / "result.jsonl"
    out.parent.mkdir(exist_ok=True)
    result = run_cli("hash", str(path), "-o", str(out))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and cause in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95])
def test_truncated_czi_fails_in_one_line(keep: float, tmp_path: Path) -> None:
    whole = write_czi(tmp_path / "whole.czi", {"Z": 3, "C": 2}, (20, 30), np.uint16)
    data = whole.read_bytes()
    path = tmp_path / "truncated.czi"
    path.write_bytes(data[: int(len(data) * keep)])
    # pylibCZIrw writes the subblock directory last: it (or the metadata) lies beyond the end
    assert_one_line_failure(path, "truncated: the ")


@pytest.mark.parametrize("keep", [0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncated_nd2_fails_in_one_line(keep: float, tmp_path: Path) -> None:
    data = BUNDLED_ND2.read_bytes()
    path = tmp_path / "truncated.nd2"
    path.write_bytes(data[: int(len(data) * keep)])
    assert_one_line_failure(path, "not a readable ND2 file")


def test_czi_with_a_broken_subblock_fails_in_one_line(tmp_path: Path) -> None:
    path = write_czi(tmp_path / "broken.czi", {"Z": 3}, (20, 30), np.uint16)
    data = bytearray(path.read_bytes())
    subblocks = [i for i in range(len(data)) if data.startswith(b"ZISRAWSUBBLOCK", i)]
    data[subblocks[1] : subblocks[1] + 16] = b"X" * 16
    path.write_bytes(bytes(data))
    assert_one_line_failure(path, "SubBlock")


def test_nd2_with_a_broken_header_fails_in_one_line(tmp_path: Path) -> None:
    data = bytearray(BUNDLED_ND2.read_bytes())
    data[:4] = b"\x00\x00\x00\x00"
    path = tmp_path / "broken.nd2"
    path.write_bytes(bytes(data))
    assert_one_line_failure(path, "not a readable ND2 file")


@pytest.mark.parametrize(
    ("module", "extra", "suffix"), [("aicspylibczi", "czi", ".czi"), ("nd2", "nd2", ".nd2")]
)
def test_missing_library_names_the_extra(module: str, extra: str, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"image{suffix}"
    path.write_bytes(os.urandom(64))
    script = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from bioiscc.cli import main\n"
        f"main(['hash', {str(path)!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert str(path) in result.stderr and module in result.stderr
    assert f"'{extra}' extra (in a clone of bioiscc: pip install '.[{extra}]')" in result.stderr


# --- memory --------------------------------------------------------------------------------------


def test_nd2_frames_are_read_without_a_memory_map() -> None:
    """A walk's memory is its frames, not the pages of the file it has read through a map; and a
    plane a caller keeps stays valid after the file is closed."""
    from bioiscc.sources.nd2 import UnmappedFile

    handle = UnmappedFile(BUNDLED_ND2)
    with pytest.raises(io.UnsupportedOperation):
        handle.fileno()
    handle.close()
    source = open_source(str(BUNDLED_ND2))
    try:
        (info,) = source.scenes()
        plane = source.open_scene(info).read(0, 0, 5, ())
    finally:
        source.close()
    assert plane.shape == (128, 128, 1) and int(plane.sum()) > 0
    assert source.nd2._rdr._mmap is None
