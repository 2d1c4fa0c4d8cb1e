"""Storage layouts beyond the vectors: the same pixels give the same code however they are stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import bioiscc
from tests.test_samples import reference_code

RNG = np.random.default_rng(2024)
PIXELS = RNG.integers(0, 60000, size=(2, 3, 4, 40, 36), dtype=np.uint16)  # TCZYX
EXPECTED = reference_code(PIXELS, "TCZYX")


def code(path: Path, scene: int = 0) -> str:
    (record,) = bioiscc.hash_scenes(path, scenes=[scene])
    assert record["status"] == "ok", record["error"]
    return str(record["iscc_code"])


def test_tiled_compressed_ome_tiff(tmp_path: Path) -> None:
    path = tmp_path / "tiled.ome.tif"
    tifffile.imwrite(path, PIXELS, tile=(16, 16), compression="zstd", metadata={"axes": "TCZYX"})
    assert code(path) == EXPECTED


def test_ome_tiff_pyramid_walks_level_zero(tmp_path: Path) -> None:
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(PIXELS, subifds=1, metadata={"axes": "TCZYX"}, tile=(16, 16))
        tif.write(PIXELS[..., ::2, ::2], subfiletype=1, tile=(16, 16))
    walk = bioiscc.walk(path)
    assert len(walk["scenes"]) == 1 and walk["scenes"][0]["dims"]["Y"] == 40
    assert code(path) == EXPECTED


def test_imagej_hyperstack(tmp_path: Path) -> None:
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, np.transpose(PIXELS, (0, 2, 1, 3, 4)), imagej=True, metadata={"axes": "TZCYX"})
    assert code(path) == EXPECTED


def test_planar_rgb_tiff(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, size=(3, 20, 30), dtype=np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    assert code(path) == reference_code(np.moveaxis(rgb, 0, -1), "YXS")


def test_one_pixel_high_planes(tmp_path: Path) -> None:
    """A 1-pixel-high plane is a valid plane (bioio-ome-tiff fails on it, tifffile reads it)."""
    flat = RNG.integers(0, 1000, size=(3, 1, 50), dtype=np.uint16)
    path = tmp_path / "flat.ome.tif"
    tifffile.imwrite(path, flat, metadata={"axes": "ZYX"})
    assert code(path) == reference_code(flat, "ZYX")


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint32", "int32", "float32", "float64"])
def test_pixel_types(tmp_path: Path, dtype: str) -> None:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info:
        data = RNG.integers(info.min, info.max, size=(2, 8, 9), dtype=dtype, endpoint=True)
        data[0, 0, :2] = (info.min, info.max)
    else:
        data = RNG.standard_normal(size=(2, 8, 9)).astype(dtype)
        data[0, 0, :4] = (np.nan, np.inf, -np.inf, -0.0)
    path = tmp_path / f"{dtype}.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "ZYX"})
    assert code(path) == reference_code(data, "ZYX")
    store = tmp_path / f"{dtype}.ome.zarr"
    write_ngff(store, data[np.newaxis, np.newaxis], chunks=(1, 1, 2, 4, 4), zarr_format=3)
    assert code(store) == code(path)


def write_ngff(
    store: Path,
    data: np.ndarray,
    chunks: tuple[int, ...],
    zarr_format: int,
    shards: tuple[int, ...] | None = None,
) -> None:
    """A minimal single-level NGFF image written with zarr itself."""
    root = zarr.open_group(str(store), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    array = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards)
    array[...] = data
    names = "tczyx"[-data.ndim :]
    axes = [{"name": n, "type": {"t": "time", "c": "channel"}.get(n, "space")} for n in names]
    multiscales = [
        {
            "version": "0.5" if zarr_format == 3 else "0.4",
            "axes": axes,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * data.ndim}]}
            ],
        }
    ]
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    else:
        root.attrs["multiscales"] = multiscales


@pytest.mark.parametrize(
    ("chunks", "shards"),
    [((1, 1, 1, 40, 36), None), ((2, 3, 4, 7, 5), None), ((1, 1, 2, 8, 8), (1, 1, 4, 16, 16))],
)
def test_zarr_v3_chunkings(tmp_path: Path, chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> None:
    store = tmp_path / "img.ome.zarr"
    write_ngff(store, PIXELS, chunks=chunks, zarr_format=3, shards=shards)
    assert code(store) == EXPECTED


def test_extra_dimension_in_zarr(tmp_path: Path) -> None:
    """A non-standard axis is pixel content, walked innermost after T."""
    data = RNG.integers(0, 255, size=(2, 3, 5, 6), dtype=np.uint8)  # t, lambda, y, x
    store = tmp_path / "lambda.ome.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 5, 6))[...] = data
    axes = [{"name": "t", "type": "time"}, {"name": "lambda"}, {"name": "y"}, {"name": "x"}]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    (record,) = bioiscc.hash_scenes(store)
    assert record["extra_dims"] == {"lambda": 3} and record["planes"] == 6
    assert record["iscc_code"] == reference_code(data, "TLYX")  # L: an extra axis
