"""The workflow on a Slurm cluster: one Slurm job per batch (the profile) against one per job.

The rules run per batch of inputs (`batch_size` inputs on average; see "batches" in
workflow/rules/common.smk), and the Slurm profile (`workflow/profiles/slurm`) makes each batch one
Slurm job (`group-components: bioiscc_batch=1`). This runs the real workflow (`workflow/Snakefile`)
on the cluster `sinfo` reaches, on a fresh copy of each data set, for each batch size given, in each
of these ways:

- batch: the profile as shipped, one Slurm job per batch (its walk, hash, extract_views, mix and
  index_batch jobs),
- rule: no grouping, one Slurm job per job (every per-batch rule in a group of its own),
- local: `snakemake --cores 2` on the submitting machine (the default profile), for comparison;

then reruns once (each rerun must submit nothing and compute nothing). Batch size 1 puts every input
in a batch of its own: one Slurm job per input, as before the batches. Data sets: the test data of
tests/test_slurm.py (real samples from resources/sample-data and BIOISCC_SAMPLES, and two truncated
copies; its config makes inputs of 1 MiB or more batches of their own), and N small TIFFs (half
plain TIFF, half OME-TIFF; C=2, 64x64, uint16; 100 per folder). It uses the cluster settings
tests/test_slurm.py uses (the default partition; on a cluster without accounting
`--slurm-status-command squeue`; status checks from 2 s on).

    bash ../shared/ci/slurm/up.sh                      # a one-node cluster on this machine
    python benchmarks/slurm_grouping.py                # both data sets, batch_size 200, every way (5 min)
    python benchmarks/slurm_grouping.py --data tiffs --batch-sizes 200,20,1 --ways batch

Prints a Markdown table: per data set, batch size and way, the batches, the jobs, the Slurm jobs
submitted, the run time Slurm records for them and the time limits they asked for (each summed:
what they held a node for, and what the resources of the rules asked), the wall time of the run and
of the no-op rerun, the scenes done and failed. Exits with an error if a run fails, a scene of a good
input fails, the batch logs do not show every input computed exactly once per step, the batch way
does not submit one Slurm job per batch, or a rerun does work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from tests.conftest import samples_root  # noqa: E402
from tests.test_slurm import (  # noqa: E402
    BROKEN,
    PER_BATCH_RULES,
    PROFILE,
    SNAKEFILE,
    STEPS,
    make_data,
    slurm_cluster,
    slurm_options,
)

WAYS = {
    "batch": ["--workflow-profile", str(PROFILE)],
    "rule": ["--workflow-profile", str(PROFILE), "--groups", *(f"{r}={r}" for r in sorted(PER_BATCH_RULES))],
    "local": ["--cores", "2"],
}


@dataclass
class Row:
    data: str
    inputs: int
    batch_size: int
    batches: int
    way: str
    jobs: int
    slurm_jobs: int
    slurm_seconds: int  # the run time Slurm records for them, summed
    asked_seconds: int  # the time limits they asked for, summed
    seconds: float  # wall time of the run
    rerun_seconds: float  # wall time of the no-op rerun
    done: int  # scenes
    failed: int

    def markdown(self) -> str:
        on_slurm = self.way != "local"
        return (
            f"| {self.data} ({self.inputs} inputs) | {self.batch_size} ({self.batches}) | {self.way} "
            f"| {self.jobs} "
            f"| {self.slurm_jobs if on_slurm else '-'} | {f'{self.slurm_seconds} s' if on_slurm else '-'} "
            f"| {f'{self.asked_seconds // 60} min' if on_slurm else '-'} | {self.seconds:.0f} s "
            f"| {self.rerun_seconds:.1f} s | {self.done} / {self.failed} |"
        )


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


def _seconds(text: str) -> int:
    """Seconds of a Slurm duration, [D-]HH:MM:SS."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d+):(\d+)", text)
    if match is None:
        sys.exit(f"not a Slurm duration: {text}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def slurm_seconds(job_ids: list[str]) -> tuple[int, int]:
    """The run time Slurm records for these jobs and the time limits they asked for, each summed."""
    ran = asked = 0
    for job_id in job_ids:
        shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
        run_time = re.search(r"\bRunTime=(\S+)", shown.stdout)
        limit = re.search(r"\bTimeLimit=(\S+)", shown.stdout)
        if run_time is None or limit is None:
            sys.exit(f"Slurm no longer knows job {job_id} (MinJobAge?): {shown.stderr.strip()}")
        ran += _seconds(run_time.group(1))
        asked += _seconds(limit.group(1))
    return ran, asked


def job_count(output: str) -> int:
    """The jobs Snakemake ran (its 'Job stats' total), 0 when nothing was to be done."""
    match = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def write_tiff(path: Path, seed: int, ome: bool) -> None:
    import numpy as np
    import tifffile

    data = np.random.default_rng(seed).integers(0, 4096, size=(2, 64, 64), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, ome=ome, metadata={"axes": "CYX"} if ome else None)


def make_tiffs(root: Path, count: int) -> Path:
    for i in range(count):
        ome = i % 2 == 1
        path = root / "data" / f"plate_{i // 100:04d}" / f"image_{i:06d}{'.ome' if ome else ''}.tif"
        write_tiff(path, seed=i, ome=ome)
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.yaml").write_text("input_dir: data\n")
    return root


def batch_count(workdir: Path) -> int:
    return len((workdir / "results" / "_batches" / "batches.txt").read_text().splitlines())


def batch_logs(workdir: Path) -> dict[str, list[dict]]:
    """Step -> every line of its batch logs (one per input of each batch that ran the step)."""
    logs = sorted((workdir / "results" / "_batches").glob("*/*.jsonl"))
    return {
        step: [json.loads(line) for log in logs if log.stem == step for line in log.read_text().splitlines()]
        for step in STEPS
    }


def check_run(workdir: Path, broken: set[str]) -> tuple[int, int, int]:
    """Inputs, scenes done and scenes failed; only the broken inputs may have failed scenes, and
    the batch logs must show every input computed exactly once per step."""
    rows = [json.loads(line) for line in (workdir / "results" / "index.jsonl").read_text().splitlines()]
    failed = {row["input"] for row in rows if row["status"] != "ok"}
    if not failed <= broken:
        sys.exit(f"{workdir}: unexpected failed inputs {sorted(failed - broken)}")
    inputs = {row["input"] for row in rows}
    for step, entries in batch_logs(workdir).items():
        counted = Counter(entry["source"].removeprefix("data/") for entry in entries)
        if counted != Counter(inputs) or {entry["action"] for entry in entries} != {"computed"}:
            sys.exit(f"{workdir}: {step}: not every input computed exactly once: {counted}")
    done = sum(row["status"] == "ok" for row in rows)
    return len(inputs), done, len(rows) - done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tiffs", type=int, default=200, help="number of small TIFFs (default 200)")
    parser.add_argument("--data", default="samples,tiffs", help="data sets (default samples,tiffs)")
    parser.add_argument("--batch-sizes", default="200", help="batch_size values (default 200)")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"default {','.join(WAYS)}")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args()
    ways = [way.strip() for way in args.ways.split(",")]
    if unknown := set(ways) - set(WAYS):
        sys.exit(f"unknown ways: {sorted(unknown)}")
    sizes = [int(size) for size in args.batch_sizes.split(",")]
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
        for size in sizes:
            for way in ways:
                workdir = shutil.copytree(source, root / f"{name}-{size}-{way}", symlinks=True)
                extra = ["--config", f"batch_size={size}", *([] if way == "local" else slurm_options())]
                load = os.getloadavg()[0]
                elapsed, output = snakemake(workdir, *WAYS[way], *extra)
                inputs, done, failed = check_run(workdir, broken)
                batches = batch_count(workdir)
                logs = batch_logs(workdir)
                rerun, again = snakemake(workdir, *WAYS[way], *extra)
                if submitted(again) or "Nothing to be done" not in again or batch_logs(workdir) != logs:
                    sys.exit(f"{name}, batch_size {size}, {way}: the rerun did something:\n{again[-3000:]}")
                jobs, slurm = job_count(output), submitted(output)
                if way == "batch" and len(slurm) != batches:
                    sys.exit(f"{name}, batch_size {size}: {len(slurm)} Slurm jobs for {batches} batches")
                held, asked = slurm_seconds(slurm)
                rows.append(
                    Row(
                        name,
                        inputs,
                        size,
                        batches,
                        way,
                        jobs,
                        len(slurm),
                        held,
                        asked,
                        elapsed,
                        rerun,
                        done,
                        failed,
                    )
                )
                print(
                    f"{name}, batch_size {size} ({batches} batches), {way}: {jobs} jobs, {len(slurm)} Slurm "
                    f"jobs ({held} s, asked {asked} s), {elapsed:.1f} s (rerun {rerun:.1f} s), {done} scenes "
                    f"done, {failed} failed, load before {load:.2f}",
                    file=sys.stderr,
                )
                if not args.keep:
                    shutil.rmtree(workdir, ignore_errors=True)

    table = "\n".join(row.markdown() for row in rows)
    print(
        f"\n{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, Snakemake {version('snakemake')}, "
        f"snakemake-executor-plugin-slurm {version('snakemake-executor-plugin-slurm')}, "
        f"{slurm_version()}; {' '.join(slurm_options())}\n\n"
        "| data | batch_size (batches) | one Slurm job per | jobs | Slurm jobs submitted "
        "| their Slurm run time | their time limits | wall time | no-op rerun | scenes done / failed |\n"
        f"| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}"
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
