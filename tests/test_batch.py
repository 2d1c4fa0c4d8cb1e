"""Many inputs in one call: the batch form (`--batch FILE`) and several SOURCEs (`bioiscc.batch`).

A batch writes, per input, exactly the files a one-input command writes; reuses an input whose
results are current; recomputes one whose source, settings or outputs changed; and a failure, even
a crash that kills the process, fails that input alone.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from bioiscc import batch
from tests.conftest import json_lines, run_cli

tifffile = pytest.importorskip("tifffile")
np = pytest.importorskip("numpy")


def write_tiff(path: Path, seed: int, shape: tuple[int, ...] = (2, 12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(seed).integers(0, 4096, size=shape, dtype=np.uint16))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for i in range(4):
        write_tiff(tmp_path / "data" / f"image {i}.tif", seed=i)
    (tmp_path / "data" / "broken.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 8)
    return tmp_path


def batch_file(root: Path, names: list[str]) -> Path:
    path = root / "batch.jsonl"
    path.write_text("".join(batch.batch_line(f"data/{name}", f"results/{name}") for name in names))
    return path


def actions(log: Path) -> dict[str, tuple[str, str]]:
    """source -> (computed|reused, status), from a batch log."""
    return {e["source"]: (e["action"], e["status"]) for e in json_lines(log.read_text())}


NAMES = ["image 0.tif", "image 1.tif", "image 2.tif", "image 3.tif", "broken.tif"]


def test_batch_writes_what_one_command_per_input_writes(data: Path) -> None:
    listed = batch_file(data, NAMES)
    for command in (["walk"], ["hash"], ["extract-views"], ["mix"]):
        result = run_cli(*command, "--batch", str(listed), "--batch-log", f"{command[0]}.log", cwd=data)
        assert result.returncode == 0, result.stderr
        assert (
            f"bioiscc {command[0].replace('extract-', '')}: 5 inputs: 5 computed, 0 reused, 1 failed "
            "(data/broken.tif)" in result.stderr
        )
    for name in NAMES:
        folder = data / "results" / name
        one = run_cli("walk", "--record-errors", f"data/{name}", cwd=data, check=True).stdout
        assert (folder / "walk.json").read_text() == one
        manifest = str(folder / "walk.json")
        container = run_cli("container", "--manifest", manifest, "--record-errors", cwd=data, check=True)
        assert (folder / "container.json").read_text() == container.stdout
    assert actions(data / "hash.log")["data/broken.tif"] == ("computed", "failed")
    assert actions(data / "mix.log")["data/image 0.tif"] == ("computed", "ok")
    # the image record of a batch is the one of `imagecode` (same views, same codes)
    (image,) = json_lines((data / "results" / "image 0.tif" / "image.jsonl").read_text())
    (expected,) = json_lines(run_cli("imagecode", "data/image 0.tif", cwd=data, check=True).stdout)
    assert (image["iscc_mixed"], image["iscc_code"]) == (expected["iscc_mixed"], expected["iscc_code"])


def test_rerun_reuses_what_is_current_and_recomputes_what_changed(data: Path) -> None:
    listed = batch_file(data, NAMES)
    log = data / "walk.log"

    def walk(*extra: str) -> dict[str, tuple[str, str]]:
        run_cli("walk", "--batch", str(listed), "--batch-log", str(log), *extra, cwd=data, check=True)
        return actions(log)

    assert {a for a, _ in walk().values()} == {"computed"}
    assert walk() == {f"data/{n}": ("reused", "failed" if n == "broken.tif" else "ok") for n in NAMES}
    before = (data / "results" / "image 1.tif" / "walk.json").stat().st_mtime_ns
    assert (data / "results" / "image 1.tif" / "walk.json").stat().st_mtime_ns == before  # not rewritten

    write_tiff(data / "data" / "image 2.tif", seed=99, shape=(2, 5, 5))  # the source changed
    (data / "results" / "image 3.tif" / "walk.json").write_text("{")  # a result damaged by hand
    done = walk("--retry-failed")  # and the failed input is retried
    assert sorted(s for s, (action, _) in done.items() if action == "computed") == [
        "data/broken.tif",
        "data/image 2.tif",
        "data/image 3.tif",
    ]
    fresh = run_cli("walk", "data/image 2.tif", cwd=data, check=True).stdout
    assert (data / "results" / "image 2.tif" / "walk.json").read_text() == fresh
    assert json.loads(fresh)["scenes"][0]["dims"]["Y"] == 5
    json.loads((data / "results" / "image 3.tif" / "walk.json").read_text())  # rebuilt


def test_a_crash_fails_only_its_input(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A reader that takes the process down (here: SIGSEGV) costs only the input it was reading."""
    written: list[str] = []

    def compute(item: batch.Item) -> None:
        if item.source == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        item.folder.mkdir(parents=True, exist_ok=True)
        (item.folder / "out.json").write_text(json.dumps({"status": "ok"}))

    def fallback(item: batch.Item, error: str) -> None:
        written.append(item.source)
        item.folder.mkdir(parents=True, exist_ok=True)
        (item.folder / "out.json").write_text(json.dumps({"status": "failed", "error": error}))

    step = batch.Step(
        name="test",
        outputs=("out.json",),
        digest=lambda item: batch.digest_of(item.source),
        compute=compute,
        fallback=fallback,
        status=lambda item: batch.records_status([item.folder / "out.json"]),
    )
    items = [batch.Item(name, tmp_path / name) for name in ("a", "crash", "b")]
    outcomes = batch.run(step, items, str(tmp_path / "log.jsonl"))
    assert [(o.source, o.status) for o in outcomes] == [("a", "ok"), ("crash", "failed"), ("b", "ok")]
    assert "killed by SIGSEGV" in str(outcomes[1].error)
    assert written == ["crash"]  # the parent wrote the crashed input's failed record
    assert "bioiscc test: 3 inputs: 3 computed, 0 reused, 1 failed (crash)" in capfd.readouterr().err
    again = batch.run(step, items, None, retry_failed=False)
    assert [o.action for o in again] == ["reused", "reused", "reused"]


def test_bad_batch_file_and_misuse(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"source": "a.tif"}\n')
    result = run_cli("walk", "--batch", str(tmp_path / "bad.jsonl"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "bad.jsonl: line 1: not a batch entry" in result.stderr
    missing = run_cli("hash", "--batch", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 1 and "cannot read the batch file" in missing.stderr
    both = run_cli("walk", "--batch", str(tmp_path / "bad.jsonl"), "x.tif")
    assert both.returncode == 2 and "--batch cannot be combined with SOURCE" in both.stderr
    (tmp_path / "twice.jsonl").write_text(
        '{"source": "a.tif", "dir": "r/x"}\n{"source": "b.tif", "dir": "r/./x"}\n'
    )
    twice = run_cli("hash", "--batch", "twice.jsonl", cwd=tmp_path)
    assert (
        twice.returncode == 1 and "twice.jsonl: line 2: dir r/./x is also the dir of line 1" in twice.stderr
    )
    (tmp_path / "afile").write_text("")
    (tmp_path / "file.jsonl").write_text('{"source": "a.tif", "dir": "afile"}\n')
    on_file = run_cli("hash", "--batch", "file.jsonl", cwd=tmp_path)
    assert on_file.returncode == 1 and "line 1: dir afile is there and is not a folder" in on_file.stderr
    assert not (tmp_path / "r").exists()


def test_several_sources_in_one_call(data: Path) -> None:
    names = ["data/image 0.tif", "data/image 1.tif"]
    records = json_lines(run_cli("hash", *names, cwd=data, check=True).stdout)
    assert [r["source"] for r in records] == names
    assert records[0]["iscc_code"] == json_lines(run_cli("hash", names[0], cwd=data).stdout)[0]["iscc_code"]

    # the same from a list on stdin (as `find ... |` gives it), and walks one JSON line each
    listed = run_cli("hash", "--from", "-", input="\n".join(names) + "\n", cwd=data, check=True)
    assert json_lines(listed.stdout) == records
    walks = json_lines(run_cli("walk", *names, cwd=data, check=True).stdout)
    assert [w["kind"] for w in walks] == ["bioiscc.walk"] * 2

    # one unreadable source: its one-line error, the others still done, exit 1
    mixed = run_cli("hash", names[0], "data/broken.tif", names[1], "-o", "out.jsonl", cwd=data)
    assert mixed.returncode == 1
    assert "data/broken.tif" in mixed.stderr and mixed.stderr.count("\n") == 1
    assert [r["source"] for r in json_lines((data / "out.jsonl").read_text())] == names


def test_a_step_removes_only_its_own_leftovers(tmp_path: Path) -> None:
    """Temporaries a killed run left beside this step's outputs go; another step's (running side by
    side on the same input, as hash and extract_views do) stay, or its atomic write would fail."""
    folder = tmp_path / "results" / "a"
    folder.mkdir(parents=True)
    own = [folder / ".out.json.x1y2.tmp", folder / "..test.stamp.k3j4.tmp"]
    foreign = [folder / ".scenes.jsonl.a1b2.tmp", folder / "..other.stamp.c3d4.tmp"]
    for path in own + foreign:
        path.write_text("half")

    def compute(item: batch.Item) -> None:
        (item.folder / "out.json").write_text(json.dumps({"status": "ok"}))

    step = batch.Step(
        name="test",
        outputs=("out.json",),
        digest=lambda item: batch.digest_of(item.source),
        compute=compute,
        fallback=lambda item, error: None,
        status=lambda item: batch.records_status([item.folder / "out.json"]),
    )
    (outcome,) = batch.run(step, [batch.Item("a", folder)], None, isolate=False)
    assert outcome.status == "ok"
    assert [path.exists() for path in own] == [False, False]
    assert [path.exists() for path in foreign] == [True, True]
