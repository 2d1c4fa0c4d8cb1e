"""Benchmark: `bioiscc imagecode` against `bioiscc hash`, and views of a whole-slide-sized plane.

    python benchmarks/bench_imagecode.py [--runs 3] [--data benchmarks/data] [--large]

Targets (docs/views.md, issue "Views, ISCC-IMAGE and ISCC-MIXED"): on a 512 MiB uint16 OME-TIFF
(C=2, Z=32, 2048 x 2048, pixels `numpy.random.default_rng(42).integers(0, 4096)`), `imagecode` takes at
most 2x the time of `hash`, with a peak RSS under 400 MB. With `--large`, `extract-views` of one
50,000 x 50,000 uint16 plane (an OME-Zarr of 1024 x 1024 chunks, most of them never written) shows
that such a plane is reduced band by band, its peak RSS far below the plane's 4.7 GiB.

Each command runs in a fresh process, hash and imagecode alternating, after one read of the file
to warm the page cache; the table shows the best and the median wall time and the largest peak RSS
(from wait4). The machine may be shared: read the median with its spread in mind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPE = (2, 32, 2048, 2048)  # C, Z, Y, X
FILE_NAME = "views_u16_c2z32.ome.tif"
LARGE_NAME = "views_plane_50k.ome.zarr"
LARGE_SIDE = 50_000
LARGE_CHUNK = 1024
TIME_RATIO_TARGET = 2.0
RSS_TARGET_MB = 400


@dataclass
class Runs:
    """Wall times (s) and peak RSS (MB) of the runs of one command."""

    label: str
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak(self) -> float:
        return max(self.rss_mb)


def bioiscc(*args: str) -> list[str]:
    return [sys.executable, "-m", "bioiscc", *args]


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command run in its own process; it must succeed."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as sink, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=sink, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {errors.read().decode()}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def make_stack(path: Path) -> None:
    """The benchmark image: 512 MiB of uint16, C=2, Z=32, 2048 x 2048, seed 42."""
    import numpy as np
    import tifffile

    pixels = np.random.default_rng(42).integers(0, 4096, size=SHAPE, dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pixels, metadata={"axes": "CZYX"})


def make_large_plane(path: Path) -> None:
    """A 50,000 x 50,000 uint16 NGFF 0.4 image; only the diagonal chunks are stored (a gradient)."""
    import numpy as np
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = root.create_array(
        "0", shape=(LARGE_SIDE, LARGE_SIDE), dtype=np.uint16, chunks=(LARGE_CHUNK, LARGE_CHUNK), fill_value=0
    )
    ramp = np.add.outer(np.arange(LARGE_CHUNK), np.arange(LARGE_CHUNK)).astype(np.uint16)
    for start in range(0, LARGE_SIDE, LARGE_CHUNK):
        stop = min(LARGE_SIDE, start + LARGE_CHUNK)
        array[start:stop, start:stop] = ramp[: stop - start, : stop - start] + start // LARGE_CHUNK
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    transform = [{"type": "scale", "scale": [1.0, 1.0]}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transform}]}
    ]


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(64 * 1024 * 1024):
            pass


def compare(path: Path, runs: int) -> tuple[Runs, Runs]:
    hashed, coded = Runs("hash"), Runs("imagecode")
    for _ in range(runs):
        for result, command in (
            (hashed, bioiscc("hash", str(path))),
            (coded, bioiscc("imagecode", str(path))),
        ):
            seconds, rss = measure(command)
            result.seconds.append(seconds)
            result.rss_mb.append(rss)
    return hashed, coded


def table(rows: list[Runs]) -> str:
    lines = [
        "| command | runs | best s | median s | max peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| `{row.label}` | {len(row.seconds)} | {row.best:.2f} | {row.median:.2f} | {row.peak:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--large", action="store_true", help="also the 50,000 x 50,000 plane")
    options = parser.parse_args()

    stack = options.data / FILE_NAME
    if not stack.exists():
        print(f"writing {stack} …", file=sys.stderr)
        make_stack(stack)
    warm(stack)
    hashed, coded = compare(stack, options.runs)
    rows = [hashed, coded]
    ratio_median, ratio_best = coded.median / hashed.median, coded.best / hashed.best
    print(f"imagecode vs hash on {stack.name} (512 MiB uint16, C=2, Z=32, 2048 x 2048)\n")
    if options.large:
        plane = options.data / LARGE_NAME
        if not plane.exists():
            print(f"writing {plane} …", file=sys.stderr)
            make_large_plane(plane)
        large = Runs("extract-views (50,000 x 50,000 uint16 plane)")
        with tempfile.TemporaryDirectory() as out:
            seconds, rss = measure(bioiscc("extract-views", str(plane), "-o", out))
        large.seconds.append(seconds)
        large.rss_mb.append(rss)
        rows.append(large)
    print(table(rows))
    print()
    print(f"time ratio imagecode / hash: median {ratio_median:.2f}, best {ratio_best:.2f} (target <= 2)")
    print(f"imagecode peak RSS: {coded.peak:.0f} MB (target < {RSS_TARGET_MB})")
    met = ratio_median <= TIME_RATIO_TARGET and coded.peak < RSS_TARGET_MB
    print("targets met" if met else "TARGETS MISSED")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
