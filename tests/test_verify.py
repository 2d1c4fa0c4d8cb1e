"""`bioiscc verify` and `bioiscc hash --format lines`: trees copied, moved, converted and damaged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result

import bioiscc
from bioiscc import records, verify
from bioiscc.cli import main

from .conftest import REPO, json_lines, run_cli

SAMPLE_DATA = REPO / "resources" / "sample-data"
BUNDLED = (
    "dv/toxo.dv",
    "nd2/example-zstack.nd2",
    "ome-tiff/ome-types_tiny.ome.tiff",
    "ome-zarr/example-zstack.ome.zarr",
)
CZI = "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi"
CZI_CODE = "ISCC:K4AA77OGJ6QXTHBKOHWUJWHYZXZZCM3M3NSGZDS4VIWOZASJ4OJY6DY"
ZARRS = (
    "ome-zarr-derived/CellDivision_T3_Z5_CH2.v04.ome.zarr",
    "ome-zarr-derived/CellDivision_T3_Z5_CH2.v05.ome.zarr",
)


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def outcomes(result: Result) -> dict[str, str]:
    """PATH#SCENE -> STATUS (and what follows it) of the lines verify printed."""
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def copy_bundled(target: Path) -> Path:
    for name in BUNDLED:
        source, copy = SAMPLE_DATA / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy)
    return target


def checksums(tree: Path, *names: str, narrow: bool = False) -> str:
    """`hash --format lines` run in `tree`, as a user would."""
    flags = ["--narrow"] if narrow else []
    result = run_cli("hash", "--format", "lines", *flags, *names, cwd=tree, check=True)
    return result.stdout


def write_series(path: Path, planes: list[np.ndarray]) -> Path:
    """An OME-TIFF with one series (scene) per array (Z, Y, X)."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        for data in planes:
            tif.write(data, metadata={"axes": "ZYX"})
    return path


def as_ome_tiff(source: Path, target: Path) -> Path:
    """A conversion of a one-scene source to OME-TIFF (TCZYX), from the planes it walks."""
    (info,) = bioiscc.api.scenes(source)
    dims = info.dims
    pixels = np.zeros((dims["T"], dims["C"], dims["Z"], dims["Y"], dims["X"]), dtype=info.dtype)
    for plane in bioiscc.iter_planes(source):
        pixels[plane.t, plane.c, plane.z] = plane.data
    tifffile.imwrite(target, pixels, metadata={"axes": "TCZYX"}, ome=True)
    return target


# --- the line format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scene", "line"),
    [
        ("a/b.czi", None, "CODE *a/b.czi"),
        ("a/b.czi", 3, "CODE *a/b.czi#3"),
        ("odd#7", None, "CODE *odd#7#0"),
        ("odd#7", 2, "CODE *odd#7#2"),
        ("back\\slash\nnewline.tif", 1, "\\CODE *back\\\\slash\\nnewline.tif#1"),
        ("with space.ome.tiff", None, "CODE *with space.ome.tiff"),
    ],
)
def test_checksum_lines_read_back(path: str, scene: int | None, line: str) -> None:
    code = "ISCC:K4AA77OGJ6QXTHBKOHWUJWHYZXZZCM3M3NSGZDS4VIWOZASJ4OJY6DY"
    written = verify.checksum_line(code, path, scene)
    assert written == line.replace("CODE", code) + "\n"
    assert verify.parse_checksum_line(written.rstrip("\n")) == (code, path, scene or 0)


def test_improper_checksum_lines() -> None:
    for text in (
        "",
        "ISCC:K4A",
        "ISCC:KAAAAAAAAAAAAAAA",
        "ISCC:K4AA77OGJ6QXTHBK x.tif",
        "\\ISCC:K4AA77OGJ6QX *a\\q",
    ):
        assert verify.parse_checksum_line(text) is None


def test_narrowed_code_is_the_narrow_hash() -> None:
    source = SAMPLE_DATA / "dv" / "toxo.dv"
    (wide,) = bioiscc.hash_scenes(source)
    (narrow,) = bioiscc.hash_scenes(source, narrow=True)
    assert verify.narrowed(wide["iscc_code"]) == narrow["iscc_code"]
    assert verify.is_narrow(narrow["iscc_code"]) and not verify.is_narrow(wide["iscc_code"])
    assert verify.same_code(narrow["iscc_code"], wide["iscc_code"])


def test_hash_lines_round_trip_on_the_bundled_data(tmp_path: Path) -> None:
    tree = copy_bundled(tmp_path / "data")
    text = checksums(tree, *BUNDLED)
    lines = text.splitlines()
    assert [line.split(" *")[1] for line in lines] == list(BUNDLED)  # one scene each: no #K
    codes = dict(line.split(" *")[::-1] for line in lines)
    assert codes["nd2/example-zstack.nd2"] == codes["ome-zarr/example-zstack.ome.zarr"]
    (tree / "codes.txt").write_text(text)
    result = run_cli("verify", "codes.txt", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{name}#0: OK" for name in BUNDLED]
    assert result.stderr.strip() == "bioiscc verify: 4 scenes: 4 OK, 0 FAILED, 0 MISSING, 0 UNREADABLE"
    assert "Traceback" not in result.stderr

    narrow = checksums(tree, BUNDLED[0], narrow=True)
    assert narrow.startswith("ISCC:KUA")
    (tree / "narrow.txt").write_text(narrow)
    assert run_cli("verify", "narrow.txt", cwd=tree).returncode == 0


def test_a_selected_scene_keeps_its_number(tmp_path: Path, vectors_dir: Path) -> None:
    """`hash --scene 1 --format lines` of a source with several scenes: the line says which scene,
    and one for scene 0 too (PATH alone would mean the source's only scene)."""
    source = shutil.copy(vectors_dir / "multiscene.ome.tif", tmp_path / "m.ome.tif")
    for scene in ("0", "1"):
        line = run_cli("hash", "--format", "lines", "--scene", scene, "m.ome.tif", cwd=tmp_path, check=True)
        assert line.stdout.rstrip().endswith(f" *m.ome.tif#{scene}"), line.stdout
        (tmp_path / "codes.txt").write_text(line.stdout)
        checked = run_cli("verify", "codes.txt", cwd=tmp_path)
        assert checked.returncode == 0 and checked.stdout == f"m.ome.tif#{scene}: OK\n", checked
    assert Path(source).exists()


def test_a_name_with_a_line_break_is_escaped_in_the_report(tmp_path: Path, vectors_dir: Path) -> None:
    shutil.copy(vectors_dir / "u8_2d.tif", tmp_path / "new\nline.tif")
    lines = run_cli("hash", "--format", "lines", "new\nline.tif", cwd=tmp_path, check=True).stdout
    (tmp_path / "codes.txt").write_text(lines)
    checked = run_cli("verify", "codes.txt", cwd=tmp_path)
    assert checked.returncode == 0 and checked.stdout == "\\new\\nline.tif#0: OK\n", checked.stdout


def test_hash_lines_refused_with_batch(tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"source": str(SAMPLE_DATA / BUNDLED[0]), "dir": str(tmp_path / "r")}) + "\n")
    result = cli("hash", "--batch", batch, "--format", "lines")
    assert result.exit_code == 2 and "--format lines" in result.output


# --- checking in place, and a moved tree --------------------------------------------------------


def make_index(tree: Path, into: Path) -> tuple[Path, Path]:
    """Containers of every bundled source and their index, inputs named relative to `tree`."""
    containers = []
    for name in BUNDLED:
        container = into / name / "container.json"
        container.parent.mkdir(parents=True, exist_ok=True)  # -o writes into an existing folder
        run_cli("biocode", str(tree / name), "-o", str(container), check=True)
        containers.append(str(container))
    jsonl, tsv = into / "index.jsonl", into / "index.tsv"
    run_cli(
        "index", *containers, "--relative-to", str(tree), "--jsonl", str(jsonl), "--tsv", str(tsv), check=True
    )
    return jsonl, tsv


def test_index_verifies_in_place_and_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = copy_bundled(tmp_path / "data")
    jsonl, tsv = make_index(tree, tmp_path / "results")
    expected = {f"{name}#0": "OK" for name in BUNDLED}
    for index in (jsonl, tsv):
        assert outcomes(cli("verify", index, "--root", tree)) == expected

    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    tree.rename(moved)
    result = cli("verify", jsonl, "--root", moved, "--json")
    assert result.exit_code == 0, result.output
    found = json_lines(result.stdout)
    for record in found:
        records.validate(record)
    assert [(r["source"], r["status"], r["location"]) for r in found] == [
        (name, "OK", str(moved / name)) for name in sorted(BUNDLED)
    ]
    monkeypatch.chdir(moved)  # the default root: the current directory
    assert cli("verify", tsv).exit_code == 0

    monkeypatch.chdir(tmp_path)
    missing = cli("verify", jsonl)
    assert missing.exit_code == 1
    assert set(outcomes(missing).values()) == {"MISSING"}
    assert "look" in missing.stderr and "--root" in missing.stderr


def test_failed_missing_unreadable(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    series = [rng.integers(0, 4096, size=(3, 40, 50), dtype=np.uint16) for _ in range(2)]
    tree = tmp_path / "data"
    (tree / "sub").mkdir(parents=True)
    write_series(tree / "two.ome.tiff", series)
    shutil.copy2(SAMPLE_DATA / "dv" / "toxo.dv", tree / "sub" / "toxo.dv")
    shutil.copy2(SAMPLE_DATA / "nd2" / "example-zstack.nd2", tree / "sub" / "z.nd2")
    text = checksums(tree, "two.ome.tiff", "sub/toxo.dv", "sub/z.nd2")
    assert [line.split(" *")[1] for line in text.splitlines()] == [
        "two.ome.tiff#0",
        "two.ome.tiff#1",
        "sub/toxo.dv",
        "sub/z.nd2",
    ]
    codes = tmp_path / "codes.txt"
    codes.write_text(text)
    assert cli("verify", codes, "--root", tree).exit_code == 0

    series[1][2, 17, 23] ^= 1  # one pixel of scene 1, one bit
    write_series(tree / "two.ome.tiff", series)
    (tree / "sub" / "toxo.dv").unlink()
    (tree / "sub" / "z.nd2").write_bytes(b"not an nd2 file" * 100)
    result = cli("verify", codes, "--root", tree)
    assert result.exit_code == 1
    assert outcomes(result) == {
        "two.ome.tiff#0": "OK",
        "two.ome.tiff#1": "FAILED",
        "sub/toxo.dv#0": "MISSING",
        "sub/z.nd2#0": "UNREADABLE",
    }
    assert "bioiscc: verify: sub/z.nd2#0: " in result.stderr  # the cause, on one line
    assert result.stderr.splitlines()[-1] == (
        "bioiscc verify: 4 scenes: 1 OK, 1 FAILED, 1 MISSING, 1 UNREADABLE"
    )
    quiet = cli("verify", codes, "--root", tree, "--quiet")
    assert "two.ome.tiff#0" not in quiet.stdout and len(quiet.stdout.splitlines()) == 3
    silent = cli("verify", codes, "--root", tree, "--status")
    assert (silent.exit_code, silent.stdout, silent.stderr) == (1, "", "")

    found = json_lines(cli("verify", codes, "--root", tree, "--json").stdout)
    for record in found:
        records.validate(record)
    failed = found[1]
    assert failed["scene"]["index"] == 1 and failed["expected"] != failed["actual"]

    # a scene the source no longer has is FAILED too
    write_series(tree / "two.ome.tiff", series[:1])
    assert outcomes(cli("verify", codes, "--root", tree))["two.ome.tiff#1"] == "FAILED"


def test_output_file_is_written_whole(tmp_path: Path) -> None:
    tree = copy_bundled(tmp_path / "data")
    codes = tmp_path / "codes.txt"
    codes.write_text(checksums(tree, *BUNDLED))
    out = tmp_path / "out" / "verified.jsonl"
    out.parent.mkdir()  # -o writes into an existing folder
    result = cli("verify", codes, "--root", tree, "--json", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert [r["status"] for r in json_lines(out.read_text())] == ["OK"] * 4
    assert list(out.parent.iterdir()) == [out]


def test_progress_on_request(tmp_path: Path) -> None:
    tree = copy_bundled(tmp_path / "data")
    codes = tmp_path / "codes.txt"
    codes.write_text(checksums(tree, *BUNDLED))
    result = cli("verify", codes, "--root", tree, "--progress")
    assert result.exit_code == 0 and "scenes checked" in result.stderr


# --- lists that are not lists, lines that are not entries ------------------------------------------


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ("garbage\n", "not an index, container, scene records or checksum lines"),
        ("", "empty"),
        ('{"kind": "bioiscc.walk", "scenes": []}\n', "holds no stored codes"),
        ('{"input": "a.tif", "scene": 0, "iscc_code"', "not JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    ],
)
def test_malformed_list_is_trouble(tmp_path: Path, content: str | bytes, cause: str) -> None:
    listing = tmp_path / "index.jsonl"
    if isinstance(content, bytes):
        listing.write_bytes(content)
    else:
        listing.write_text(content)
    result = run_cli("verify", str(listing))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"bioiscc: error: {listing}") and cause in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_missing_list_and_directory_are_trouble(tmp_path: Path) -> None:
    assert cli("verify", tmp_path / "nope.txt").exit_code == 2
    assert "is a directory" in cli("verify", tmp_path).stderr
    assert cli("verify").exit_code == 2  # usage


def test_improper_lines_warn_and_strict(tmp_path: Path) -> None:
    tree = copy_bundled(tmp_path / "data")
    codes = tmp_path / "codes.txt"
    codes.write_text(checksums(tree, BUNDLED[0]) + "ISCC:NOTACODE *x.tif\nhello\n")
    plain = cli("verify", codes, "--root", tree)
    assert plain.exit_code == 0
    assert plain.stderr.strip().endswith("; 2 lines improperly formatted")
    warned = cli("verify", codes, "--root", tree, "--warn", "--strict")
    assert warned.exit_code == 2
    assert f"bioiscc: verify: {codes}:2: improperly formatted checksum line" in warned.stderr
    assert f"{codes}:3:" in warned.stderr


def test_failed_rows_are_not_verified(tmp_path: Path) -> None:
    tree = copy_bundled(tmp_path / "data")
    jsonl, _ = make_index(tree, tmp_path / "results")
    rows = json_lines(jsonl.read_text())
    rows.append({**rows[0], "input": "broken.czi", "status": "failed", "iscc_code": None, "error": "x"})
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = cli("verify", jsonl, "--root", tree, "--warn")
    assert result.exit_code == 0
    assert "broken.czi#0: no stored code (status failed when recorded)" in result.stderr
    assert "1 listed scene without a stored code" in result.stderr
    assert cli("verify", jsonl, "--root", tree, "--strict").exit_code == 2


#: runs argv[2:] and writes its peak RSS (KiB) to the file argv[1]
MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], dict(os.environ))
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_large_index_streams(tmp_path: Path) -> None:
    """100,000 listed scenes (of sources that are gone): read as a stream, in bounded memory."""
    listing = tmp_path / "index.jsonl"
    row = {"scene": 0, "status": "ok", "iscc_code": CZI_CODE}
    with listing.open("w") as stream:
        for number in range(100_000):
            stream.write(json.dumps({"input": f"gone/{number:06d}.czi", **row}) + "\n")
    out, err, peak = tmp_path / "out.txt", tmp_path / "err.txt", tmp_path / "peak.txt"
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        command = [sys.executable, "-m", "bioiscc", "verify", str(listing), "--root", str(tmp_path)]
        # started from a small launcher: a child of this (large) test process would count its pages
        launcher = [sys.executable, "-c", MEASURE, str(peak), *command]
        returncode = subprocess.run(launcher, stdout=stdout, stderr=stderr).returncode
    seconds = time.perf_counter() - started
    peak_mb = int(peak.read_text()) / 1024  # of the verify process alone
    assert returncode == 1
    assert len(out.read_text().splitlines()) == 100_000
    assert err.read_text().startswith("bioiscc verify: 100000 scenes: 0 OK, 0 FAILED, 100000 MISSING")
    print(f"100,000 listed scenes: {seconds:.1f} s, peak RSS of a child {peak_mb:.0f} MB")
    assert peak_mb < 250


# --- real samples: a CZI converted to OME-Zarr and OME-TIFF ----------------------------------------


def test_converted_tree_passes_the_audit(samples: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy2(samples / CZI, old / "cells.czi")
    old_codes = tmp_path / "old.txt"
    old_codes.write_text(checksums(old, "cells.czi"))
    assert old_codes.read_text() == f"{CZI_CODE} *cells.czi\n"

    new = tmp_path / "new"
    (new / "zarr").mkdir(parents=True)
    for zarr in ZARRS:
        shutil.copytree(samples / zarr, new / "zarr" / Path(zarr).name)
    as_ome_tiff(old / "cells.czi", new / "cells.ome.tiff")
    assert bioiscc.hash_scenes(new / "cells.ome.tiff")[0]["iscc_code"] == CZI_CODE

    result = cli("verify", "--against", old_codes, new)
    assert result.exit_code == 0, result.output
    assert outcomes(result) == {"cells.czi#0": "MOVED -> cells.ome.tiff#0"}
    assert result.stderr.strip() == (
        "bioiscc verify: 1 scene of OLD: 0 OK, 1 MOVED, 0 FAILED, 0 MISSING; in NEW: 0 NEW, 0 UNREADABLE"
    )
    # every copy and conversion checks against the CZI's code, in place
    new_codes = tmp_path / "new.txt"
    new_codes.write_text(checksums(new, "cells.ome.tiff", *(f"zarr/{Path(z).name}" for z in ZARRS)))
    assert {line.split(" *")[0] for line in new_codes.read_text().splitlines()} == {CZI_CODE}
    assert cli("verify", new_codes, "--root", new).exit_code == 0
    # OLD and NEW as lists: the index of a conversion against the old one
    assert outcomes(cli("verify", "--against", old_codes, new_codes))["cells.czi#0"].startswith("MOVED")
    # and the old tree itself, as a directory
    assert outcomes(cli("verify", "--against", old, old_codes)) == {"cells.czi#0": "OK"}


def test_audit_reports_missing_changed_and_new(tmp_path: Path) -> None:
    old = copy_bundled(tmp_path / "old")
    old_codes = tmp_path / "old.txt"
    old_codes.write_text(checksums(old, *BUNDLED))
    new = tmp_path / "new"
    shutil.copytree(old, new)
    shutil.rmtree(new / "nd2")  # its pixels survive in the OME-Zarr copy
    (new / "dv" / "toxo.dv").rename(new / "dv" / "renamed.dv")
    (new / "ome-tiff" / "ome-types_tiny.ome.tiff").unlink()  # gone
    rng = np.random.default_rng(5)
    tifffile.imwrite(new / "extra.tif", rng.integers(0, 255, size=(8, 8), dtype=np.uint8))
    (new / "broken.czi").write_bytes(b"ZISRAWFILE" + bytes(200))

    result = cli("verify", "--against", old_codes, new, "--json")
    assert result.exit_code == 1
    found = json_lines(result.stdout)
    for record in found:
        records.validate(record)
    status = {(r["source"], r["status"]): r for r in found}
    assert set(status) == {
        ("broken.czi", "UNREADABLE"),
        ("dv/toxo.dv", "MOVED"),
        ("nd2/example-zstack.nd2", "MOVED"),
        ("ome-tiff/ome-types_tiny.ome.tiff", "MISSING"),
        ("ome-zarr/example-zstack.ome.zarr", "OK"),
        ("extra.tif", "NEW"),
    }
    assert status[("dv/toxo.dv", "MOVED")]["found_as"] == "dv/renamed.dv#0"
    assert status[("nd2/example-zstack.nd2", "MOVED")]["found_as"] == "ome-zarr/example-zstack.ome.zarr#0"

    # the same name with other pixels is FAILED
    write_series(new / "ome-tiff" / "ome-types_tiny.ome.tiff", [np.zeros((1, 6, 5), np.uint8)])
    changed = outcomes(cli("verify", "--against", old_codes, new))
    assert changed["ome-tiff/ome-types_tiny.ome.tiff#0"] == "FAILED"
    assert "ome-tiff/ome-types_tiny.ome.tiff#0" not in {k for k, v in changed.items() if v == "NEW"}


def test_audit_compares_narrow_with_wide(tmp_path: Path) -> None:
    tree = copy_bundled(tmp_path / "data")
    narrow = tmp_path / "narrow.txt"
    narrow.write_text(checksums(tree, *BUNDLED, narrow=True))
    wide = tmp_path / "wide.txt"
    wide.write_text(checksums(tree, *BUNDLED))
    assert set(outcomes(cli("verify", "--against", narrow, wide)).values()) == {"OK"}
    assert set(outcomes(cli("verify", "--against", narrow, tree)).values()) == {"OK"}


def test_a_name_that_is_not_utf8_round_trips(tmp_path: Path) -> None:
    """A Latin-1 file name (an old Windows share): checksum lines keep its bytes, as sha256sum
    writes them, and `verify` finds the file again from the lines (a file or stdin) or a record."""
    import os

    name = b"M\xe4use.ome.tif"
    try:
        tifffile.imwrite(os.fsdecode(os.fsencode(str(tmp_path)) + b"/" + name), np.zeros((8, 8), "u2"))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    source = os.fsdecode(name)

    def bioiscc_bytes(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "bioiscc", *args]
        return subprocess.run(command, cwd=tmp_path, input=stdin, capture_output=True)

    lines = bioiscc_bytes("hash", "--format", "lines", source)
    assert lines.returncode == 0 and lines.stdout.endswith(b" *" + name + b"\n")
    (tmp_path / "codes.txt").write_bytes(lines.stdout)
    for args, stdin in ((("verify", "codes.txt"), None), (("verify", "-"), lines.stdout)):
        checked = bioiscc_bytes(*args, stdin=stdin)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout == name + b"#0: OK\n"
    assert bioiscc_bytes("hash", source, "-o", "record.json").returncode == 0
    assert bioiscc_bytes("verify", "record.json").returncode == 0
    not_a_list = bioiscc_bytes("verify", "-", stdin=b"\x89PNG\r\n\x1a\n\x00\xff")
    assert not_a_list.returncode == 2 and b"not UTF-8 text" in not_a_list.stderr
