"""Bad input: one line on stderr naming the input and the cause, exit 1, nothing written.

With --record-errors the same failure is a failed record and exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bioiscc import records
from tests.conftest import json_lines, require_samples, run_cli

COMMANDS = ("walk", "hash", "biocode")


def truncate(source: Path, target: Path, keep: float = 0.4) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def first_chunk(store: Path) -> Path:
    """A chunk file (not metadata) of a zarr v2 store."""
    return next(p for p in sorted(store.rglob("*")) if p.is_file() and not p.name.startswith("."))


def make_empty(tmp: Path, vectors: Path) -> Path:
    path = tmp / "empty.czi"
    path.write_bytes(b"")
    return path


def make_random(suffix: str) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, vectors: Path) -> Path:
        path = tmp / f"random{suffix}"
        path.write_bytes(os.urandom(4096))
        return path

    return make


def make_truncated_ome_tiff(tmp: Path, vectors: Path) -> Path:
    return truncate(vectors / "img5d_u16.ome.tif", tmp / "truncated.ome.tif")


def make_truncated_dv(tmp: Path, vectors: Path) -> Path:
    bundled = Path(__file__).resolve().parent.parent / "resources" / "sample-data" / "dv" / "toxo.dv"
    return truncate(bundled, tmp / "truncated.dv", keep=0.6)


def make_truncated_lif(tmp: Path, vectors: Path) -> Path:
    import numpy as np

    from tests.test_dv_lif import write_lif

    path = write_lif(tmp / "whole.lif", "ZYX", (3, 16, 16), np.uint8, lambda i: np.full((16, 16), i))
    return truncate(path, tmp / "truncated.lif", keep=0.9)


def make_not_zarr(tmp: Path, vectors: Path) -> Path:
    path = tmp / "folder.zarr"
    path.mkdir()
    (path / "readme.txt").write_text("not a store")
    return path


def make_bad_json_v2(tmp: Path, vectors: Path) -> Path:
    path = shutil.copytree(vectors / "img5d_v04.ome.zarr", tmp / "badjson.ome.zarr")
    (path / ".zattrs").write_text('{"multiscales": [')
    return path


def make_bad_json_v3(tmp: Path, vectors: Path) -> Path:
    path = shutil.copytree(vectors / "img5d_v05.ome.zarr", tmp / "badjson3.ome.zarr")
    (path / "zarr.json").write_text("{not json")
    return path


# A bioformats2raw series whose metadata is not JSON fails that scene alone, at its index
# (IMAGEWALK section 1): tests/test_omezarr_metadata.py.


def make_corrupt_chunk(tmp: Path, vectors: Path) -> Path:
    path = shutil.copytree(vectors / "img5d_v04_chunky.ome.zarr", tmp / "corrupt.ome.zarr")
    truncate(first_chunk(path), first_chunk(path), keep=0.3)
    return path


def make_missing(tmp: Path, vectors: Path) -> Path:
    return tmp / "does-not-exist.ome.tif"


CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "zero-byte file": (make_empty, "empty file"),
    "random bytes .czi": (make_random(".czi"), "not a CZI file: it does not start with a ZISRAWFILE segment"),
    "random bytes .nd2": (make_random(".nd2"), "not a readable ND2"),
    "random bytes .lif": (make_random(".lif"), "not a readable LIF"),
    "random bytes .dv": (make_random(".dv"), "not a readable DV"),
    "random bytes .ome.tif": (make_random(".ome.tif"), "not a readable TIFF"),
    "unsupported suffix": (make_random(".xyz"), "unsupported format"),
    "truncated OME-TIFF": (make_truncated_ome_tiff, "truncated TIFF"),
    "truncated DV": (make_truncated_dv, "truncated or corrupt DV file"),
    "truncated LIF": (make_truncated_lif, "truncated LIF file"),
    "directory, not a store": (make_not_zarr, "not a Zarr store"),
    "invalid JSON (zarr v2)": (make_bad_json_v2, "invalid Zarr metadata"),
    "invalid JSON (zarr v3)": (make_bad_json_v3, "invalid Zarr metadata"),
    "missing path": (make_missing, "no such file or directory"),
}


def assert_clean_failure(result: subprocess.CompletedProcess[str], path: Path, cause: str, out: Path) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and cause in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case: str, command: str, tmp_path: Path, vectors_dir: Path) -> None:
    make, cause = CASES[case]
    path = make(tmp_path, vectors_dir)
    out = tmp_path / "out" / "result.json"
    out.parent.mkdir()
    assert_clean_failure(run_cli(command, str(path), "-o", str(out)), path, cause, out)

    recorded = run_cli(command, str(path), "--record-errors", "-o", str(out))
    assert recorded.returncode == 0, recorded.stderr
    (record,) = json_lines(out.read_text()) if command == "hash" else [json.loads(out.read_text())]
    records.validate(record)
    assert record["status"] == "failed" and cause in record["error"]


def test_corrupt_chunk_fails_its_scene(tmp_path: Path, vectors_dir: Path) -> None:
    store = make_corrupt_chunk(tmp_path, vectors_dir)
    out = tmp_path / "out" / "scenes.jsonl"
    out.parent.mkdir()
    # walking reads no pixels, so the store walks fine
    assert run_cli("walk", str(store)).returncode == 0
    # its only scene fails: the input as a whole could not be read
    assert_clean_failure(run_cli("hash", str(store), "-o", str(out)), store, "cannot decode the chunk", out)
    recorded = run_cli("hash", str(store), "--record-errors", "-o", str(out))
    assert recorded.returncode == 0
    (record,) = json_lines(out.read_text())
    records.validate(record)
    assert record["status"] == "failed" and record["scene"]["index"] == 0
    assert record["dims"]["Z"] == 4  # the geometry is known, only the pixels are not


def test_failed_scene_among_good_ones_exits_3(tmp_path: Path, vectors_dir: Path) -> None:
    """A plate with one corrupt field: the other field's record is written, exit 3."""
    plate = shutil.copytree(vectors_dir / "plate.ome.zarr", tmp_path / "plate.ome.zarr")
    first_chunk(plate / "A" / "2").write_bytes(b"\x00")
    out = tmp_path / "scenes.jsonl"
    result = run_cli("hash", str(plate), "-o", str(out))
    assert result.returncode == 3
    got = json_lines(out.read_text())
    assert [r["status"] for r in got] == ["ok", "failed"]
    assert "scene 1" in result.stderr and str(plate) in result.stderr
    for record in got:
        records.validate(record)
    biocode = run_cli("biocode", str(plate))
    assert biocode.returncode == 3
    container = json.loads(biocode.stdout)
    records.validate(container)
    assert container["status"] == "failed" and [p["status"] for p in container["parts"]] == ["ok", "failed"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
def test_permission_denied(tmp_path: Path, vectors_dir: Path) -> None:
    path = tmp_path / "locked.ome.tif"
    shutil.copy(vectors_dir / "u8_2d.ome.tif", path)
    path.chmod(0)
    out = tmp_path / "out.json"
    # root reads everything: drop the capabilities that bypass file permissions
    command = [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-all",
        sys.executable,
        "-m",
        "bioiscc",
        "hash",
        str(path),
        "-o",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert_clean_failure(result, path, "permission denied", out)


def test_missing_plugin_names_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "image.czi"
    path.write_bytes(b"ZISRAWFILE" + bytes(100))
    script = (
        "import sys; sys.modules['aicspylibczi'] = None\n"
        "from bioiscc.cli import main\n"
        f"main(['hash', {str(path)!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert str(path) in result.stderr and "aicspylibczi" in result.stderr
    assert "install bioiscc's 'czi' extra (in a clone of bioiscc: pip install '.[czi]')" in result.stderr


@pytest.mark.parametrize("command", ["hash", "walk", "biocode", "imagecode"])
def test_an_ome_zarr_store_without_its_extra_names_the_extra(command: str, vectors_dir: Path) -> None:
    """A base install (no zarr, numcodecs or imagecodecs): the store's scene says which extra to
    install, in one line (naming the package's missing metadata was an 'unexpected' error)."""
    store = vectors_dir / "img5d_v04.ome.zarr"
    script = (
        "import sys, importlib.metadata as metadata\n"
        "absent = ('zarr', 'numcodecs', 'imagecodecs')\n"
        "for name in absent: sys.modules[name] = None\n"
        "installed = metadata.version\n"
        "def version(name):\n"
        "    if name in absent: raise metadata.PackageNotFoundError(name)\n"
        "    return installed(name)\n"
        "metadata.version = version\n"
        "from bioiscc.cli import main\n"
        f"main([{command!r}, {str(store)!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"bioiscc: error: {store}: scene 0: reading this format needs zarr")
    assert "install bioiscc's 'ome-zarr' extra" in result.stderr and not result.stdout


def test_a_plugin_error_shows_no_memory_address(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not a picture\n")
    result = run_cli("hash", str(tmp_path / "fake.png"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert " at 0x" not in result.stderr


def test_index_needs_inputs_and_names_a_missing_container(tmp_path: Path) -> None:
    result = run_cli("index")
    assert result.returncode == 2 and "give CONTAINERS" in result.stderr
    result = run_cli("index", str(tmp_path / "missing.json"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith("missing.json: cannot read it: No such file or directory")


def test_index_goes_on_past_an_unreadable_container(tmp_path: Path, vectors_dir: Path) -> None:
    container = tmp_path / "c.json"
    run_cli("biocode", str(vectors_dir / "u8_2d.tif"), "-o", str(container), check=True)
    (tmp_path / "cut.json").write_text(container.read_text()[:40])
    out = tmp_path / "index.jsonl"
    result = run_cli("index", str(container), str(tmp_path / "cut.json"), str(container), "--jsonl", str(out))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0].startswith(f"bioiscc: error: {tmp_path / 'cut.json'}: not a biocode")
    rows = json_lines(out.read_text())
    assert sorted(row["status"] for row in rows) == ["failed", "ok", "ok"]
    (failed,) = [row for row in rows if row["status"] == "failed"]
    assert failed["input"] == str(tmp_path / "cut.json") and failed["scene"] is None


@pytest.mark.parametrize("command", ["walk", "hash", "verify"])
def test_a_pipe_closed_by_its_reader_ends_quietly(command: str, tmp_path: Path, vectors_dir: Path) -> None:
    """`bioiscc ... | head`: exit 141 (128 + SIGPIPE), as shells report `yes | head`, and no message."""
    source = str(vectors_dir / "multiscene.ome.tif")
    if command == "verify":
        line = run_cli("hash", "--format", "lines", "--scene", "0", source, check=True).stdout
        (tmp_path / "codes.txt").write_text(line * 5000)
        args = ["verify", str(tmp_path / "codes.txt")]
    else:
        args = [command, *[source] * 400]
    process = subprocess.Popen(
        [sys.executable, "-m", "bioiscc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.read(10)
    process.stdout.close()  # what `head -c 10` does
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err
    assert "error" not in err and "Traceback" not in err


def test_a_tiff_through_bioio_names_the_plugin_no_extra_installs(tmp_path: Path, vectors_dir: Path) -> None:
    script = (
        "import sys; sys.modules['bioio_ome_tiff'] = None\n"
        "from bioiscc.cli import main\n"
        f"main(['walk', '--source', 'bioio', {str(vectors_dir / 'u8_2d.ome.tif')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.rstrip().endswith("needs bioio-ome-tiff; pip install bioio-ome-tiff")


@pytest.mark.samples
@pytest.mark.parametrize(
    "name",
    [
        "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi",
        "nd2/example-zstack.nd2",
        "dv/toxo.dv",
        "lif/testdata_2channel_xz.lif",
        "lif/PR2729_frameOrderCombinedScanTypes.lif",
    ],
)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_vendor_files(name: str, keep: float, tmp_path: Path) -> None:
    source = require_samples() / name
    path = truncate(source, tmp_path / f"truncated{source.suffix}", keep=keep)
    out = tmp_path / "out" / "result.jsonl"
    out.parent.mkdir()
    result = run_cli("hash", str(path), "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr
    assert not out.exists()


UNRAISABLE = """
import sys
from click.testing import CliRunner
from bioiscc.cli import main

class Leaky:
    def __del__(self):
        raise RuntimeError("Event loop is closed")  # as zarr's reads in flight at exit do

CliRunner().invoke(main, ["formats"])
Leaky()
"""


def test_exceptions_in_destructors_add_no_lines(tmp_path: Path) -> None:
    """An exception Python cannot raise (a destructor, a coroutine destroyed at exit) prints nothing
    after a command's one-line error; BIOISCC_DEBUG=1 shows it."""
    quiet = subprocess.run([sys.executable, "-c", UNRAISABLE], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""
    shown = subprocess.run(
        [sys.executable, "-c", UNRAISABLE],
        capture_output=True,
        text=True,
        env={**os.environ, "BIOISCC_DEBUG": "1"},
    )
    assert "Event loop is closed" in shown.stderr


def test_a_limit_that_is_not_a_number_is_said_once(vectors_dir: Path) -> None:
    env = {**os.environ, "BIOISCC_MAX_PLANE_MB": "abc"}
    result = run_cli("hash", str(vectors_dir / "multiscene.ome.tif"), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "bioiscc: warning: BIOISCC_MAX_PLANE_MB='abc' is not a whole number above 0; using 8192"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hash", "--manifest", "{missing}"], "{missing}: cannot read it: No such file or directory"),
        (["hash", "--manifest", "{folder}"], "{folder}: cannot read it: it is a directory"),
        (["hash", "--manifest", "-"], "-: cannot read it: No such file or directory"),  # no stdin here
        (["hash", "--manifest", ""], ": cannot read it: No such file or directory"),
        (["container", "--manifest", "{missing}"], "{missing}: cannot read it: No such file or directory"),
        (["hash", "--from", "{missing}"], "{missing}: cannot read it: No such file or directory"),
        (["index", "--rows-from", "{missing}"], "{missing}: cannot read it: No such file or directory"),
        (["index", "--from", "{folder}"], "{folder}: cannot read it: it is a directory"),
        (["index", "{folder}"], "{folder}: cannot read it: Is a directory"),
        (["mix", "{folder}"], "{folder}: cannot read it: Is a directory"),
        (["mix", "--sum", "{missing}", "{missing}"], "{missing}: cannot read it: No such file or directory"),
        (
            ["walk", "--batch", "{missing}"],
            "{missing}: cannot read the batch file: No such file or directory",
        ),
        (["hash", "{image}", "-o", "{folder}"], "{folder}: cannot write: it is a directory"),
    ],
)
def test_a_file_named_by_an_option_is_checked_like_an_argument(
    args: list[str], message: str, tmp_path: Path, vectors_dir: Path
) -> None:
    """A missing or unreadable file, or a folder where a file belongs, is one line and exit 1 (the
    README's exit codes), as for an input named as an argument: not click's usage block and exit 2."""
    names = {
        "missing": str(tmp_path / "nosuch.json"),
        "folder": str(tmp_path),
        "image": str(vectors_dir / "u8_2d.tif"),
    }
    result = run_cli(*(arg.format(**names) for arg in args))
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"bioiscc: error: {message.format(**names)}\n"
    assert not result.stdout


def test_a_scene_one_of_several_sources_lacks_fails_that_source_alone(
    tmp_path: Path, vectors_dir: Path
) -> None:
    """`--scene 1` over a two-scene and a one-scene source: the first is hashed, the second fails in
    one line, exit 1 (one source's failure never stops the others); alone, it is a usage error."""
    two, one = str(vectors_dir / "multiscene.ome.tif"), str(vectors_dir / "u8_2d.tif")
    out = tmp_path / "codes.txt"
    result = run_cli("hash", "--format", "lines", "--scene", "1", one, two, "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"bioiscc: error: {one}: no scene 1 (the source has 1 scene(s))\n"
    assert [line.split(" *")[1] for line in out.read_text().splitlines()] == [f"{two}#1"]
    alone = run_cli("hash", "--scene", "1", one)
    assert alone.returncode == 2 and "no scene 1" in alone.stderr and not alone.stdout


CUT_FILES = {
    "nd2": ("nd2/example-zstack.nd2", "not a readable ND2 file: truncated or corrupt: the chunk map"),
    "dv": ("dv/toxo.dv", "truncated or corrupt DV file (100000 bytes): its header describes more pixels"),
    "lif": ("lif/testdata_2channel_xz.lif", "not a readable LIF file: truncated or corrupt: its XML header"),
}


@pytest.mark.parametrize("kind", sorted(CUT_FILES))
def test_a_cut_vendor_file_is_named_truncated_in_words(kind: str, tmp_path: Path) -> None:
    """The causes of cut ND2, DV and LIF files in words, not the reader's own (a bytes repr, an mmap
    or a codec error)."""
    from tests.conftest import REPO, require_samples

    name, message = CUT_FILES[kind]
    root = REPO / "resources" / "sample-data" if kind != "lif" else require_samples()
    keep = 2048 if kind == "lif" else 100_000
    path = tmp_path / Path(name).name
    path.write_bytes((root / name).read_bytes()[:keep])
    result = run_cli("hash", str(path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"bioiscc: error: {path}: {message}"), result.stderr
    assert "\\x" not in result.stderr and "Error:" not in result.stderr
