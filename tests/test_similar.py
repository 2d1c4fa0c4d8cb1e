"""`bioiscc similar`: identical, near-identical and look-alike scenes across index rows."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import iscc_core as ic
import numpy as np
import pytest
from click.testing import CliRunner, Result

import bioiscc
from bioiscc import records, similar
from bioiscc.cli import main

from .conftest import REPO, run_cli


def bench() -> ModuleType:
    """benchmarks/bench_similar.py, whose synthetic index and check the tests run small."""
    name = "bench_similar"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def similar_cli(*args: Any) -> Result:
    return CliRunner().invoke(main, ["similar", *map(str, args)])


def similar_record(tmp_path: Path, *args: Any) -> dict[str, Any]:
    target = tmp_path / "similar.json"
    result = similar_cli(*args, "--json", target)
    assert result.exit_code == 0, result.output
    record: dict[str, Any] = json.loads(target.read_text())
    records.validate(record)
    return record


@pytest.mark.parametrize(("scenes", "search"), [(3000, "auto"), (3000, "tables"), (12000, "tables")])
def test_planted_groups_are_found_exactly(tmp_path: Path, scenes: int, search: str) -> None:
    """The benchmark's synthetic index, small: every planted relation found, nothing else."""
    index = tmp_path / "index.jsonl"
    planted = bench().make_index(index, scenes, seed=3)
    record = similar_record(tmp_path, index, "--search", search)
    assert bench().check(record, planted) == []
    # the TSV index gives the same pairs
    from_tsv = similar_cli(index.with_suffix(".tsv"), "--search", search)
    from_jsonl = similar_cli(index, "--search", search)
    assert from_tsv.exit_code == from_jsonl.exit_code == 0
    assert from_tsv.stdout == from_jsonl.stdout
    assert from_tsv.stdout.splitlines()[0].split("\t") == list(similar.TSV_FIELDS)


def test_tables_find_what_brute_force_finds() -> None:
    """Exact pigeonhole tables find every pair brute force finds; sampled tables nearly all, and
    only true pairs."""
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 256, size=(4000, 32), dtype=np.uint8)
    for k in range(300):  # pairs 1..40 bits apart
        bits = rng.choice(256, size=1 + k % 40, replace=False)
        codes[2 * k + 1] = codes[2 * k]
        for b in bits:
            codes[2 * k + 1, b // 8] ^= np.uint8(1 << (7 - b % 8))
    for threshold in (8, 24, 40):
        brute_i, brute_j, _ = similar.near_pairs(codes, threshold, similar.Plan("brute"))
        truth = set(zip(brute_i.tolist(), brute_j.tolist(), strict=True))
        assert truth == {(2 * k, 2 * k + 1) for k in range(300) if 1 + k % 40 <= threshold}
        plan = similar.plan_search(len(codes), 256, threshold, "tables")
        i, j, d = similar.near_pairs(codes, threshold, plan)
        found = set(zip(i.tolist(), j.tolist(), strict=True))
        assert found <= truth and (d <= threshold).all()
        if plan.exact:
            assert found == truth, plan.describe()
        else:
            assert len(found) >= 0.99 * len(truth), plan.describe()
    assert similar.plan_search(4000, 256, 8, "tables").exact
    assert not similar.plan_search(1_000_000, 256, 32).exact
    assert similar.plan_search(100, 256, 32).method == "brute"


def test_exact_classes_compare_whole_codes() -> None:
    """Codes that tie on their first 64 bits but differ later are different classes."""
    codes = np.zeros((6, 32), dtype=np.uint8)
    codes[[1, 3], 31] = 1
    codes[4, 0] = 9
    labels, firsts = similar.exact_classes(codes)
    assert labels.tolist() == [0, 1, 0, 1, 2, 0]
    assert firsts.tolist() == [0, 1, 4]


def test_codes_are_decoded_as_iscc_core_decodes_them() -> None:
    rng = np.random.default_rng(5)
    bodies = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    for mtype, stype, bits in ((ic.MT.DATA, ic.ST.NONE, 256), (ic.MT.CONTENT, ic.ST_CC.MIXED, 64)):
        codes = ["ISCC:" + ic.encode_component(mtype, stype, ic.VS.V0, bits, bytes(b)) for b in bodies]
        decoded = similar.decode_bodies(codes, "x", "index")
        assert (decoded == bodies[:, : bits // 8]).all()
        assert [similar.decode_bodies([c], "x", "index").tobytes() for c in codes[:3]] == [
            ic.decode_header(ic.decode_base32(c[5:]))[-1] for c in codes[:3]
        ]


def rows(*entries: tuple[str, str | None, str | None, str | None]) -> list[dict[str, Any]]:
    """Index rows (input, data body hex prefix, instance id, mixed body hex prefix)."""
    out = []
    for name, data, instance, mixed in entries:
        ok = data is not None

        def unit(mtype: Any, stype: Any, hexed: str | None) -> str | None:
            if hexed is None:
                return None
            return "ISCC:" + ic.encode_component(
                mtype, stype, ic.VS.V0, 256, bytes.fromhex(hexed.ljust(64, "0"))
            )

        out.append(
            {
                "input": name,
                "scene": 0,
                "status": "ok" if ok else "failed",
                "data_code": unit(ic.MT.DATA, ic.ST.NONE, data),
                "instance_code": unit(ic.MT.INSTANCE, ic.ST.NONE, instance),
                "iscc_mixed": unit(ic.MT.CONTENT, ic.ST_CC.MIXED, mixed),
            }
        )
    return out


def write_rows(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def test_relations_groups_and_distances(tmp_path: Path) -> None:
    index = write_rows(
        tmp_path / "index.jsonl",
        rows(
            ("a", "ff" * 8, "01", "aa" * 32),
            ("b", "ff" * 8, "01", "aa" * 32),  # identical to a
            ("c", "ff" * 7 + "fe", "02", None),  # near-identical to a (1 bit), no views
            ("d", "00" * 32, "03", "aa" * 31 + "ab"),  # looks like a (1 bit of ISCC-MIXED)
            ("e", "0f" * 32, "04", "55" * 32),  # unrelated
            ("f", None, None, None),  # failed
        ),
    )
    record = similar_record(tmp_path, index)
    assert record["scenes"] == 5 and record["skipped"] == 1
    (group,) = record["groups"]
    assert group["relation"] == "look-alike"
    assert [m["input"] for m in group["members"]] == ["a", "b", "c", "d"]
    pairs = [
        (p["relation"], p["a"]["input"], p["b"]["input"], p["data_distance"], p["mixed_distance"])
        for p in record["pairs"]
    ]
    assert pairs[0] == ("identical", "a", "b", 0, 0)
    assert ("near-identical", "a", "c", 1, None) in pairs
    assert pairs[-1][:3] == ("look-alike", "a", "d") and pairs[-1][4] == 1
    assert len(pairs) == 3
    without = similar_record(tmp_path, index, "--no-look-alikes")
    assert [g["relation"] for g in without["groups"]] == ["near-identical"]
    assert without["search"]["iscc_mixed"] is None
    tight = similar_record(tmp_path, index, "--data-threshold", "0", "--mixed-threshold", "0")
    assert [g["relation"] for g in tight["groups"]] == ["identical"]


def test_bad_indexes_fail_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    not_json = write_rows(tmp_path / "x.jsonl", rows(("a", "ff", "01", None)))
    not_json.write_text(not_json.read_text() + "{oops\n")
    no_columns = tmp_path / "other.tsv"
    no_columns.write_text("a\tb\n1\t2\n")
    bad_code = tmp_path / "bad.jsonl"
    bad_code.write_text(
        json.dumps(
            {"input": "a", "scene": 0, "status": "ok", "data_code": "ISCC:GAD1", "instance_code": "ISCC:IAD1"}
        )
        + "\n"
    )
    cases = {
        tmp_path / "missing.jsonl": "missing.jsonl: No such file or directory",
        empty: "empty.tsv: empty, or no header line",
        not_json: "x.jsonl: line 2: not an index row",
        no_columns: "other.tsv: not a bioiscc index (no column input, scene, status, instance_code",
        bad_code: "bad.jsonl: instance_code: not an ISCC code",
    }
    for path, message in cases.items():
        result = run_cli("similar", str(path))
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_an_empty_json_lines_index_has_no_rows(tmp_path: Path) -> None:
    """The index of a folder with no inputs is an empty JSON Lines file: no pairs, not an error (an
    empty TSV lacks its header, and stays one)."""
    empty = tmp_path / "index.jsonl"
    empty.write_text("")
    result = run_cli("similar", str(empty), check=True)
    assert result.stdout.splitlines() == [
        "group\trelation\tinput_a\tscene_a\tinput_b\tscene_b\tdata_distance\tmixed_distance"
    ]
    assert "0 scenes" in result.stderr
    run_cli("similar", str(empty), "--json", str(tmp_path / "similar.json"), check=True)
    record = json.loads((tmp_path / "similar.json").read_text())
    assert record["groups"] == [] and record["pairs"] == []


@pytest.mark.samples
def test_similar_groups_the_samples_that_share_pixels(samples: Path, tmp_path: Path) -> None:
    """Every pair of sample scenes with the same pixels is one identical group; nothing else is related.

    The same pixels, as tests/test_samples.py establishes them: a CZI and its two OME-Zarr
    conversions, a CZI and its Bio-Formats OME-TIFF export, and a well acquired in two CZIs.
    """
    containers = []
    names = sorted(
        p for p in samples.glob("*/*") if p.suffix in (".czi", ".nd2", ".lif", ".dv", ".tiff", ".zarr")
    )
    for number, path in enumerate(names):
        container = tmp_path / f"{number:02d}" / "container.json"
        container.parent.mkdir()
        container.write_text(json.dumps(bioiscc.biocode(path, raw=False)))
        containers.append(str(container))
    index = tmp_path / "index.jsonl"
    result = CliRunner().invoke(
        main, ["index", *containers, "--jsonl", str(index), "--relative-to", str(samples)]
    )
    assert result.exit_code == 0, result.output
    record = similar_record(tmp_path, index)
    groups = {
        frozenset((m["input"], m["scene"]) for m in g["members"]): g["relation"] for g in record["groups"]
    }
    assert groups == {
        frozenset(
            {
                ("czi/CellDivision_T3_Z5_CH2_X240_Y170.czi", 0),
                ("ome-zarr-derived/CellDivision_T3_Z5_CH2.v04.ome.zarr", 0),
                ("ome-zarr-derived/CellDivision_T3_Z5_CH2.v05.ome.zarr", 0),
            }
        ): "identical",
        frozenset(
            {("czi/FOV7_HV110_P0500510000.czi", 0), ("ome-tiff/FOV7_HV110_P0500510000.ome.tiff", 0)}
        ): "identical",
        frozenset({("czi/WellD6_S1.czi", 0), ("czi/WellD6-7_S2.czi", 0)}): "identical",
    }
    # the independent truth: scenes with the same datahash are exactly those grouped
    by_hash: dict[str, set[tuple[str, int]]] = {}
    for line in index.read_text().splitlines():
        row = json.loads(line)
        by_hash.setdefault(row["datahash"], set()).add((row["input"], row["scene"]))
    assert {frozenset(s) for s in by_hash.values() if len(s) > 1} == set(groups)
