"""How the Snakemake workflow scales with the number of inputs (issue: the Snakemake workflow).

Generates N small images (half plain TIFF, half OME-TIFF; C=2, 64x64, uint16; 100 per folder),
then times, on the real workflow with `--cores CORES`:

1. a dry run (`snakemake -n`) before anything ran,
2. the first run,
3. a no-op rerun (must run no job),
4. a dry run with everything up to date,
5. a rerun after rewriting the pixels of one file (must run that file's 4 jobs (2 with --no-views),
   the index and all),
6. a rerun after adding one file (likewise).

    python benchmarks/workflow_scale.py                  # 2,000 files, 2 cores
    python benchmarks/workflow_scale.py -n 200 --keep    # keep the work directory

Targets (2,000 files, this 2-core machine): dry run and no-op rerun under 60 s each, first run
under 30 minutes. Prints a Markdown table; the figures in benchmarks/README.md come from it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"


def write_image(path: Path, seed: int) -> None:
    import numpy as np
    import tifffile

    data = np.random.default_rng(seed).integers(0, 4096, size=(2, 64, 64), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".ome.tif"):
        tifffile.imwrite(path, data, ome=True, metadata={"axes": "CYX"})
    else:
        tifffile.imwrite(path, data)


def image_path(data: Path, i: int) -> Path:
    suffix = ".ome.tif" if i % 2 else ".tif"
    return data / f"plate_{i // 100:03d}" / f"image_{i:05d}{suffix}"


def snakemake(workdir: Path, cores: int, *extra: str) -> tuple[float, float, str]:
    """Run Snakemake; its wall time, the CPU time of it and its jobs, and its output."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        *extra,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(extra)} failed ({result.returncode}):\n{output[-3000:]}")
    return elapsed, cpu, output


def job_count(output: str) -> int:
    """The jobs Snakemake ran or would run (its 'Job stats' total), 0 when nothing was to be done."""
    match = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("-n", "--files", type=int, default=2000, help="number of images (default 2000)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--workdir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--views",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with the views rules, as the workflow runs by default (--no-views: ISCC-SUMs only)",
    )
    parser.add_argument(
        "--snakemake-args", default="", help="more Snakemake arguments, e.g. '--scheduler ilp'"
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bioiscc-scale-"))
    if workdir.exists() and any(workdir.iterdir()):
        sys.exit(f"{workdir} is not empty")
    data = workdir / "data"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "config.yaml").write_text("input_dir: data\n")
    start = time.perf_counter()
    for i in range(args.files):
        write_image(image_path(data, i), seed=i)
    print(
        f"generated {args.files} images in {time.perf_counter() - start:.1f} s under {data}", file=sys.stderr
    )

    rows: list[tuple[str, float, float, int, float]] = []

    def step(name: str, *extra: str, expect_jobs: int | None = None) -> None:
        elapsed, cpu, output = snakemake(workdir, args.cores, *args.snakemake_args.split(), *extra)
        jobs = job_count(output)
        if expect_jobs is not None and jobs != expect_jobs:
            sys.exit(f"{name}: expected {expect_jobs} jobs, Snakemake reported {jobs}:\n{output[-3000:]}")
        load = os.getloadavg()[0]
        rows.append((name, elapsed, cpu, jobs, load))
        print(f"{name}: {elapsed:.1f} s, CPU {cpu:.1f} s, {jobs} jobs, load {load:.2f}", file=sys.stderr)

    per_input = 4 if args.views else 2  # walk, hash (extract_views, mix) per file
    if not args.views:
        (workdir / "config" / "config.yaml").write_text("input_dir: data\nviews:\n  enabled: false\n")
    everything = per_input * args.files + 2  # and index, all
    step("dry run, nothing done yet", "-n", expect_jobs=everything)
    step("first run", expect_jobs=everything)
    step("no-op rerun", expect_jobs=0)
    step("dry run, all up to date", "-n", expect_jobs=0)
    write_image(image_path(data, 0), seed=10**6)
    step("rerun after changing one file", expect_jobs=per_input + 2)
    write_image(image_path(data, args.files), seed=args.files)
    step("rerun after adding one file", expect_jobs=per_input + 2)

    rows_text = "\n".join(
        f"| {name} | {elapsed:,.1f} s | {cpu:,.1f} s | {jobs:,} | {load:.1f} |"
        for name, elapsed, cpu, jobs, load in rows
    )
    print(
        f"\n{args.files:,} images (TIFF and OME-TIFF, C=2, 64x64, uint16), `--cores {args.cores}`, "
        f"views {'on' if args.views else 'off'}; "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, Snakemake {snakemake_version()} {args.snakemake_args}\n\n"
        "| step | wall time | CPU time (all processes) | jobs | load average after |\n"
        f"| --- | ---: | ---: | ---: | ---: |\n{rows_text}"
    )
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir)


def snakemake_version() -> str:
    from importlib.metadata import version

    return version("snakemake")


if __name__ == "__main__":
    main()
