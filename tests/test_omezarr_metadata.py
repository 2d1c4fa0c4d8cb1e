"""OME-Zarr metadata read by `bioiscc.sources.omezarr`: axes known by their NGFF type, the dtype
recorded in native byte order, bioformats2raw series that cannot be read, and malformed metadata.

Every store is written by zarr; `bioiscc hash` runs in a fresh process, as a user runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from tests.conftest import json_lines, run_cli

#: NGFF axis types of the standard dimensions
TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
#: exception class names a user must never see
PYTHON_INTERNALS = ("Traceback", "AttributeError", "TypeError", "KeyError", "ValueError", "IndexError")


def ngff_axes(names: str) -> list[dict[str, str]]:
    """Standard axes (t, c, z, y, x) with their NGFF types."""
    return [{"name": name, "type": TYPES[name]} for name in names]


def write_image(
    store: Path, data: np.ndarray, axes: list[Any], zarr_format: int = 2, name: str = "img"
) -> Path:
    """A one-level NGFF image: 0.4 on Zarr v2, 0.5 on Zarr v3, its array at path "0"."""
    root = zarr.open_group(str(store), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    array = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=data.shape, fill_value=0)
    array[...] = data
    scale = [{"type": "scale", "scale": [1.0] * data.ndim}]
    multiscale = {"name": name, "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return store


def write_b2r(store: Path, series: dict[str, np.ndarray]) -> Path:
    """A bioformats2raw layout: one NGFF 0.4 image per numbered series group, and the OME group."""
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    root.create_group("OME")
    for name, data in series.items():
        write_image(store / name, data, ngff_axes("zyx"), name=f"image {name}")
    return store


def hash_records(*paths: Path) -> tuple[int, list[dict[str, Any]], list[str]]:
    """`bioiscc hash PATHS`: (exit code, records, stderr lines)."""
    result = run_cli("hash", *map(str, paths))
    return result.returncode, json_lines(result.stdout), result.stderr.splitlines()


def pixels(shape: tuple[int, ...], seed: int, dtype: str = "uint8") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, shape).astype(dtype)


# --- axes known by their type ------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_axes_named_freely_are_known_by_their_type(zarr_format: int, tmp_path: Path) -> None:
    """time/channel/depth/row/col (types time, channel, space x3) walk as T, C, Z, Y, X: the codes
    of the same pixels with standard names, and as an OME-TIFF (IMAGEWALK section 7)."""
    data = pixels((2, 3, 2, 4, 5), seed=6)
    free = [
        {"name": "time", "type": "time"},
        {"name": "channel", "type": "channel"},
        {"name": "depth", "type": "space"},
        {"name": "row", "type": "space"},
        {"name": "col", "type": "space"},
    ]
    named = write_image(tmp_path / "free.ome.zarr", data, free, zarr_format)
    standard = write_image(tmp_path / "standard.ome.zarr", data, ngff_axes("tczyx"), zarr_format)
    tiff = tmp_path / "same.ome.tif"
    tifffile.imwrite(tiff, data, metadata={"axes": "TCZYX"}, ome=True)
    code, records, errors = hash_records(named, standard, tiff)
    assert code == 0, errors
    assert records[0]["dims"] == {"T": 2, "C": 3, "Z": 2, "Y": 4, "X": 5, "S": 1}
    assert records[0]["extra_dims"] == {}
    assert len({r["iscc_code"] for r in records}) == 1, [(r["source"], r["iscc_code"]) for r in records]


def test_an_axis_of_another_type_is_an_extra_dimension(tmp_path: Path) -> None:
    """A custom-typed axis keeps its name as an extra dimension; the typed ones beside it are still
    known by type, and an axis without a type by its name."""
    data = pixels((2, 3, 4, 5), seed=7)
    free = [
        {"name": "phase", "type": "custom"},
        {"name": "wavelength", "type": "channel"},
        {"name": "row", "type": "space"},
        {"name": "col", "type": "space"},
    ]
    untyped = [{"name": "phase", "type": "custom"}, {"name": "c"}, *ngff_axes("yx")]
    code, records, errors = hash_records(
        write_image(tmp_path / "free.ome.zarr", data, free),
        write_image(tmp_path / "untyped.ome.zarr", data, untyped),
    )
    assert code == 0, errors
    for record in records:
        assert record["dims"] == {"T": 1, "C": 3, "Z": 1, "Y": 4, "X": 5, "S": 1}, record["source"]
        assert record["extra_dims"] == {"phase": 2}, record["source"]
    assert records[0]["iscc_code"] == records[1]["iscc_code"]


# --- dtype ---------------------------------------------------------------------------------------------


def test_big_endian_zarr_v2_records_the_native_dtype(tmp_path: Path) -> None:
    """RECORDS.md names a dtype "uint16" whatever byte order the chunks are stored in."""
    data = np.arange(2 * 12 * 10, dtype="<u2").reshape(2, 12, 10) * 257
    little = write_image(tmp_path / "little.ome.zarr", data, ngff_axes("zyx"))
    big = write_image(tmp_path / "big.ome.zarr", data.astype(">u2"), ngff_axes("zyx"))
    assert json.loads((big / "0" / ".zarray").read_text())["dtype"] == ">u2"  # stored big-endian
    code, records, errors = hash_records(big, little)
    assert code == 0, errors
    assert [r["dtype"] for r in records] == ["uint16", "uint16"]
    assert records[0]["iscc_code"] == records[1]["iscc_code"]
    assert records[0]["datahash"] == records[1]["datahash"]


# --- bioformats2raw series that cannot be read -----------------------------------------------------------


def four_series(tmp_path: Path) -> tuple[Path, list[str]]:
    """Series 0, 1, 2 and 10 (listed in numeric order), and the code of each."""
    series = {name: pixels((2, 6, 7), seed=int(name)) for name in ("0", "1", "2", "10")}
    store = write_b2r(tmp_path / "b2r.ome.zarr", series)
    code, records, errors = hash_records(store)
    assert code == 0, errors
    assert [r["scene"]["name"] for r in records] == ["image 0", "image 1", "image 2", "image 10"]
    return store, [r["iscc_code"] for r in records]


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        ("lost", "series 2: not a readable Zarr group: no group metadata (.zgroup or zarr.json)"),
        ("not JSON", "series 2: invalid Zarr metadata (not JSON)"),
    ],
)
def test_a_series_that_cannot_be_read_fails_at_its_index(damage: str, cause: str, tmp_path: Path) -> None:
    """IMAGEWALK section 1: never dropped, and the scenes after it keep their index (exit 3)."""
    store, codes = four_series(tmp_path)
    if damage == "lost":
        (store / "2" / ".zgroup").unlink()
        (store / "2" / ".zattrs").unlink()
    else:
        (store / "2" / ".zattrs").write_text('{"multiscales": [')
    code, records, errors = hash_records(store)
    assert code == 3
    assert [r["scene"]["index"] for r in records] == [0, 1, 2, 3]
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "ok"]
    assert cause in records[2]["error"]
    assert [r["iscc_code"] for r in records] == [codes[0], codes[1], None, codes[3]]
    assert len(errors) == 1 and errors[0].startswith(f"bioiscc: {store}: scene 2: {cause}"), errors


# --- malformed metadata -------------------------------------------------------------------------------


def image_attrs(**multiscale: Any) -> dict[str, Any]:
    """Root attributes of an NGFF 0.4 image whose first multiscales entry is changed by `multiscale`."""
    entry = {"version": "0.4", "axes": ngff_axes("yx"), "datasets": [{"path": "0"}], **multiscale}
    return {"multiscales": [entry]}


def plate_attrs(wells: Any = None, images: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(root, well A/1) attributes of a plate with one well and one field (changed by the args)."""
    plate = {"wells": [{"path": "A/1"}] if wells is None else wells}
    well = {"images": [{"path": "0"}] if images is None else images}
    return {"plate": plate}, {"well": well}


#: case -> (root attributes, well A/1 attributes or None, the error's cause)
MALFORMED: dict[str, tuple[Any, Any, str]] = {
    "multiscales a string": ({"multiscales": "x"}, None, "multiscales is not a list of objects"),
    "multiscales of strings": ({"multiscales": ["x"]}, None, "multiscales is not a list of objects"),
    "multiscales empty": ({"multiscales": []}, None, "multiscales is an empty list"),
    "datasets a string": (image_attrs(datasets="x"), None, "datasets is not a list of objects"),
    "datasets of numbers": (image_attrs(datasets=[1]), None, "datasets is not a list of objects"),
    "dataset without path": (image_attrs(datasets=[{}]), None, "a dataset's path is not a string"),
    "dataset path a number": (image_attrs(datasets=[{"path": 0}]), None, "a dataset's path is not a string"),
    "axes a number": (image_attrs(axes=5), None, "axes is not a list of names or of objects"),
    "axes a string": (image_attrs(axes="yx"), None, "axes is not a list of names or of objects"),
    "axis without name": (image_attrs(axes=[{"type": "space"}] * 2), None, "axes is not a list"),
    "axis name a number": (image_attrs(axes=[{"name": 1}, {"name": 2}]), None, "axes is not a list"),
    "axis type a list": (image_attrs(axes=[{"name": "y", "type": []}] * 2), None, "axes is not a list"),
    "plate a string": ({"plate": "x"}, None, "plate is not an object"),
    "wells a string": (plate_attrs(wells="x")[0], None, "plate.wells is not a list of objects"),
    "well path a number": (plate_attrs(wells=[{"path": 1}])[0], None, "plate.wells: a path is not a string"),
    "well a string": (plate_attrs()[0], {"well": "x"}, "well A/1: well is not an object"),
    "images a string": (*plate_attrs(images="x"), "well A/1: well.images is not a list of objects"),
    "image without path": (*plate_attrs(images=[{}]), "well A/1: well.images: a path is not a string"),
    "layout a string": ({"bioformats2raw.layout": "x"}, None, "bioformats2raw.layout is not an integer"),
    "layout an object": ({"bioformats2raw.layout": {}}, None, "bioformats2raw.layout is not an integer"),
}


def malformed_store(store: Path, root: Any, well: Any) -> Path:
    """A Zarr v2 store holding a 2D array at "0" (and in well A/1's field 0), with these attributes."""
    group = zarr.open_group(str(store), mode="w", zarr_format=2)
    group.create_array("0", shape=(4, 5), dtype="uint8", chunks=(4, 5))[...] = 1
    if well is not None:
        well_group = group.create_group("A").create_group("1")
        write_image(store / "A" / "1" / "0", pixels((4, 5), seed=1), ngff_axes("yx"))
        (store / "A" / "1" / ".zattrs").write_text(json.dumps(well))
        assert well_group.path == "A/1"
    (store / ".zattrs").write_text(json.dumps(root))
    return store


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_root_metadata_is_one_line(case: str, tmp_path: Path) -> None:
    """Metadata that leaves the scenes unknown fails the input: exit 1, one line, no Python words."""
    root, well, cause = MALFORMED[case]
    store = malformed_store(tmp_path / "bad.ome.zarr", root, well)
    result = run_cli("hash", str(store))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(store) in lines[0] and f"invalid OME-Zarr metadata: {cause}" in lines[0], lines[0]
    assert not any(word in result.stderr for word in PYTHON_INTERNALS), result.stderr
    assert result.stdout == ""


def test_zarr_v3_attributes_that_are_not_an_object(tmp_path: Path) -> None:
    store = write_image(tmp_path / "v3.ome.zarr", pixels((4, 5), seed=2), ngff_axes("yx"), zarr_format=3)
    meta = json.loads((store / "zarr.json").read_text())
    (store / "zarr.json").write_text(json.dumps({**meta, "attributes": ["ome"]}))
    result = run_cli("hash", str(store))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"bioiscc: error: {store}: invalid Zarr metadata: {store.name}/zarr.json: its attributes are not "
        "a JSON object"
    ]


@pytest.mark.parametrize(
    ("multiscales", "cause"),
    [
        ("x", "multiscales is not a list of objects"),
        ([{"datasets": {"path": "0"}}], "datasets is not a list of objects"),
        ([{"datasets": [{"path": "0"}], "axes": [{"name": 3}] * 3}], "axes is not a list"),
    ],
)
def test_one_series_with_malformed_metadata_fails_alone(multiscales: Any, cause: str, tmp_path: Path) -> None:
    """An image's own metadata is its scene's: that scene fails (named), the others are hashed."""
    store, codes = four_series(tmp_path)
    (store / "1" / ".zattrs").write_text(json.dumps({"multiscales": multiscales}))
    code, records, errors = hash_records(store)
    assert code == 3
    assert [r["status"] for r in records] == ["ok", "failed", "ok", "ok"]
    assert [r["iscc_code"] for r in records] == [codes[0], None, codes[2], codes[3]]
    assert len(errors) == 1 and errors[0].startswith(
        f"bioiscc: {store}: scene 1: series 1: invalid OME-Zarr metadata: {cause}"
    ), errors
    assert not any(word in "\n".join(errors) for word in PYTHON_INTERNALS)
