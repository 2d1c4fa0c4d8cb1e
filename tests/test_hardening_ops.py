"""Hardening (issue 16), the operational part: hostile names, output safety, kills, concurrent
runs, hostile records and credentials. Real commands in fresh processes and real Snakemake runs.

Decisions these tests pin down:
- a FIFO, a device (e.g. a link to /dev/zero) or a link loop given as SOURCE is one line, exit 1
  (never opened: a FIFO would block, /dev/zero never ends); in the workflow a FIFO or device is an
  input with a failed row, a broken link or link loop is skipped at start-up with a warning;
- a link to a file outside input_dir is read as that file (a symlink farm works); its results are
  under the link's own name, inside results/;
- a name that is not UTF-8 keeps its bytes in JSON records (as \\udcXX escapes, which json.loads and
  os.fsencode turn back into the same bytes); TSV and HTML show them as \\udcXX (they stay UTF-8);
- `-o` never replaces a file the command read; its folder must exist and be writable.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, json_lines

np = pytest.importorskip("numpy")
tifffile = pytest.importorskip("tifffile")

SNAKEFILE = REPO / "workflow" / "Snakefile"

#: hostile file names (each a tiny OME-TIFF); the workflow's default include takes them all
HOSTILE = [
    "with space.ome.tif",
    "quote'single.ome.tif",
    'quote"double.ome.tif',
    "$(touch PWNED1).ome.tif",
    "`touch PWNED2`.ome.tif",
    "semi;touch PWNED3.ome.tif",
    "new\nline.ome.tif",
    "-leading.ome.tif",
    "{brace}.ome.tif",
    "100%.ome.tif",
    "star*.ome.tif",
    "what?.ome.tif",
    "CASE.ome.tif",
    "case.ome.tif",
    "a..b.ome.tif",
    "x" * 242 + ".ome.tif",  # 250 bytes
]
NOT_UTF8 = b"bad\xff\xfe.ome.tif"


# ---- helpers ----


def bioiscc(*args: str | bytes, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bioiscc", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        cwd=cwd,
        **kwargs,
    )


def one_line_failure(result: subprocess.CompletedProcess[str], *words: str, code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def tree(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under root (links not followed): its type, size and mtime."""
    found = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            kind = "l" if os.path.islink(path) else "d" if os.path.isdir(path) else "f"
            size = 0 if kind == "d" else status.st_size
            mtime = 0 if kind == "d" else status.st_mtime_ns
            found[os.path.relpath(path, root)] = (kind, size, mtime)
    return found


def write_image(path: Path | str, value: int, shape: tuple[int, ...] = (4, 4)) -> None:
    tifffile.imwrite(path, np.full(shape, value, dtype=np.uint8), ome=True)


def make_hostile_data(root: Path) -> Path:
    """data/ with every hostile name, a non-UTF-8 name, links (out, loop, broken), a FIFO, /dev/zero."""
    data = root / "data"
    data.mkdir(parents=True)
    for value, name in enumerate(HOSTILE):
        write_image(data / name, value)
    write_image(os.fsdecode(os.fsencode(data) + b"/" + NOT_UTF8), 99)
    write_image(root / "outside.ome.tif", 77)
    os.symlink(root / "outside.ome.tif", data / "link-out.ome.tif")
    os.symlink("loop-b.ome.tif", data / "loop-a.ome.tif")
    os.symlink("loop-a.ome.tif", data / "loop-b.ome.tif")
    os.symlink("nowhere.ome.tif", data / "broken.ome.tif")
    os.mkfifo(data / "fifo.ome.tif")
    os.symlink("/dev/zero", data / "zero.ome.tif")
    return data


def snakemake_command(workdir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    return [*command, "--directory", str(workdir), "--cores", "2", *args], env


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command, env = snakemake_command(workdir, *args)
    result = subprocess.run(command, capture_output=True, text=True, env=env, errors="surrogateescape")
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def configure(workdir: Path, **settings: Any) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    lines = [f"{key}: {json.dumps(value)}" for key, value in {"input_dir": "data", **settings}.items()]
    (workdir / "config" / "config.yaml").write_text("\n".join(lines) + "\n")


def computed(workdir: Path, since: float) -> dict[str, list[str]]:
    """Step -> the inputs (relative to data/) its batch logs say were computed since then."""
    found: dict[str, list[str]] = {}
    for log in (workdir / "results" / "_batches").glob("*/*.jsonl"):
        if log.name in ("inputs.jsonl", "index.jsonl") or log.stat().st_mtime < since:
            continue
        for entry in json_lines(log.read_text()):
            if entry["action"] == "computed":
                found.setdefault(log.stem, []).append(entry["source"].split("data/", 1)[1])
    return {step: sorted(names) for step, names in found.items()}


def jobs_run(output: str) -> int:
    return sum(line.startswith(("rule ", "localrule ")) for line in output.splitlines())


# ---- hostile names: the CLI ----


def test_cli_hostile_names_as_arguments_and_from_list(tmp_path: Path) -> None:
    data = make_hostile_data(tmp_path)
    names = [*HOSTILE, os.fsdecode(NOT_UTF8), "link-out.ome.tif"]
    # --from: one SOURCE a line (a name with a newline cannot be listed; --batch can: JSON)
    listed = [f"data/{name}" for name in names if "\n" not in name]
    (tmp_path / "list.txt").write_bytes(b"".join(os.fsencode(p) + b"\n" for p in listed))
    before = tree(tmp_path)
    for name in names:
        path = f"./data/{name}"  # ./ so that a leading - is no option
        result = bioiscc("hash", path, cwd=tmp_path)
        assert result.returncode == 0, (name, result.stderr)
        (record,) = json_lines(result.stdout)
        assert record["source"] == path and record["status"] == "ok"
    walked = bioiscc("walk", "--", "-leading.ome.tif", cwd=data)
    assert walked.returncode == 0 and json.loads(walked.stdout)["source"] == "-leading.ome.tif"

    result = bioiscc("hash", "--from", "list.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [r["source"] for r in json_lines(result.stdout)] == listed
    assert tree(tmp_path) == before  # nothing written, nothing run ($(), ``, ;)
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("fifo.ome.tif", "not a regular file or directory (a FIFO)"),
        ("zero.ome.tif", "not a regular file or directory (a character device)"),
        ("loop-a.ome.tif", "a symbolic link loop"),
        ("broken.ome.tif", "a broken symbolic link"),
    ],
)
@pytest.mark.parametrize("command", ["walk", "hash", "biocode"])
def test_cli_special_files_fail_in_one_line(tmp_path: Path, command: str, name: str, cause: str) -> None:
    data = make_hostile_data(tmp_path)
    result = bioiscc(command, str(data / name), "-o", str(tmp_path / "out.json"), timeout=60)
    one_line_failure(result, f"{data / name}: {cause}")
    assert not (tmp_path / "out.json").exists()


def test_from_list_with_a_fifo_fails_that_source_only(tmp_path: Path) -> None:
    data = make_hostile_data(tmp_path)
    (tmp_path / "list.txt").write_text(f"{data / 'fifo.ome.tif'}\n{data / 'CASE.ome.tif'}\n")
    result = bioiscc("hash", "--from", str(tmp_path / "list.txt"), timeout=60)
    assert result.returncode == 1
    assert [r["source"] for r in json_lines(result.stdout)] == [str(data / "CASE.ome.tif")]
    assert "a FIFO" in result.stderr and "Traceback" not in result.stderr


def test_long_output_name_fits_name_max(tmp_path: Path) -> None:
    write_image(tmp_path / "in.ome.tif", 1)
    target = tmp_path / ("y" * 250 + ".json")  # 255 bytes: its temporary file must be named shorter
    result = bioiscc("walk", str(tmp_path / "in.ome.tif"), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert json.loads(target.read_text())["status"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.ome.tif", target.name])


# ---- hostile names: the workflow ----


@pytest.mark.workflow
@pytest.mark.slow
def test_workflow_hostile_names_then_results_removed_by_hand(tmp_path: Path) -> None:
    workdir = tmp_path / "ws"
    make_hostile_data(workdir)
    # and an extra input named through `..`: its results go to results/_extra/, not outside
    configure(workdir, batch_size=8, retry_failed=False, inputs=["data/../outside.ome.tif"])
    before = tree(tmp_path)
    since = time.time() - 0.01
    run = snakemake(workdir)
    output = run.stdout + run.stderr

    # nothing outside results/, logs/ (and Snakemake's own .snakemake/) was written or changed
    after = tree(tmp_path)
    added = {p for p in after if p not in before}
    assert all(p.split(os.sep)[1] in ("results", "logs", ".snakemake") for p in added), sorted(added)
    assert {p: after[p] for p in before} == before
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    for _, dirnames, filenames in os.walk(workdir / "results"):
        for name in dirnames + filenames:
            assert len(os.fsencode(name)) <= 255

    # every input has its row; the FIFO and /dev/zero a failed one; the broken links are skipped
    rows = {row["input"]: row for row in json_lines((workdir / "results" / "index.jsonl").read_text())}
    ok = [*HOSTILE, os.fsdecode(NOT_UTF8), "link-out.ome.tif"]
    assert sorted(rows) == sorted([*ok, "fifo.ome.tif", "zero.ome.tif", "data/../outside.ome.tif"])
    assert (workdir / "results" / "_extra").is_dir()
    assert all(rows[name]["status"] == "ok" for name in ok), rows
    assert rows["fifo.ome.tif"]["error"] == "not a regular file or directory (a FIFO)"
    assert rows["zero.ome.tif"]["error"] == "not a regular file or directory (a character device)"
    for name in ("loop-a", "loop-b", "broken"):
        assert f"bioiscc: skipping data/{name}.ome.tif: a broken link" in output
    # the codes are those of the files (link-out: the file outside, under the link's name)
    expected = json_lines(bioiscc("hash", str(tmp_path / "ws" / "outside.ome.tif")).stdout)[0]
    assert rows["link-out.ome.tif"]["iscc_code"] == expected["iscc_code"]
    assert rows["data/../outside.ome.tif"]["iscc_code"] == expected["iscc_code"]
    assert rows["CASE.ome.tif"]["iscc_code"] != rows["case.ome.tif"]["iscc_code"]
    walked = [*ok, "fifo.ome.tif", "zero.ome.tif", "../outside.ome.tif"]  # as sources below data/
    assert computed(workdir, since)["walk"] == sorted(walked)
    # TSV and HTML stay UTF-8; the JSON keeps the undecodable bytes
    (workdir / "results" / "index.tsv").read_text(encoding="utf-8")
    (workdir / "results" / "index.html").read_text(encoding="utf-8")
    assert os.fsencode(os.fsdecode(NOT_UTF8)) == NOT_UTF8

    index = (workdir / "results" / "index.jsonl").read_bytes()

    # a result removed by hand, one truncated: noticed, rebuilt (only those), the same index
    key_space, key_case = "with%20space.ome.tif", "CASE.ome.tif"
    (workdir / "results" / key_space / "container.json").unlink()
    os.truncate(workdir / "results" / key_case / "walk.json", 10)
    since = time.time() - 0.01
    rerun = snakemake(workdir)
    assert f"results/{key_space}/container.json was changed or removed by hand" in rerun.stderr
    assert computed(workdir, since) == {
        "walk": ["CASE.ome.tif"],
        "hash": ["with space.ome.tif"],
    }
    assert (workdir / "results" / "index.jsonl").read_bytes() == index
    # a batch log removed by hand: its batch reruns, reusing every input
    next((workdir / "results" / "_batches").glob("*/hash.jsonl")).unlink()
    since = time.time() - 0.01
    assert "was changed or removed by hand" in snakemake(workdir).stderr
    assert computed(workdir, since) == {}
    assert (workdir / "results" / "index.jsonl").read_bytes() == index
    assert jobs_run(snakemake(workdir).stdout) == 0  # and then nothing to do


# ---- output safety ----


def test_output_never_replaces_an_input(tmp_path: Path) -> None:
    image = tmp_path / "in.ome.tif"
    write_image(image, 5)
    original = image.read_bytes()
    for command in ("walk", "hash", "biocode"):
        one_line_failure(bioiscc(command, str(image), "-o", str(image)), "is an input of this command")
        assert image.read_bytes() == original
    os.link(image, tmp_path / "hard.ome.tif")  # the same file by another name
    one_line_failure(bioiscc("hash", str(image), "-o", str(tmp_path / "hard.ome.tif")), "is an input")
    manifest = tmp_path / "walk.json"
    assert bioiscc("walk", str(image), "-o", str(manifest)).returncode == 0
    text = manifest.read_text()
    one_line_failure(bioiscc("hash", "--manifest", str(manifest), "-o", str(manifest)), "is an input")
    assert manifest.read_text() == text and image.read_bytes() == original
    codes = tmp_path / "codes.txt"  # verify: neither its list nor a source it checks
    codes.write_text(bioiscc("hash", "--format", "lines", str(image)).stdout)
    listed = codes.read_text()
    for target in (codes, image):
        one_line_failure(bioiscc("verify", str(codes), "-o", str(target)), "is an input", code=2)
    assert codes.read_text() == listed and image.read_bytes() == original
    assert not list(tmp_path.glob(".*.tmp"))


def test_output_never_replaces_a_list_an_index_or_a_batch(tmp_path: Path) -> None:
    """Refused before any work where the input is an argument, when written where a list names it."""
    image = tmp_path / "in.ome.tif"
    write_image(image, 5)
    container = tmp_path / "c.json"
    assert bioiscc("biocode", str(image), "-o", str(container)).returncode == 0
    index, listing, rows, batch = (tmp_path / n for n in ("index.tsv", "list.txt", "rows.jsonl", "b.jsonl"))
    assert bioiscc("index", str(container), "--tsv", str(index), "--rows-output", str(rows)).returncode == 0
    listing.write_text(f"{rows}\n")
    batch.write_text(json.dumps({"source": str(image), "dir": str(tmp_path / "r")}) + "\n")
    (tmp_path / "sources.txt").write_text(f"{image}\n")
    kept = {path: path.read_bytes() for path in (index, listing, rows, batch, tmp_path / "sources.txt")}
    for args in (
        ("similar", str(index), "--tsv", str(index)),
        ("similar", str(index), "--json", str(index)),
        ("index", "--rows-from", str(listing), "--tsv", str(listing)),
        ("index", "--rows-from", str(listing), "--jsonl", str(rows)),  # named in the list only
        ("hash", "--from", str(tmp_path / "sources.txt"), "-o", str(tmp_path / "sources.txt")),
        ("walk", "--batch", str(batch), "--batch-log", str(batch)),
    ):
        one_line_failure(bioiscc(*args), "is an input of this command")
    one_line_failure(
        bioiscc("similar", str(index), "--tsv", str(tmp_path / "o"), "--json", str(tmp_path / "o")),
        "o: is given as two outputs",
    )
    for args in (
        ("similar", str(index), "--tsv", "-", "--json", "-"),
        ("index", str(container), "--tsv", "-", "--jsonl", "-"),
    ):
        one_line_failure(bioiscc(*args), "standard output ('-') is given as two outputs")
    assert {path: path.read_bytes() for path in kept} == kept
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_an_output_folder_under_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    image = tmp_path / "in.ome.tif"
    write_image(image, 5)
    (tmp_path / "afile").write_text("")
    for command in ("extract-views", "imagecode", "views", "scenes", "thumb"):
        for target in ("afile", "afile/sub"):
            one_line_failure(bioiscc(command, str(image), "-o", str(tmp_path / target)), "afile is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in.ome.tif"]


def test_output_to_a_link_a_fifo_or_a_device(tmp_path: Path) -> None:
    """A link's target is replaced (the link stays); a FIFO or a device is written to, never replaced
    by a regular file (as root, `-o /dev/null` would otherwise replace the system's)."""
    image = tmp_path / "in.ome.tif"
    write_image(image, 5)
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    assert bioiscc("hash", str(image), "-o", str(link)).returncode == 0
    assert link.is_symlink() and json.loads((tmp_path / "real.json").read_text())["kind"] == "bioiscc.scene"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert bioiscc("hash", str(image), "-o", str(fifo)).returncode == 0
    assert json.loads(reader.communicate(timeout=30)[0])["kind"] == "bioiscc.scene"
    assert fifo.is_fifo()
    if not Path("/dev/full").is_char_device():
        return
    full = tmp_path / "full"
    full.symlink_to("/dev/full")
    one_line_failure(
        bioiscc("hash", str(image), "-o", str(full)), "full: cannot write: No space left on device"
    )
    codes = tmp_path / "codes.txt"
    codes.write_text(bioiscc("hash", "--format", "lines", str(image)).stdout)
    one_line_failure(bioiscc("verify", str(codes), "-o", str(full)), "No space left on device", code=2)
    assert full.is_symlink() and Path("/dev/full").is_char_device()


def test_output_folder_missing_or_not_a_folder(tmp_path: Path) -> None:
    image = tmp_path / "in.ome.tif"
    write_image(image, 5)
    for command in ("walk", "hash", "biocode"):
        target = tmp_path / "missing" / "out.json"
        one_line_failure(bioiscc(command, str(image), "-o", str(target)), "does not exist")
        assert not (tmp_path / "missing").exists()


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Any]:
    """mount(options) -> a fresh tmpfs; skipped where mounting is impossible (not root, a container)."""
    points: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", str(point)], check=False)


def test_output_folder_read_only(tmp_path: Path, mounted: Any) -> None:
    image = tmp_path / "in.ome.tif"
    write_image(image, 5)
    read_only = mounted("ro,size=1m")
    one_line_failure(bioiscc("hash", str(image), "-o", str(read_only / "out.json")), "not writable")


def test_full_disk_one_line_and_nothing_left(tmp_path: Path, mounted: Any) -> None:
    image = tmp_path / "many planes.ome.tif"
    write_image(image, 5, shape=(40, 4, 4))
    disk = mounted("size=1m")
    filler = disk / "filler"
    with pytest.raises(OSError), filler.open("wb") as stream:  # fill it up
        while True:
            stream.write(b"\0" * 4096)
            stream.flush()
    target = disk / "out.json"
    result = bioiscc("hash", str(image), "--simprints", "-o", str(target))
    one_line_failure(result, f"{target}: cannot write: No space left on device")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    codes = tmp_path / "codes.txt"
    codes.write_text(bioiscc("hash", "--format", "lines", str(image)).stdout)
    result = bioiscc("verify", str(codes), "-o", str(target))
    one_line_failure(result, f"{target}: cannot write: No space left on device", code=2)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    with (disk / "stdout.json").open("w") as stdout:  # the same on stdout, redirected
        result = subprocess.run(
            [sys.executable, "-m", "bioiscc", "hash", str(image), "--simprints"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
    one_line_failure(result, "standard output: cannot write: No space left on device")


# ---- kills ----


def test_kill_during_hash_leaves_no_output(tmp_path: Path) -> None:
    image = tmp_path / "large.ome.tif"
    rng = np.random.default_rng(1)
    with tifffile.TiffWriter(image, ome=True) as writer:  # 64 MiB: a fraction of a second of hashing
        writer.write(
            (rng.integers(0, 65535, size=(1, 1024, 1024), dtype=np.uint16) for _ in range(32)),
            shape=(32, 1024, 1024),
            dtype=np.uint16,
            metadata={"axes": "ZYX"},
        )
    target = tmp_path / "out.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "bioiscc", "hash", str(image), "-o", str(target), "--progress"],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    assert process.stderr.read(len(b"\rbioiscc: scene")) == b"\rbioiscc: scene"  # hashing under way
    assert process.poll() is None, "the hash finished before it could be killed"
    process.kill()
    process.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.ome.tif"]  # no out.json, no .tmp
    result = bioiscc("hash", str(image), "-o", str(target))
    assert result.returncode == 0 and json_lines(target.read_text())[0]["status"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.ome.tif", "out.json"]


def test_batch_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    """A batch job killed while writing leaves temporary files in an input's folder: the next run
    of that input removes them (the folder is the input's own)."""
    write_image(tmp_path / "in.ome.tif", 3, shape=(2, 8, 8))
    folder = tmp_path / "results" / "in.ome.tif"
    (folder / ".views.new-99999" / "scene-0").mkdir(parents=True)
    (folder / ".views.old-99999").mkdir()
    (folder / ".walk.json.k1ll3d.tmp").write_text("{")
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"source": str(tmp_path / "in.ome.tif"), "dir": str(folder)}) + "\n")
    for command in ("walk", "hash", "extract-views"):
        result = bioiscc(command, "--batch", str(batch), "--batch-log", str(tmp_path / f"{command}.log"))
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".stamp")) == [
        "container.json",
        "scenes.jsonl",
        "views",
        "walk.json",
    ]


def make_several(workdir: Path, count: int) -> None:
    """count inputs, a batch each (no views: fewer jobs, the same mechanics)."""
    data = workdir / "data"
    data.mkdir(parents=True)
    for value in range(count):
        write_image(data / f"input {value:02d}.ome.tif", value, shape=(3, 8, 8))
    configure(workdir, batch_size=1, views={"enabled": False})


def wait_for(condition: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.workflow
@pytest.mark.slow
def test_kill_snakemake_then_rerun_gives_the_clean_index(tmp_path: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    make_several(clean, 5)
    shutil.copytree(clean, killed)
    snakemake(clean)

    command, env = snakemake_command(killed)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    logs = killed / "results" / "_batches"
    wait_for(lambda: len(list(logs.glob("*/hash.jsonl"))) >= 2, 120, "two batches hashed")
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and every job it runs, mid-run
    process.wait()
    assert not (killed / "results" / "index.jsonl").exists()

    # Snakemake cannot tell a killed run's lock from a live one's: it says so, and --unlock frees it
    refused = snakemake(killed, check=False)
    assert refused.returncode != 0 and "--unlock" in refused.stderr
    snakemake(killed, "--unlock")
    snakemake(killed)
    assert (killed / "results" / "index.jsonl").read_bytes() == (
        clean / "results" / "index.jsonl"
    ).read_bytes()
    assert (killed / "results" / "index.tsv").read_bytes() == (clean / "results" / "index.tsv").read_bytes()


# ---- concurrent runs ----


@pytest.mark.workflow
@pytest.mark.slow
def test_second_run_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "ws"
    make_several(workdir, 4)
    # the first run's jobs wait for a go: it is surely running while the second one starts
    held, go = tmp_path / "held", tmp_path / "go"
    held.mkdir()
    (held / "bioiscc").write_text(
        f'#!/bin/sh\nwhile [ ! -e "{go}" ]; do sleep 0.05; done\nexec "{sys.executable}" -m bioiscc "$@"\n'
    )
    (held / "bioiscc").chmod(0o755)
    command, env = snakemake_command(workdir)
    env["PATH"] = f"{held}{os.pathsep}{env['PATH']}"
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    locks = workdir / ".snakemake" / "locks"
    wait_for(lambda: locks.is_dir() and any(locks.iterdir()), 120, "the first run's lock")
    second = snakemake(workdir, check=False)
    assert first.poll() is None
    go.touch()
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout + second.stderr
    assert not list((workdir / "results" / "_batches").glob("*/.*.tmp"))
    rows = json_lines((workdir / "results" / "index.jsonl").read_text())
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows)


# ---- hostile records ----

RAW_RECORDS = {
    "empty": b"",
    "null": b"null",
    "a list of numbers": b"[1, 2]",
    "a number": b"42",
    "not UTF-8": b'{"kind": "\xff\xfe"}',
    "nested arrays": b"[" * 100000 + b"]" * 100000,
    "nested objects": b'{"a":' * 50000 + b"1" + b"}" * 50000,
    "NaN": b'{"kind": "bioiscc.walk", "x": NaN}',
    "Infinity": b'{"kind": "bioiscc.walk", "n": 1e999}',
    "5000 digits": b'{"kind": "bioiscc.walk", "n": ' + b"9" * 5000 + b"}",
    "binary": b"\x00\x01\x02 not json",
}
#: values put in place of every field of a real record
WRONG = [None, "x", -1, 10**30, 1e308, [], {}, True]


@pytest.fixture(scope="module")
def real_records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A walk manifest, scene record, container, views record and index row of a real image."""
    root = tmp_path_factory.mktemp("records")
    image = root / "img.ome.tif"
    write_image(image, 3, shape=(2, 8, 8))
    results = root / "results"
    results.mkdir()
    for args in (
        ("walk", str(image), "-o", str(results / "walk.json")),
        ("biocode", str(image), "-o", str(results / "container.json")),
        ("views", str(image), "-o", str(results / "views")),
        ("index", str(results / "container.json"), "--jsonl", str(results / "index.jsonl")),
    ):
        assert bioiscc(*args).returncode == 0, args
    container = json.loads((results / "container.json").read_text())
    return {
        "root": root,
        "walk": json.loads((results / "walk.json").read_text()),
        "scene": {"kind": "bioiscc.scene", **container["parts"][0]},
        "container": container,
        "views": json.loads((results / "views" / "scene-0" / "views.json").read_text()),
        "index": json_lines((results / "index.jsonl").read_text())[0],
    }


def record_commands(kind: str, path: str, root: Path) -> list[list[str]]:
    return {
        "walk": [["hash", "--manifest", path]],
        "scene": [["diff", path, path], ["verify", path, "--root", str(root)]],
        "container": [["index", path], ["diff", path, path], ["verify", path, "--root", str(root)]],
        "views": [["mix", path]],
        "index": [["similar", path], ["verify", path, "--root", str(root)]],
    }[kind]


def mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, wrong value) for every field of a record, nested ones too."""
    if isinstance(value, dict):
        for key, inner in value.items():
            for wrong in WRONG:
                yield (*path, key), wrong
            yield from mutations(inner, (*path, key))
    elif isinstance(value, list) and value:
        for wrong in WRONG:
            yield (*path, 0), wrong
        yield from mutations(value[0], (*path, 0))


def mutated(record: dict[str, Any], path: tuple[Any, ...], wrong: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    inner: Any = changed
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = wrong
    return changed


@pytest.mark.parametrize("kind", ["walk", "scene", "container", "views", "index"])
def test_hostile_records_never_raise(kind: str, real_records: dict[str, Any], tmp_path: Path) -> None:
    """Every field of a real record replaced by a wrong type, a huge number, ...: the commands that
    read records end with a one-line error or a result, never an exception (run in-process, fast)."""
    from click.testing import CliRunner

    from bioiscc.cli import main

    runner = CliRunner()
    root = real_records["root"]
    crashes: dict[str, str] = {}

    def run(args: list[str]) -> None:
        # BIOISCC_DEBUG: an unexpected exception is raised, not turned into a one-line error
        result = runner.invoke(main, args, catch_exceptions=True, env={"BIOISCC_DEBUG": "1"})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            formatted = "".join(traceback.format_exception(result.exception))
            crashes.setdefault(f"{args[0]}: {type(result.exception).__name__}", formatted[-800:])
        elif result.exit_code not in (0, 1, 2, 3):
            crashes.setdefault(f"{args[0]}: exit {result.exit_code}", result.output[-300:])

    record = real_records[kind]
    target = tmp_path / f"{kind}.json"
    for raw in RAW_RECORDS.values():
        target.write_bytes(raw)
        for args in record_commands(kind, str(target), root):
            run(args)
    extra = {**record, "unexpected": {"field": [1, 2, 3]}}
    for changed in [extra, *(mutated(record, path, wrong) for path, wrong in mutations(record))]:
        target.write_text(json.dumps(changed))
        for args in record_commands(kind, str(target), root):
            run(args)
    assert not crashes, "\n\n".join(f"{key}\n{text}" for key, text in crashes.items())


@pytest.mark.parametrize("case", sorted(RAW_RECORDS))
def test_malformed_record_files_one_line(case: str, tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_bytes(RAW_RECORDS[case])
    for args in (["hash", "--manifest", str(path)], ["index", str(path)], ["mix", str(path)]):
        result = bioiscc(*args)
        assert result.returncode in (1, 2), (args, result.returncode, result.stderr)
        line = one_line_failure(result, code=result.returncode)
        assert str(path) in line
    result = bioiscc("similar", str(path))
    one_line_failure(result, code=result.returncode)
    assert result.returncode in (1, 2)


def test_manifest_pointing_elsewhere(tmp_path: Path, real_records: dict[str, Any]) -> None:
    """A walk manifest naming a device, a FIFO or a missing file: one line, nothing read from it."""
    os.mkfifo(tmp_path / "fifo")
    for source, cause in (
        ("/dev/zero", "a character device"),
        (str(tmp_path / "fifo"), "a FIFO"),
        (str(tmp_path / "missing.ome.tif"), "no such file"),
    ):
        manifest = tmp_path / "walk.json"
        manifest.write_text(json.dumps({**real_records["walk"], "source": source}))
        one_line_failure(bioiscc("hash", "--manifest", str(manifest), timeout=60), source, cause)


# ---- credentials ----

PASSWORD = "pw-hardening-7c1d-never-shown"
USER = "alice-hardening"


def test_password_in_uri_refused_everywhere(tmp_path: Path) -> None:
    uri = f"omero://{USER}:{PASSWORD}@127.0.0.1:14064/image/1"
    listing = tmp_path / "list.txt"
    listing.write_text(uri + "\n")
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"source": uri, "dir": str(tmp_path / "out")}) + "\n")
    runs = [
        bioiscc("hash", uri),
        bioiscc("walk", "--from", str(listing), "--record-errors"),
        bioiscc("hash", "--batch", str(batch), "--batch-log", str(tmp_path / "batch.log")),
    ]
    assert "credentials do not belong in the URI" in runs[0].stderr
    for result in runs:
        assert PASSWORD not in result.stdout + result.stderr and USER not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path not in (listing, batch):
            assert PASSWORD not in path.read_text(errors="replace"), path


@pytest.mark.workflow
def test_password_in_workflow_inputs_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "ws"
    (workdir / "data").mkdir(parents=True)
    write_image(workdir / "data" / "a.ome.tif", 1)
    configure(workdir, inputs=[f"omero://{USER}:{PASSWORD}@127.0.0.1:14064/image/1"])
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "omero://127.0.0.1:14064/image/1: OMERO images are not workflow inputs" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    for path in workdir.rglob("*"):
        if path.is_file() and path.name != "config.yaml":
            assert PASSWORD not in path.read_text(errors="replace"), path


def test_password_never_on_a_command_line(tmp_path: Path) -> None:
    """The credentials come from the environment; no process bioiscc starts (its batch children
    are forks) shows them in its command line, as `ps` would."""
    from tests import omero_double
    from tests.test_omero import LOGIN, SECRET, base_server

    fake = base_server()
    spec = omero_double.save(tmp_path / "servers.pkl", fake)
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        "".join(
            json.dumps({"source": fake.uri("image", 1), "dir": str(tmp_path / f"r{n}")}) + "\n"
            for n in range(3)
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")} | LOGIN
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.omero_double", str(spec), "bioiscc", "walk", "--batch", str(batch)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, str] = {}
    while process.poll() is None:
        for pid in processes_below(process.pid):
            try:
                seen[pid] = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
        time.sleep(0.01)
    out, err = process.communicate()
    assert process.returncode == 0, err
    assert seen and all(SECRET not in line for line in seen.values()), seen
    assert SECRET not in out + err
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".log"):
            assert SECRET not in path.read_text(errors="replace")
    assert json.loads((tmp_path / "r0" / "walk.json").read_text())["status"] == "ok"


def processes_below(root: int) -> list[int]:
    """The process and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found
