"""Every real sample file gives its scene codes, equal to an independent computation.

The independent side reads each file eagerly with a different library or path than bioiscc uses
(tifffile whole-series reads, zarr whole-array reads, aicspylibczi, nd2, mrc's memory map, liffile's
whole-image reads, bioio's BioImage stitching), arranges the array in IMAGEWALK order with numpy and
hashes it in one go. tests/test_dv_lif.py also compares the DV and LIF samples with Bio-Formats.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from iscc_sum import IsccSumProcessor

import bioiscc
from bioiscc import records
from tests.conftest import json_lines, require_samples, run_cli, samples_root

STANDARD = "TCZYXS"


def sample_files() -> list[str]:
    root = samples_root()
    if not root.exists():
        return ["(samples absent)"]
    found = sorted(
        p.relative_to(root).as_posix() for p in root.glob("*/*") if p.is_file() or p.name.endswith(".zarr")
    )
    return found or ["(samples absent)"]


def reference_code(array: np.ndarray, axes: str) -> str:
    """Arrange (Z, C, S, T, extras..., Y, X), flatten, big-endian: the IMAGEWALK stream."""
    for d in STANDARD:
        if d not in axes:
            array = array[..., np.newaxis]
            axes += d
    extras = [i for i, a in enumerate(axes) if a not in STANDARD]
    order = [axes.index(d) for d in "ZCST"] + extras + [axes.index("Y"), axes.index("X")]
    stream = np.ascontiguousarray(np.transpose(array, order))
    processor = IsccSumProcessor()
    processor.update(stream.astype(stream.dtype.newbyteorder(">")).tobytes())
    return processor.result(wide=True, add_units=True).iscc


def stack(planes: dict[tuple[int, ...], np.ndarray], sizes: list[int]) -> np.ndarray:
    first = next(iter(planes.values()))
    out = np.empty((*sizes, *first.shape), dtype=first.dtype)
    for index, plane in planes.items():
        out[index] = plane
    return out


def tiff_reference(path: Path) -> list[str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return [reference_code(s.asarray(), s.axes) for s in tif.series]


def zarr_reference(path: Path) -> list[str]:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    ms = attrs.get("ome", attrs)["multiscales"][0]
    axes = "".join(a["name"].upper() for a in ms["axes"])
    return [reference_code(group[ms["datasets"][0]["path"]][...], axes)]


def nd2_reference(path: Path) -> list[str]:
    import nd2

    with nd2.ND2File(path) as f:
        axes = "".join(f.sizes)
        assert "P" not in axes, "multi-position ND2 not expected among samples"
        return [reference_code(f.asarray(), axes)]


def dv_reference(path: Path) -> list[str]:
    import mrc

    dv = mrc.DVFile(str(path))
    try:
        return [reference_code(np.asarray(dv.asarray()).reshape(dv.shape), "".join(dv.axes))]
    finally:
        dv.close()


def lif_reference(path: Path) -> list[str]:
    """liffile's whole-image reads; mosaics as bioio's BioImage stitches them.

    The stored frame is the plane: its vertical axis is Y (in an XZ scan, Z; the image's own Y, if
    any, then takes that axis's name), as Bio-Formats shows such files.
    """
    import liffile

    with liffile.LifFile(path) as lif:
        if any("M" in image.sizes for image in lif.images):
            return bioimage_reference(path)
        codes = []
        for image in lif.images:
            axes = list(image.dims)
            rows = [d for d in axes if d not in "CS"][-2]
            if rows != "Y":
                axes = [rows if d == "Y" else "Y" if d == rows else d for d in axes]
            codes.append(reference_code(image.asarray(), "".join(axes)))
        return codes


def bioimage_reference(path: Path) -> list[str]:
    """bioio's own stitched BioImage path, one plane per call with explicit dims."""
    import bioio

    image = bioio.BioImage(path)
    codes = []
    for scene in image.scenes:
        image.set_scene(scene)
        dims = dict(zip(image.dims.order, image.dims.shape, strict=True))
        outer = [d for d in image.dims.order if d not in "YXS"]
        out = "YXS" if "S" in dims else "YX"
        planes = {
            idx: image.get_image_data(out, **dict(zip(outer, idx, strict=True)))
            for idx in np.ndindex(*(dims[d] for d in outer))
        }
        codes.append(reference_code(stack(planes, [dims[d] for d in outer]), "".join(outer) + out))
    return codes


def czi_reference(path: Path) -> list[str]:
    """aicspylibczi, plane by plane; BGR samples reversed to RGB; mosaics via read_mosaic."""
    import aicspylibczi

    czi = aicspylibczi.CziFile(path)
    shape = czi.get_dims_shape()
    if czi.is_mosaic() and len(shape) > 1:
        return bioimage_reference(path)  # per-scene mosaic stitching: bioio's BioImage path
    codes = []
    for scene_dims in shape:
        scene_range = range(*scene_dims["S"]) if "S" in scene_dims else [None]
        for scene in scene_range:
            codes.append(_czi_scene_code(czi, scene_dims, scene))
    return codes


def _czi_scene_code(czi: Any, scene_dims: dict[str, tuple[int, int]], scene: int | None) -> str:
    outer = [d for d in czi.dims if d not in "YXAMSB" and d in scene_dims]
    sizes = [scene_dims[d][1] - scene_dims[d][0] for d in outer]
    planes = {}
    for idx in np.ndindex(*sizes):
        selection = {d: scene_dims[d][0] + i for d, i in zip(outer, idx, strict=True)}
        if czi.is_mosaic():
            plane = czi.read_mosaic(scale_factor=1.0, **selection)
        else:
            if scene is not None:
                selection["S"] = scene
            try:
                plane, _ = czi.read_image(**selection)
            except Exception:
                # a plane the file does not store (sparse Airyscan phases): zeros, as Bio-Formats
                assert not czi.read_subblock_metadata(**selection)
                dtype = {"gray8": np.uint8, "gray16": np.uint16}[czi.pixel_type]
                plane = np.zeros((scene_dims["Y"][1], scene_dims["X"][1]), dtype=dtype)
        plane = np.asarray(plane)
        rgb = "A" in czi.dims and plane.shape[-1] in (3, 4)
        plane = plane.reshape(plane.shape[-3:] if rgb else plane.shape[-2:])
        if rgb:
            plane = plane[:, :, [2, 1, 0, *range(3, plane.shape[2])]]  # stored BGR -> RGB
        planes[idx] = plane
    first = next(iter(planes.values()))
    axes = "".join(outer) + ("YXS" if first.ndim == 3 else "YX")
    return reference_code(stack(planes, sizes), axes)


def independent_codes(path: Path) -> list[str]:
    name = path.name.lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name.endswith((".tif", ".tiff")):
            return tiff_reference(path)
        if name.endswith(".zarr"):
            return zarr_reference(path)
        if name.endswith(".nd2"):
            return nd2_reference(path)
        if name.endswith(".dv"):
            return dv_reference(path)
        if name.endswith(".czi"):
            return czi_reference(path)
        if name.endswith(".lif"):
            return lif_reference(path)
        return bioimage_reference(path)


@pytest.mark.samples
@pytest.mark.parametrize("name", sample_files())
def test_sample_codes_equal_independent_reads(name: str) -> None:
    root = require_samples()
    path = root / name
    got: list[dict[str, Any]] = bioiscc.hash_scenes(path)
    for record in got:
        records.validate(record)
        assert record["status"] == "ok", f"{name} scene {record['scene']}: {record['error']}"
    assert [r["iscc_code"] for r in got] == independent_codes(path)


@pytest.mark.samples
def test_samples_give_the_same_code_across_formats(samples: Path) -> None:
    def code(name: str, scene: int = 0) -> str:
        return bioiscc.hash_scenes(samples / name, scenes=[scene])[0]["iscc_code"]

    czi = code("czi/CellDivision_T3_Z5_CH2_X240_Y170.czi")
    assert code("ome-zarr-derived/CellDivision_T3_Z5_CH2.v04.ome.zarr") == czi
    assert code("ome-zarr-derived/CellDivision_T3_Z5_CH2.v05.ome.zarr") == czi
    # a Bio-Formats OME-TIFF export of a CZI keeps its pixels
    assert code("ome-tiff/FOV7_HV110_P0500510000.ome.tiff") == code("czi/FOV7_HV110_P0500510000.czi")
    # the same well acquired in two files
    assert code("czi/WellD6_S1.czi") == code("czi/WellD6-7_S2.czi", 0)


@pytest.mark.samples
def test_rgb_czi_is_hashed_in_rgb_order(samples: Path) -> None:
    """bioio-czi returns Bgr24 as stored; IMAGEWALK wants R, G, B."""
    import bioio_czi

    path = samples / "czi/RGB-8bit.czi"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = bioio_czi.Reader(str(path)).get_image_data("YXS", T=0)
    record = bioiscc.hash_scenes(path)[0]
    assert record["dims"]["S"] == 3 and record["planes"] == 3
    assert record["iscc_code"] == reference_code(stored[:, :, ::-1], "YXS")
    assert record["iscc_code"] != reference_code(stored, "YXS")


@pytest.mark.samples
def test_airyscan_phases_are_walked(samples: Path) -> None:
    """H=32 phases walked after T; the 124 planes the file does not store are zeros.

    The datahash below is the one Bio-Formats 7.3.1 gives for the same file (which shows the
    phases as T=32 and returns the unstored planes as zeros), measured on 2026-11-25.
    """
    (record,) = bioiscc.hash_scenes(samples / "czi/LSM880_AiryScan.czi")
    records.validate(record)
    assert record["extra_dims"] == {"V": 1, "H": 32} and record["planes"] == 256
    assert record["absent_planes"] == 124
    assert record["datahash"] == "1e20250ae9c4597b2204d614482f8b1e9eaadc73885f1468a3b7a8fbf59a20660412"


@pytest.mark.samples
def test_sample_runs_are_identical(samples: Path) -> None:
    path = str(samples / "czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi")
    first = run_cli("hash", path, "--simprints", check=True).stdout
    second = run_cli("hash", path, "--simprints", check=True).stdout
    assert first == second and len(json_lines(first)) == 3


@pytest.mark.samples
def test_every_sample_hashed_in_threads(samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scenes of 16 MiB or more are hashed in two threads (bioiscc.hasher); the samples are
    smaller, so here every one is, in pieces smaller than most planes, and must give the records
    of the hash in the calling thread: codes, units, datahash and every simprint."""
    from bioiscc import hasher

    monkeypatch.setattr(hasher, "PIECE_BYTES", 40_000)
    monkeypatch.setattr(hasher, "QUEUE_DEPTH", 3)
    for name in sample_files():
        path = samples / name
        monkeypatch.setenv("BIOISCC_HASH_THREADS", "0")
        here = bioiscc.hash_scenes(path, simprints=True)
        monkeypatch.setenv("BIOISCC_HASH_THREADS", "always")
        in_threads = bioiscc.hash_scenes(path, simprints=True)
        assert [r["status"] for r in here] == ["ok"] * len(here), name
        assert in_threads == here, name
