"""Shared fixtures: the IMAGEWALK vectors (generated once per session) and the real sample files.

Sample files live outside the repository (many are GPL-licensed). They are found through
BIOISCC_SAMPLES (default: ../shared/samples beside the repository). Where they are absent, the
tests that need them are skipped with that reason, unless BIOISCC_REQUIRE_SAMPLES=1 (CI), which
turns their absence into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).resolve().parent / "vectors"


#: how the threaded hash gets its bytes (bioiscc.handoff): copied; handed as decoded (whole planes);
#: handed in small pieces only (planes converted or copied into new `bytes` of about 1000 bytes)
HANDOFF_MODES = ["copied", "handed", "handed-pieces"]


def use_handoff(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Set one of HANDOFF_MODES for the rest of a test."""
    from bioiscc import handoff

    monkeypatch.setenv("BIOISCC_HANDOFF", "0" if mode == "copied" else "1")
    if mode == "handed-pieces":
        monkeypatch.setattr(handoff, "HANDED_PIECE_BYTES", 1000)
        monkeypatch.setattr(handoff, "HANDED_PLANE_BYTES", 1000)


def samples_root() -> Path:
    return Path(os.environ.get("BIOISCC_SAMPLES", REPO.parent / "shared" / "samples")).resolve()


def require_samples() -> Path:
    """The samples folder, or skip (fail under BIOISCC_REQUIRE_SAMPLES=1) when it is absent."""
    root = samples_root()
    if not (root / "SOURCES.txt").exists():
        reason = f"sample files not found at {root} (set BIOISCC_SAMPLES)"
        if os.environ.get("BIOISCC_REQUIRE_SAMPLES") == "1":
            pytest.fail(reason + "; BIOISCC_REQUIRE_SAMPLES=1 requires them")
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def samples() -> Path:
    return require_samples()


@pytest.fixture(scope="session")
def vectors_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vector images, written by the spec's own generator."""
    out = tmp_path_factory.mktemp("vectors")
    subprocess.run([sys.executable, str(VECTORS / "make_vectors.py"), str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def expected() -> dict[str, list[dict[str, Any]]]:
    return json.loads((VECTORS / "expected.json").read_text())


def run_cli(*args: str, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed `bioiscc` command line in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "bioiscc", *args], capture_output=True, text=True, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(f"bioiscc {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
