"""Hashing in two threads (`bioiscc.hasher.ThreadHasher`, iscc-lib) gives exactly `iscc_sum`'s codes,
fails in one line when a hash fails, and never leaves a thread behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import bioiscc
from bioiscc import hasher, imagewalk
from bioiscc.hasher import LocalHasher, ThreadHasher, compose_sum, core
from bioiscc.scene import SceneInfo, make_dims
from bioiscc.sources import open_source
from bioiscc.sumcode import hash_planes
from tests.conftest import HANDOFF_MODES, VECTORS, use_handoff

EXPECTED = json.loads((VECTORS / "expected.json").read_text())


@pytest.fixture(params=HANDOFF_MODES)
def small_pieces(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Threads for every scene, with pieces smaller than a plane and queues of only two of them."""
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "always")
    monkeypatch.setattr(hasher, "PIECE_BYTES", 1000)
    monkeypatch.setattr(hasher, "QUEUE_DEPTH", 2)
    use_handoff(monkeypatch, request.param)


def hashing_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("bioiscc-hash-")]


def both(pieces: list[bytes], ends: list[bool], *, simprints: bool, wide: bool) -> tuple[Any, Any]:
    local = LocalHasher(simprints=simprints, wide=wide)
    threaded = ThreadHasher(simprints=simprints, wide=wide)
    for piece, end in zip(pieces, ends, strict=True):
        local.update([piece], end)
        threaded.update([memoryview(piece)], end)
    return local.finish(), threaded.finish()


@pytest.mark.parametrize("wide", [True, False])
def test_threads_give_iscc_sums_own_result(small_pieces: None, wide: bool) -> None:
    """Pieces smaller and larger than a piece, empty pieces and planes, a plane ending on a piece edge."""
    rng = np.random.default_rng(1)
    sizes = [0, 1, 999, 1000, 1001, 2000, 0, 4321, 7, 1000, 250_000]
    ends = [True, False, True, True, False, True, True, False, True, True, True]
    pieces = [rng.bytes(n) for n in sizes]
    local, threaded = both(pieces, ends, simprints=True, wide=wide)
    assert threaded == local
    assert len(threaded.plane_digests) == sum(ends)
    assert threaded.iscc.startswith("ISCC:K")
    assert hashing_threads() == []


def test_random_streams_in_threads_and_here() -> None:
    """iscc-lib's digests and iscc_sum's agree on many random streams cut at random places."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        sizes = [int(n) for n in rng.integers(0, 70_000, int(rng.integers(1, 6)))]
        pieces = [rng.bytes(n) for n in sizes]
        ends = [bool(e) for e in rng.integers(0, 2, len(sizes))]
        local, threaded = both(pieces, ends, simprints=True, wide=True)
        assert threaded == local


def test_an_empty_stream(small_pieces: None) -> None:
    local, threaded = both([], [], simprints=True, wide=True)
    assert threaded == local and threaded.plane_digests == []


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


def test_every_vector_hashed_in_threads(vectors_dir: Path, small_pieces: None) -> None:
    for name, want in EXPECTED.items():
        got = bioiscc.hash_scenes(vectors_dir / name, simprints=True)
        assert [r["iscc_code"] for r in got] == [w["iscc_code"] for w in want], name
        assert [r["units"] for r in got] == [w["units"] for w in want], name
        assert [r["datahash"] for r in got] == [w["datahash"] for w in want], name
        assert [r["simprints"][0]["simprint"] for r in got] == [w["first_simprints"][0] for w in want], name
    assert hashing_threads() == []


def test_threads_only_for_large_scenes_and_more_than_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIOISCC_HASH_THREADS", raising=False)
    big = hasher.THREAD_MIN_BYTES
    assert hasher.hashes_in_threads(big, 2)
    assert not hasher.hashes_in_threads(big - 1, 2)
    assert not hasher.hashes_in_threads(big, 1)  # --threads 1: one core, one thread
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "0")
    assert not hasher.hashes_in_threads(big, 2)
    monkeypatch.setenv("BIOISCC_HASH_THREADS", "always")
    assert hasher.hashes_in_threads(1, 2)


class Planes:
    """A reader of 6 planes of 2 x 3000 uint16 (12,000 bytes each) that fails at plane `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.info = SceneInfo(0, "s", make_dims({"Z": 6, "Y": 2, "X": 3000}), {}, "uint16")
        self.fail_at = fail_at

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        if z == self.fail_at:
            raise ValueError(f"plane {z} is unreadable")
        return np.full((2, 3000, 1), z, dtype="<u2")


def test_a_reader_error_stops_the_threads(small_pieces: None) -> None:
    with pytest.raises(ValueError, match="plane 3 is unreadable"):
        hash_planes(imagewalk.iter_planes(Planes(fail_at=3)))
    assert hashing_threads() == []
    threaded = hash_planes(imagewalk.iter_planes(Planes()))
    os.environ["BIOISCC_HASH_THREADS"] = "0"
    try:
        assert hash_planes(imagewalk.iter_planes(Planes())) == threaded
    finally:
        os.environ["BIOISCC_HASH_THREADS"] = "always"


class Failing:
    """A hasher that fails on its second piece, as a hash that runs out of memory would."""

    def __init__(self) -> None:
        self.pieces = 0

    def update(self, data: bytes) -> None:
        self.pieces += 1
        if self.pieces == 2:
            raise MemoryError("no memory for the hash")

    def finalize(self, bits: int) -> dict[str, str]:
        raise AssertionError("a failed hash is never finished")


@pytest.mark.parametrize("role", ["data", "instance"])
def test_a_failed_hash_is_raised_here_and_stops_both_threads(
    small_pieces: None, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    """The reader never hangs on a full queue: the failure is raised at its next piece or at the end."""
    monkeypatch.setitem(hasher._hashers(), role, Failing)
    started = time.monotonic()
    with pytest.raises(MemoryError, match="no memory for the hash"):
        hash_planes(imagewalk.iter_planes(Planes()))
    assert time.monotonic() - started < 10
    assert hashing_threads() == []


def test_closing_early_stops_the_threads_with_full_queues(small_pieces: None) -> None:
    digest = ThreadHasher(simprints=True, wide=True)
    for _ in range(5):
        digest.update([b"x" * 900], True)
    digest.close()
    assert hashing_threads() == []
    digest.close()  # twice is harmless


def test_a_stop_alone_ends_the_threads() -> None:
    """Ctrl-C inside `Thread.start()` leaves a thread that `is_alive()` does not report yet, so it
    gets no _END; the stop alone must end it (it waited forever, and the command hung)."""
    digest = ThreadHasher(simprints=False, wide=True)
    digest.update([b"x" * 900], False)
    digest.stop.set()  # what close() does first, without the _END it sends
    for thread in digest.threads:
        thread.join(timeout=5)
    assert hashing_threads() == []


def test_a_failed_scene_is_a_failed_record_and_the_next_scene_hashes(
    tmp_path: Path, small_pieces: None
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
    os.environ["BIOISCC_HASH_THREADS"] = "0"
    try:
        assert bioiscc.hash_scenes(path)[1]["iscc_code"] == second["iscc_code"]
    finally:
        os.environ["BIOISCC_HASH_THREADS"] = "always"
    assert hashing_threads() == []


def test_the_views_tap_sees_every_plane_read_for_threads(vectors_dir: Path, small_pieces: None) -> None:
    from bioiscc.views import api

    with api.opened(vectors_dir / "img5d_u16.ome.tif") as src:
        done = api.scene_views(src, src.scenes()[0], with_sum=True)
    assert done.views is not None and done.views.planes_binned > 0
    assert done.code is not None and done.code.iscc_code == EXPECTED["img5d_u16.ome.tif"][0]["iscc_code"]


def test_closing_the_walk_early_leaves_nothing(vectors_dir: Path, small_pieces: None) -> None:
    with open_source(vectors_dir / "img5d_u16.ome.tif") as source:
        reader = source.open_scene(source.scenes()[0])
        stream = imagewalk.PlaneWalk(reader).canonical(in_place=True)
        first = next(stream)
        assert bytes(first[0])
        stream.close()
    assert hashing_threads() == []


@pytest.mark.parametrize("threads", ["always", "0"])
def test_an_interrupt_exits_130_without_output(tmp_path: Path, threads: str) -> None:
    """Ctrl-C during a hash, in threads or in the calling thread: one line and exit 130 (not 1, which
    says the input could not be read), no traceback, no output, and the process ends (no hashing
    thread keeps it alive)."""
    path = slow_tiff(tmp_path)
    env = {**os.environ, "BIOISCC_HASH_THREADS": threads, **COUNTED_READS}
    command = [sys.executable, "-m", "bioiscc", "hash", str(path), "-o", str(tmp_path / "out.json")]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _read_bytes(process.pid) < path.stat().st_size // 8:
        time.sleep(0.02)  # until it is well into the pixels
    if threads == "always":
        assert _threads(process.pid) >= 3, "the hash never started its threads"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.strip() == "bioiscc: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.tif"]  # no output, no temporary file


def test_an_interrupt_of_several_sources_leaves_no_output(tmp_path: Path) -> None:
    """The records of the sources already hashed are not written when a later one is interrupted."""
    path = slow_tiff(tmp_path)
    command = [sys.executable, "-m", "bioiscc", "hash", "--threads", "1", str(path), str(path)]
    process = subprocess.Popen(
        [*command, "-o", str(tmp_path / "out.json")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **COUNTED_READS},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _read_bytes(process.pid) < path.stat().st_size * 5 // 4:
        time.sleep(0.02)  # until the first source is done and the second under way
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.tif"]


def test_an_interrupted_verify_leaves_no_report(tmp_path: Path) -> None:
    path = slow_tiff(tmp_path)
    code = "ISCC:K4AK6CURYD5YSTCP37IB4UXILRDRMEQFNR6BUK5BL75CWQ6UK5F5C5Q"  # not its code: any will do
    (tmp_path / "codes.txt").write_text(f"{code} *slow.tif\n" * 2)
    command = [sys.executable, "-m", "bioiscc", "verify", "codes.txt", "-o", "report.txt"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={**os.environ, **COUNTED_READS}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _read_bytes(process.pid) < path.stat().st_size // 4:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.txt", "slow.tif"]  # no .report.txt.*.tmp


#: these tests see a command's progress in the bytes it has read (`rchar`), which do not count the
#: pages of a mapping: the compressed strips are read (the default, whatever the environment says)
COUNTED_READS = {"BIOISCC_MMAP": "0"}


def slow_tiff(folder: Path) -> Path:
    """A TIFF whose reader is slower than the hash: many small zlib strips (2-3 s of decoding)."""
    path = folder / "slow.tif"
    data = np.random.default_rng(3).integers(0, 60000, size=(60, 1024, 1024), dtype=np.uint16)
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=4, predictor=True)
    return path


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _read_bytes(pid: int) -> int:
    try:
        io = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return int(next(line.split()[1] for line in io.splitlines() if line.startswith("rchar:")))


def test_one_allowed_core_means_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Slurm job or `taskset` that allows one core gets the one-thread hash, whatever the machine has."""
    monkeypatch.delenv("BIOISCC_HASH_THREADS", raising=False)
    monkeypatch.setattr(imagewalk.os, "sched_getaffinity", lambda pid: {0})
    assert imagewalk.thread_budget() == 1
    assert not hasher.hashes_in_threads(hasher.THREAD_MIN_BYTES, imagewalk.thread_budget())
    monkeypatch.setattr(imagewalk.os, "sched_getaffinity", lambda pid: {0, 3})
    assert imagewalk.thread_budget() == 2


def test_threads_that_cannot_start_mean_hashing_here(
    vectors_dir: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit on threads ("can't start new thread", as some containers give) is no error: the scene
    is hashed in the calling thread, with the same code."""

    start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name.startswith("bioiscc-hash-"):
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(hasher.threading.Thread, "start", refuse)
    (record,) = bioiscc.hash_scenes(vectors_dir / "img5d_u16.ome.tif", simprints=True)
    assert record["iscc_code"] == EXPECTED["img5d_u16.ome.tif"][0]["iscc_code"]
    assert record["simprints"][0]["simprint"] == EXPECTED["img5d_u16.ome.tif"][0]["first_simprints"][0]


def test_without_iscc_lib_the_hash_runs_here(
    vectors_dir: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation whose iscc-lib cannot be imported still hashes, in the calling thread."""
    monkeypatch.setitem(sys.modules, "iscc_lib", None)  # import iscc_lib raises ImportError
    hasher._hashers.cache_clear()
    try:
        (record,) = bioiscc.hash_scenes(vectors_dir / "img5d_u16.ome.tif")
    finally:
        hasher._hashers.cache_clear()
    assert record["iscc_code"] == EXPECTED["img5d_u16.ome.tif"][0]["iscc_code"]
    assert hashing_threads() == []
