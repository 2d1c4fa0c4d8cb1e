"""Views, ISCC-IMAGE, ISCC-MIXED and the composite ISCC-CODE (docs/views.md, bioiscc-views/1).

Pinned codes for the IMAGEWALK vectors (a dependency upgrade that changes one fails here), the same
codes through every container and every read path, robustness on awkward pixels, lean reading, the
records and exit codes of the commands, and similarity of a lossy copy of a real sample.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("iscc_core")
pytest.importorskip("PIL")

from bioiscc import records  # noqa: E402
from bioiscc.api import opened  # noqa: E402
from bioiscc.output import dumps, read_records  # noqa: E402
from bioiscc.scene import SceneInfo, make_dims  # noqa: E402
from bioiscc.views import VIEWS_ALGORITHM, api, reduce  # noqa: E402
from bioiscc.views.extract import read_views  # noqa: E402
from bioiscc.views.imagecode import SIMILAR_BITS, code_body, hamming, image_code, mixed_code  # noqa: E402
from bioiscc.views.normalize import gray_of  # noqa: E402
from bioiscc.views.png import read_png  # noqa: E402
from bioiscc.views.reduce import area_weights, bin_plane, reduce_to_code_side  # noqa: E402
from bioiscc.views.render import DUPLICATE_BITS  # noqa: E402
from bioiscc.views.thumbs import thumbnail_level  # noqa: E402
from tests.conftest import json_lines, run_cli  # noqa: E402

IMG5D = "ISCC:EQDSDTYUBETXR2QHVXKUK4LVZZU5TZROWCJVCERNDWHLEJTTJ2UKBOY"
IMG5D_CODE = "ISCC:KQASDTYUBETXR2QHGFJNJTPO6FBIGKR2TOXSILILME"
IMG5D_VIEWS = ["composite_c0-1-2_t0", "mip_c0_t0", "mip_c1_t0", "mip_c2_t0", "best_focus_c0_t0_z2"]
U8 = (
    "ISCC:EQDSDQ5APF2HNFBVK64XJESGLFW3NBQZF2ZQPX6APGRMILIPX7LBEJA",
    "ISCC:KQASDQ5APF2HNFBVKJ53RFPWDTNAGPQM7O3ZTLEGJY",
)

#: vector -> per scene: (256-bit ISCC-MIXED, composite ISCC-CODE, view ids), pinned.
GOLDEN: dict[str, list[tuple[str, str, list[str]]]] = {
    "img5d_u16.ome.tif": [(IMG5D, IMG5D_CODE, IMG5D_VIEWS)],
    "u8_2d.tif": [(*U8, ["mip_c0_t0"])],
    "f32_z3.ome.tif": [
        (
            "ISCC:EQDSDKS65B4S7CAPJJTNMRK6RYUQF5VGFUGGYJT6D6A7QGAZXG3LIUQ",
            "ISCC:KQASDKS65B4S7CAPC3MGQRN4Y3OHK5HFBNDLJ4KETM",
            ["mip_c0_t0", "best_focus_c0_t0_z1", "representative_c0_t0_z2"],
        )
    ],
    "multiscene.ome.tif": [
        (
            "ISCC:EQDSD3RBY6JWMYHNRJ2VPVFCFUC2LF6UO2R6KV2DHEMEQ55UFDDD4MA",
            "ISCC:KQASD3RBY6JWMYHN4DCBBUWP5OVFANJFBVSO2AHY2M",
            ["composite_c0-1_t0", "mip_c0_t0", "mip_c1_t0"],
        ),
        (
            "ISCC:EQDSD26OGS5MACZZHJCCPKGHCHT3K6LEKHXL4SKUSVNFOXIGYTHQM6I",
            "ISCC:KQASD26OGS5MACZZ4SPX6VKSKHZVHZV62NAZ6M7JVI",
            ["mip_c0_t0", "best_focus_c0_t0_z1", "representative_c0_t0_z0"],
        ),
    ],
    "rgb.ome.tif": [
        (
            "ISCC:EQDSDNDDHLV2SLPYO76KO4XU2YMDPW7UPYL4HVVWFZUF6Y34NJ3XXUY",
            "ISCC:KQASDNDDHLV2SLPYRO3KQEWGNJGVFCPRMUCUP5RIR4",
            ["composite_c0-1-2_t0", "mip_c0_t0", "mip_c1_t0", "mip_c2_t0"],
        )
    ],
    "rgb_t2c2.ome.tif": [
        (
            "ISCC:EQDSDK7KRTFMUCHPOAEMTURPWTAXSLKXAFMT5HP6OGIIXAXUNCC6D4Y",
            "ISCC:KQASDK7KRTFMUCHPA6JPQQ4Q5MUVUW76ZUPKXNZ4LA",
            ["composite_c0-1-2_t0", "mip_c0_t0", "mip_c1_t0", "mip_c2_t0", "mip_c3_t0"],
        )
    ],
    "plate.ome.zarr": [
        (
            "ISCC:EQDSDJWJP4SJLR4JGE7YSK4RJBM6LPA7T7PEVCYEJRVFFLQF7C6CGZY",
            "ISCC:KQASDJWJP4SJLR4JDS7V7UH2HKQKERLCRN6NTKINT4",
            ["mip_c0_t0"],
        ),
        (
            "ISCC:EQDSD7RBRNR2K3RRCPDWIX42AXJXHAI7M5OQA3VHSC6EFX7NHBWJA7I",
            "ISCC:KQASD7RBRNR2K3RRMXBPMTZTLNRBLO4CKIOLNJPS7Q",
            ["mip_c0_t0"],
        ),
    ],
}
#: The same pixels as img5d_u16.ome.tif in other containers and layouts.
IMG5D_COPIES = [
    "img5d_v04.ome.zarr",
    "img5d_v05.ome.zarr",
    "img5d_v04_chunky.ome.zarr",
    "img5d_b2r.ome.zarr",
    "img5d_digits.ome.zarr",
    "img5d_labels.ome.zarr",
]
IMG5D_CODES_256 = [
    "ISCC:EED46FALU54OUB4N2VDWCZMMNDM6MLVQSNJRE3O7RS5CM426BCULWTQ",
    "ISCC:EED46FSZF5EMQRXZPVSTLFM2WUI4FAFYPPNT6DI5QK2CJMVOVST6GRQ",
    "ISCC:EED42FID474OUE4M2VCXCYOEND4XMLURQ5IVE3K7VS5GM4KTLCUBW3Q",
    "ISCC:EEDYXZFEC76GGBZNJCY6HGGOJHXGLJ7U3ICOAO5ILNAC6OYMUPJLLHY",
    "ISCC:EEDZXNGJJ5UIQNZZSHDLO7SSVHBIU6SNQ7YRYHA5KZJF5T7M5CAY2DI",
]


def image_records(path: Path, *, bits: int = 256, with_sum: bool = True) -> list[dict[str, Any]]:
    """The bioiscc.image record of every scene, through the API (no subprocess)."""
    with opened(path) as src:
        origin = api.Origin.of(src)
        outcomes = [api.scene_views(src, info, with_sum=with_sum) for info in src.scenes()]
    return [api.image_record_of(origin, outcome, bits=bits) for outcome in outcomes]


def summary(record: dict[str, Any]) -> tuple[str, str, list[str]]:
    return record["iscc_mixed"], record["iscc_code"], [v["id"] for v in record["views"]]


# --- pinned codes, format agnosticism, read paths -------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_vector_codes_are_pinned(vectors_dir: Path, name: str) -> None:
    got = image_records(vectors_dir / name)
    for record in got:
        records.validate(record)
        assert record["views_algorithm"] == VIEWS_ALGORITHM
    assert [summary(r) for r in got] == GOLDEN[name]


def test_view_codes_are_pinned(vectors_dir: Path) -> None:
    (record,) = image_records(vectors_dir / "img5d_u16.ome.tif")
    assert [v["iscc_image"] for v in record["views"]] == IMG5D_CODES_256
    (narrow,) = image_records(vectors_dir / "img5d_u16.ome.tif", bits=64)
    assert narrow["iscc_mixed"] == "ISCC:EQASDTYUBETXR2QH"
    # the 64-bit codes are the first 64 bits of the 256-bit ones; the composite does not change
    for short, wide in zip(narrow["views"], record["views"], strict=True):
        assert code_body(short["iscc_image"]) == code_body(wide["iscc_image"])[:8]
    assert narrow["iscc_code"] == IMG5D_CODE


@pytest.mark.parametrize("name", IMG5D_COPIES)
def test_same_pixels_same_codes_in_every_container(vectors_dir: Path, name: str) -> None:
    (record,) = image_records(vectors_dir / name)
    assert summary(record) == (IMG5D, IMG5D_CODE, IMG5D_VIEWS)
    assert [v["iscc_image"] for v in record["views"]] == IMG5D_CODES_256


def test_tapped_and_read_views_are_identical(vectors_dir: Path) -> None:
    """imagecode's views (tapped from the hash) equal extract-views' (read on their own)."""
    for name in ("img5d_u16.ome.tif", "rgb_t2c2.ome.tif", "img5d_v04_chunky.ome.zarr"):
        tapped = image_records(vectors_dir / name)
        read = image_records(vectors_dir / name, with_sum=False)
        assert [r["views"] for r in tapped] == [r["views"] for r in read]
        assert [r["iscc_mixed"] for r in tapped] == [r["iscc_mixed"] for r in read]


def write_ome_zarr(path: Path, levels: list[np.ndarray], axes: str, chunks: tuple[int, ...]) -> None:
    """A minimal NGFF 0.4 image (zarr v2): one array per pyramid level, without ome-zarr (slow to import)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    for number, level in enumerate(levels):
        array = root.create_array(str(number), shape=level.shape, dtype=level.dtype, chunks=chunks)
        array[...] = level
    names = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a, "type": names[a]} for a in axes],
            "datasets": [
                {"path": str(n), "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
                for n in range(len(levels))
            ],
        }
    ]


def write_float_copies(folder: Path) -> list[Path]:
    """Float pixels with NaN and infinities, in strips, tiles and chunks (sizes not multiples of f)."""
    import tifffile

    data = np.random.default_rng(1).random((2, 2, 1100, 700)).astype(np.float32)
    data[0, 0, 5:9, 5:400] = np.nan
    data[1, 1, 100, :] = np.inf
    data[1, 1, :, 3] = -np.inf
    strips, tiles, store = folder / "strips.ome.tif", folder / "tiles.ome.tif", folder / "chunks.ome.zarr"
    tifffile.imwrite(strips, data, metadata={"axes": "CZYX"}, rowsperstrip=50)
    tifffile.imwrite(tiles, data, metadata={"axes": "CZYX"}, tile=(256, 256))
    write_ome_zarr(store, [data], "czyx", (1, 1, 300, 256))
    return [strips, tiles, store]


def test_row_bands_give_the_same_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plane read in row bands (never whole) gives exactly the grids of a whole read."""
    paths = write_float_copies(tmp_path)

    def views_of(path: Path) -> list[tuple[str, str, bytes]]:
        with opened(path) as src:
            outcome = api.scene_views(src, src.scenes()[0])
        assert outcome.views is not None, outcome.error
        return [(v.id, v.code, v.candidate.grids[0].mean.tobytes()) for v in outcome.views.selection.views]

    whole = views_of(paths[0])
    monkeypatch.setattr(reduce, "BAND_PLANE_BYTES", 1)
    monkeypatch.setattr(reduce, "BAND_BYTES", 70_000)
    for path in paths:
        with opened(path) as src:
            info = src.scenes()[0]
            reader = src.open_scene(info)
            rows = reduce.row_source(reader, 0, 1, 1, ())
            assert rows is not None, f"{path.name}: no row access"
            assert reduce.band_rows(rows, 1100, 700 * 4) < 1100
            reader.read = None  # type: ignore[assignment,method-assign]  # must not be needed
            banded = read_views(reader)
        assert [(v.id, v.code, v.candidate.grids[0].mean.tobytes()) for v in banded.selection.views] == whole
        assert views_of(path) == whole


def test_rows_in_any_portions_bin_alike() -> None:
    plane = np.random.default_rng(3).normal(size=(1031, 517)).astype(np.float64) * 1e300
    plane[7, :] = np.nan
    whole = bin_plane(plane)
    builder = reduce.GridBuilder(*plane.shape)
    start = 0
    for size in (1, 2, 5, 13, 100, 3, 907):
        builder.add(plane[start : start + size])
        start += size
    parts = builder.result()
    assert start == plane.shape[0]
    assert parts.mean.tobytes() == whole.mean.tobytes()
    assert math.isclose(whole.finite_fraction, 1 - 517 / plane.size)


def test_same_codes_across_thread_counts_and_runs(vectors_dir: Path) -> None:
    source = str(vectors_dir / "img5d_u16.ome.tif")
    outputs = []
    for threads in ("1", "2"):
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
        outputs.append(run_cli("imagecode", source, check=True, env=env).stdout)
    assert outputs[0] == outputs[1]
    assert json_lines(outputs[0])[0]["iscc_mixed"] == IMG5D


# --- robustness -----------------------------------------------------------------------------------


class ArrayReader:
    """A scene reader over an in-memory (T, C, Z, Y, X, S) array; counts its reads."""

    def __init__(self, data: np.ndarray) -> None:
        sizes = dict(zip("TCZYXS", data.shape, strict=True))
        self.info = SceneInfo(index=0, name="memory", dims=make_dims(sizes), dtype=str(data.dtype))
        self.data = data
        self.reads: list[tuple[int, int, int]] = []

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        self.reads.append((t, c, z))
        return self.data[t, c, z]


def scene(plane_stack: np.ndarray, samples: bool = False) -> np.ndarray:
    """(Z, Y, X) or (Z, Y, X, S) pixels as a (T=1, C=1, Z, Y, X, S) scene."""
    data = plane_stack if samples else plane_stack[..., np.newaxis]
    return data[np.newaxis, np.newaxis]


def checkerboard(dtype: Any, low: Any, high: Any, shape: tuple[int, int] = (40, 30)) -> np.ndarray:
    """One plane of a type's extremes: a checkerboard of `low` and `high` with a `high` border."""
    board = np.indices(shape).sum(axis=0) % 2 == 0
    board[:, :3] = False
    return np.where(board, low, high).astype(dtype)[np.newaxis]


def nan_stack() -> np.ndarray:
    data = np.random.default_rng(5).random((3, 50, 60)).astype(np.float32)
    data[:, :10] = np.nan
    data[0, 20, 20], data[1, 30, 30] = np.inf, -np.inf
    return data


I64, U64, I32, F64 = np.iinfo(np.int64), np.iinfo(np.uint64), np.iinfo(np.int32), np.finfo(np.float64)
ROBUSTNESS: dict[str, tuple[np.ndarray, bool]] = {
    "nan_and_infinities": (scene(nan_stack()), False),
    "all_nan": (scene(np.full((2, 20, 20), np.nan, dtype=np.float32)), True),
    "constant": (scene(np.full((2, 30, 40), 7, dtype=np.uint16)), True),
    "zeros": (scene(np.zeros((1, 30, 40), dtype=np.uint8)), True),
    "one_pixel_high": (
        scene(np.random.default_rng(1).integers(0, 999, (2, 1, 5000)).astype(np.uint16)),
        False,
    ),
    "one_pixel_wide": (
        scene(np.random.default_rng(2).integers(0, 999, (2, 700, 1)).astype(np.uint16)),
        False,
    ),
    "one_pixel": (scene(np.array([[[5]]], dtype=np.uint16)), True),
    "int8_extremes": (scene(checkerboard(np.int8, -128, 127)), False),
    "int32_extremes": (scene(checkerboard(np.int32, I32.min, I32.max)), False),
    "int64_extremes": (scene(checkerboard(np.int64, I64.min, I64.max)), False),
    "uint64_extremes": (scene(checkerboard(np.uint64, 0, U64.max)), False),
    "float64_extremes": (scene(checkerboard(np.float64, -F64.max, F64.max)), False),
    "float16": (scene(np.random.default_rng(4).random((2, 20, 20)).astype(np.float16)), False),
    "complex64": (scene((np.random.default_rng(6).random((2, 20, 20)) * 1j + 1).astype(np.complex64)), False),
    "bool": (scene(np.random.default_rng(7).random((2, 30, 30)) > 0.5), False),
    "rgb": (scene(np.random.default_rng(8).integers(0, 256, (1, 30, 40, 3)).astype(np.uint8), True), False),
}


@pytest.mark.parametrize("case", sorted(ROBUSTNESS))
def test_awkward_pixels_give_a_view_never_a_silent_zero_code(case: str) -> None:
    data, flat = ROBUSTNESS[case]
    reader = ArrayReader(data)
    views = read_views(reader)
    assert views.selection.views
    for view in views.selection.views:
        assert code_body(view.code) != bytes(32), f"{view.id}: an all-zero ISCC-IMAGE"
        assert view.image.dtype == np.uint8 and view.image.any(), f"{view.id}: a black view"
    assert all(v.flat for v in views.selection.views) == flat
    outcome = api.SceneOutcome(reader.info, views=views)
    origin = api.Origin("memory", None, None)
    for record in (api.views_record_of(origin, outcome), api.image_record_of(origin, outcome)):
        records.validate(record)
        dumps(record)  # JSON without NaN or infinities
    image = api.image_record_of(origin, outcome)
    assert image["flat"] == flat
    assert bool(image["warnings"]) == flat


def test_rgb_samples_are_channels() -> None:
    data, _ = ROBUSTNESS["rgb"]
    views = read_views(ArrayReader(data)).selection.views
    assert views[0].id == "composite_c0-1-2_t0" and views[0].mode == "RGB"
    assert np.array_equal(views[0].image[:, :, 1], views[2].image)  # green is effective channel 1


def test_one_view_mixes_with_itself(vectors_dir: Path) -> None:
    """The documented rule: one view's code mixed with itself, i.e. header byte + its first body bytes."""
    (record,) = image_records(vectors_dir / "u8_2d.tif")
    (view,) = record["views"]
    assert record["mixed_rule"].startswith("single view")
    assert record["iscc_mixed"] == mixed_code([view["iscc_image"]] * 2)[0]
    assert code_body(record["iscc_mixed"]) == bytes([0x21]) + code_body(view["iscc_image"])[:31]


# --- lean reading ---------------------------------------------------------------------------------


def test_views_read_only_the_planes_they_need() -> None:
    data = np.random.default_rng(9).integers(0, 4096, (5, 3, 6, 24, 32, 1)).astype(np.uint16)
    reader = ArrayReader(data)
    views = read_views(reader)
    assert len(reader.reads) == len(set(reader.reads)) == views.planes_binned
    assert len(reader.reads) < 5 * 3 * 6
    assert {t for t, _, _ in reader.reads} != {0}  # representative planes reach past the start
    single = ArrayReader(data)
    read_views(single, strategies=("best_focus",), max_views=1)  # 3 candidates: channels 0-2 at t=0
    assert sorted(single.reads) == [(0, c, z) for c in range(3) for z in range(6)]


# --- reductions -----------------------------------------------------------------------------------


def test_32x32_reduction_is_an_exact_area_average() -> None:
    assert area_weights(96).sum(axis=1).tolist() == [96] * 32
    image = np.random.default_rng(10).integers(0, 256, (96, 64)).astype(np.uint8)
    expected = image.reshape(32, 3, 32, 2).astype(np.int64).sum(axis=(1, 3))
    assert np.array_equal(reduce_to_code_side(image), (expected * 2 + 6) // 12)
    tiny = np.array([[10, 200]], dtype=np.uint8)
    reduced = reduce_to_code_side(tiny)
    assert (reduced[:, :16] == 10).all() and (reduced[:, 16:] == 200).all()


def test_near_duplicates_are_dropped() -> None:
    """Planes that differ by a little noise give one view; the others are listed as dropped."""
    rng = np.random.default_rng(11)
    first = rng.integers(0, 4000, (64, 64))
    planes = [first + rng.integers(0, 2, (64, 64)) for _ in range(4)]
    data = np.stack(planes).astype(np.uint16)[np.newaxis, np.newaxis, ..., np.newaxis]
    views = read_views(ArrayReader(data), max_views=8)
    assert len(views.selection.views) == 1
    assert views.selection.dropped and all(d["distance"] <= DUPLICATE_BITS for d in views.selection.dropped)
    distinct = read_views(
        ArrayReader(np.random.default_rng(12).integers(0, 4000, data.shape).astype(np.uint16))
    )
    codes = [v.code for v in distinct.selection.views]
    assert len(codes) > 1
    assert all(hamming(a, b) > DUPLICATE_BITS for i, a in enumerate(codes) for b in codes[i + 1 :])


# --- commands, records, PNGs ----------------------------------------------------------------------


def test_extract_views_mix_equals_imagecode(vectors_dir: Path, tmp_path: Path) -> None:
    source = str(vectors_dir / "img5d_v05.ome.zarr")
    folder = tmp_path / "views"
    run_cli("extract-views", source, "--scene", "0", "-o", str(folder), check=True)
    scene_json = tmp_path / "scene.json"
    run_cli("hash", source, "-o", str(scene_json), check=True)
    mixed = json.loads(
        run_cli("mix", str(folder / "views.json"), "--sum", str(scene_json), check=True).stdout
    )
    (coded,) = json_lines(run_cli("imagecode", source, "-o", str(tmp_path / "ic"), check=True).stdout)
    views = read_records(folder / "views.json")[0]
    for record in (views, mixed, coded, read_records(tmp_path / "ic" / "scene-0" / "views.json")[0]):
        records.validate(record)
        assert record["views_algorithm"] == VIEWS_ALGORITHM
    assert summary(mixed) == summary(coded) == (IMG5D, IMG5D_CODE, IMG5D_VIEWS)
    assert mixed["units"] == json.loads(scene_json.read_text())["units"]
    # PNGs: readable, 8-bit, of the documented size (the grid: at most 512 a side, never enlarged)
    for view in views["views"]:
        image = read_png(folder / view["png"])
        assert image.shape[:2] == (view["height"], view["width"]) == reduce.grid_shape(64, 48)
        assert image.ndim == (3 if view["mode"] == "RGB" else 2)
        assert image_code(gray_of(image)) == view["iscc_image"]
        assert (tmp_path / "ic" / coded["views"][0]["png"]).exists()
    # 64 bits: the same views, shorter codes, the same composite
    short = json.loads(run_cli("mix", str(folder / "views.json"), "--bits", "64", check=True).stdout)
    assert short["iscc_mixed"] == "ISCC:EQASDTYUBETXR2QH" and short["iscc_code"] is None


def test_png_size_of_a_large_plane(tmp_path: Path) -> None:
    import tifffile

    plane = np.random.default_rng(12).integers(0, 65535, (1300, 700)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "large.ome.tif", plane, metadata={"axes": "YX"})
    run_cli("extract-views", str(tmp_path / "large.ome.tif"), "-o", str(tmp_path / "v"), check=True)
    (view,) = read_records(tmp_path / "v" / "views.json")[0]["views"]
    assert read_png(tmp_path / "v" / view["png"]).shape == (434, 234)  # f = 3
    assert reduce.grid_shape(1300, 700) == (434, 234) and reduce.grid_shape(50_000, 50_000) == (511, 511)


def test_bad_input_one_line_exit_1_nothing_written(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.ome.tif")
    folder = tmp_path / "out"
    for args in (("extract-views", missing, "-o", str(folder)), ("imagecode", missing), ("thumb", missing)):
        result = run_cli(*args)
        assert result.returncode == 1, args
        assert result.stderr.count("\n") == 1 and "missing.ome.tif" in result.stderr
        assert result.stdout == "" and not folder.exists()
    result = run_cli("extract-views", missing, "-o", str(folder), "--record-errors")
    assert result.returncode == 0
    failed = read_records(folder / "views.json")[0]
    records.validate(failed)
    assert failed["status"] == "failed" and "no such file" in failed["error"]
    # a failed views.json fails mix (exit 1) or makes a failed image record (--record-errors)
    assert run_cli("mix", str(folder / "views.json")).returncode == 1
    result = run_cli("mix", str(folder / "views.json"), "--record-errors")
    assert result.returncode == 0
    image = json.loads(result.stdout)
    records.validate(image)
    assert image["status"] == "failed" and image["iscc_mixed"] is None


def test_mix_refuses_missing_pngs_and_wrong_scene_records(vectors_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "v"
    run_cli("extract-views", str(vectors_dir / "u8_2d.tif"), "-o", str(folder), check=True)
    other = tmp_path / "other.json"
    run_cli("hash", str(vectors_dir / "f32_z3.ome.tif"), "-o", str(other), check=True)
    result = run_cli("mix", str(folder / "views.json"), "--sum", str(other))
    assert result.returncode == 1 and "dims differ" in result.stderr
    for png in folder.glob("*.png"):
        png.unlink()
    result = run_cli("mix", str(folder / "views.json"))
    assert result.returncode == 1 and "missing" in result.stderr and result.stderr.count("\n") == 1
    assert (
        run_cli("extract-views", str(vectors_dir / "u8_2d.tif"), "--scene", "4", "-o", str(folder)).returncode
        == 2
    )


def test_mix_reads_pngs_of_its_folder_only_and_views_of_its_algorithm(
    vectors_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "v"
    run_cli("extract-views", str(vectors_dir / "u8_2d.tif"), "-o", str(folder), check=True)
    record = json.loads((folder / "views.json").read_text())
    outside = tmp_path / "outside.png"
    outside.write_bytes((folder / record["views"][0]["png"]).read_bytes())
    for png, cause in (
        ("../outside.png", "is not in the views folder"),
        (str(outside), "is not in the views folder"),
    ):
        changed = {**record, "views": [{**record["views"][0], "png": png}, *record["views"][1:]]}
        (folder / "views.json").write_text(json.dumps(changed))
        result = run_cli("mix", str(folder / "views.json"))
        assert result.returncode == 1 and cause in result.stderr and result.stderr.count("\n") == 1
    (folder / "views.json").write_text(json.dumps({**record, "views_algorithm": "bioiscc-views/9"}))
    result = run_cli("mix", str(folder / "views.json"))
    assert result.returncode == 1 and "views of algorithm 'bioiscc-views/9'" in result.stderr
    (folder / "views.json").write_text(json.dumps(record))
    assert run_cli("mix", str(folder / "views.json")).returncode == 0


def test_views_and_scenes_and_thumb_commands(vectors_dir: Path, tmp_path: Path) -> None:
    source = str(vectors_dir / "multiscene.ome.tif")
    result = run_cli("views", "-n", "5", "-o", str(tmp_path / "v"), "--", source, check=True)
    found = json_lines(result.stdout)
    assert [r["scene"]["index"] for r in found] == [0, 1]
    for record in found:
        records.validate(record)
        for view in record["views"]:
            assert read_png(tmp_path / "v" / view["png"]).dtype == np.uint8
    # every scene at once: the views' JSON Lines saved beside their PNGs, mixed with all scene records
    (tmp_path / "v" / "views.jsonl").write_text(result.stdout)
    run_cli("hash", "-o", str(tmp_path / "scenes.jsonl"), "--", source, check=True)
    mixed = run_cli(
        "mix", str(tmp_path / "v" / "views.jsonl"), "--sum", str(tmp_path / "scenes.jsonl"), check=True
    )
    assert [summary(r) for r in json_lines(mixed.stdout)] == GOLDEN["multiscene.ome.tif"]
    run_cli("scenes", str(vectors_dir / "plate.ome.zarr"), "-o", str(tmp_path / "t"), check=True)
    names = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert names == ["plate.ome.zarr.scene_000.thumb.png", "plate.ome.zarr.scene_001.thumb.png"]
    run_cli("thumb", str(vectors_dir / "rgb.ome.tif"), "-o", str(tmp_path / "t"), check=True)
    assert read_png(tmp_path / "t" / "rgb.ome.tif.thumb.png").shape == (40, 30, 3)


def test_thumbnails_use_a_pyramid_level(tmp_path: Path) -> None:
    image = np.random.default_rng(13).integers(0, 4096, (1300, 1100)).astype(np.uint16)
    levels = [image, image[::2, ::2], image[::4, ::4]]
    write_ome_zarr(tmp_path / "p.ome.zarr", levels, "yx", (256, 256))
    with opened(tmp_path / "p.ome.zarr") as src:
        level = thumbnail_level(src, src.scenes()[0])
    assert level is not None and level[0].shape == (650, 550)
    assert type(level[0]).__name__ == "ChunkFileArray"  # opened as level 0 is: bounded chunks, no zarr
    run_cli("thumb", str(tmp_path / "p.ome.zarr"), "-o", str(tmp_path), check=True)
    assert read_png(tmp_path / "p.ome.zarr.thumb.png").shape == (325, 275)  # level 1 binned by f = 2


def test_a_broken_pyramid_level_is_passed_over(tmp_path: Path) -> None:
    image = np.random.default_rng(14).integers(0, 4096, (2600, 2200)).astype(np.uint16)
    levels = [image, image[::2, ::2], image[::4, ::4], image[::8, ::8]]
    store = tmp_path / "p.ome.zarr"
    write_ome_zarr(store, levels, "yx", (256, 256))
    level1 = [p for p in (store / "1").iterdir() if p.name in (".zarray", "zarr.json")]
    assert level1
    level1[0].write_text("not JSON")
    with opened(store) as src:
        found = [array.shape for array, _ in src.lower_levels(0)]
        level = thumbnail_level(src, src.scenes()[0])
    assert found == [(650, 550), (325, 275)]  # level 1 left out, not every level
    assert level is not None and level[0].shape == (650, 550)


# --- real samples ---------------------------------------------------------------------------------


def jpeg_copy(source: Path, target: Path, quality: int) -> None:
    """An 8-bit, JPEG-compressed OME-TIFF copy of a single-channel Z-stack."""
    import tifffile

    import bioiscc

    stack = np.stack([p.data for p in bioiscc.iter_planes(source)]).astype(np.float64)
    scaled = np.round((stack - stack.min()) / (stack.max() - stack.min()) * 255).astype(np.uint8)
    tifffile.imwrite(
        target, scaled, compression="jpeg", compressionargs={"level": quality}, metadata={"axes": "ZYX"}
    )


@pytest.mark.samples
def test_lossy_copy_keeps_its_mixed_code(samples: Path, tmp_path: Path) -> None:
    original = samples / "nd2" / "example-zstack.nd2"
    copy = tmp_path / "zstack_q75.ome.tif"
    jpeg_copy(original, copy, 75)
    (first,) = image_records(original, with_sum=False)
    (second,) = image_records(copy, with_sum=False)
    assert hamming(first["iscc_mixed"], second["iscc_mixed"]) <= SIMILAR_BITS
    for unrelated in ("nd2/example-cerevisiae.nd2", "dv/toxo.dv"):
        (other,) = image_records(samples / unrelated, with_sum=False)
        assert hamming(first["iscc_mixed"], other["iscc_mixed"]) > SIMILAR_BITS


@pytest.mark.samples
def test_czi_and_its_ome_zarr_copies_give_the_same_codes(samples: Path) -> None:
    czi = image_records(samples / "czi" / "CellDivision_T3_Z5_CH2_X240_Y170.czi")
    for version in ("v04", "v05"):
        copy = image_records(samples / "ome-zarr-derived" / f"CellDivision_T3_Z5_CH2.{version}.ome.zarr")
        assert [summary(r) for r in copy] == [summary(r) for r in czi]
        assert [r["views"] for r in copy] == [r["views"] for r in czi]


def test_cli_module_stays_light() -> None:
    """Registering the view commands imports neither numpy nor iscc-core."""
    import subprocess

    code = (
        "import sys, bioiscc.cli; print(sorted(m for m in ('numpy', 'iscc_core', 'PIL') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_image_digest_is_iscc_cores_bit_for_bit() -> None:
    """The vectorised DCT gives iscc-core's soft_hash_image_v0, on random, flat, binary and ramp images."""
    from iscc_core.code_content_image import gen_image_code_v0, soft_hash_image_v0

    from bioiscc.views.imagecode import image_digest

    rng = np.random.default_rng(24138)
    cases = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(400)]
    cases += [np.full((32, 32), value, np.uint8) for value in (0, 1, 127, 255)]
    cases += [(rng.integers(0, 2, (32, 32)) * 255).astype(np.uint8) for _ in range(100)]
    cases += [rng.integers(100, 103, (32, 32), dtype=np.uint8) for _ in range(100)]  # many ties
    ramp = np.tile((np.arange(32) * 8).astype(np.uint8), (32, 1))
    cases += [ramp, ramp.T.copy(), (ramp // 64 * 64).astype(np.uint8)]
    for pixels in cases:
        flat = [int(v) for v in pixels.reshape(-1)]
        for bits in (64, 256):
            assert image_digest(pixels, bits) == soft_hash_image_v0(flat, bits=bits)
    gray = rng.integers(0, 256, (70, 45), dtype=np.uint8)  # any size: reduced to 32 x 32 first
    flat = [int(v) for v in reduce_to_code_side(gray).reshape(-1)]
    assert image_code(gray, 256) == gen_image_code_v0(flat, bits=256)["iscc"]


def test_a_bool_stored_as_another_byte_counts_as_one() -> None:
    from bioiscc.views.reduce import summable

    stored = np.frombuffer(bytes([2, 0, 1, 255]), dtype=np.bool_).reshape(2, 2)
    values, mask, scale, kind = summable(stored)
    assert values.tolist() == [[1, 0], [1, 1]] and mask is None and scale == 0 and kind is np.int64


def test_extract_views_again_leaves_only_its_own_pngs(vectors_dir: Path, tmp_path: Path) -> None:
    source = str(vectors_dir / "img5d_v05.ome.zarr")
    folder = tmp_path / "views"
    (folder).mkdir()
    (folder / "notes.png").write_bytes(b"not ours")  # not listed by a views.json: kept
    run_cli("extract-views", source, "-o", str(folder), check=True)
    first = sorted(p.name for p in folder.glob("*.png"))
    assert len(first) > 2
    run_cli("extract-views", source, "-o", str(folder), "-n", "1", "-s", "mip", check=True)
    (view,) = read_records(folder / "views.json")[0]["views"]
    assert sorted(p.name for p in folder.glob("*.png")) == sorted([view["png"], "notes.png"])


def test_views_written_all_or_none(
    vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error (or Ctrl-C) while the PNGs are written leaves none of them and no views.json."""
    from bioiscc.views import api as views_api

    with opened(vectors_dir / "img5d_v05.ome.zarr") as src:
        info = src.scenes()[0]
        outcome = views_api.scene_views(src, info, strategies=views_api.DEFAULT_STRATEGIES, max_views=5)
        origin = views_api.Origin.of(src)
    written: list[Path] = []

    def write_png(image: Any, path: Path) -> None:
        if written:
            raise KeyboardInterrupt
        path.write_bytes(b"png")
        written.append(path)

    monkeypatch.setattr(views_api, "write_png", write_png)
    with pytest.raises(KeyboardInterrupt):
        views_api.write_views(origin, outcome, tmp_path)
    assert written and list(tmp_path.iterdir()) == []
