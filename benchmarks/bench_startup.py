"""Start-up of `bioiscc hash` on a tiny CZI and a tiny ND2: wall time and peak RSS.

    python benchmarks/bench_startup.py                 # 5 runs of each command, medians
    python benchmarks/bench_startup.py --runs 9 --no-plugins

The tiny CZI is written with pylibCZIrw into a temporary directory (C=2, 64 x 64, uint16); the tiny
ND2 is the bundled resources/sample-data/nd2/example-zstack.nd2 (Z=11, 128 x 128, uint16). For each
file it runs, in fresh processes, subject and baselines alternating so that all see the same load:

- `python -c pass`, the floor of any Python command;
- `iscc-sum FILE`, the ISCC-SUM of the file's bytes (the raw hashing command);
- `bioiscc hash FILE`, the native path (aicspylibczi, nd2);
- unless --no-plugins, the bioio plugin path as `bioiscc hash` took it before the native sources
  (`BioioSource` with bioio-czi or bioio-nd2, through the same command line).

Each command runs under GNU time (`/usr/bin/time -f %M`), whose maximum resident set size is the
peak RSS; wall time is measured around it (GNU time's own %e has 10 ms steps). The table gives the
median of the runs (and the best wall time). Targets: `bioiscc hash` at most 0.3 s and 80 MB
(medians) for each file; the script exits 1 when one is missed. Not part of pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_ND2 = REPO / "resources" / "sample-data" / "nd2" / "example-zstack.nd2"
BIN = Path(sys.executable).parent
TARGET_SECONDS = 0.3
GNU_TIME = "/usr/bin/time"
TARGET_MB = 80.0

#: `bioiscc hash` with CZI and ND2 opened by the bioio plugins, as before sources.czi and sources.nd2
PLUGIN_HASH = (
    "import sys\n"
    "import bioiscc.sources as sources\n"
    "from bioiscc.sources.bioio_file import BioioSource\n"
    "def plugin_source(location, path):\n"
    "    return BioioSource(location, path, sources.bioio_plugin(path))\n"
    "sources.open_vendor_file = plugin_source\n"
    "from bioiscc.cli import main\n"
    "main(['hash', *sys.argv[1:]], prog_name='bioiscc')\n"
)


@dataclass
class Runs:
    label: str
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median_mb(self) -> float:
        return statistics.median(self.rss_mb)


def tool(name: str) -> list[str]:
    """A console script of this environment (the one that runs this script), else from PATH."""
    found = BIN / name
    if found.exists():
        return [str(found)]
    on_path = shutil.which(name)
    if on_path is None:
        raise SystemExit(f"{name} not found beside {sys.executable} nor on PATH")
    return [on_path]


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in its own process; it must succeed.

    The peak RSS is GNU time's %M: measured from this process, a child's maximum resident set
    would include this (larger) process's pages up to its exec, as vfork shares them.
    """
    with tempfile.NamedTemporaryFile(mode="r") as report, tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        result = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", report.name, *command], stdout=subprocess.DEVNULL, stderr=errors
        )
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {errors.read().decode()}")
        peak_kb = int(report.read().split()[-1])
    return seconds, peak_kb / 1024


def write_tiny_czi(path: Path) -> Path:
    """C=2, 64 x 64 uint16, one tile per plane (pylibCZIrw, as bioio-czi's tests write CZIs)."""
    import numpy as np
    from pylibCZIrw import czi as pyczi

    pixels = np.random.default_rng(42).integers(0, 4096, size=(2, 64, 64, 1), dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pyczi.create_czi(str(path), exist_ok=True) as czi:
            for channel in range(2):
                czi.write(data=pixels[channel], plane={"C": channel}, location=(0, 0), scene=0)
    return path


def commands(path: Path, plugins: bool) -> list[tuple[str, list[str]]]:
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("iscc-sum FILE", [*tool("iscc-sum"), str(path)]),
        ("bioiscc hash FILE", [*tool("bioiscc"), "hash", str(path)]),
    ]
    if plugins:
        rows.append(
            ("bioiscc hash FILE via bioio plugin (before)", [sys.executable, "-c", PLUGIN_HASH, str(path)])
        )
    return rows


def bench(path: Path, runs: int, plugins: bool) -> list[Runs]:
    listed = commands(path, plugins)
    results = [Runs(label) for label, _ in listed]
    for command in (c for _, c in listed):  # one unmeasured run each: page cache and .pyc files warm
        measure(command)
    for _ in range(runs):
        for result, (_, command) in zip(results, listed, strict=True):
            seconds, rss = measure(command)
            result.seconds.append(seconds)
            result.rss_mb.append(rss)
    return results


def table(rows: list[tuple[str, Runs]]) -> str:
    lines = [
        "| file | command | runs | median wall s | best wall s | median peak RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | `{row.label}` | {len(row.seconds)} | {row.median:.3f} | {row.best:.3f} "
            f"| {row.median_mb:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--no-plugins", action="store_true", help="Skip the bioio plugin path (about 2.5 s a run)."
    )
    args = parser.parse_args()
    if not Path(GNU_TIME).exists():
        raise SystemExit(f"{GNU_TIME} (GNU time) is needed for the peak RSS")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        tiny_czi = write_tiny_czi(Path(folder) / "tiny.czi")
        files = {
            f"tiny CZI (C2 64x64 u16, {tiny_czi.stat().st_size / 1000:.0f} kB)": tiny_czi,
            f"tiny ND2 ({TINY_ND2.name}, {TINY_ND2.stat().st_size / 1000:.0f} kB)": TINY_ND2,
        }
        rows = [
            (name, r) for name, path in files.items() for r in bench(path, args.runs, not args.no_plugins)
        ]
    load = os.getloadavg()[0]
    python = sys.version.split()[0]
    print(f"{args.runs} runs per command, Python {python}, 1-minute load average {load:.2f} at the end\n")
    print(table(rows))
    missed = [
        f"{name}: {r.median:.3f} s, {r.median_mb:.0f} MB"
        for name, r in rows
        if r.label == "bioiscc hash FILE" and (r.median > TARGET_SECONDS or r.median_mb > TARGET_MB)
    ]
    if missed:
        print(f"\ntarget missed (<= {TARGET_SECONDS} s, <= {TARGET_MB:.0f} MB): " + "; ".join(missed))
        sys.exit(1)
    print(f"\ntargets met: bioiscc hash <= {TARGET_SECONDS} s and <= {TARGET_MB:.0f} MB (medians)")


if __name__ == "__main__":
    main()
