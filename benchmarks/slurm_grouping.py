"""The workflow on a Slurm cluster, with and without bundling the jobs of many inputs (issue 8).

Runs the real workflow (`workflow/Snakefile`) with its Slurm profile (`workflow/profiles/slurm`) on
the cluster `sinfo` reaches, on a fresh copy of each data set, in each of these ways:

- bundles: the profile as shipped (up to 20 inputs per Slurm job, `group-components`),
- per input: one Slurm job per input (`--group-components bioiscc_input=1`: its walk, hash,
  extract_views and mix together),
- no grouping: one Slurm job per job (every rule in a group of its own),
- local: `snakemake --cores 2` on the submitting machine (the default profile), for comparison;

then reruns once (each rerun must submit nothing). Data sets: the test data of tests/test_slurm.py
(real samples from resources/sample-data and BIOISCC_SAMPLES, and two truncated copies), and N small
TIFFs (as benchmarks/workflow_scale.py generates them: half plain TIFF, half OME-TIFF; C=2, 64x64,
uint16). It uses the cluster settings tests/test_slurm.py uses (the default partition; on a cluster
without accounting `--slurm-status-command squeue`; status checks from 2 s on).

    bash ../shared/ci/slurm/up.sh                      # a one-node cluster on this machine
    python benchmarks/slurm_grouping.py                # both data sets, every way
    python benchmarks/slurm_grouping.py --tiffs 200 --data tiffs --ways bundles,local

Prints a Markdown table: per data set and way, the jobs, the Slurm jobs submitted, the run time
Slurm records for them (summed: what they held a node for), the wall time of the run and of the
no-op rerun, the scenes done and failed. The figures in README.md, "On a Slurm cluster", come
from it. Exits with an error if a run fails, a scene of a good input fails, or a rerun does work.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from workflow_scale import image_path, write_image  # noqa: E402

from tests.conftest import samples_root  # noqa: E402
from tests.test_slurm import (  # noqa: E402
    BROKEN,
    PROFILE,
    SNAKEFILE,
    make_data,
    slurm_cluster,
    slurm_options,
)

PER_INPUT_RULES = ("walk", "hash", "extract_views", "mix")
WAYS = {
    "bundles": ["--workflow-profile", str(PROFILE)],
    "per input": ["--workflow-profile", str(PROFILE), "--group-components", "bioiscc_input=1"],
    "no grouping": [
        "--workflow-profile",
        str(PROFILE),
        "--groups",
        *(f"{rule}={rule}" for rule in PER_INPUT_RULES),
    ],
    "local": ["--cores", "2"],
}


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    """Run Snakemake in `workdir` (its jobs inherit this environment); wall time and output."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{output[-5000:]}")
    return elapsed, output


def submitted(output: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


def slurm_seconds(job_ids: list[str]) -> int:
    """The run time Slurm records for these jobs, summed (what they held a node for)."""
    total = 0
    for job_id in job_ids:
        shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
        match = re.search(r"\bRunTime=(?:(\d+)-)?(\d+):(\d+):(\d+)", shown.stdout)
        if match is None:
            sys.exit(f"Slurm no longer knows job {job_id} (MinJobAge?): {shown.stderr.strip()}")
        days, hours, minutes, seconds = (int(x or 0) for x in match.groups())
        total += ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return total


def job_count(output: str) -> int:
    """The jobs Snakemake ran (its 'Job stats' total), 0 when nothing was to be done."""
    match = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def make_tiffs(root: Path, count: int) -> Path:
    for i in range(count):
        write_image(image_path(root / "data", i), seed=i)
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.yaml").write_text("input_dir: data\n")
    return root


def check_index(workdir: Path, broken: set[str]) -> tuple[int, int, int]:
    """Inputs, scenes done and scenes failed; only the broken inputs may have failed scenes."""
    import json

    rows = [json.loads(line) for line in (workdir / "results" / "index.jsonl").read_text().splitlines()]
    failed = {row["input"] for row in rows if row["status"] != "ok"}
    if not failed <= broken:
        sys.exit(f"{workdir}: unexpected failed inputs {sorted(failed - broken)}")
    done = sum(row["status"] == "ok" for row in rows)
    return len({row["input"] for row in rows}), done, len(rows) - done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tiffs", type=int, default=40, help="number of small TIFFs (default 40)")
    parser.add_argument("--data", default="samples,tiffs", help="data sets (default samples,tiffs)")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"default {','.join(WAYS)}")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args()
    ways = [way.strip() for way in args.ways.split(",")]
    if unknown := set(ways) - set(WAYS):
        sys.exit(f"unknown ways: {sorted(unknown)}")
    if any(way != "local" for way in ways) and (reason := slurm_cluster()):
        sys.exit(f"cannot run on Slurm: {reason}")

    root = Path(tempfile.mkdtemp(prefix="bioiscc-slurm-"))
    datasets: dict[str, tuple[Path, set[str]]] = {}
    for name in args.data.split(","):
        if name == "samples":
            datasets[name] = (make_data(root / "samples", samples_root()), set(BROKEN))
        elif name == "tiffs":
            datasets[name] = (make_tiffs(root / "tiffs", args.tiffs), set())
        else:
            sys.exit(f"unknown data set {name}")

    rows = []
    for name, (source, broken) in datasets.items():
        for way in ways:
            workdir = shutil.copytree(source, root / f"{name}-{way.replace(' ', '-')}", symlinks=True)
            extra = [] if way == "local" else slurm_options()
            load = os.getloadavg()[0]
            elapsed, output = snakemake(workdir, *WAYS[way], *extra)
            inputs, done, failed = check_index(workdir, broken)
            rerun, again = snakemake(workdir, *WAYS[way], *extra)
            if submitted(again) or "Nothing to be done" not in again:
                sys.exit(f"{name}, {way}: the rerun did something:\n{again[-3000:]}")
            jobs, slurm = job_count(output), submitted(output)
            held = slurm_seconds(slurm)
            rows.append((name, inputs, way, jobs, len(slurm), held, elapsed, rerun, done, failed))
            print(
                f"{name}, {way}: {jobs} jobs, {len(slurm)} Slurm jobs ({held} s), {elapsed:.1f} s "
                f"(rerun {rerun:.1f} s), {done} scenes done, {failed} failed, load before {load:.2f}",
                file=sys.stderr,
            )
        if not args.keep:
            for way in ways:
                shutil.rmtree(root / f"{name}-{way.replace(' ', '-')}", ignore_errors=True)

    table = "\n".join(
        f"| {name} ({inputs} inputs) | {way} | {jobs} | {slurm if way != 'local' else '-'} "
        f"| {f'{held} s' if way != 'local' else '-'} | {elapsed:.0f} s | {rerun:.1f} s | {done} / {failed} |"
        for name, inputs, way, jobs, slurm, held, elapsed, rerun, done, failed in rows
    )
    print(
        f"\n{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, Snakemake {version('snakemake')}, "
        f"snakemake-executor-plugin-slurm {version('snakemake-executor-plugin-slurm')}, "
        f"{slurm_version()}; {' '.join(slurm_options())}\n\n"
        "| data | way | jobs | Slurm jobs submitted | their Slurm run time | wall time | no-op rerun "
        f"| scenes done / failed |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work directories kept under {root}", file=sys.stderr)


def version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(package)
    except PackageNotFoundError:
        return "(not installed)"


def slurm_version() -> str:
    try:
        return subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "no Slurm"


if __name__ == "__main__":
    main()
