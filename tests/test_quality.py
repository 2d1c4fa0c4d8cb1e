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


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start
