"""Hashing in child processes (`bioiscc.hasher.ChildHasher`) gives exactly `iscc_sum`'s codes, fails
in one line when a child dies, and never leaves a process or a descriptor behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import bioiscc
from bioiscc import hasher, imagewalk
from bioiscc.hasher import ChildHasher, LocalHasher, compose_sum, core
from bioiscc.scene import SceneInfo, make_dims
from bioiscc.sources import open_source
from bioiscc.sumcode import hash_planes
from tests.conftest import VECTORS

EXPECTED = json.loads((VECTORS / "expected.json").read_text())


@pytest.fixture
def small_ring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children for every scene, with slots smaller than a plane and a ring of only two of them."""
    monkeypatch.setenv("BIOISCC_HASH_CHILDREN", "always")
    monkeypatch.setattr(hasher, "SLOT_BYTES", 1000)
    monkeypatch.setattr(hasher, "SLOTS", 2)


def children_of_this_process() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.append(int(entry.name))
    return found


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def both(pieces: list[bytes], ends: list[bool], *, simprints: bool, wide: bool) -> tuple[Any, Any]:
    local, children = LocalHasher(simprints=simprints, wide=wide), ChildHasher(simprints=simprints, wide=wide)
    for piece, end in zip(pieces, ends, strict=True):
        local.update([piece], end)
        children.update([memoryview(piece)], end)
    return local.finish(), children.finish()


@pytest.mark.parametrize("wide", [True, False])
def test_children_give_iscc_sums_own_result(small_ring: None, wide: bool) -> None:
    """Pieces smaller and larger than a slot, empty pieces and planes, a plane ending on a slot edge."""
    rng = np.random.default_rng(1)
    sizes = [0, 1, 999, 1000, 1001, 2000, 0, 4321, 7, 1000]
    ends = [True, False, True, True, False, True, True, False, True, True]
    pieces = [rng.bytes(n) for n in sizes]
    local, children = both(pieces, ends, simprints=True, wide=wide)
    assert children == local
    assert len(children.plane_digests) == sum(ends)
    assert children.iscc.startswith("ISCC:K")


def test_an_empty_stream(small_ring: None) -> None:
    local, children = both([], [], simprints=True, wide=True)
    assert children == local and children.plane_digests == []


def test_the_code_is_composed_as_iscc_sum_composes_it() -> None:
    """Many random streams: `compose_sum` of the two digests equals IsccSumProcessor's result."""
    processors = core()
    rng = np.random.default_rng(7)
    for _ in range(50):
        data = rng.bytes(int(rng.integers(0, 5000)))
        whole, dc, ic = (
            processors.IsccSumProcessor(),
            processors.DataCodeProcessor(),
            processors.InstanceCodeProcessor(),
        )
        for p in (whole, dc, ic):
            p.update(data)
        for wide in (True, False):
            result = whole.result(wide=wide, add_units=True)
            code, units = compose_sum(dc.result()["digest"], ic.result()["digest"], wide)
            assert (code, units) == (result.iscc, list(result.units))


def test_every_vector_hashed_in_children(vectors_dir: Path, small_ring: None) -> None:
    for name, want in EXPECTED.items():
        got = bioiscc.hash_scenes(vectors_dir / name, simprints=True)
        assert [r["iscc_code"] for r in got] == [w["iscc_code"] for w in want], name
        assert [r["units"] for r in got] == [w["units"] for w in want], name
        assert [r["datahash"] for r in got] == [w["datahash"] for w in want], name
        assert [r["simprints"][0]["simprint"] for r in got] == [w["first_simprints"][0] for w in want], name
    assert children_of_this_process() == []


def test_children_only_for_large_scenes_and_more_than_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIOISCC_HASH_CHILDREN", raising=False)
    big = hasher.CHILD_MIN_BYTES
    assert hasher.hashes_in_children(big, 2)
    assert not hasher.hashes_in_children(big - 1, 2)
    assert not hasher.hashes_in_children(big, 1)  # --threads 1: one core, one process
    monkeypatch.setenv("BIOISCC_HASH_CHILDREN", "0")
    assert not hasher.hashes_in_children(big, 2)
    monkeypatch.setenv("BIOISCC_HASH_CHILDREN", "always")
    assert hasher.hashes_in_children(1, 2)


class Planes:
    """A reader of 6 planes of 2 x 3000 uint16 (12,000 bytes each) that fails at plane `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.info = SceneInfo(0, "s", make_dims({"Z": 6, "Y": 2, "X": 3000}), {}, "uint16")
        self.fail_at = fail_at

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        if z == self.fail_at:
            raise ValueError(f"plane {z} is unreadable")
        return np.full((2, 3000, 1), z, dtype="<u2")


def test_a_reader_error_stops_and_reaps_the_children(small_ring: None) -> None:
    before = open_descriptors()
    with pytest.raises(ValueError, match="plane 3 is unreadable"):
        hash_planes(imagewalk.iter_planes(Planes(fail_at=3)))
    assert children_of_this_process() == []
    assert open_descriptors() == before
    local = hash_planes(imagewalk.iter_planes(Planes()))
    os.environ["BIOISCC_HASH_CHILDREN"] = "0"
    try:
        assert hash_planes(imagewalk.iter_planes(Planes())) == local
    finally:
        os.environ["BIOISCC_HASH_CHILDREN"] = "always"


def test_a_dead_child_is_a_one_line_error(small_ring: None) -> None:
    digest = ChildHasher(simprints=False, wide=True)
    os.kill(digest.children[0].process.pid, signal.SIGKILL)
    digest.children[0].process.wait()
    with pytest.raises(OSError, match="hashing process ended"):
        for _ in range(20):
            digest.update([b"x" * 1500], True)
        digest.finish()
    digest.close()
    assert children_of_this_process() == []


def test_a_failed_scene_is_a_failed_record_and_the_next_scene_hashes(
    tmp_path: Path, small_ring: None
) -> None:
    """A zstd tile of zeros in scene 0 of two: the record says so, scene 1 gets its code."""
    path = tmp_path / "two.ome.tif"
    data = np.random.default_rng(2).integers(0, 4000, size=(4, 64, 64), dtype=np.uint16)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, tile=(32, 32), compression="zstd", metadata={"axes": "ZYX"})
        tif.write(data[::-1], tile=(32, 32), compression="zstd", metadata={"axes": "ZYX"})
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        offset, count = tiff.pages[1].dataoffsets[0], tiff.pages[1].databytecounts[0]
    raw[offset : offset + count] = bytes(count)
    path.write_bytes(bytes(raw))
    first, second = bioiscc.hash_scenes(path)
    assert first["status"] == "failed" and "page 1" in first["error"]
    assert second["status"] == "ok"
    os.environ["BIOISCC_HASH_CHILDREN"] = "0"
    try:
        assert bioiscc.hash_scenes(path)[1]["iscc_code"] == second["iscc_code"]
    finally:
        os.environ["BIOISCC_HASH_CHILDREN"] = "always"
    assert children_of_this_process() == []


def test_the_views_tap_sees_every_plane_read_for_children(vectors_dir: Path, small_ring: None) -> None:
    from bioiscc.views import api

    with api.opened(vectors_dir / "img5d_u16.ome.tif") as src:
        done = api.scene_views(src, src.scenes()[0], with_sum=True)
    assert done.views is not None and done.views.planes_binned > 0
    assert done.code is not None and done.code.iscc_code == EXPECTED["img5d_u16.ome.tif"][0]["iscc_code"]


def test_closing_the_walk_early_leaves_nothing(vectors_dir: Path, small_ring: None) -> None:
    with open_source(vectors_dir / "img5d_u16.ome.tif") as source:
        reader = source.open_scene(source.scenes()[0])
        stream = imagewalk.PlaneWalk(reader).canonical(in_place=True)
        first = next(stream)
        assert bytes(first[0])
        stream.close()
    assert children_of_this_process() == []


def test_an_interrupt_stops_the_command_and_its_children(tmp_path: Path) -> None:
    """Ctrl-C during a hash in children: one line and exit 130 (not 1, which says the input could not
    be read), no traceback, no output, no child left (the children ignore SIGINT; the command kills
    and reaps them)."""
    path = tmp_path / "slow.tif"
    # a reader slower than the hash: many small zlib strips (about 2 s of decoding)
    data = np.random.default_rng(3).integers(0, 60000, size=(40, 1024, 1024), dtype=np.uint16)
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=4, predictor=True)
    env = {**os.environ, "BIOISCC_HASH_CHILDREN": "always"}
    command = [sys.executable, "-m", "bioiscc", "hash", str(path), "-o", str(tmp_path / "out.json")]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_children(process.pid)) < 2:
        time.sleep(0.05)
    kids = _children(process.pid)
    assert len(kids) == 2, "the hash never started its children"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.strip() == "bioiscc: interrupted"
    assert not (tmp_path / "out.json").exists()
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists() or "Z" in Path(f"/proc/{kid}/stat").read_text().split()[2]


def test_an_interrupt_in_process_exits_130_without_output(tmp_path: Path) -> None:
    """The same for a hash in the command's own process: interrupted while it reads, exit 130."""
    path = tmp_path / "slow.tif"
    data = np.random.default_rng(4).integers(0, 60000, size=(60, 1024, 1024), dtype=np.uint16)
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=4, predictor=True)
    env = {**os.environ, "BIOISCC_HASH_CHILDREN": "0"}
    command = [sys.executable, "-m", "bioiscc", "hash", str(path), "-o", str(tmp_path / "out.json")]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _read_bytes(process.pid) < path.stat().st_size // 8:
        time.sleep(0.02)  # until it is well into the pixels
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.strip() == "bioiscc: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.tif"]  # no output, no temporary file


def _read_bytes(pid: int) -> int:
    try:
        io = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return int(next(line.split()[1] for line in io.splitlines() if line.startswith("rchar:")))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == pid and b"hash_child.py" in cmdline:
                found.append(int(entry.name))
    return found


def test_one_allowed_core_means_no_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Slurm job or `taskset` that allows one core gets the one-process hash, whatever the machine has."""
    monkeypatch.delenv("BIOISCC_HASH_CHILDREN", raising=False)
    monkeypatch.setattr(imagewalk.os, "sched_getaffinity", lambda pid: {0})
    assert imagewalk.thread_budget() == 1
    assert not hasher.hashes_in_children(hasher.CHILD_MIN_BYTES, imagewalk.thread_budget())
    monkeypatch.setattr(imagewalk.os, "sched_getaffinity", lambda pid: {0, 3})
    assert imagewalk.thread_budget() == 2


def test_a_child_killed_while_this_process_waits_for_a_slot(small_ring: None) -> None:
    """Every slot handed out and one child gone: the wait ends in an error, it does not hang."""
    digest = ChildHasher(simprints=False, wide=True)
    digest.update([b"x" * 1000], False)
    digest.update([b"y" * 1000], False)  # both slots out (two slots in this ring)
    os.kill(digest.children[1].process.pid, signal.SIGSTOP)  # holds its slots...
    os.kill(digest.children[1].process.pid, signal.SIGKILL)  # ...and dies with them
    started = time.monotonic()
    with pytest.raises(OSError, match="instance hashing process ended unexpectedly"):
        digest.update([b"z" * 1000], False)
    assert time.monotonic() - started < 10
    digest.close()
    assert children_of_this_process() == []


def test_a_child_that_cannot_start_says_why(small_ring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hasher, "core_path", lambda: "/nonexistent/_core.so")
    digest = ChildHasher(simprints=False, wide=True)
    with pytest.raises(
        OSError, match=r"(data|instance) hashing process ended unexpectedly: \w+Error: .*nonexistent"
    ):
        for _ in range(50):
            digest.update([b"x" * 1000], True)
            time.sleep(0.01)
        digest.finish()
    digest.close()
    assert children_of_this_process() == []


def test_a_refused_child_means_hashing_here(
    vectors_dir: Path, small_ring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process limit (EAGAIN from fork, as a container's pids limit gives) is no error: the scene
    is hashed in this process, with the same code."""
    import errno

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(hasher.subprocess, "Popen", refuse)
    before = open_descriptors()
    (record,) = bioiscc.hash_scenes(vectors_dir / "img5d_u16.ome.tif", simprints=True)
    assert record["iscc_code"] == EXPECTED["img5d_u16.ome.tif"][0]["iscc_code"]
    assert open_descriptors() == before
