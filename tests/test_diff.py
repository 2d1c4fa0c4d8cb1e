"""`bioiscc diff`: identical pixels, the same pixels in another geometry, or which planes differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result

from bioiscc import compare, records
from bioiscc.cli import main

from .conftest import REPO, run_cli
from .test_layouts import write_ngff

SAMPLE_DATA = REPO / "resources" / "sample-data"
#: T=2, C=3, Z=4 planes of 48 x 64 pixels: 24 planes, each small enough that its simprint sees a pixel
PIXELS = np.random.default_rng(7).integers(0, 4096, size=(2, 3, 4, 48, 64), dtype=np.uint16)


def write(path: Path, data: np.ndarray, axes: str = "TCZYX") -> Path:
    tifffile.imwrite(path, data, metadata={"axes": axes})
    return path


def diff(*args: str) -> Result:
    return CliRunner().invoke(main, ["diff", *map(str, args)])


def diff_json(*args: str) -> dict[str, Any]:
    result = diff("--json", *args)
    assert result.exit_code in (0, 1), result.output
    record: dict[str, Any] = json.loads(result.stdout)
    records.validate(record)
    return record


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The original, one pixel changed in plane z=2 c=1 t=0, channels reversed, Z and C swapped."""
    folder = tmp_path_factory.mktemp("diff")
    changed = PIXELS.copy()
    changed[0, 1, 2, 10, 17] ^= 1
    return {
        "a": write(folder / "a.ome.tif", PIXELS),
        "changed": write(folder / "changed.ome.tif", changed),
        "reordered": write(folder / "reordered.ome.tif", PIXELS[:, ::-1]),
        "relabelled": write(folder / "relabelled.ome.tif", np.transpose(PIXELS, (0, 2, 1, 3, 4))),
    }


def hash_records(tmp_path: Path, image: Path, simprints: bool = True) -> Path:
    target = tmp_path / f"{image.stem}.json"
    args = ["hash", str(image), "-o", str(target)] + (["--simprints"] if simprints else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return target


def test_diff_names_exactly_the_changed_plane(images: dict[str, Path]) -> None:
    result = diff(images["a"], images["changed"])
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert "different pixels: 1 of 24 planes differ (z=2 c=1 t=0);" in line
    assert "Data-Code distance" in line and "look alike (ISCC-MIXED distance" in line

    record = diff_json(images["a"], images["changed"])
    (scene,) = record["scenes"]
    assert record["verdict"] == scene["verdict"] == "different"
    assert scene["planes"]["by"] == "digest" and scene["planes"]["compared"] == 24
    assert [c["a"] for c in scene["planes"]["changed"]] == [{"z": 2, "c": 1, "t": 0}]
    assert scene["look_alike"] is True


def test_diff_reads_the_same_facts_with_the_hash_in_threads(
    images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large scenes are hashed in threads while the walk digests each plane here: the
    digests, simprints and codes must be those of the hash in the calling thread, and the diff the same."""
    from bioiscc import hasher

    monkeypatch.setattr(hasher, "PIECE_BYTES", 2000)  # planes of 6,144 bytes in several pieces
    monkeypatch.setattr(hasher, "QUEUE_DEPTH", 2)
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "0")
    here = compare.facts_from_source(str(images["changed"]))
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "always")
    assert compare.facts_from_source(str(images["changed"])) == here
    assert diff_json(images["a"], images["changed"])["scenes"][0]["planes"]["changed"][0]["a"] == {
        "z": 2,
        "c": 1,
        "t": 0,
    }


def test_diff_of_records_names_the_plane_by_its_simprint(images: dict[str, Path], tmp_path: Path) -> None:
    a = hash_records(tmp_path, images["a"])
    changed = hash_records(tmp_path, images["changed"])
    result = diff(a, changed)
    assert result.exit_code == 1
    assert "1 of 24 planes differ (z=2 c=1 t=0)" in result.stdout
    (scene,) = diff_json(a, changed)["scenes"]
    assert scene["planes"]["by"] == "simprint"
    assert scene["planes"]["changed"][0]["simprint_distance"] > 0
    # a record against a source: simprints on both sides
    assert diff(a, images["a"]).exit_code == 0
    # without simprints the planes cannot be told apart, but the verdict stands
    plain = hash_records(tmp_path, images["changed"], simprints=False)
    result = diff(a, plain)
    assert result.exit_code == 1
    assert "planes not compared (no per-plane simprints on both sides)" in result.stdout


def test_planes_reordered_are_the_same_pixels_in_another_geometry(images: dict[str, Path]) -> None:
    result = diff("--no-views", images["a"], images["reordered"])
    assert result.exit_code == 1
    # channels 0 and 2 trade places; channel 1 stays
    assert (
        "same pixels in another geometry: the same 24 planes (exact), 16 at other positions" in result.stdout
    )
    (scene,) = diff_json("--no-views", images["a"], images["reordered"])["scenes"]
    assert scene["verdict"] == "same-pixels-other-geometry"
    moved = scene["planes"]["moved"]
    assert {(m["a"]["c"], m["b"]["c"]) for m in moved} == {(0, 2), (2, 0)}
    assert all((m["a"]["z"], m["a"]["t"]) == (m["b"]["z"], m["b"]["t"]) for m in moved)

    relabelled = diff_json("--no-views", images["a"], images["relabelled"])["scenes"][0]
    assert relabelled["verdict"] == "same-pixels-other-geometry"
    assert relabelled["a"]["dims"]["Z"] == relabelled["b"]["dims"]["C"] == 4


def test_identical_pixels_in_two_formats(tmp_path: Path) -> None:
    """TIFF vs OME-Zarr of the same pixels, and the bundled ND2 vs its OME-Zarr copy."""
    tiff = write(tmp_path / "a.ome.tif", PIXELS)
    store = tmp_path / "a.ome.zarr"
    write_ngff(store, PIXELS, chunks=(1, 1, 2, 24, 32), zarr_format=3)
    result = diff(tiff, store)
    assert result.exit_code == 0, result.output
    assert ": identical pixels (ISCC:K4A" in result.stdout

    nd2 = SAMPLE_DATA / "nd2" / "example-zstack.nd2"
    zarr_copy = SAMPLE_DATA / "ome-zarr" / "example-zstack.ome.zarr"
    record = diff_json("--no-views", nd2, zarr_copy)
    assert record["verdict"] == "identical"
    assert record["scenes"][0]["a"]["iscc_code"] == record["scenes"][0]["b"]["iscc_code"]


def test_unrelated_images_do_not_look_alike() -> None:
    result = diff(SAMPLE_DATA / "nd2" / "example-zstack.nd2", SAMPLE_DATA / "dv" / "toxo.dv")
    assert result.exit_code == 1
    assert "different pixels:" in result.stdout and "they do not look alike" in result.stdout


def test_trouble_exits_2_with_one_line(images: dict[str, Path], tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"kind": ')
    other = tmp_path / "other.json"
    other.write_text('{"kind": "bioiscc.walk", "source": "x"}')
    failed = tmp_path / "failed.json"
    failed.write_text(
        json.dumps({"kind": "bioiscc.scene", "scene": {"index": 0}, "status": "failed", "error": "x"})
    )
    cases = {
        (str(tmp_path / "missing.tif"), str(images["a"])): "missing.tif: no such file",
        (str(bad_json), str(images["a"])): "bad.json: not JSON records",
        (str(other), str(images["a"])): "other.json: a 'bioiscc.walk' record",
        (str(failed), str(images["a"])): "failed.json: scene 0 failed: x",
    }
    for (a, b), message in cases.items():
        result = run_cli("diff", a, b)
        assert result.returncode == 2, (a, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not result.stdout
    result = run_cli("diff", "--scene", "3", str(images["a"]), str(images["a"]))
    assert result.returncode == 2 and "no scene 3" in result.stderr
    assert diff("--scene-b", "0", images["a"], images["a"]).exit_code == 2


def test_a_record_claiming_huge_dims_fails_before_any_memory(images: dict[str, Path], tmp_path: Path) -> None:
    a = hash_records(tmp_path, images["a"])
    record = json.loads(a.read_text())
    record["dims"]["T"] = 10**20
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(record))
    result = run_cli("diff", str(a), str(huge), timeout=60)
    assert result.returncode == 2 and "24 simprints for 1200000000000000000000 planes" in result.stderr


def test_scenes_are_paired_by_index() -> None:
    def facts(index: int, datahash: str) -> compare.SceneFacts:
        return compare.SceneFacts(
            source="x",
            index=index,
            name=None,
            dims={"T": 1, "C": 1, "Z": 1, "Y": 2, "X": 2, "S": 1},
            extra_dims={},
            dtype="uint8",
            iscc_code="ISCC:K4A",
            units=("ISCC:GADQ", "ISCC:IADQ"),
            datahash=datahash,
        )

    pairs = compare.pair_scenes([facts(0, "a"), facts(1, "b")], [facts(0, "a"), facts(2, "c")])
    assert [(a and a.index, b and b.index) for a, b in pairs] == [(0, 0), (1, None), (None, 2)]
    diffs = [
        compare.compare_scenes(a, b) if a and b else compare.SceneDiff(a, b, compare.MISSING)
        for a, b in pairs
    ]
    assert [d.verdict for d in diffs] == ["identical", "missing", "missing"]
    assert compare.overall(diffs) == "missing"
    assert "scene 1 is missing from B" in compare.verdict_line(diffs[1], "A", "B", several=True)


def test_positions_follow_the_walk_order() -> None:
    places = compare.positions({"T": 2, "C": 3, "Z": 2, "Y": 1, "X": 1, "S": 1}, {"H": 2})
    assert len(places) == 24
    assert [compare.position_text(p) for p in places[:3]] == [
        "z=0 c=0 t=0 H=0",
        "z=0 c=0 t=0 H=1",
        "z=0 c=0 t=1 H=0",
    ]
    assert compare.position_text(places[-1]) == "z=1 c=2 t=1 H=1"


def test_the_same_stream_in_other_dims(tmp_path: Path) -> None:
    """Z=4 planes and T=4 planes of one channel walk as the same stream: the same pixels, other dims."""
    stack = PIXELS[0, 0]  # Z=4
    as_z = write(tmp_path / "z.ome.tif", stack, axes="ZYX")
    as_t = write(tmp_path / "t.ome.tif", stack, axes="TYX")
    result = diff("--no-views", as_z, as_t)
    assert result.exit_code == 1
    assert (
        "same pixels in another geometry: the same pixel stream, cut into other dims (Z=4 vs T=4)"
        in result.stdout
    )
    assert "look alike" not in result.stdout
