"""Mosaics are read one stitched plane (or row band) at a time, with the reader's stitched pixels.

bioiscc used to walk a CZI mosaic scene through bioio-czi's `mosaic_xarray_data`, the whole stitched
scene in memory. `sources.czi_mosaic` reads one plane at a time with the libCZI call bioio-czi
stitches with. The old path (`bioio_file.MosaicScene`, still there for the LIF mosaics bioiscc does
not stitch itself) is the reference here: every plane, every row band and every scene code must
equal it, on the real mosaic samples and on synthetic mosaics written with pylibCZIrw; and hashing a
mosaic must not take more memory when it has more planes. LIF tile scans, stitched per plane from
liffile's tiles (`sources.lif.LifMosaicScene`), must equal bioio-lif's stitching.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bioiscc
from bioiscc.imagewalk import iter_planes
from bioiscc.sources.bioio_file import BioioSource, MosaicScene, _is_bgr, _Layout
from bioiscc.sources.czi_mosaic import CziMosaicScene
from bioiscc.sumcode import hash_planes

pytest.importorskip("bioio_czi")
pytest.importorskip("aicspylibczi")

# The codes of the mosaic samples computed through bioio-czi's in-memory stitched scene (bioiscc
# before sources.czi_mosaic, bioio-czi 3.0.1): reading a plane at a time must not change one.
SAMPLE_CODES = {
    ("czi/1_tileregion.czi", 0): "ISCC:K4ALWCWWFT3GSUKYXSF67YLKKJMLCHXN76RSY7ZOORNLY6J2CWAEOBY",
    ("czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi", 0): "ISCC:K4AEOBXQL7OGHOZ5OY2X3W4S5BD5C7LPNBOZEO4IXW4EKIKATFOXQSI",
    ("czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi", 1): "ISCC:K4AE2UX37OOJRIOOOWJEKZMUFN47D3ACC7S5OJ2IEI6WKE3KNDANM5I",
    ("czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi", 2): "ISCC:K4AIBWUEU45I35IKL2P6JUYLJBYVZPORQK5WCS7IL3QWHEINLR7TGOY",
    ("czi/mosaic_test.czi", 0): "ISCC:K4AMGCW4OGZJSDCFAXPQYQO67Y4YZT4M42FISKO2BKOJWVTMKIDBHUI",
    ("czi/tiles.czi", 0): "ISCC:K4ACCQCNC2PGRH3L2642VRDSXDG2F5Z3JF6OW4CYJGZV2KVC4I5LLIY",
    ("czi/tiles_z.czi", 0): "ISCC:K4AIYW565NCLXAXFQC547INYWL2HYH5ESKUQBTNLMVJEC5M3ADHUTSA",
}
MOSAIC_SAMPLES = sorted({name for name, _ in SAMPLE_CODES})


def write_mosaic(
    path: Path,
    planes: dict[str, int],
    tile: int,
    step: int,
    dtype: Any = np.uint16,
    samples: int = 1,
    missing: frozenset[tuple[int, ...]] = frozenset(),
    seed: int = 0,
) -> Path:
    """A CZI of one scene, each plane 2 x 2 overlapping tiles of random pixels (pylibCZIrw's writer).

    `planes` gives the sizes of the plane dimensions (e.g. {"Z": 2, "C": 3}); the planes at the
    indices in `missing` get no tile. Tiles overlap by `tile - step` pixels, and the mosaic starts at
    a non-zero position, so that overlap order and the scene's bounding box matter.
    """
    from pylibCZIrw import czi as pyczi

    rng = np.random.default_rng(seed)
    high = 256 if np.dtype(dtype).itemsize == 1 else 65536
    names = list(planes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pyczi.create_czi(str(path), exist_ok=True) as czi:
            for index in np.ndindex(*planes.values()):
                if index in missing:
                    continue
                plane = {"T": 0, **dict(zip(names, (int(i) for i in index), strict=True))}
                for row, column in ((0, 0), (0, 1), (1, 0), (1, 1)):
                    data = rng.integers(0, high, size=(tile, tile, samples), dtype=dtype)
                    czi.write(data=data, plane=plane, location=(7 + column * step, row * step - 3), scene=0)
    return path


def scenes_of(path: Path) -> Iterator[tuple[BioioSource, Any]]:
    source = BioioSource(str(path), path, "czi")
    for info in source.scenes():
        yield source, info


def old_reader(source: BioioSource, info: Any) -> MosaicScene:
    """The previous path: bioio-czi's whole stitched scene (`mosaic_xarray_data`), sliced per plane."""
    source._select(info.index)
    return MosaicScene(info, source.reader, _is_bgr(source.reader))


def positions(info: Any) -> Iterator[tuple[int, int, int, tuple[int, ...]]]:
    extras = list(np.ndindex(*info.extra_dims.values())) if info.extra_dims else [()]
    for z in range(info.dims["Z"]):
        for c in range(info.dims["C"]):
            for t in range(info.dims["T"]):
                for e in extras:
                    yield t, c, z, tuple(int(i) for i in e)


def assert_same_as_stitched_scene(path: Path, bands: tuple[int, ...] = (1, 7, 64)) -> None:
    """Geometry, planes, row bands and codes of every scene equal bioio-czi's stitched scene."""
    for source, info in scenes_of(path):
        assert info.ok, info.error
        old = old_reader(source, info)
        layout = _Layout.of(source.reader)  # the stitched scene's dims, from bioio-czi's lazy mosaic
        assert dict(layout.standard) == {d: info.dims[d] for d in layout.standard}
        assert layout.extra == dict(info.extra_dims)
        new = source.open_scene(info)
        assert isinstance(new, CziMosaicScene)
        height = info.dims["Y"]
        for t, c, z, e in positions(info):
            want = old.read(t, c, z, e)
            np.testing.assert_array_equal(new.read(t, c, z, e), want)
            for step in bands:
                got = [new.read_rows(t, c, z, e, y, min(height, y + step)) for y in range(0, height, step)]
                np.testing.assert_array_equal(np.concatenate(got), want)
        assert hash_planes(iter_planes(new)).iscc_code == hash_planes(iter_planes(old)).iscc_code


# --- the real mosaic samples ---------------------------------------------------------------------


@pytest.mark.samples
@pytest.mark.parametrize("name", MOSAIC_SAMPLES)
def test_mosaic_samples_equal_the_stitched_scene(samples: Path, name: str) -> None:
    assert_same_as_stitched_scene(samples / name)


@pytest.mark.samples
@pytest.mark.parametrize("name", MOSAIC_SAMPLES)
def test_mosaic_sample_codes_are_unchanged(samples: Path, name: str) -> None:
    records = bioiscc.hash_scenes(samples / name)
    got = {(name, r["scene"]["index"]): r["iscc_code"] for r in records}
    assert got == {key: code for key, code in SAMPLE_CODES.items() if key[0] == name}
    assert all("absent_planes" not in r for r in records)


# --- synthetic mosaics ---------------------------------------------------------------------------


@pytest.mark.parametrize(("tile", "step"), [(120, 100), (60, 80)], ids=["overlapping", "with-gaps"])
def test_synthetic_mosaic_equals_the_stitched_scene(tmp_path: Path, tile: int, step: int) -> None:
    """Overlapping tiles (the later one wins) and gaps between tiles (background, 0), whole planes
    and row bands, some of them between two rows of tiles."""
    path = write_mosaic(tmp_path / "gray.czi", {"Z": 2, "C": 2}, tile=tile, step=step)
    assert_same_as_stitched_scene(path, bands=(1, 7, 33, 100, 500))


def test_synthetic_rgb_mosaic_is_walked_in_rgb_order(tmp_path: Path) -> None:
    path = write_mosaic(tmp_path / "rgb.czi", {"Z": 2}, tile=90, step=80, dtype=np.uint8, samples=3)
    assert_same_as_stitched_scene(path, bands=(1, 50))
    (source, info), *_ = scenes_of(path)
    assert info.dims["S"] == 3
    stored = np.asarray(source.reader.mosaic_xarray_data.data)[0, 0, 0]  # T, C, Z, Y, X, S: BGR
    np.testing.assert_array_equal(source.open_scene(info).read(0, 0, 0, ()), stored[:, :, ::-1])


def test_mosaic_plane_without_tiles_is_walked_as_zeros(tmp_path: Path) -> None:
    """As for other CZI scenes: a plane the file does not store is zeros, counted in absent_planes.

    (bioio-czi cannot stitch this scene: libCZI is asked for a plane without tiles, which raises an
    unknown pixel type or crashes the process; so there is no old path to compare with.)"""
    path = write_mosaic(
        tmp_path / "sparse.czi", {"Z": 2, "C": 2}, tile=60, step=50, missing=frozenset({(1, 1)})
    )
    (source, info), *_ = scenes_of(path)
    reader = source.open_scene(info)
    planes = {(p.z, p.c): p.data for p in iter_planes(reader)}
    assert reader.absent_planes == 1
    assert not planes[(1, 1)].any() and planes[(1, 0)].any() and planes[(0, 1)].any()
    assert not reader.read_rows(0, 1, 1, (), 10, 20).any()
    (record,) = bioiscc.hash_scenes(path)
    assert record["status"] == "ok" and record["absent_planes"] == 1 and record["planes"] == 4


@pytest.mark.samples
@pytest.mark.parametrize("name", ["czi/1_tileregion.czi", "czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi"])
def test_views_bin_a_mosaic_plane_band_by_band_as_whole(
    samples: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plane too large to read whole is binned from `read_rows` bands of whole rows of tiles."""
    from bioiscc.views import extract, reduce

    for source, info in scenes_of(samples / name):
        reader = source.open_scene(info)
        whole = extract.bin_stored_plane(reader, 0, 0, 0, (0,) * len(info.extra_dims), [0])[0]
        with monkeypatch.context() as patch:
            patch.setattr(reduce, "BAND_PLANE_BYTES", 0)
            patch.setattr(reduce, "BAND_BYTES", 4096)
            patch.setattr(reader, "read", None)  # the bands only
            banded = extract.bin_stored_plane(reader, 0, 0, 0, (0,) * len(info.extra_dims), [0])[0]
        np.testing.assert_array_equal(banded.mean, whole.mean)
        assert banded.finite_fraction == whole.finite_fraction


# --- memory ---------------------------------------------------------------------------------------

PEAK = textwrap.dedent(
    """
    import json, resource, sys
    import bioiscc
    (record,) = bioiscc.hash_scenes(sys.argv[1])
    assert record["status"] == "ok", record
    print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, record["iscc_code"]]))
    """
)


def peak_memory(path: Path) -> tuple[int, str]:
    """Peak RSS in bytes of a fresh process that hashes `path`, and the scene code.

    glibc's malloc raises its mmap threshold to the size of the largest block freed, after which
    freed planes stay in its heap and the peak RSS drifts up with the number of planes read, not
    with what is held at once. A fixed threshold makes the peak show the memory in use.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    result = subprocess.run(
        [sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, check=True, env=env
    )
    peak, code = json.loads(result.stdout)
    return int(peak), str(code)


def test_memory_does_not_grow_with_the_planes_of_a_mosaic(tmp_path: Path) -> None:
    """A mosaic of 16 planes takes less than 2 planes more memory to hash than one of 4 planes of the
    same size (the whole stitched scene takes 12 planes more: measured 12.4); its code is the old
    path's. 4 planes: enough for the walk's read-ahead to hold all it ever holds at once."""
    tile, step = 650, 550  # 4 tiles -> planes of 1200 x 1200 pixels, 2.9 MB (uint16)
    plane = (tile + step) ** 2 * 2
    few, _ = peak_memory(write_mosaic(tmp_path / "few.czi", {"Z": 4}, tile, step))
    path = write_mosaic(tmp_path / "many.czi", {"Z": 4, "C": 4}, tile, step, seed=1)
    many, code = peak_memory(path)
    assert many - few < 2 * plane, f"the peak grew by {(many - few) / plane:.1f} planes for 12 more planes"
    ((source, info),) = scenes_of(path)
    assert code == hash_planes(iter_planes(old_reader(source, info))).iscc_code


# --- LIF tile scans ------------------------------------------------------------------------------

LIF_MOSAIC = "lif/PR2729_frameOrderCombinedScanTypes.lif"
LIF_MOSAIC_CODE = "ISCC:K4ABPCITXCOHRXA4YU3BLOLTCGOEOSBC6YZM35PW2DPUT7LDOB4YNXY"  # through bioio-lif 2.0.1


@pytest.mark.samples
def test_lif_mosaic_sample_equals_bioio_lif_stitching(samples: Path) -> None:
    pytest.importorskip("bioio_lif")
    pytest.importorskip("liffile")
    from bioiscc.sources.lif import LifMosaicScene, LifSource

    path = samples / LIF_MOSAIC
    source = LifSource(str(path), path)
    (info,) = source.scenes()
    new = source.open_scene(info)
    assert isinstance(new, LifMosaicScene)
    stitcher = BioioSource(str(path), path, "lif")
    stitcher._select(0)
    old = MosaicScene(info, stitcher.reader, False)
    for t, c, z, e in positions(info):
        np.testing.assert_array_equal(new.read(t, c, z, e), old.read(t, c, z, e))
    (record,) = bioiscc.hash_scenes(path)
    assert record["iscc_code"] == LIF_MOSAIC_CODE
    source.close()


class FakeLifImage:
    """What LifMosaicScene uses of a liffile image: the tile scan's fields and one frame per tile."""

    def __init__(self, tiles: np.ndarray, frames: np.ndarray) -> None:
        self.tilescan = type("TileScan", (), {"tiles": tiles})()
        self.frames = frames  # (M, T, C, Z, Y, X)

    def frame(self, M: int, T: int, C: int, Z: int) -> np.ndarray:  # noqa: N803 - liffile's names
        return self.frames[M, T, C, Z]


def test_lif_stitching_follows_bioio_lif_on_a_grid_of_3_by_2_tiles() -> None:
    """Fields in a scrambled order, a grid that is not square: the planes equal bioio-lif's stitching."""
    pytest.importorskip("bioio_lif")
    import threading

    from bioio_lif.reader import Reader

    from bioiscc.scene import SceneInfo
    from bioiscc.sources.lif import LifMosaicScene

    fields = [(2, 1), (0, 0), (1, 0), (2, 0), (0, 1), (1, 1)]
    tiles = np.array([(x, y) for x, y in fields], dtype=[("field_x", "i4"), ("field_y", "i4")])
    frames = np.random.default_rng(3).integers(0, 65536, size=(6, 2, 1, 1, 5, 7), dtype=np.uint16)

    class Stitcher:  # bioio-lif's stitching, on these tiles, with its default orientation
        _tiles = tiles
        is_x_and_y_swapped, is_x_flipped, is_y_flipped = True, False, False
        _get_yx_tile_count = Reader._get_yx_tile_count

    stitched = Reader._stitch_tiles(Stitcher(), frames, "MTCZYX", tiles)
    dims = {"T": 2, "C": 1, "Z": 1, "Y": stitched.shape[-2], "X": stitched.shape[-1], "S": 1}
    info = SceneInfo(index=0, name="fake", dims=dims, dtype="uint16")
    scene = LifMosaicScene(info, FakeLifImage(tiles, frames), threading.Lock())
    assert stitched.shape[-2:] == (5 + 4 + 4, 7 + 6)  # 3 rows and 2 columns, one pixel of overlap
    for t in range(2):
        np.testing.assert_array_equal(scene.read(t, 0, 0, ())[:, :, 0], stitched[t, 0, 0])
