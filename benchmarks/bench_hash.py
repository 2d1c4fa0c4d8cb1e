"""Hashing speed and memory of `bioiscc hash` against the raw hashing limit, `iscc-sum` (issues 6, 14).

One command; generates its own data under benchmarks/data/hash/ (gitignored), prints a Markdown
table and writes benchmarks/results.md:

    python benchmarks/bench_hash.py                       # every format case, median of 3 runs
    python benchmarks/bench_hash.py --cases czi,czi-zstd --repeat 5
    python benchmarks/bench_hash.py --small --output /tmp/r.md   # seconds: the checks, not the times

The image: uint16 pixels `numpy.random.default_rng(42).integers(0, 4096)`, C=2, Z=32, 2048x2048
(512 MiB; `--small`: C=2, Z=4, 256x256), written as

- `tiff`: an uncompressed OME-TIFF (tifffile), one plane per page;
- `tiled`: an OME-TIFF with zstd-compressed 512x512 tiles (tifffile);
- `zarr`: OME-Zarr NGFF 0.4 (zarr v2), chunks (1, 1, 8, 512, 512), zstd;
- `czi`: a CZI, one uncompressed subblock per plane (pylibCZIrw, ZEISS's writer);
- `czi-zstd`: the same CZI with zstd-compressed subblocks (pylibCZIrw, `zstd1`, HiLoByteUnpack);

and `nd2`, `lif`: no writer exists for them, so the largest real sample each of
../shared/samples/{nd2,lif} that bioiscc reads (start-up dominates: MB/s are informational).

Every case runs `bioiscc hash FILE` and `iscc-sum FILE` on the same file, and `iscc-sum` on the
uncompressed OME-TIFF (the raw hash of the same pixel bytes), each a whole command in a fresh
process, in turn, N times (median kept), so that all see the same machine load. The ratio against
both is reported. A target is met when the ratio against `iscc-sum` on the raw pixels is within it
(uncompressed 1.3x, compressed 1.4x: issue 14 measures against "iscc-sum on the raw file" of the
same pixels, "the raw hash"), peak RSS is within its bound and read amplification within 1.05. A
ratio over the target against `iscc-sum` on the file itself (a stricter reading, since a
compressed file is smaller than its pixels) is listed apart, not counted as a miss.

- **Peak RSS** is the command's maximum resident set size, measured from a small launcher process
  (a child started from this benchmark would count the benchmark's own pages).
- **Read amplification** is the bytes the command read (the kernel's `rchar`, read by the launcher
  from /proc/PID/io once the command has exited), less what the same command reads on the small
  version of the file (imports, metadata), over the bytes of the input. It is measured in one
  more run with `BIOISCC_MMAP=0`: `rchar` does not count the pages of a mapping, and with
  `BIOISCC_MMAP=1` in the environment bioiscc maps the compressed tiles of a TIFF (the same byte
  ranges it reads otherwise).
- **Codes**: every synthetic case must give the code of a straightforward walk (the (C, Z, Y, X)
  array, planes z outer and c inner, `astype(">u2")`, iscc_sum); the script exits 1 if one differs.

Optional cases: `workflow` (`snakemake --cores 2` vs `--cores 1` over 8 copies of the OME-TIFF) and
`isccbio` (iscc-bio 0.2.0 at /tmp/isccbio/bin/iscc-bio, one run, on the OME-TIFF and the OME-Zarr).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data" / "hash"
RESULTS = REPO / "benchmarks" / "results.md"
SAMPLES = Path(os.environ.get("BIOISCC_SAMPLES", REPO.parent / "shared" / "samples"))
BIN = Path(sys.executable).parent
ISCC_BIO = Path("/tmp/isccbio/bin/iscc-bio")

SHAPE = (2, 32, 2048, 2048)  # C, Z, Y, X
SMALL_SHAPE = (2, 4, 256, 256)
SEED = 42
MIB = 1024 * 1024
MB = 1_000_000
CZI_ZSTD = "zstd1:ExplicitLevel=1;PreProcess=HiLoByteUnpack"

#: case -> (label, compressed, peak RSS bound in MB)
SYNTHETIC: dict[str, tuple[str, bool, int]] = {
    "tiff": ("OME-TIFF, uncompressed", False, 256),
    "tiled": ("OME-TIFF, zstd 512x512 tiles", True, 512),
    "zarr": ("OME-Zarr 0.4, zstd chunks (1,1,8,512,512)", True, 512),
    "zarr3": ("OME-Zarr 0.5 (Zarr v3), zstd chunks (1,1,8,512,512)", True, 512),
    "zarr3-sharded": ("OME-Zarr 0.5, zstd chunks in shards (1,1,8,2048,2048)", True, 512),
    "czi": ("CZI, uncompressed (pylibCZIrw)", False, 256),
    "czi-zstd": ("CZI, zstd subblocks (pylibCZIrw)", True, 256),
}
SAMPLE_CASES = ("nd2", "lif")
DEFAULT_CASES = (*SYNTHETIC, *SAMPLE_CASES)
TARGET_RATIO = {False: 1.3, True: 1.4}
MAX_AMPLIFICATION = 1.05


@dataclass
class Run:
    """One whole command: wall seconds, peak RSS in MB, bytes read (rchar) and its output."""

    seconds: float
    cpu: float  # user + system seconds
    rss_mb: float
    read_bytes: int
    stdout: str
    load: float  # 1-minute load average right after the run


@dataclass
class Row:
    case: str
    label: str
    path: Path | None = None
    runs: list[Run] = field(default_factory=list)  # bioiscc hash FILE
    base_runs: list[Run] = field(default_factory=list)  # iscc-sum FILE
    raw_runs: list[Run] = field(default_factory=list)  # iscc-sum on the uncompressed OME-TIFF
    small_runs: list[Run] = field(default_factory=list)  # bioiscc hash on the small twin
    raw_small_runs: list[Run] = field(default_factory=list)  # iscc-sum on the small OME-TIFF
    amplification: float | None = None
    target: str = "informational"
    met: str = "-"
    note: str = ""
    misses: list[str] = field(default_factory=list)
    stricter: list[str] = field(default_factory=list)  # over the target against the file itself

    def ratio(self, baseline: list[Run]) -> float:
        return median(self.runs) / median(baseline)

    def per_byte_ratio(self) -> float | None:
        """Seconds per byte once start-up is taken away, against the raw hash's: what a file many
        times larger than the benchmark's approaches. Each side less its small twin's time."""
        if not (self.small_runs and self.raw_small_runs and self.raw_runs):
            return None
        ours = median(self.runs) - median(self.small_runs)
        raw = median(self.raw_runs) - median(self.raw_small_runs)
        return ours / raw if raw > 0 else None


def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


# --- data -------------------------------------------------------------------------------------


def pixels(shape: tuple[int, int, int, int]) -> Any:
    import numpy as np

    return np.random.default_rng(SEED).integers(0, 4096, size=shape, dtype=np.uint16)


def data_paths(folder: Path) -> dict[str, Path]:
    return {
        "tiff": folder / "u16_c2z32.ome.tif",
        "tiled": folder / "u16_c2z32_zstd_tiles.ome.tif",
        "zarr": folder / "u16_c2z32_zstd.ome.zarr",
        "zarr3": folder / "u16_c2z32_zstd_v3.ome.zarr",
        "zarr3-sharded": folder / "u16_c2z32_zstd_v3_sharded.ome.zarr",
        "czi": folder / "u16_c2z32.czi",
        "czi-zstd": folder / "u16_c2z32_zstd.czi",
    }


def make_data(folder: Path, shape: tuple[int, int, int, int]) -> dict[str, Path]:
    """Every encoding of the same pixels, each written once (delete the folder to redo)."""
    paths = data_paths(folder)
    missing = {name: path for name, path in paths.items() if not path.exists()}
    if not missing:
        return paths
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    data = pixels(shape)
    print(f"writing {', '.join(missing)} to {folder}", file=sys.stderr)
    writers: dict[str, Callable[[Path], object]] = {
        "tiff": lambda path: tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZYX"}),
        "tiled": lambda path: tifffile.imwrite(
            path, data, ome=True, metadata={"axes": "CZYX"}, tile=(512, 512), compression="zstd"
        ),
        "zarr": lambda path: write_ome_zarr(path, data),
        "zarr3": lambda path: write_ome_zarr(path, data, zarr_format=3),
        "zarr3-sharded": lambda path: write_ome_zarr(path, data, zarr_format=3, sharded=True),
        "czi": lambda path: write_czi(path, data, None),
        "czi-zstd": lambda path: write_czi(path, data, CZI_ZSTD),
    }
    for name, path in missing.items():
        tmp = path.with_name("tmp-" + path.name)
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        writers[name](tmp)
        tmp.rename(path)
    return paths


def write_ome_zarr(path: Path, data: Any, zarr_format: int = 2, sharded: bool = False) -> None:
    """One level, axes t c z y x, chunks (1, 1, 8, 512, 512), zstd level 1: NGFF 0.4 on Zarr v2, or
    NGFF 0.5 on Zarr v3, its chunks alone or in shards of 8 planes of a channel."""
    import numcodecs
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    chunks = (1, 1, min(8, data.shape[1]), min(512, data.shape[2]), min(512, data.shape[3]))
    if zarr_format == 2:
        compressor: Any = numcodecs.Zstd(level=1)
        layout: dict[str, Any] = {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
    else:
        compressor = zarr.codecs.ZstdCodec(level=1)
        layout = {"shards": (*chunks[:3], *data.shape[2:])} if sharded else {}
    array = root.create_array(
        "0", shape=(1, *data.shape), chunks=chunks, dtype="uint16", compressors=compressor, **layout
    )
    array[0] = data
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1.0] * 5}]
    multiscale: dict[str, Any] = {
        "name": "bench",
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": scale}],
    }
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}


def write_czi(path: Path, data: Any, compression: str | None) -> None:
    """One scene, one subblock per (C, Z) plane, as pylibCZIrw writes a stack (no tiling)."""
    from pylibCZIrw import czi as pyczi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pyczi.create_czi(str(path), exist_ok=True, compression_options=compression) as czi:
            for z in range(data.shape[1]):
                for c in range(data.shape[0]):
                    czi.write(data=data[c, z][:, :, None], plane={"T": 0, "Z": z, "C": c}, location=(0, 0))


def reference_code(data: Any) -> tuple[str, str]:
    """ISCC-SUM and datahash of planes z outer, c inner (T=1), each big-endian, of a (C, Z, Y, X) array."""
    from iscc_sum import IsccSumProcessor

    processor = IsccSumProcessor()
    for z in range(data.shape[1]):
        for c in range(data.shape[0]):
            processor.update(data[c, z].astype(">u2").tobytes())
    result = processor.result(wide=True, add_units=True)
    return result.iscc, result.datahash


def largest_sample(folder: str) -> Path | None:
    """The largest input of a sample folder that bioiscc hashes (a few samples are known failures)."""
    root = SAMPLES / folder
    if not root.is_dir():
        return None
    for path in sorted(
        (p for p in root.iterdir() if not p.name.startswith(".")), key=input_size, reverse=True
    ):
        done = subprocess.run(bioiscc_hash(path), capture_output=True)
        if done.returncode == 0:
            return path
    return None


def input_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- running commands -------------------------------------------------------------------------

#: runs argv[2:] and writes "<peak RSS KiB> <rchar>" to the file argv[1]: a small process to start
#: it from (a child counts the pages of the process it was started from before its exec). The
#: command's /proc/PID/io is read while it is a zombie (waitid with WNOWAIT), before it is reaped.
MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], dict(os.environ))
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
with open(f"/proc/{pid}/io") as io:
    rchar = dict(line.split(": ") for line in io.read().splitlines())["rchar"]
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(f"{usage.ru_maxrss} {rchar} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run a whole command from the launcher: wall time, peak RSS, bytes read, stdout."""
    program = shutil.which(cmd[0]) or cmd[0]
    with (
        tempfile.NamedTemporaryFile() as measured,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        start = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-c", MEASURE, measured.name, program, *cmd[1:]],
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
        )
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        figures = Path(measured.name).read_text().split()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {process.returncode}: {stderr[-2000:]}")
    rss_kb, rchar, cpu = (int(figures[0]), int(figures[1]), float(figures[2])) if figures else (0, 0, 0.0)
    return Run(seconds, cpu, rss_kb / 1024, rchar, stdout, os.getloadavg()[0])


def bioiscc_hash(source: Path) -> list[str]:
    return [str(BIN / "bioiscc"), "hash", str(source)]


def iscc_sum(source: Path) -> list[str]:
    return [str(BIN / "iscc-sum"), *(["--tree"] if source.is_dir() else []), str(source)]


def codes_of(stdout: str) -> list[tuple[str, str]]:
    """(iscc_code, datahash) of each scene record of `bioiscc hash` output."""
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [(r["iscc_code"], r["datahash"]) for r in records]


# --- the format cases -------------------------------------------------------------------------


def measure_rows(rows: list[Row], raw: Path, repeat: int, twins: dict[str, Path] | None) -> None:
    """Each round runs every case's subject and baseline and the raw baseline, in turn; with
    `twins`, also both on the small twins (for the per-byte ratio)."""
    for _ in range(repeat):
        for row in rows:
            assert row.path is not None
            row.runs.append(run(bioiscc_hash(row.path)))
            row.base_runs.append(run(iscc_sum(row.path)))
            if row.case in SYNTHETIC:
                row.raw_runs.append(run(iscc_sum(raw)))
                if twins is not None:
                    row.small_runs.append(run(bioiscc_hash(twins[row.case])))
                    row.raw_small_runs.append(run(iscc_sum(twins["tiff"])))


def judge(row: Row, compressed: bool, max_mb: int, reference: tuple[str, str] | None, small: bool) -> None:
    """Targets (not for --small, where start-up is all there is to time) and the code check."""
    if reference is not None:
        got = {c for r in row.runs for c in codes_of(r.stdout)}
        if got != {reference}:
            row.misses.append(f"CODE DIFFERS from the per-plane reference: {sorted(got)} vs {reference}")
        row.note = "code = per-plane reference" if not row.misses else row.misses[0]
    if small:
        row.target, row.met = "(--small: not judged)", "-" if not row.misses else "no"
        return
    limit = TARGET_RATIO[compressed]
    row.target = f"<= {limit}x, <= {max_mb} MB, ampl. <= {MAX_AMPLIFICATION}"
    ratio = row.ratio(row.raw_runs)
    if ratio > limit:
        row.misses.append(
            f"{ratio:.2f}x of iscc-sum on the raw pixels, target {limit}x ({ratio / limit - 1:.0%} over)"
        )
    own = row.ratio(row.base_runs)
    if own > limit:
        row.stricter.append(
            f"{own:.2f}x of iscc-sum on the file itself ({own / limit - 1:.0%} over {limit}x)"
        )
    rss = max(r.rss_mb for r in row.runs)
    if rss > max_mb:
        row.misses.append(f"peak RSS {rss:.0f} MB, target <= {max_mb} MB")
    if row.amplification is not None and row.amplification > MAX_AMPLIFICATION:
        row.misses.append(f"read amplification {row.amplification:.3f}, target <= {MAX_AMPLIFICATION}")
    row.met = "no" if row.misses else "yes"


def read_amplification(row: Row, small_path: Path | None) -> float | None:
    """(bytes read - bytes read on the small twin) / input bytes; the small twin's reads are the
    imports and metadata, which do not grow with the pixels.

    Measured in one more run of each, with `BIOISCC_MMAP=0`: `rchar` counts what `read` calls
    return, not the pages of a mapping, and `BIOISCC_MMAP=1` maps compressed TIFF tiles (the same
    byte ranges it would read)."""
    if row.path is None or small_path is None or not row.runs:
        return None
    env = {**os.environ, "BIOISCC_MMAP": "0"}
    overhead = run(bioiscc_hash(small_path), env).read_bytes - input_size(small_path)
    read = run(bioiscc_hash(row.path), env).read_bytes
    return (read - overhead) / input_size(row.path)


def case_formats(cases: list[str], repeat: int, small: bool, data: Path) -> tuple[list[Row], bool]:
    """The synthetic cases and the ND2/LIF samples; whether every code equals its reference."""
    shape = SMALL_SHAPE if small else SHAPE
    paths = make_data(data / ("small" if small else "full"), shape)
    twins = make_data(data / "small", SMALL_SHAPE) if not small else None
    reference = reference_code(pixels(shape))
    rows = [Row(name, SYNTHETIC[name][0], paths[name]) for name in cases if name in SYNTHETIC]
    for name in cases:
        if name in SAMPLE_CASES:
            sample = largest_sample(name)
            if sample is None:
                rows.append(
                    Row(name, f"{name.upper()} sample", note=f"no readable sample in {SAMPLES / name}")
                )
                continue
            size = input_size(sample) / MIB
            rows.append(Row(name, f"{name.upper()}, largest sample: {sample.name} ({size:.1f} MiB)", sample))
    measure_rows([row for row in rows if row.path is not None], paths["tiff"], repeat, twins)
    for row in rows:
        if row.case in SYNTHETIC:
            _, compressed, max_mb = SYNTHETIC[row.case]
            row.amplification = read_amplification(row, twins[row.case] if twins else None)
            judge(row, compressed, max_mb, reference, small)
        elif row.runs:
            size = input_size(row.path) / MB if row.path else 0
            ours, theirs = size / median(row.runs), size / median(row.base_runs)
            row.note = (
                f"{ours:.1f} MB/s vs iscc-sum {theirs:.1f} MB/s (file bytes per second; start-up dominates)"
            )
    identical = not any("CODE DIFFERS" in miss for row in rows for miss in row.misses)
    return rows, identical


# --- optional cases ---------------------------------------------------------------------------


def case_workflow(tiff: Path, reference: tuple[str, str], repeat: int) -> list[Row]:
    """`snakemake --cores 2` vs `--cores 1` over 8 copies of the OME-TIFF (ratio: 2 cores / 1)."""
    snakefile = REPO / "workflow" / "Snakefile"
    row = Row("workflow", "Snakemake, 8 x OME-TIFF: --cores 2 vs --cores 1", target=">= 1.7x speed-up")
    inputs = tiff.parent.parent / "workflow-inputs"
    if not inputs.exists():
        inputs.mkdir(parents=True)
        for i in range(8):
            shutil.copyfile(tiff, inputs / f"copy{i}.ome.tif")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for _ in range(repeat):
        for cores, runs in (("2", row.runs), ("1", row.base_runs)):
            with tempfile.TemporaryDirectory(dir=inputs.parent) as work:
                (Path(work) / "config").mkdir()
                (Path(work) / "config" / "config.yaml").write_text(f"input_dir: {inputs}\n")
                cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)]
                cmd += ["--directory", work, "--cores", cores, "--config", f"input_dir={inputs}"]
                runs.append(run(cmd, env=env))
                found = [codes_of(p.read_text()) for p in Path(work).glob("results/**/scenes.jsonl")]
                if found != [[reference]] * 8:
                    row.misses.append(f"workflow codes differ from the reference: {found}")
    speedup = 1 / row.ratio(row.base_runs)
    if speedup < 1.7:
        row.misses.append(f"speed-up {speedup:.2f}x from 1 to 2 cores, target 1.7x")
    row.met = "no" if row.misses else "yes"
    row.note = f"speed-up {speedup:.2f}x"
    return [row]


def case_isccbio(paths: dict[str, Path]) -> list[Row]:
    """iscc-bio 0.2.0 `biocode`, once (it is slow), against `bioiscc hash`, on the OME-TIFF and Zarr."""
    if not ISCC_BIO.exists():
        return [Row("isccbio", "iscc-bio 0.2.0", note=f"{ISCC_BIO} not installed")]
    rows = []
    for name in ("tiff", "zarr"):
        row = Row("isccbio", f"iscc-bio biocode vs bioiscc hash, {name}", paths[name])
        row.base_runs = [run([str(ISCC_BIO), "biocode", str(paths[name])])]
        row.runs = [run(bioiscc_hash(paths[name]))]
        theirs = json.loads(row.base_runs[0].stdout[row.base_runs[0].stdout.index("{") :])
        ours = json.loads(row.runs[0].stdout)["iscc_code"]
        same = theirs["parts"][0]["iscc_code"] == ours if theirs.get("parts") else None
        row.note = f"{1 / row.ratio(row.base_runs):.1f}x faster; same scene code: {same}"
        rows.append(row)
    return rows


# --- report -----------------------------------------------------------------------------------


def seconds(runs: list[Run]) -> str:
    return f"{median(runs):.2f} ({min(r.seconds for r in runs):.2f})" if runs else "-"


def cpu_seconds(runs: list[Run]) -> float:
    return statistics.median(r.cpu for r in runs)


def table(rows: list[Row]) -> str:
    head = (
        "| case | bioiscc hash s, median (best) | iscc-sum on the file s | ratio | iscc-sum on the raw "
        "pixels s | ratio | per byte | CPU s (iscc-sum on the file) | peak RSS MB (iscc-sum) | read ampl. "
        "| target | met | note |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n"
    )
    lines = []
    for r in rows:
        if r.runs and r.base_runs:
            ratio = f"{r.ratio(r.base_runs):.2f}x"
            raw = (seconds(r.raw_runs), f"{r.ratio(r.raw_runs):.2f}x") if r.raw_runs else ("-", "-")
            rss = f"{max(x.rss_mb for x in r.runs):.0f} ({max(x.rss_mb for x in r.base_runs):.0f})"
            cpu = f"{cpu_seconds(r.runs):.2f} ({cpu_seconds(r.base_runs):.2f})"
            per_byte = r.per_byte_ratio()
            marginal = f"{per_byte:.2f}x" if per_byte is not None else "n/a"
            figures = [seconds(r.runs), seconds(r.base_runs), ratio, *raw, marginal, cpu, rss]
        else:
            figures = ["-"] * 8
        amplification = f"{r.amplification:.3f}" if r.amplification is not None else "n/a"
        cells = [f"{r.case}: {r.label}", *figures, amplification, r.target, r.met, r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    packages = ("numpy", "tifffile", "zarr", "aicspylibczi", "pylibCZIrw", "nd2", "liffile", "iscc-sum")
    versions = ", ".join(f"{name} {package_version(name)}" for name in packages)
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {versions}"
    )


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def report(rows: list[Row], command: str, repeat: int, uptimes: tuple[str, str]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    loads = [r.load for row in rows for r in row.runs + row.base_runs + row.raw_runs]
    mean_load = sum(loads) / len(loads) if loads else 0.0
    missed = [f"- {row.case}: {miss}" for row in rows for miss in row.misses]
    stricter = [f"- {row.case}: {over}" for row in rows for over in row.stricter]
    return (
        "# Hashing benchmark results\n\n"
        f"Written by `{command}` on {when}.\n\n"
        f"Machine: {machine()}.\n\n"
        f"Load: `{uptimes[0]}` at the start, `{uptimes[1]}` at the end, {mean_load:.2f} on average "
        "over the runs (1-minute load average; 2 means both cores busy). The machine is shared with "
        "other work, so wall times are noisy.\n\n"
        f"Each command ran {repeat} time(s) in a fresh process, every case's commands in turn; times are "
        "wall seconds, median (best); ratios are median over median; CPU is user + system seconds "
        "(median), which depends less on the load than wall time. Peak RSS is the largest seen, "
        "measured from a launcher process. Read amplification: bytes read by `bioiscc hash` less those "
        "read on a small file of the same format, over the input's bytes (one more run each, with "
        "`BIOISCC_MMAP=0`, since the bytes of a mapping are not counted as read). Per byte "
        "(informational): "
        "`bioiscc hash` less its time on a small file of the same format (C2 Z4 256x256), over "
        "`iscc-sum` on the raw pixels less its time on their small OME-TIFF: start-up taken away, the "
        "ratio a file many times larger than this one approaches.\n\n"
        + table(rows)
        + "\n## Targets missed\n\n"
        + ("\n".join(missed) if missed else "None.")
        + "\n\n## Over the target against iscc-sum on the file itself (stricter; not a miss)\n\n"
        + ("\n".join(stricter) if stricter else "None.")
        + "\n\nWhat limits them: see the hashing section of benchmarks/README.md.\n"
    )


def compile_bytecode() -> None:
    """Compile bioiscc's modules once, as `pip install` does for an installed package. An editable
    install compiles them at import; where PYTHONDONTWRITEBYTECODE is set (this VM sets it) a module
    changed since its `.pyc` was written is compiled again in every run: 0.05 s of wall time and
    0.15 s of CPU per command, measured on the small zstd OME-Zarr."""
    import bioiscc

    package = Path(bioiscc.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (the median is kept)")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated case names")
    parser.add_argument("--small", action="store_true", help="a 1 MiB image, one run: checks, not times")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    parser.add_argument("--data", type=Path, default=DATA, help="folder for the generated images")
    args = parser.parse_args()
    repeat = 1 if args.small else args.repeat
    cases = args.cases.split(",")
    unknown = set(cases) - set(DEFAULT_CASES) - {"workflow", "isccbio"}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    compile_bytecode()
    start = uptime()
    rows, identical = case_formats([c for c in cases if c in DEFAULT_CASES], repeat, args.small, args.data)
    paths = data_paths(args.data / ("small" if args.small else "full"))
    if "workflow" in cases:
        rows += case_workflow(paths["tiff"], reference_code(pixels(SMALL_SHAPE if args.small else SHAPE)), 2)
    if "isccbio" in cases:
        rows += case_isccbio(paths)
    command = "python benchmarks/bench_hash.py " + " ".join(sys.argv[1:])
    text = report(rows, command.strip(), repeat, (start, uptime()))
    print(text)
    args.output.write_text(text)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
