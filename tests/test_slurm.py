"""The workflow on a real Slurm cluster, with its Slurm profile, against the same data run locally.

The cluster run needs a reachable Slurm cluster with an idle node (CI brings one up on localhost
with ../shared/ci/slurm/up.sh), Snakemake's Slurm executor plugin (pip install '.[slurm]') and the
real sample files. Where the cluster or the plugin is missing the test is skipped with that reason,
unless BIOISCC_REQUIRE_SLURM=1 (CI), which turns their absence into a failure. On a cluster without
accounting (no sacct) it adds `--slurm-status-command squeue`, as the README says such a cluster
needs; the partition is the cluster's default one (BIOISCC_SLURM_PARTITION to choose another).

How the resources of the jobs follow the size of their input is checked without a cluster, on
Snakemake's dry runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, json_lines

pytest.importorskip("snakemake")
tifffile = pytest.importorskip("tifffile")
np = pytest.importorskip("numpy")
yaml = pytest.importorskip("yaml")

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SNAKEFILE = REPO / "workflow" / "Snakefile"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
#: a run on the cluster may not take longer than this (seconds); it takes about 2 minutes on CI
TIMEOUT = 1200

#: the data directory: real samples (path below it -> where it comes from)
SAMPLE_DATA = REPO / "resources" / "sample-data"
FROM_REPO = {
    "nd2/example-zstack.nd2": "nd2/example-zstack.nd2",
    "ome-zarr/example-zstack.ome.zarr": "ome-zarr/example-zstack.ome.zarr",
    "ome-tiff/ome-types_tiny.ome.tiff": "ome-tiff/ome-types_tiny.ome.tiff",
    "dv/toxo.dv": "dv/toxo.dv",
}
FROM_SAMPLES = {
    "czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi": "czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi",  # 3 scenes, a mosaic
    "lif/PR2729_frameOrderCombinedScanTypes.lif": "lif/PR2729_frameOrderCombinedScanTypes.lif",
    "ome-tiff/FOV7_HV110_P0500510000.ome.tiff": "ome-tiff/FOV7_HV110_P0500510000.ome.tiff",
}
#: corrupt copies (name -> sample, the fraction of its bytes kept): the truncated CZI keeps its
#: directory and its first scene (scene 1 fails alone), the truncated ND2 cannot even be walked
BROKEN = {
    "broken/WellD6-7_S2.czi": ("czi/WellD6-7_S2.czi", 0.8),
    "broken/example-multichannel.nd2": ("nd2/example-multichannel.nd2", 0.5),
}


# ---- helpers ----


def slurm_cluster() -> str | None:
    """Why the cluster run cannot happen here, or None when it can."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "Snakemake's Slurm executor plugin is not installed (pip install '.[slurm]')"
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm client (sinfo, sbatch) on PATH"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if result.returncode != 0:
        return f"no Slurm cluster reachable (sinfo: {result.stderr.strip() or result.returncode})"
    if not set(result.stdout.split()) & {"idle", "mix", "alloc", "comp"}:
        return f"no Slurm node is up (sinfo: {' '.join(result.stdout.split()) or 'no nodes'})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    """Skip (fail under BIOISCC_REQUIRE_SLURM=1) without a Slurm cluster to run on."""
    reason = slurm_cluster()
    if reason is not None:
        if os.environ.get("BIOISCC_REQUIRE_SLURM") == "1":
            pytest.fail(reason + "; BIOISCC_REQUIRE_SLURM=1 requires the run on Slurm")
        pytest.skip(reason)


def slurm_options() -> list[str]:
    """What this cluster needs beyond the profile (the CI settings of the README)."""
    options = ["--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
    partition = os.environ.get("BIOISCC_SLURM_PARTITION") or default_partition()
    if partition:
        options += ["--default-resources", f"slurm_partition={partition}"]
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    if re.search(r"^AccountingStorageType\s*=\s*accounting_storage/none", config, re.MULTILINE):
        options += ["--slurm-status-command", "squeue"]  # no sacct without accounting
    return options


def default_partition() -> str | None:
    partitions = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
    return next((p.rstrip("*") for p in partitions if p.endswith("*")), None)


def snakemake(workdir: Path, *args: str, timeout: float = TIMEOUT) -> str:
    """Run the venv's Snakemake in `workdir` (its jobs inherit the venv); its whole output."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *args]
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # Snakemake cancels its Slurm jobs
        output, _ = process.communicate(timeout=120)
        raise AssertionError(f"snakemake {' '.join(args)} took over {timeout} s:\n{output}") from None
    if process.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} exited {process.returncode}:\n{output}")
    return output


def jobs(output: str, local_only: bool = False) -> set[tuple[str, str | None]]:
    """(rule, key) of every job a Snakemake output reports (only its local jobs: local_only)."""
    found: list[list[Any]] = []
    rule_line = r"^\s*localrule (\w+):$" if local_only else r"^\s*(?:local)?rule (\w+):$"
    for line in output.splitlines():
        if rule := re.match(rule_line, line):
            found.append([rule.group(1), None])
        elif re.match(r"^\s*(?:local)?rule \w+:$", line):
            found.append([None, None])  # a job of the other kind: its wildcards are not ours
        elif (key := re.match(r"^\s+wildcards: key=(.+)$", line)) and found:
            found[-1][1] = key.group(1)
    return {(rule, key) for rule, key in found if rule is not None}


def slurm_submissions(output: str) -> dict[str, Path]:
    """Slurm job id -> its log, for every job Snakemake submitted."""
    pattern = r"has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$"
    return {m.group(1): Path(m.group(2)) for m in re.finditer(pattern, output, re.MULTILINE)}


def slurm_state(job_id: str) -> str:
    """The state Slurm records for a job (scontrol, or sacct once slurmctld has forgotten it)."""
    shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    if state := re.search(r"\bJobState=(\S+)", shown.stdout):
        return state.group(1)
    accounted = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True
    )
    return accounted.stdout.strip() or f"unknown ({shown.stderr.strip()})"


def normalized_rows(workdir: Path) -> list[dict[str, Any]]:
    """The index rows, with the absolute path of the workspace (in error messages) taken out."""
    text = (workdir / "results" / "index.jsonl").read_text()
    return json_lines(text.replace(json.dumps(str(workdir))[1:-1], "WORKDIR"))


def make_data(root: Path, samples: Path) -> Path:
    data = root / "data"
    for target, source in FROM_REPO.items():
        copy(SAMPLE_DATA / source, data / target)
    for target, source in FROM_SAMPLES.items():
        copy(samples / source, data / target)
    for target, (source, kept) in BROKEN.items():
        content = (samples / source).read_bytes()
        (data / target).parent.mkdir(parents=True, exist_ok=True)
        (data / target).write_bytes(content[: int(len(content) * kept)])
    (root / "config").mkdir()
    # no retry of the broken inputs: a rerun must find nothing to do
    (root / "config" / "config.yaml").write_text("input_dir: data\nretry_failed: false\n")
    return root


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def bundle_size() -> int:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    sizes = dict(item.split("=") for item in profile["group-components"])
    return int(sizes["bioiscc_input"])


# ---- the cluster run ----


def test_cluster_run_equals_local_run(cluster: None, samples: Path, tmp_path: Path) -> None:
    local = make_data(tmp_path / "local", samples)
    on_slurm = shutil.copytree(local, tmp_path / "slurm", symlinks=True)

    local_output = snakemake(local, "--cores", "2")
    expected = jobs(local_output)
    per_input = {(rule, key) for rule, key in expected if key is not None}
    keys = {key for _, key in per_input}
    assert len(keys) == len(FROM_REPO) + len(FROM_SAMPLES) + len(BROKEN)

    output = snakemake(on_slurm, "--workflow-profile", str(PROFILE), *slurm_options())

    # the same jobs as locally; on the submitting machine only the run-wide local rules
    assert jobs(output) == expected
    assert jobs(output, local_only=True) == expected - per_input == {("index", None), ("all", None)}
    # every other job ran inside a Slurm job that Slurm records as completed; the small inputs
    # went in bundles (group-components), not one Slurm job per job
    submitted = slurm_submissions(output)
    assert len(submitted) == math.ceil(len(keys) / bundle_size()), output
    assert {job_id: slurm_state(job_id) for job_id in submitted} == dict.fromkeys(submitted, "COMPLETED")
    ran_in_slurm: set[tuple[str, str | None]] = set()
    for job_id, log in submitted.items():
        assert log.name == f"{job_id}.log"  # written by that Slurm job (sbatch --output %j.log)
        # the Snakemake that the Slurm job runs in a job step runs its jobs as local jobs
        ran_in_slurm |= jobs(log.read_text(), local_only=True)
    assert ran_in_slurm == per_input

    # the same codes as the local run, failed rows only for the scenes of the broken inputs
    rows = normalized_rows(on_slurm)
    assert rows == normalized_rows(local)
    assert [(r["scene"], r["status"]) for r in rows if r["input"] == "broken/WellD6-7_S2.czi"] == [
        (0, "ok"),
        (1, "failed"),
    ]
    assert [(r["scene"], r["status"]) for r in rows if r["input"] == "broken/example-multichannel.nd2"] == [
        (None, "failed")
    ]
    assert all(r["error"] for r in rows if r["status"] == "failed")
    assert all(r["status"] == "ok" for r in rows if r["input"] not in BROKEN)
    assert {r["input"] for r in rows} == set(FROM_REPO) | set(FROM_SAMPLES) | set(BROKEN)

    # nothing is written outside results/, logs/ and .snakemake/ (Snakemake's, the Slurm logs)
    assert sorted(p.name for p in on_slurm.iterdir()) == [".snakemake", "config", "data", "logs", "results"]

    # a rerun submits nothing
    rerun = snakemake(on_slurm, "--workflow-profile", str(PROFILE), *slurm_options())
    assert "Nothing to be done" in rerun
    assert slurm_submissions(rerun) == {} and jobs(rerun) == set()


# ---- resources (no cluster needed) ----


def write_sparse_tiff(path: Path, shape: tuple[int, ...]) -> None:
    """An uncompressed uint16 TIFF of this shape, its pixels never written (a sparse file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = tifffile.memmap(path, shape=shape, dtype=np.uint16)
    image.flush()
    del image


def planned(workdir: Path) -> dict[tuple[str, str], dict[str, int]]:
    """(rule, key) -> threads, mem_mb and runtime of every job a dry run plans."""
    output = snakemake(workdir, "--cores", "2", "-n", "-p")
    found: dict[tuple[str, str], dict[str, int]] = {}
    rule = key = None
    for line in output.splitlines():
        if match := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            rule, key = match.group(1), None
        elif match := re.match(r"^\s+wildcards: key=(.+)$", line):
            key = match.group(1)
        elif (match := re.match(r"^\s+resources: (.+)$", line)) and rule and key:
            resources = dict(item.split("=", 1) for item in match.group(1).split(", "))
            found[rule, key] = {"mem_mb": int(resources["mem_mb"]), "runtime": int(resources["runtime"])}
        elif (match := re.search(r" --threads (\d+) ", line)) and rule == "hash" and key:
            found[rule, key]["threads"] = int(match.group(1))
    return found


def test_resources_follow_the_size_of_the_input(tmp_path: Path) -> None:
    """The formulas of workflow/rules/common.smk: from the bytes on disk, then from the manifest."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("input_dir: data\n")
    write_sparse_tiff(tmp_path / "data" / "small.tif", (2, 64, 64))  # 16 KiB of pixels
    write_sparse_tiff(tmp_path / "data" / "large.tif", (32, 8192, 8192))  # 4 GiB, 128 MiB planes
    mib = 1 << 20

    # before the walk: the pixels of a TIFF taken as up to twice its bytes, in planes of <= 256 MiB
    before = planned(tmp_path)
    disk = (tmp_path / "data" / "large.tif").stat().st_size
    assert before["hash", "small.tif"] == {"threads": 1, "mem_mb": 1024, "runtime": 2}
    assert before["hash", "large.tif"] == {
        "threads": 2,
        "mem_mb": 512 + 1024 + 3 * 256,
        "runtime": 2 + 3 * disk // 20_000_000 // 60,
    }
    assert before["extract_views", "large.tif"]["mem_mb"] == before["hash", "large.tif"]["mem_mb"]
    assert before["walk", "large.tif"] == {"mem_mb": 1024, "runtime": 2}

    # after the walk: the manifest's pixels (4 GiB, in planes of 128 MiB)
    snakemake(tmp_path, "--cores", "2", "--until", "walk")
    after = planned(tmp_path)
    assert after["hash", "small.tif"] == {"threads": 1, "mem_mb": 1024, "runtime": 2}
    assert after["hash", "large.tif"] == {
        "threads": 2,
        "mem_mb": 512 + 1024 + 3 * 128,
        "runtime": 2 + (4096 * mib + disk) // 20_000_000 // 60,
    }
    assert ("walk", "large.tif") not in after

    # a changed input: its manifest no longer describes it, so the bytes on disk count again
    write_sparse_tiff(tmp_path / "data" / "large.tif", (32, 8192, 8192))
    assert planned(tmp_path)["hash", "large.tif"] == before["hash", "large.tif"]
