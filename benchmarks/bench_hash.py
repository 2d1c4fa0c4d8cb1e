"""Hashing speed and memory of `bioiscc hash` against the raw hashing limit (issue 6).

One command; generates its own data under benchmarks/data/hash/ (gitignored), prints a Markdown
table and writes benchmarks/results.md:

    python benchmarks/bench_hash.py                    # cases 1-5, best of 5 runs each
    python benchmarks/bench_hash.py --repeat 3 --cases 1,2,3 --isccbio

The image: uint16 pixels `numpy.random.default_rng(42).integers(0, 4096)`, C=2, Z=32, 2048x2048
(512 MiB). Every case runs whole commands against a baseline in the same invocation, alternating
subject and baseline runs so that both see the same machine load, and keeps the fastest of each:

1. that image as an uncompressed OME-TIFF: `bioiscc hash` vs `iscc-sum` on the same file;
2. the same pixels as OME-Zarr (NGFF 0.4, zarr v2), chunks (1, 1, 8, 512, 512), zstd: `bioiscc hash`
   vs `iscc-sum` on the case-1 file (the same pixel bytes);
3. the same pixels as an OME-TIFF with zstd-compressed 512x512 tiles: likewise;
4. the largest sample of each format in ../shared/samples (informational: start-up dominates);
5. `snakemake --cores 2` vs `--cores 1` over 8 copies of the case-1 file (when workflow/Snakefile
   exists and runs);
6. with --isccbio, when /tmp/isccbio/bin/iscc-bio exists: iscc-bio 0.2.0 `biocode` on cases 1 and 2
   (slow, one run each) against `bioiscc hash`.

Peak memory is the maximum resident set size of the command as GNU time reports it (for Snakemake,
the largest process of its tree). Read amplification is bytes decoded / bytes hashed, as `bioiscc hash`
reports with BIOISCC_STATS=1. Every code is checked against a straightforward per-plane walk
(tifffile or zarr reading the whole array, numpy big-endian bytes, iscc_sum). Not part of pytest.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data" / "hash"
RESULTS = REPO / "benchmarks" / "results.md"
SAMPLES = Path(os.environ.get("BIOISCC_SAMPLES", REPO.parent / "shared" / "samples"))
BIN = Path(sys.executable).parent
ISCC_BIO = Path("/tmp/isccbio/bin/iscc-bio")
TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else ""  # GNU time, for the peak RSS

SHAPE = (2, 32, 2048, 2048)  # C, Z, Y, X
SEED = 42
MIB = 1024 * 1024


@dataclass
class Run:
    """One whole command: wall seconds, peak RSS in MB, and what BIOISCC_STATS printed."""

    seconds: float
    rss_mb: float
    stdout: str
    decoded: int = 0
    hashed: int = 0
    load: float = 0.0  # 1-minute load average right after the run


@dataclass
class Row:
    case: str
    subject: str
    baseline: str
    runs: list[Run] = field(default_factory=list)
    base_runs: list[Run] = field(default_factory=list)
    target: str = ""
    met: str = ""
    note: str = ""
    misses: list[str] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.seconds)

    @property
    def base_best(self) -> Run:
        return min(self.base_runs, key=lambda r: r.seconds)

    @property
    def ratio(self) -> float:
        return self.best.seconds / self.base_best.seconds

    @property
    def amplification(self) -> str:
        runs = [r for r in self.runs if r.hashed]
        return f"{runs[0].decoded / runs[0].hashed:.3f}" if runs else "n/a"


# --- data -------------------------------------------------------------------------------------


def pixels() -> Any:
    import numpy as np

    return np.random.default_rng(SEED).integers(0, 4096, size=SHAPE, dtype=np.uint16)


def make_data() -> dict[str, Path]:
    """The three encodings of the same pixels, written once (delete benchmarks/data/hash to redo)."""
    paths = {
        "tiff": DATA / "case1_u16_c2z32.ome.tif",
        "zarr": DATA / "case2_u16_c2z32_zstd.ome.zarr",
        "tiled": DATA / "case3_u16_c2z32_zstd_tiles.ome.tif",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    import tifffile

    DATA.mkdir(parents=True, exist_ok=True)
    data = pixels()
    print("generating benchmark data in", DATA, file=sys.stderr)
    if not paths["tiff"].exists():
        tifffile.imwrite(paths["tiff"], data, ome=True, metadata={"axes": "CZYX"})
    if not paths["tiled"].exists():
        tifffile.imwrite(
            paths["tiled"], data, ome=True, metadata={"axes": "CZYX"}, tile=(512, 512), compression="zstd"
        )
    if not paths["zarr"].exists():
        write_ome_zarr(paths["zarr"], data)
    return paths


def write_ome_zarr(path: Path, data: Any) -> None:
    """NGFF 0.4 on zarr v2: one level, axes t c z y x, chunks (1, 1, 8, 512, 512), zstd."""
    import numcodecs
    import zarr

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    array = root.create_array(
        "0",
        shape=(1, *SHAPE),
        chunks=(1, 1, 8, 512, 512),
        dtype="uint16",
        compressors=numcodecs.Zstd(level=1),
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    array[0] = data
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1.0] * 5}]
    multiscales: list[dict[str, Any]] = [
        {
            "version": "0.4",
            "name": "bench",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": scale}],
        }
    ]
    root.attrs["multiscales"] = multiscales
    tmp.rename(path)


# --- references: a straightforward per-plane walk ---------------------------------------------


def reference_code(array: Any) -> tuple[str, str]:
    """ISCC-SUM and datahash of planes z outer, c inner (T=1), each big-endian, of a (C, Z, Y, X) array."""
    from iscc_sum import IsccSumProcessor

    processor = IsccSumProcessor()
    for z in range(array.shape[1]):
        for c in range(array.shape[0]):
            processor.update(array[c, z].astype(">u2").tobytes())
    result = processor.result(wide=True, add_units=True)
    return result.iscc, result.datahash


def references(paths: dict[str, Path]) -> dict[str, tuple[str, str]]:
    import tifffile
    import zarr

    codes = {name: reference_code(tifffile.imread(paths[name])) for name in ("tiff", "tiled")}
    codes["zarr"] = reference_code(zarr.open_array(str(paths["zarr"] / "0"), mode="r")[0])
    return codes


# --- running commands -------------------------------------------------------------------------


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run a whole command: its wall time, and the peak RSS of its process tree.

    The RSS comes from GNU time's wait4 on the command, not from this process's own wait4: a child
    forked from a big parent inherits the parent's peak RSS in its accounting.
    """
    with (
        tempfile.NamedTemporaryFile() as peak,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        wrapped = [TIME, "-f", "%M", "-o", peak.name, *cmd] if TIME else cmd
        start = time.perf_counter()
        process = subprocess.run(wrapped, stdout=out, stderr=err, env=env, cwd=cwd)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        rss_kb = int(Path(peak.name).read_text().split()[-1]) if TIME else 0
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {process.returncode}: {stderr[-2000:]}")
    result = Run(seconds, rss_kb / 1024, stdout, load=os.getloadavg()[0])
    for line in re.findall(r"hashed_bytes=(\d+) decoded_bytes=(\d+)", stderr):
        result.hashed += int(line[0])
        result.decoded += int(line[1])
    return result


def stats_env() -> dict[str, str]:
    return {**os.environ, "BIOISCC_STATS": "1"}


def bioiscc_hash(source: Path) -> list[str]:
    return [str(BIN / "bioiscc"), "hash", str(source)]


def iscc_sum(source: Path) -> list[str]:
    return [str(BIN / "iscc-sum"), *(["--tree"] if source.is_dir() else []), str(source)]


def alternate(row: Row, subject: list[str], baseline: list[str], repeat: int) -> None:
    """Subject and baseline in turn, `repeat` times each, so both see the same load."""
    for _ in range(repeat):
        row.runs.append(run(subject, env=stats_env()))
        row.base_runs.append(run(baseline))


def codes_of(stdout: str) -> list[tuple[str, str]]:
    """(iscc_code, datahash) of each scene record of `bioiscc hash` output."""
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [(r["iscc_code"], r["datahash"]) for r in records]


# --- cases ------------------------------------------------------------------------------------


def case_formats(
    paths: dict[str, Path], refs: dict[str, tuple[str, str]], repeat: int, cases: set[str]
) -> list[Row]:
    plan = [
        ("1", "tiff", "OME-TIFF, uncompressed", 1.5, 256, None),
        ("2", "zarr", "OME-Zarr 0.4, zstd chunks (1,1,8,512,512)", 2.5, 512, 1.05),
        ("3", "tiled", "OME-TIFF, zstd 512x512 tiles", 2.5, 512, 1.05),
    ]
    rows = []
    for number, name, label, max_ratio, max_mb, max_amp in plan:
        if number not in cases:
            continue
        row = Row(f"{number}. {label}", "bioiscc hash", "iscc-sum on the case-1 file")
        alternate(row, bioiscc_hash(paths[name]), iscc_sum(paths["tiff"]), repeat)
        got = {c for r in row.runs for c in codes_of(r.stdout)}
        identical = got == {refs[name]} and len(set(refs.values())) == 1
        rss = max(r.rss_mb for r in row.runs)
        if row.ratio > max_ratio:
            over = row.ratio / max_ratio - 1
            row.misses.append(f"time {row.ratio:.2f}x of iscc-sum, target {max_ratio}x ({over:.0%} over)")
        if rss >= max_mb:
            row.misses.append(f"peak RSS {rss:.0f} MB, target < {max_mb} MB")
        if max_amp is not None and float(row.amplification) > max_amp:
            row.misses.append(f"read amplification {row.amplification}, target <= {max_amp}")
        if not identical:
            row.misses.append("codes differ from the per-plane reference")
        row.target = f"<= {max_ratio}x, < {max_mb} MB" + (f", amplification <= {max_amp}" if max_amp else "")
        row.met = "no" if row.misses else "yes"
        row.note = (
            "code = per-plane reference" if identical else f"CODE DIFFERS: {sorted(got)} vs {refs[name]}"
        )
        rows.append(row)
    return rows


def largest_samples() -> list[list[Path]]:
    """The inputs of each format folder of the samples, largest first (a store counts as one input)."""
    folders = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
    ranked = [sorted((p for p in f.iterdir() if not p.name.startswith(".")), key=input_size) for f in folders]
    return [list(reversed(inputs)) for inputs in ranked if inputs]


def input_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def case_samples(repeat: int) -> list[Row]:
    if not SAMPLES.is_dir():
        return [Row("4. samples", "bioiscc hash", "iscc-sum", note=f"{SAMPLES} not found")]
    rows = []
    for candidates in largest_samples():
        for path in candidates:  # the largest one bioiscc reads (a few samples are known failures)
            row = Row(
                f"4. {path.parent.name}/{path.name} ({input_size(path) / MIB:.1f} MiB)",
                "bioiscc hash",
                "iscc-sum",
            )
            try:
                alternate(row, bioiscc_hash(path), iscc_sum(path), repeat)
            except RuntimeError:
                continue
            row.target, row.met, row.note = "informational", "-", "start-up dominates"
            rows.append(row)
            break
    return rows


def case_workflow(tiff: Path, ref: tuple[str, str], repeat: int) -> list[Row]:
    """`snakemake --cores 2` vs `--cores 1` over 8 copies of the case-1 file."""
    snakefile = REPO / "workflow" / "Snakefile"
    row = Row("5. Snakemake, 8 x case 1", "--cores 2", "--cores 1", target=">= 1.7x speed-up")
    if not snakefile.exists():
        row.met, row.note = "-", "not measurable yet: workflow/Snakefile does not exist"
        return [row]
    inputs = DATA / "workflow-inputs"
    if not inputs.exists():
        inputs.mkdir(parents=True)
        for i in range(8):
            shutil.copyfile(tiff, inputs / f"copy{i}.ome.tif")
    # the rules call `bioiscc` from PATH: this environment's
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        for _ in range(repeat):
            for cores, runs in (("2", row.runs), ("1", row.base_runs)):
                with tempfile.TemporaryDirectory(dir=DATA) as work:
                    # the workflow reads config/config.yaml from its working directory
                    (Path(work) / "config").mkdir()
                    (Path(work) / "config" / "config.yaml").write_text(f"input_dir: {inputs}\n")
                    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)]
                    cmd += ["--directory", work, "--cores", cores, "--config", f"input_dir={inputs}"]
                    runs.append(run(cmd, env=env))
                    found = [codes_of(p.read_text()) for p in Path(work).glob("results/**/scenes.jsonl")]
                    if found != [[ref]] * 8:
                        raise RuntimeError(f"workflow codes differ from the reference: {found}")
    except RuntimeError as exc:
        row.runs, row.base_runs = [], []
        cause = str(exc).strip().splitlines()[-1][:160]
        row.met, row.note = "-", f"not measurable yet: the workflow failed ({cause})"
        return [row]
    speedup = row.base_best.seconds / row.best.seconds
    row.met = "yes" if speedup >= 1.7 else "no"
    if speedup < 1.7:
        row.misses.append(f"speed-up {speedup:.2f}x from 1 to 2 cores, target 1.7x")
    row.note = f"speed-up {speedup:.2f}x (ratio column: time with 2 cores / time with 1)"
    return [row]


def case_isccbio(paths: dict[str, Path], repeat: int) -> list[Row]:
    """iscc-bio 0.2.0 `biocode` on cases 1 and 2, once each (it is slow).

    Against `bioiscc hash` (the issue's comparison) and `bioiscc biocode` (like for like: it also
    hashes the raw file bytes, as iscc-bio's biocode does).
    """
    if not ISCC_BIO.exists():
        return [
            Row("6. iscc-bio 0.2.0", "bioiscc hash", "iscc-bio biocode", note=f"{ISCC_BIO} not installed")
        ]
    rows = []
    for number, name in (("1", "tiff"), ("2", "zarr")):
        theirs_run = run([str(ISCC_BIO), "biocode", str(paths[name])])
        theirs = json.loads(theirs_run.stdout[theirs_run.stdout.index("{") :])
        for command in ("hash", "biocode"):
            row = Row(f"6. iscc-bio, case {number}", f"bioiscc {command}", "iscc-bio biocode (1 run)")
            row.runs = [
                run([str(BIN / "bioiscc"), command, str(paths[name])], env=stats_env()) for _ in range(repeat)
            ]
            row.base_runs = [theirs_run]
            record = json.loads(row.best.stdout)
            ours = record["iscc_code"] if command == "hash" else record["parts"][0]["iscc_code"]
            row.target = "about 17x faster" if (number, command) == ("1", "hash") else "informational"
            row.met = "-" if row.target == "informational" else ("yes" if 1 / row.ratio >= 17 else "no")
            if row.met == "no":
                row.misses.append(f"{1 / row.ratio:.1f}x faster than iscc-bio, target about 17x")
            if theirs.get("parts"):
                same = "yes" if theirs["parts"][0]["iscc_code"] == ours else "no"
                row.note = f"speed-up {1 / row.ratio:.1f}x; same scene code: {same}"
            else:
                row.note = "iscc-bio gave no scene code (its pixel decoding failed): times not comparable"
            rows.append(row)
    return rows


# --- report -----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = (
        "| case | subject | baseline | subject s, best (median) | baseline s, best (median) | ratio "
        "| peak RSS MB | baseline peak RSS MB | read ampl. | target | met | note |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n"
    )
    lines = []
    for r in rows:
        if r.runs:
            figures = [
                seconds(r.runs),
                seconds(r.base_runs),
                f"{r.ratio:.2f}x",
                peak(r.runs),
                peak(r.base_runs),
            ]
        else:
            figures = ["-"] * 5
        cells = [r.case, r.subject, r.baseline, *figures, r.amplification, r.target, r.met, r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def seconds(runs: list[Run]) -> str:
    times = sorted(r.seconds for r in runs)
    return f"{times[0]:.2f} ({times[len(times) // 2]:.2f})"


def peak(runs: list[Run]) -> str:
    return f"{max(r.rss_mb for r in runs):.0f}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    versions = ", ".join(
        f"{name} {package_version(name)}" for name in ("numpy", "tifffile", "zarr", "iscc-sum")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {versions}"
    )


def package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def report(rows: list[Row], repeat: int, load: tuple[float, float]) -> str:
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    loads = [r.load for row in rows for r in row.runs + row.base_runs]
    mean_load = sum(loads) / len(loads) if loads else load[0]
    missed = [f"- case {row.case}: {miss}" for row in rows for miss in row.misses]
    return (
        "# Hashing benchmark results\n\n"
        f"Written by `python benchmarks/bench_hash.py --repeat {repeat}` on {when}.\n\n"
        f"Machine: {machine()}.\n\n"
        f"Each command ran {repeat} time(s), subject and baseline alternating; times are wall times, the "
        "best (minimum) with the median in brackets, ratios are best over best; peak RSS is the largest "
        "seen. The machine is shared with other work (1-minute load average "
        f"{load[0]:.2f} at the start, {mean_load:.2f} on average over the runs, {load[1]:.2f} at the end; "
        "2 would mean both cores busy), so runs are noisy and best-of-N is the fairest figure.\n\n"
        + table(rows)
        + "\n## Targets missed\n\n"
        + ("\n".join(missed) if missed else "None.")
        + "\n\nWhat limits them: see the hashing section of benchmarks/README.md.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (best is kept)")
    parser.add_argument("--cases", default="1,2,3,4,5", help="comma-separated case numbers")
    parser.add_argument("--isccbio", action="store_true", help="also time iscc-bio 0.2.0 (slow)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    load_start = os.getloadavg()[0]
    paths = make_data()
    refs = references(paths) if cases & {"1", "2", "3", "5"} else {}
    rows = case_formats(paths, refs, args.repeat, cases)
    if "4" in cases:
        rows += case_samples(args.repeat)
    if "5" in cases:
        rows += case_workflow(paths["tiff"], refs["tiff"], min(args.repeat, 2))
    if args.isccbio:
        rows += case_isccbio(paths, args.repeat)
    text = report(rows, args.repeat, (load_start, os.getloadavg()[0]))
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
