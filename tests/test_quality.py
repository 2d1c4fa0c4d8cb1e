"""The code stays typed and lint-clean (ruff, mypy), and `bioiscc --version` stays instant."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)


def test_ruff() -> None:
    pytest.importorskip("ruff")
    result = run_tool("ruff", "check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    pytest.importorskip("mypy")
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_is_fast() -> None:
    best = min(_timed([sys.executable, "-m", "bioiscc", "--version"]) for _ in range(3))
    assert best < 0.3, f"bioiscc --version took {best:.2f} s"


def test_cli_imports_no_reader() -> None:
    heavy = ("numpy", "bioio_base", "zarr", "tifffile", "dask")
    code = f"import sys, bioiscc.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


LAZY_PROBE = """
import sys, click
from bioiscc.cli import LAZY_COMMANDS, main
defined_here = set(main.commands)
loaded = sorted({module for module in LAZY_COMMANDS.values() if f"bioiscc.{module}" in sys.modules})
found = {}
for name, module in LAZY_COMMANDS.items():
    command = main.get_command(click.Context(main), name)
    found[name] = command.callback.__module__ if command is not None else None
from bioiscc import cli_compare, cli_formats, cli_verify, cli_views
declared = {*cli_compare.COMMANDS, *cli_formats.COMMANDS, *cli_verify.COMMANDS, *cli_views.COMMANDS}
print(sorted(defined_here), loaded, found == {n: "bioiscc." + m for n, m in LAZY_COMMANDS.items()},
      sorted(set(main.commands) - defined_here - set(LAZY_COMMANDS)), sorted(declared - set(LAZY_COMMANDS)))
"""


def test_commands_of_other_modules_load_when_asked_for() -> None:
    """`bioiscc hash` imports no other command's module; every lazy command is where the table says,
    and no module defines a command the table lacks."""
    result = subprocess.run([sys.executable, "-c", LAZY_PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['biocode', 'hash', 'walk'] [] True [] []"


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start
