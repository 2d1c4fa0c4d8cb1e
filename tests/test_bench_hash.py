"""benchmarks/bench_hash.py run small: every format case runs, and every code equals the reference.

The benchmark's own check is that `bioiscc hash` of each encoding of the same pixels (OME-TIFF plain
and zstd-tiled, OME-Zarr 0.4 and 0.5, CZI plain and zstd from pylibCZIrw) gives the code of a
per-plane walk of the array; it exits 1 otherwise. Here it runs on a 1 MiB image, one run per command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_hash_benchmark_small(tmp_path: Path) -> None:
    pytest.importorskip("pylibCZIrw")
    output = tmp_path / "results.md"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_hash.py"), "--small"]
    cases = ["tiff", "tiled", "zarr", "zarr3", "zarr3-sharded", "czi", "czi-zstd"]
    command += ["--cases", ",".join(cases), "--data", str(tmp_path), "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = output.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith(("| ---", "| case"))]
    assert [row.split(":")[0] for row in rows] == [f"| {case}" for case in cases]
    assert all("code = per-plane reference" in row for row in rows), rows
    # peak RSS and both baselines were measured for every case
    assert all(" - |" not in row.split("| (--small")[0] for row in rows), rows
