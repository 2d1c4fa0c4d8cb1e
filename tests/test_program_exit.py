"""The `bioiscc` program ends without the interpreter's teardown (cli.end_without_teardown), and
loses nothing by it: outputs, stdout, exit codes, exit handlers, running threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

END_PROBE = """
import atexit, sys, threading, time
class Noticed:
    def __del__(self):
        print("teardown", flush=True)
kept = Noticed()  # freed by the interpreter's teardown, if there is one
atexit.register(lambda: print("exit handler", flush=True))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread done", flush=True))).start()
from bioiscc.cli import run
sys.argv = ["bioiscc", *sys.argv[2:]]
run()
"""


def _ended(*args: str, teardown: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BIOISCC_TEARDOWN": "1" if teardown else "0"}
    return subprocess.run(
        [sys.executable, "-c", END_PROBE, *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_program_ends_without_teardown_and_loses_nothing(
    vectors_dir: Path, expected: dict, tmp_path: Path
) -> None:
    vector = vectors_dir / "img5d_u16.ome.tif"
    code = expected["img5d_u16.ome.tif"][0]["iscc_code"]
    out = tmp_path / "out.json"
    done = _ended("-", "hash", str(vector), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["iscc_code"] == code
    assert done.stdout == "exit handler\n"  # exit handlers run; the teardown is skipped
    piped = _ended("-", "hash", str(vector))
    assert json.loads(piped.stdout.splitlines()[0])["iscc_code"] == code  # stdout flushed
    assert _ended("-", "hash", str(tmp_path / "missing.tif")).returncode == 1
    assert _ended("-", "hash", "--no-such-option").returncode == 2
    assert _ended("-", "--version", teardown=True).stdout.endswith("exit handler\nteardown\n")


def test_the_program_waits_for_a_thread_still_running() -> None:
    """Python waits for non-daemon threads at exit; ending without teardown would kill them."""
    done = _ended("thread", "--version")
    assert done.returncode == 0
    assert "thread done" in done.stdout and "teardown" in done.stdout


def test_the_program_started_without_stdout_ends_as_it_should(vectors_dir: Path, tmp_path: Path) -> None:
    """With stdout closed (`>&-`) Python's `sys.stdout` is None: the output is still written, exit 0."""
    out = tmp_path / "out.json"
    command = [
        sys.executable,
        "-m",
        "bioiscc",
        "hash",
        str(vectors_dir / "img5d_u16.ome.tif"),
        "-o",
        str(out),
    ]
    closed = subprocess.run(
        ["sh", "-c", '"$@" >&-', "sh", *command], stderr=subprocess.PIPE, text=True, timeout=60
    )
    assert closed.returncode == 0, closed.stderr
    assert closed.stderr == ""
    assert json.loads(out.read_text())["status"] == "ok"


def _closed(redirection: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`bioiscc ARGS` started with a standard stream closed (`>&-` or `2>&-`)."""
    command = [sys.executable, "-m", "bioiscc", *args]
    streams = {"stdout": subprocess.PIPE} if redirection == "2>&-" else {"stderr": subprocess.PIPE}
    return subprocess.run(
        ["sh", "-c", f'"$@" {redirection}', "sh", *command], text=True, timeout=60, **streams
    )


def test_the_program_started_without_stderr_does_its_work(
    vectors_dir: Path, expected: dict, tmp_path: Path
) -> None:
    """Its messages go nowhere, as asked; it used to fail on the first one (exit 1, nothing out)."""
    vector = str(vectors_dir / "img5d_u16.ome.tif")
    done = _closed("2>&-", "hash", vector)
    assert done.returncode == 0
    assert json.loads(done.stdout)["iscc_code"] == expected["img5d_u16.ome.tif"][0]["iscc_code"]
    assert _closed("2>&-", "hash", str(tmp_path / "missing.tif")).returncode == 1
    assert _closed("2>&-", "formats").stdout.startswith("Native readers\n")


def test_a_command_that_writes_to_a_closed_stdout_fails_in_one_line(vectors_dir: Path) -> None:
    """As sha256sum does ("write error: Bad file descriptor"), not with an AttributeError."""
    vector = str(vectors_dir / "img5d_u16.ome.tif")
    for args in (["hash", vector], ["walk", vector], ["formats"]):
        done = _closed(">&-", *args)
        assert done.returncode == 1, args
        assert done.stderr == "bioiscc: error: standard output: cannot write: Bad file descriptor\n", args


def test_formats_on_a_full_disk_fails_in_one_line() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "bioiscc", "formats"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == "bioiscc: error: standard output: cannot write: No space left on device\n"
