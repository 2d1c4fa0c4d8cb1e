"""The process settings the hash path makes for speed: glibc's allocator thresholds and zarr's pool.

Each runs in a fresh interpreter, as both are process-wide and made once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def python(code: str, **env: str) -> str:
    environment = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_allocator_tuned_once_unless_turned_off() -> None:
    code = "from bioiscc.allocator import tune_allocator as t; print(t(), t())"
    assert python(code) == "True True"
    assert python(code, BIOISCC_MALLOC_TUNE="0") == "False False"


def write_store(path: Path) -> Path:
    zarr = pytest.importorskip("zarr")
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = root.create_array("0", shape=(2, 8, 8), chunks=(1, 8, 8), dtype="uint16")
    array[:] = np.arange(128, dtype=np.uint16).reshape(2, 8, 8)
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scale = [{"type": "scale", "scale": [1.0] * 3}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    return path


def open_store(threads: int, store: Path) -> str:
    """Code that opens `store` as `source` in a walk limited to `threads`."""
    return (
        "from bioiscc.imagewalk import use_threads\n"
        "from bioiscc.sources.omezarr import OmeZarrSource\n"
        f"use_threads({threads})\n"
        f"source = OmeZarrSource('x', __import__('pathlib').Path({str(store)!r}))\n"
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_zarr_decodes_in_the_threads_the_walk_may_use(threads: int, tmp_path: Path) -> None:
    code = open_store(threads, write_store(tmp_path / "image.ome.zarr")) + (
        "source.scenes()\nimport zarr\nprint(zarr.config.get('threading.max_workers'))"
    )
    assert python(code, BIOISCC_ZARR_DIRECT="0") == str(threads)
    # a setting of the user's own is kept
    assert python(code, BIOISCC_ZARR_DIRECT="0", ZARR_THREADING__MAX_WORKERS="3") == "3"


@pytest.mark.parametrize("threads", [1, 2])
def test_zarr_chunk_files_decode_in_the_threads_the_walk_may_use(threads: int, tmp_path: Path) -> None:
    code = open_store(threads, write_store(tmp_path / "image.ome.zarr")) + (
        "reader = source.open_scene(source.scenes()[0])\n"
        "reader.array[:]\n"
        "from bioiscc.sources.zarr_folder import _pools\n"
        "print(source.reader_name.split()[0], [pool._max_workers for pool in _pools.values()])"
    )
    assert python(code) == f"numcodecs {[threads] if threads > 1 else []}"


BLAS_PROBE = (
    "import os\n"
    "from click.testing import CliRunner\n"
    "from bioiscc.cli import main\n"
    "result = CliRunner().invoke(main, ['formats'])\n"
    "assert result.exit_code == 0, result.output\n"
    "import numpy\n"  # OpenBLAS starts its threads here
    "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))"
)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_commands_keep_openblas_to_one_thread() -> None:
    """bioiscc does no linear algebra; OpenBLAS's threads would only spin on the hash's cores."""
    environment = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE],
        capture_output=True,
        text=True,
        env={**environment, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert done.returncode == 0, done.stderr
    setting, threads = done.stdout.split()
    assert setting == "1"
    assert int(threads) == 1  # this thread only: no BLAS server threads
    # a setting of the user's own is kept
    assert python(BLAS_PROBE, OPENBLAS_NUM_THREADS="2").split()[0] == "2"
