"""Every IMAGEWALK vector (tests/vectors/expected.json) is reproduced, through API and CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bioiscc
from bioiscc import records
from tests.conftest import VECTORS, json_lines, run_cli

EXPECTED = json.loads((VECTORS / "expected.json").read_text())


def assert_matches(record: dict[str, Any], want: dict[str, Any]) -> None:
    assert record["status"] == "ok", record["error"]
    for key in ("iscc_code", "units", "datahash", "bytes", "planes", "dtype"):
        assert record[key] == want[key], key
    first = [s["simprint"] for s in record["simprints"][:3]]
    assert first == want["first_simprints"]
    assert [s["offset"] for s in record["simprints"]] == list(range(want["planes"]))
    assert sum(s["size"] for s in record["simprints"]) == want["bytes"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_scene_codes(vectors_dir: Path, name: str) -> None:
    got = bioiscc.hash_scenes(vectors_dir / name, simprints=True)
    assert len(got) == len(EXPECTED[name])
    for index, (record, want) in enumerate(zip(got, EXPECTED[name], strict=True)):
        records.validate(record)
        assert record["scene"]["index"] == index
        assert_matches(record, want)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_walk_manifest(vectors_dir: Path, name: str) -> None:
    manifest = bioiscc.walk(vectors_dir / name)
    records.validate(manifest)
    assert manifest["status"] == "ok"
    assert [(s["planes"], s["bytes"], s["dtype"]) for s in manifest["scenes"]] == [
        (w["planes"], w["bytes"], w["dtype"]) for w in EXPECTED[name]
    ]


def test_cli_hash_and_manifest_pipeline(vectors_dir: Path, tmp_path: Path) -> None:
    """The shell pipeline: walk > walk.json, then hash --manifest walk.json --scene K."""
    source = str(vectors_dir / "multiscene.ome.tif")
    walk_json = tmp_path / "walk.json"
    run_cli("walk", source, "-o", str(walk_json), check=True)
    for index, want in enumerate(EXPECTED["multiscene.ome.tif"]):
        out = run_cli("hash", "--manifest", str(walk_json), "--scene", str(index), "--simprints", check=True)
        (record,) = json_lines(out.stdout)
        records.validate(record)
        assert record["scene"]["index"] == index
        assert_matches(record, want)


def test_cli_hash_writes_json_lines_atomically(vectors_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "scenes.jsonl"
    target.parent.mkdir()  # -o writes into an existing folder (a missing one is an error)
    run_cli("hash", str(vectors_dir / "plate.ome.zarr"), "-o", str(target), check=True)
    got = json_lines(target.read_text())
    assert [r["iscc_code"] for r in got] == [w["iscc_code"] for w in EXPECTED["plate.ome.zarr"]]
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind


def test_manifest_of_changed_source_is_refused(vectors_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "u8.tif"
    shutil.copy(vectors_dir / "u8_2d.tif", copy)
    manifest = bioiscc.walk(copy)
    os.utime(copy, ns=(1, 1))
    with pytest.raises(bioiscc.InputError, match="changed since it was walked"):
        bioiscc.hash_manifest(manifest)


def test_scene_selection(vectors_dir: Path) -> None:
    got = bioiscc.hash_scenes(vectors_dir / "multiscene.ome.tif", scenes=[1])
    assert [r["iscc_code"] for r in got] == [EXPECTED["multiscene.ome.tif"][1]["iscc_code"]]
    out = run_cli("hash", str(vectors_dir / "multiscene.ome.tif"), "--scene", "5")
    assert out.returncode == 2 and "no scene 5" in out.stderr


def test_a_scene_asked_for_twice_is_done_once(vectors_dir: Path) -> None:
    out = run_cli("hash", "--scene", "1", "--scene", "1", str(vectors_dir / "multiscene.ome.tif"), check=True)
    assert len(out.stdout.splitlines()) == 1


def test_a_scene_the_source_lacks_raises_scene_selection_error(vectors_dir: Path) -> None:
    with pytest.raises(bioiscc.SceneSelectionError, match="no scene 5"):
        bioiscc.hash_scenes(vectors_dir / "multiscene.ome.tif", scenes=[5])
    with pytest.raises(bioiscc.BioisccError, match="no scene 5"):
        list(bioiscc.iter_planes(vectors_dir / "multiscene.ome.tif", scene=5))


def test_a_scene_a_later_source_lacks_fails_that_source_only(vectors_dir: Path, tmp_path: Path) -> None:
    """One source's failure never stops the others: the sources that have scene 1 are written."""
    several = [str(vectors_dir / name) for name in ("multiscene.ome.tif", "u8_2d.tif", "multiscene.ome.tif")]
    out = run_cli("hash", "--scene", "1", *several, "-o", str(tmp_path / "out.jsonl"))
    assert out.returncode == 1 and "u8_2d.tif: no scene 1" in out.stderr, out.stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["source"], r["scene"]["index"]) for r in written] == [(several[0], 1), (several[2], 1)]


def test_narrow_code(vectors_dir: Path) -> None:
    (record,) = bioiscc.hash_scenes(vectors_dir / "u8_2d.tif", narrow=True)
    records.validate(record)
    want = EXPECTED["u8_2d.tif"][0]
    assert record["iscc_code"].startswith("ISCC:KUA")
    assert record["units"] == want["units"] and record["datahash"] == want["datahash"]


def test_biocode_container(vectors_dir: Path) -> None:
    import iscc_sum

    path = vectors_dir / "multiscene.ome.tif"
    container = bioiscc.biocode(path, simprints=True)
    records.validate(container)
    raw = iscc_sum.code_iscc_sum(str(path), wide=True, add_units=True)
    assert container["iscc_code"] == raw.iscc and container["datahash"] == raw.datahash
    assert container["filesize"] == path.stat().st_size
    assert [p["iscc_code"] for p in container["parts"]] == [
        w["iscc_code"] for w in EXPECTED["multiscene.ome.tif"]
    ]
    no_raw = bioiscc.biocode(path, raw=False)
    records.validate(no_raw)
    assert no_raw["iscc_code"] is None and no_raw["filesize"] is None


def test_biocode_of_store_uses_treewalk_order(vectors_dir: Path) -> None:
    store = vectors_dir / "img5d_v05.ome.zarr"
    container = bioiscc.biocode(store)
    tree = subprocess.run(
        [sys.executable, "-m", "iscc_sum", "--tree", str(store)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert container["iscc_code"] == tree


def test_results_do_not_depend_on_scheduling(vectors_dir: Path) -> None:
    """Chunk cache sizes change how often chunks are decoded, never the codes."""
    source = str(vectors_dir / "img5d_v04_chunky.ome.zarr")
    want = EXPECTED["img5d_v04_chunky.ome.zarr"][0]["iscc_code"]
    for budget in ("0", "1", "4096"):
        env = {**os.environ, "BIOISCC_CACHE_MB": budget}
        out = run_cli("hash", source, env=env, check=True)
        assert json_lines(out.stdout)[0]["iscc_code"] == want


def test_each_chunk_is_decoded_once(vectors_dir: Path) -> None:
    from bioiscc.imagewalk import iter_planes
    from bioiscc.sources import open_source

    with open_source(str(vectors_dir / "img5d_v04_chunky.ome.zarr")) as src:
        (info,) = src.scenes()
        reader = src.open_scene(info)
        planes = sum(1 for _ in iter_planes(reader))
        assert planes == 24
        assert reader.decoded_bytes == info.bytes  # read amplification 1.0


def test_iter_planes_for_own_hash(vectors_dir: Path) -> None:
    from iscc_sum import IsccSumProcessor

    from bioiscc.imagewalk import canonical_bytes

    processor = IsccSumProcessor()
    positions = []
    for plane in bioiscc.iter_planes(vectors_dir / "rgb_t2c2.ome.tif"):
        positions.append((plane.z, plane.c, plane.t))
        processor.update(canonical_bytes(plane.data))
    assert positions[:3] == [(0, 0, 0), (0, 0, 1), (0, 1, 0)] and len(positions) == 12
    result = processor.result(wide=True, add_units=True)
    assert result.iscc == EXPECTED["rgb_t2c2.ome.tif"][0]["iscc_code"]


def test_repeated_runs_are_identical(vectors_dir: Path) -> None:
    first = run_cli("biocode", str(vectors_dir / "img5d_u16.ome.tif"), "--simprints", check=True).stdout
    second = run_cli("biocode", str(vectors_dir / "img5d_u16.ome.tif"), "--simprints", check=True).stdout
    assert first == second


def test_shipped_vectors_equal_the_spec_copy() -> None:
    shared = VECTORS.parents[2] / "shared" / "vectors"
    if not shared.exists():
        pytest.skip(f"{shared} not present (a user's clone)")
    for name in ("expected.json", "make_vectors.py"):
        assert (VECTORS / name).read_bytes() == (shared / name).read_bytes(), name
