"""The workflow at a facility's scale: the cost must be the pixels, not the orchestration.

Every target of the scale issue, measured in one run on the real workflow (`--cores CORES`):

- tiff: N tiny OME-TIFFs (2 channels, 32x32, uint16; 100 per folder), views on:
  dry run before anything ran, first run, no-op rerun, dry run with everything up to date, a rerun
  after rewriting one file's pixels and one after adding a file. For the two reruns the batch logs
  (results/_batches/*/STEP.jsonl, what the commands did per input) must show exactly one input
  computed per step, every other one reused.
- czi: M copies of one small CZI (written with pylibCZIrw), views on: the first run.
- dag: K inputs (copies of one tiny OME-TIFF): the dry run, and Snakemake's peak RSS in it.
- startup: `bioiscc hash` of one tiny CZI and one tiny ND2 (the bundled sample): wall time and peak
  RSS, median of 5, against `python -c pass` and `iscc-sum` on the same file.

    python benchmarks/workflow_scale.py                        # the issue's sizes (about 15 min)
    python benchmarks/workflow_scale.py --tiff 500 --czi 100 --dag 2000   # a quick look
    python benchmarks/workflow_scale.py --cases startup

Targets (2-core machine): 10,000 TIFFs first run <= 300 s, dry run and no-op rerun <= 10 s each,
one changed input rerun <= 30 s recomputing exactly one input; 2,000 CZIs first run <= 180 s;
40,000 inputs dry run <= 30 s with Snakemake <= 1 GB; hash of a tiny CZI or ND2 <= 0.3 s, <= 80 MB.
Prints a Markdown table (the figures in benchmarks/README.md come from it); exits 1 when a run
does not do what it must (a wrong job or input count), not when a target is missed.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
ND2_SAMPLE = REPO / "resources" / "sample-data" / "nd2" / "example-zstack.nd2"
STEPS = ("walk", "hash", "views", "mix")


@dataclass
class Row:
    case: str
    step: str
    seconds: float
    rss_mb: float | None
    jobs: int | None
    note: str
    target: str
    met: bool | None


# ---- inputs ----


def write_tiff(path: Path, seed: int) -> None:
    import numpy as np
    import tifffile

    data = np.random.default_rng(seed).integers(0, 4096, size=(2, 32, 32), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CYX"})


def tiff_path(data: Path, i: int) -> Path:
    return data / f"plate_{i // 100:04d}" / f"image_{i:06d}.ome.tif"


def write_czi(path: Path) -> None:
    """A small CZI (2 channels, 3 z, 64x64, uint16) written by libCZI's writer."""
    import numpy as np
    from pylibCZIrw import czi as pyczi

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    with pyczi.create_czi(str(path), exist_ok=True) as document:
        for c in range(2):
            for z in range(3):
                plane = rng.integers(0, 4096, size=(64, 64, 1), dtype=np.uint16)
                document.write(data=plane, plane={"C": c, "Z": z, "T": 0})


def copies(source: Path, data: Path, count: int, suffix: str) -> None:
    """`count` copies of one file, 100 per folder (their pixels are equal; their names are not)."""
    for i in range(count):
        target = data / f"plate_{i // 100:04d}" / f"image_{i:06d}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


# ---- running ----


#: runs argv[2:] and writes its peak RSS (KiB) to the file argv[1]: a small process to start it
#: from, as a child counts the pages of the process it was started from before its exec
MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], dict(os.environ))
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], cwd: Path | None = None) -> tuple[float, float, str, int]:
    """Run a command; its wall time, its peak RSS in MB (the largest process), its output, exit code."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    program = shutil.which(command[0], path=env["PATH"]) or command[0]
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile() as peak:
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, peak.name, program, *command[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
        elapsed = time.perf_counter() - start
        out.seek(0)
        output = out.read().decode(errors="replace")
        rss = int(Path(peak.name).read_text() or 0) / 1024
    return elapsed, rss, output, result.returncode


def snakemake(workdir: Path, cores: int, *extra: str) -> tuple[float, float, str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
               str(workdir), "--cores", str(cores), *extra]  # fmt: skip
    elapsed, rss, output, code = run_measured(command)
    if code != 0:
        sys.exit(f"snakemake {' '.join(extra)} failed ({code}):\n{output[-3000:]}")
    return elapsed, rss, output


def job_count(output: str) -> int:
    """The jobs Snakemake ran or would run (its 'Job stats' total), 0 when nothing was to be done."""
    match = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def computed_inputs(workdir: Path, since: float) -> dict[str, list[str]]:
    """Per step, the inputs the commands computed (not reused) since then (the batch logs written)."""
    found: dict[str, list[str]] = {}
    for step in STEPS:
        logs = sorted((workdir / "results" / "_batches").glob(f"*/{step}.jsonl"))
        found[step] = [
            entry["source"]
            for log in logs
            if log.stat().st_mtime >= since
            for entry in map(json.loads, log.read_text().splitlines())
            if entry["action"] == "computed"
        ]
    return found


#: extra lines of every workspace's config (--batch-size)
EXTRA_CONFIG: list[str] = []


def workspace(root: Path, name: str) -> tuple[Path, Path]:
    workdir = root / name
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "config.yaml").write_text("".join(["input_dir: data\n", *EXTRA_CONFIG]))
    return workdir, workdir / "data"


# ---- cases ----


def case_tiff(root: Path, count: int, cores: int, rows: list[Row]) -> None:
    workdir, data = workspace(root, "tiff")
    start = time.perf_counter()
    for i in range(count):
        write_tiff(tiff_path(data, i), seed=i)
    print(f"tiff: wrote {count} OME-TIFFs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    big = count >= 10_000
    name = f"tiff {count:,}"

    def step(label: str, *extra: str, target: float | None = None) -> str:
        elapsed, rss, output = snakemake(workdir, cores, *extra)
        goal = f"<= {target:g} s" if target is not None and big else ""
        met = elapsed <= target if target is not None and big else None
        rows.append(Row(name, label, elapsed, rss, job_count(output), "", goal, met))
        print(f"{name}: {label}: {elapsed:.1f} s, {rss:.0f} MB, {job_count(output)} jobs", file=sys.stderr)
        return output

    step("dry run, nothing done yet", "-n", target=10)
    step("first run", target=300)
    if job_count(step("no-op rerun", target=10)) != 0:
        sys.exit("the no-op rerun ran jobs")
    step("dry run, all up to date", "-n", target=10)

    write_tiff(tiff_path(data, 0), seed=10**7)
    since = time.time()
    step("rerun, one input changed", target=30)
    check_one_computed(workdir, str(tiff_path(data, 0).relative_to(workdir)), since, rows)
    write_tiff(tiff_path(data, count), seed=count)
    since = time.time()
    step("rerun, one input added", target=30)
    check_one_computed(workdir, str(tiff_path(data, count).relative_to(workdir)), since, rows)
    total = sum(1 for _ in (workdir / "results").glob("plate_*/*.ome.tif/container.json"))
    if total != count + 1:
        sys.exit(f"expected {count + 1} containers, found {total}")


def check_one_computed(workdir: Path, source: str, since: float, rows: list[Row]) -> None:
    computed = computed_inputs(workdir, since)
    if any(found != [source] for found in computed.values()):
        shown = {step: f"{len(found)}: {found[:5]}" for step, found in computed.items()}
        sys.exit(f"expected only {source} computed, the batch logs say: {shown}")
    rows[-1].note = f"computed: {source} only, in each of {', '.join(STEPS)}"


def case_czi(root: Path, count: int, cores: int, rows: list[Row]) -> None:
    workdir, data = workspace(root, "czi")
    original = root / "one.czi"
    write_czi(original)
    copies(original, data, count, ".czi")
    elapsed, rss, output = snakemake(workdir, cores)
    big = count >= 2000
    rows.append(Row(f"czi {count:,}", "first run", elapsed, rss, job_count(output), "",
                    "<= 180 s" if big else "", elapsed <= 180 if big else None))  # fmt: skip
    print(f"czi: first run {elapsed:.1f} s", file=sys.stderr)
    index = [json.loads(line) for line in (workdir / "results" / "index.jsonl").read_text().splitlines()]
    if len(index) != count or any(row["status"] != "ok" for row in index):
        sys.exit(f"czi: expected {count} ok rows: {index[:3]}")
    if len({row["iscc_code"] for row in index}) != 1:
        sys.exit("czi: copies of one file gave different codes")


def case_dag(root: Path, count: int, cores: int, rows: list[Row]) -> None:
    workdir, data = workspace(root, "dag")
    original = root / "one.ome.tif"
    write_tiff(original, seed=1)
    copies(original, data, count, ".ome.tif")
    elapsed, rss, output = snakemake(workdir, cores, "-n")
    big = count >= 40_000
    met = elapsed <= 30 and rss <= 1024 if big else None
    rows.append(Row(f"dag {count:,}", "dry run, nothing done yet", elapsed, rss, job_count(output), "",
                    "<= 30 s, <= 1 GB" if big else "", met))  # fmt: skip
    print(f"dag: dry run {elapsed:.1f} s, {rss:.0f} MB", file=sys.stderr)


def case_startup(root: Path, rows: list[Row]) -> None:
    czi = root / "tiny.czi"
    write_czi(czi)
    iscc_sum = shutil.which("iscc-sum") or str(Path(sys.executable).parent / "iscc-sum")

    def median_of(command: list[str]) -> tuple[float, float]:
        runs = []
        for _ in range(5):
            elapsed, rss, output, code = run_measured(command)
            if code != 0:
                sys.exit(f"{' '.join(command)} failed: {output}")
            runs.append((elapsed, rss))
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    base, base_rss = median_of([sys.executable, "-c", "pass"])
    rows.append(Row("startup", "python -c pass", base, base_rss, None, "baseline", "", None))
    for label, path in (("CZI", czi), ("ND2", ND2_SAMPLE)):
        raw, raw_rss = median_of([iscc_sum, str(path)])
        rows.append(Row("startup", f"iscc-sum, tiny {label}", raw, raw_rss, None, "baseline", "", None))
        wall, rss = median_of([sys.executable, "-m", "bioiscc", "hash", str(path)])
        note = f"{wall / raw:.1f}x iscc-sum, {wall / base:.1f}x python -c pass"
        met = wall <= 0.3 and rss <= 80
        rows.append(Row("startup", f"bioiscc hash, tiny {label}", wall, rss, None, note, "<= 0.3 s, <= 80 MB",
                        met))  # fmt: skip


def table(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        "| case | step | wall | peak RSS | jobs | target | met | note |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in rows:
        rss = f"{r.rss_mb:,.0f} MB" if r.rss_mb is not None else ""
        jobs = f"{r.jobs:,}" if r.jobs is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(
            f"| {r.case} | {r.step} | {r.seconds:,.2f} s | {rss} | {jobs} | {r.target} | {met} | {r.note} |"
        )
    head = (
        f"`--cores {args.cores}`, batch_size {args.batch_size or 'default (200)'}; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), load before {LOAD_BEFORE:.2f}, after "
        f"{os.getloadavg()[0]:.2f}; Python {platform.python_version()}, Snakemake {version('snakemake')}"
    )
    return head + "\n\n" + "\n".join(lines)


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


LOAD_BEFORE = os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tiff", type=int, default=10_000, help="OME-TIFF inputs (default 10,000)")
    parser.add_argument("--czi", type=int, default=2000, help="CZI copies (default 2,000)")
    parser.add_argument("--dag", type=int, default=40_000, help="inputs of the dry run (default 40,000)")
    parser.add_argument("--cases", default="tiff,czi,dag,startup", help="which cases (comma-separated)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--workdir", type=Path, help="work directory (default: a temporary one, removed)")
    parser.add_argument("--batch-size", type=int, help="the workflow's batch_size (default: its default)")
    args = parser.parse_args()
    if args.batch_size:
        EXTRA_CONFIG.append(f"batch_size: {args.batch_size}\n")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bioiscc-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    cases: dict[str, Callable[[], None]] = {
        "tiff": lambda: case_tiff(root, args.tiff, args.cores, rows),
        "czi": lambda: case_czi(root, args.czi, args.cores, rows),
        "dag": lambda: case_dag(root, args.dag, args.cores, rows),
        "startup": lambda: case_startup(root, rows),
    }
    try:
        for name in args.cases.split(","):
            cases[name.strip()]()
    finally:
        print(table(rows, args))
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
