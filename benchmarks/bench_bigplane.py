"""Planes larger than memory, and compressed TIFF tiles decoded off the hashing thread (issue 14).

Two cases, each `bioiscc hash` against `iscc-sum` on a file, whole commands started from a small
launcher that reports the command's own peak RSS (as benchmarks/workflow_scale.py does):

- bigplane: one RGB plane of SIDE x SIDE uint8 pixels (default 40,000: 4.8 GB of pixels) in a tiled
  TIFF (512 x 512 tiles, zstd or JPEG), written tile by tile (the image is never in memory).
  Target: peak RSS <= 512 MB (one process: the hash runs in threads). `iscc-sum`
  runs on the same (compressed) file. With --check the code is compared with an independent read
  (tifffile's zarr view, one sample at a time, in row bands).
- tiles: the pixels of benchmarks/bench_hash.py (uint16, C=2, Z=32, 2048 x 2048, 512 MiB) as an
  OME-TIFF with zstd 512 x 512 tiles, against `iscc-sum` on the uncompressed OME-TIFF of the same
  pixels. Target: <= 1.4x, read amplification 1.00 (BIOISCC_STATS=1).

    python benchmarks/bench_bigplane.py                          # both cases, default sizes
    python benchmarks/bench_bigplane.py --cases bigplane --side 20000 --compression jpeg --check
    python benchmarks/bench_bigplane.py write PATH --side 8000   # only write a big-plane TIFF

Data goes to benchmarks/data/bigplane/ (gitignored; delete it to regenerate). Not part of pytest
(tests/test_bigplane.py runs an 8,000 x 8,000 plane).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data" / "bigplane"
TILE = 512
MB = 1_000_000

#: runs argv[2:] and writes its peak RSS (KiB) to the file argv[1]: a small process to start it
#: from, as a child counts the pages of the process it was started from before its exec
MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], dict(os.environ))
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


# --- data ---------------------------------------------------------------------------------------


def rgb_tiles(side: int, tile: int = TILE) -> Iterator[Any]:
    """The tiles of a SIDE x SIDE RGB image, row of tiles by row of tiles: a pattern that differs
    per tile and per sample (compressible, not trivially)."""
    import numpy as np

    yy, xx = np.mgrid[0:tile, 0:tile]
    base = np.stack([(yy // 7 + xx // 5), (yy * 3 + xx) // 11, (xx * xx + yy) // 13], axis=-1)
    base = base.astype(np.uint8)
    for row in range(0, side, tile):
        for col in range(0, side, tile):
            yield base + np.uint8((row // tile * 31 + col // tile * 17) % 256)


def write_bigplane(path: Path, side: int, compression: str) -> None:
    """A tiled RGB TIFF written tile by tile (tifffile takes an iterator of tiles)."""
    import numpy as np
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    tifffile.imwrite(
        partial,
        rgb_tiles(side),
        shape=(side, side, 3),
        dtype=np.uint8,
        tile=(TILE, TILE),
        compression=compression,
        photometric="rgb",
        bigtiff=side * side * 3 > 2**31,
    )
    partial.rename(path)


def write_tiles_case(plain: Path, tiled: Path) -> None:
    """bench_hash.py's pixels: uncompressed, and in zstd 512 x 512 tiles."""
    import numpy as np
    import tifffile

    data = np.random.default_rng(42).integers(0, 4096, size=(2, 32, 2048, 2048), dtype=np.uint16)
    plain.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(plain, data, ome=True, metadata={"axes": "CZYX"})
    tifffile.imwrite(tiled, data, ome=True, metadata={"axes": "CZYX"}, tile=(512, 512), compression="zstd")


def reference_bigplane(path: Path) -> str:
    """The scene code by an independent read: each sample in turn, in bands of tile rows."""
    import numpy as np
    import tifffile
    import zarr
    from iscc_sum import IsccSumProcessor

    processor = IsccSumProcessor()
    with tifffile.TiffFile(path) as tiff:
        array = zarr.open_array(tiff.series[0].aszarr(level=0), mode="r")
        height = array.shape[0]
        for sample in range(array.shape[2]):
            for y in range(0, height, 8 * TILE):
                processor.update(np.ascontiguousarray(array[y : y + 8 * TILE, :, sample]).tobytes())
    return str(processor.result(wide=True, add_units=True).iscc)


# --- running ------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    cpu: float
    rss_mb: float
    stdout: str
    stderr: str


def run(command: list[str], env: dict[str, str] | None = None) -> Run:
    """A whole command from the launcher: wall seconds, CPU seconds of the command, its peak RSS."""
    env = dict(env or os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    program = shutil.which(command[0], path=env["PATH"]) or command[0]
    with (
        tempfile.NamedTemporaryFile() as peak,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        before = os.times()
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, peak.name, program, *command[1:]], stdout=out, stderr=err, env=env
        )
        seconds = time.perf_counter() - start
        after = os.times()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        rss_kib = int(Path(peak.name).read_text() or 0)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Run(seconds, cpu, rss_kib * 1024 / MB, stdout, stderr)


def alternate(subject: list[str], baseline: list[str], repeat: int) -> tuple[list[Run], list[Run]]:
    """Subject and baseline in turn, so that both see the same machine load."""
    env = {**os.environ, "BIOISCC_STATS": "1"}
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(run(subject, env))
        theirs.append(run(baseline))
    return ours, theirs


def amplification(runs: list[Run]) -> str:
    found = re.search(r"read_amplification=([0-9.]+)", runs[0].stderr)
    return found.group(1) if found else "n/a"


def code_of(stdout: str) -> str:
    (record,) = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return str(record["iscc_code"])


def row(case: str, ours: list[Run], theirs: list[Run], target: str, met: bool, note: str) -> str:
    best, base = min(ours, key=lambda r: r.seconds), min(theirs, key=lambda r: r.seconds)
    median = statistics.median(r.seconds for r in ours)
    return (
        f"| {case} | {best.seconds:.2f} ({median:.2f}) | {best.cpu:.2f} | {base.seconds:.2f} "
        f"| {best.seconds / base.seconds:.2f}x | {max(r.rss_mb for r in ours):.0f} "
        f"| {amplification(ours)} "
        f"| {target} | {'yes' if met else 'no'} | {note} |"
    )


def case_bigplane(side: int, compression: str, repeat: int, check: bool) -> str:
    path = DATA / f"rgb_{side}_{compression}.tif"
    if not path.exists():
        print(f"writing {path} ...", file=sys.stderr)
        started = time.perf_counter()
        write_bigplane(path, side, compression)
        print(f"  {time.perf_counter() - started:.0f} s, {path.stat().st_size / MB:.0f} MB", file=sys.stderr)
    ours, theirs = alternate(["bioiscc", "hash", str(path)], ["iscc-sum", str(path)], repeat)
    codes = {code_of(r.stdout) for r in ours}
    note = f"{side}x{side} RGB u8 ({side * side * 3 / MB:,.0f} MB of pixels), {compression}; file "
    note += f"{path.stat().st_size / MB:,.0f} MB; iscc-sum on the same file"
    met = len(codes) == 1 and max(r.rss_mb for r in ours) <= 512
    if check:
        same = codes == {reference_bigplane(path)}
        note += "; code = independent read" if same else "; CODE DIFFERS from an independent read"
        met = met and same
    return row(f"big plane, {compression}", ours, theirs, "peak RSS <= 512 MB", met, note)


def case_tiles(repeat: int) -> str:
    plain, tiled = DATA / "u16_c2z32.ome.tif", DATA / "u16_c2z32_zstd_tiles.ome.tif"
    if not (plain.exists() and tiled.exists()):
        write_tiles_case(plain, tiled)
    ours, theirs = alternate(["bioiscc", "hash", str(tiled)], ["iscc-sum", str(plain)], repeat)
    ratio = min(r.seconds for r in ours) / min(r.seconds for r in theirs)
    met = ratio <= 1.4 and amplification(ours) == "1.000"
    note = "C2 Z32 2048x2048 u16 (512 MiB), zstd 512x512 tiles; iscc-sum on the uncompressed OME-TIFF"
    return row("zstd tiles", ours, theirs, "<= 1.4x, ampl. 1.00", met, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("write", nargs="?", help="only write a big-plane TIFF to PATH")
    parser.add_argument("path", nargs="?", type=Path)
    parser.add_argument("--cases", default="bigplane,tiles")
    parser.add_argument("--side", type=int, default=40_000)
    parser.add_argument("--compression", default="zstd", choices=["zstd", "jpeg", "deflate", "lzw"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="compare the big plane's code with a reference")
    args = parser.parse_args()
    if args.write:
        if args.write != "write" or args.path is None:
            parser.error("usage: bench_bigplane.py write PATH [--side N] [--compression C]")
        write_bigplane(args.path, args.side, args.compression)
        return
    cases = set(args.cases.split(","))
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start")
    print(
        "| case | bioiscc s, best (median) | bioiscc CPU s | iscc-sum s, best | ratio | peak RSS MB "
        "| read ampl. | target | met | note |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    if "tiles" in cases:
        print(case_tiles(args.repeat), flush=True)
    if "bigplane" in cases:
        print(case_bigplane(args.side, args.compression, args.repeat, args.check), flush=True)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
