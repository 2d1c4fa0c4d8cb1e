"""The workflow on a real Slurm cluster, with its Slurm profile, against the same data run locally.

The rules run per batch of inputs, and the profile makes each batch one Slurm job: the test data
is cut into several batches (a small batch_size), and the cluster run must submit one Slurm job per
batch, run every job of a batch in it, compute every input exactly once (the batch logs), and give
the index rows of the local run.

The cluster run needs a reachable Slurm cluster with an idle node (CI brings one up on localhost
with ../shared/ci/slurm/up.sh), Snakemake's Slurm executor plugin (pip install '.[slurm]') and the
real sample files. Where the cluster or the plugin is missing the test is skipped with that reason,
unless BIOISCC_REQUIRE_SLURM=1 (CI), which turns their absence into a failure. On a cluster without
accounting (no sacct) it adds `--slurm-status-command squeue`, as the README says such a cluster
needs; the partition is the cluster's default one (BIOISCC_SLURM_PARTITION to choose another).

How the resources of the batch jobs follow the size of their inputs is checked without a cluster,
on Snakemake's dry runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, json_lines

pytest.importorskip("snakemake")
tifffile = pytest.importorskip("tifffile")
np = pytest.importorskip("numpy")

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
#: the test data's config: batches of 2 inputs on average, so that there are several, one with
#: a broken input beside a good one; an input of 1 MiB or more (the truncated CZI, the DV) alone.
#: No retry of the broken inputs: a rerun must find nothing to do.
CONFIG = "input_dir: data\nretry_failed: false\nbatch_size: 2\nbatch_alone_mb: 1\n"
#: the rules that run per batch, in the group the profile makes one Slurm job of
PER_BATCH_RULES = {"walk", "hash", "extract_views", "mix", "index_batch"}
#: the batch logs of the steps (results/_batches/<batch>/<step>.jsonl): one line per input
STEPS = ("walk", "hash", "views", "mix")


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
    """(rule, batch) of every job a Snakemake output reports (only its local jobs: local_only)."""
    found: list[list[Any]] = []
    rule_line = r"^\s*localrule (\w+):$" if local_only else r"^\s*(?:local)?rule (\w+):$"
    for line in output.splitlines():
        if rule := re.match(rule_line, line):
            found.append([rule.group(1), None])
        elif re.match(r"^\s*(?:local)?rule \w+:$", line):
            found.append([None, None])  # a job of the other kind: its wildcards are not ours
        elif (batch := re.match(r"^\s+wildcards: batch=(.+)$", line)) and found:
            found[-1][1] = batch.group(1)
    return {(rule, batch) for rule, batch in found if rule is not None}


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


def batches(workdir: Path) -> dict[str, list[str]]:
    """Batch -> the inputs it holds (relative to data/), as the workflow wrote its batch files."""
    root = workdir / "results" / "_batches"
    names = [Path(line).parent.name for line in (root / "batches.txt").read_text().splitlines()]
    return {
        name: [
            entry["source"].removeprefix("data/")
            for entry in json_lines((root / name / "inputs.jsonl").read_text())
        ]
        for name in names
    }


def batch_logs(workdir: Path, step: str) -> list[dict[str, Any]]:
    """Every line of the step's batch logs, of every batch."""
    return [
        entry
        for log in sorted((workdir / "results" / "_batches").glob(f"*/{step}.jsonl"))
        for entry in json_lines(log.read_text())
    ]


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
    (root / "config" / "config.yaml").write_text(CONFIG)
    return root


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


# ---- the cluster run ----


def test_cluster_run_equals_local_run(cluster: None, samples: Path, tmp_path: Path) -> None:
    local = make_data(tmp_path / "local", samples)
    on_slurm = shutil.copytree(local, tmp_path / "slurm", symlinks=True)

    local_output = snakemake(local, "--cores", "2")
    expected = jobs(local_output)
    per_batch = {(rule, batch) for rule, batch in expected if batch is not None}
    # several batches, each input in exactly one; a broken input shares its batch with a good one,
    # so that it has to fail alone inside a batch too; the inputs of 1 MiB or more are alone
    held = batches(local)
    inputs = Counter(source for sources in held.values() for source in sources)
    assert inputs == Counter(set(FROM_REPO) | set(FROM_SAMPLES) | set(BROKEN))
    assert {batch for _, batch in per_batch} == set(held) and len(held) > 2, held
    assert {rule for rule, _ in per_batch} == PER_BATCH_RULES
    assert any(set(sources) & set(BROKEN) and set(sources) - set(BROKEN) for sources in held.values()), held
    assert [sources for sources in held.values() if "dv/toxo.dv" in sources] == [["dv/toxo.dv"]]

    output = snakemake(on_slurm, "--workflow-profile", str(PROFILE), *slurm_options())

    # the same jobs as locally; on the submitting machine only the run-wide local rules
    assert batches(on_slurm) == held
    assert jobs(output) == expected
    run_wide = {("index", None), ("duplicates", None), ("page", None), ("all", None)}
    assert jobs(output, local_only=True) == expected - per_batch == run_wide
    # one Slurm job per batch (group-components), which ran every job of that batch and no other,
    # and which Slurm records as completed
    submitted = slurm_submissions(output)
    assert len(submitted) == len(held), output
    assert {job_id: slurm_state(job_id) for job_id in submitted} == dict.fromkeys(submitted, "COMPLETED")
    in_slurm_job: dict[str, set[tuple[str, str | None]]] = {}
    for job_id, log in submitted.items():
        assert log.name == f"{job_id}.log"  # written by that Slurm job (sbatch --output %j.log)
        # the Snakemake that the Slurm job runs in a job step runs its jobs as local jobs
        in_slurm_job[job_id] = jobs(log.read_text(), local_only=True)
    assert sorted(batch for ran in in_slurm_job.values() for _, batch in ran) == sorted(
        batch for _, batch in per_batch
    )
    for ran in in_slurm_job.values():
        (batch,) = {batch for _, batch in ran}
        assert ran == {(rule, batch) for rule in PER_BATCH_RULES}

    # what the batch commands did: every input computed exactly once per step (no input left out,
    # none done twice by a retry), failed only for the broken inputs, as in the local run
    for step in STEPS:
        entries = batch_logs(on_slurm, step)
        assert Counter(e["source"].removeprefix("data/") for e in entries) == inputs, step
        assert {e["action"] for e in entries} == {"computed"}, step
        assert {e["source"].removeprefix("data/") for e in entries if e["status"] != "ok"} <= set(BROKEN)
        assert sorted((e["source"], e["status"]) for e in batch_logs(local, step)) == sorted(
            (e["source"], e["status"]) for e in entries
        ), step
    assert [e["status"] for e in batch_logs(on_slurm, "walk") if "multichannel" in e["source"]] == ["failed"]

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

    # a rerun submits nothing, and leaves the batch logs as they were
    logs = {step: batch_logs(on_slurm, step) for step in STEPS}
    rerun = snakemake(on_slurm, "--workflow-profile", str(PROFILE), *slurm_options())
    assert "Nothing to be done" in rerun
    assert slurm_submissions(rerun) == {} and jobs(rerun) == set()
    assert {step: batch_logs(on_slurm, step) for step in STEPS} == logs


# ---- resources (no cluster needed) ----


def write_sparse_tiff(path: Path, shape: tuple[int, ...]) -> None:
    """An uncompressed uint16 TIFF of this shape, its pixels never written (a sparse file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = tifffile.memmap(path, shape=shape, dtype=np.uint16)
    image.flush()
    del image


def planned(workdir: Path) -> dict[tuple[str, str], dict[str, int]]:
    """(rule, batch) -> threads (hash), mem_mb and runtime of every per-batch job a dry run plans."""
    output = snakemake(workdir, "--cores", "2", "-n", "-p")
    found: dict[tuple[str, str], dict[str, int]] = {}
    rule = batch = None
    for line in output.splitlines():
        if match := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            rule, batch = match.group(1), None
        elif match := re.match(r"^\s+wildcards: batch=(.+)$", line):
            batch = match.group(1)
        elif (match := re.match(r"^\s+resources: (.+)$", line)) and rule and batch:
            resources = dict(item.split("=", 1) for item in match.group(1).split(", "))
            found[rule, batch] = {"mem_mb": int(resources["mem_mb"]), "runtime": int(resources["runtime"])}
        elif (match := re.search(r" --threads (\d+) ", line)) and rule == "hash" and batch:
            found[rule, batch]["threads"] = int(match.group(1))
    return found


def per_input(
    workdir: Path, found: dict[tuple[str, str], dict[str, int]]
) -> dict[tuple[str, str], dict[str, int]]:
    """The planned jobs by (rule, input), for batches that hold one input each (the batch files, which
    the workflow writes when it starts, even on a dry run, say which)."""
    held = batches(workdir)
    assert all(len(sources) == 1 for sources in held.values()), held
    return {(rule, held[batch][0]): resources for (rule, batch), resources in found.items()}


def test_resources_follow_the_size_of_the_input(tmp_path: Path) -> None:
    """The formulas of workflow/rules/common.smk: from the bytes on disk, then from the manifest."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("input_dir: data\n")
    write_sparse_tiff(tmp_path / "data" / "small.tif", (2, 64, 64))  # 16 KiB of pixels
    write_sparse_tiff(tmp_path / "data" / "large.tif", (32, 8192, 8192))  # 4 GiB, 128 MiB planes
    mib = 1 << 20

    # before the walk: the pixels of a TIFF taken as up to twice its bytes, in planes of <= 256 MiB;
    # the large input (batch_alone_mb, default 1024) is a batch of its own, so is then the small one
    before = per_input(tmp_path, planned(tmp_path))
    disk = (tmp_path / "data" / "large.tif").stat().st_size
    assert before["hash", "small.tif"] == {"threads": 1, "mem_mb": 1024, "runtime": 2}
    assert before["hash", "large.tif"] == {
        "threads": 2,
        "mem_mb": 512 + 1024 + 3 * 256,
        "runtime": 2 + 3 * disk // 20_000_000 // 60,
    }
    assert before["extract_views", "large.tif"]["mem_mb"] == before["hash", "large.tif"]["mem_mb"]
    assert before["walk", "large.tif"] == {"mem_mb": 1024, "runtime": 2}
    assert before["mix", "large.tif"] == before["index_batch", "large.tif"] == {"mem_mb": 1024, "runtime": 2}

    # after the walk: the manifest's pixels (4 GiB, in planes of 128 MiB)
    snakemake(tmp_path, "--cores", "2", "--until", "walk")
    after = per_input(tmp_path, planned(tmp_path))
    assert after["hash", "small.tif"] == {"threads": 1, "mem_mb": 1024, "runtime": 2}
    assert after["hash", "large.tif"] == {
        "threads": 2,
        "mem_mb": 512 + 1024 + 3 * 128,
        "runtime": 2 + (4096 * mib + disk) // 20_000_000 // 60,
    }
    assert ("walk", "large.tif") not in after

    # a changed input: its manifest no longer describes it, so the bytes on disk count again
    write_sparse_tiff(tmp_path / "data" / "large.tif", (32, 8192, 8192))
    assert per_input(tmp_path, planned(tmp_path))["hash", "large.tif"] == before["hash", "large.tif"]


def test_resources_of_a_batch(tmp_path: Path) -> None:
    """A batch asks for the memory of its most demanding input and the time of all its inputs."""
    (tmp_path / "config").mkdir()
    # one batch for everything: no cut (about 1 in 100,000 keys) and no input alone
    (tmp_path / "config" / "config.yaml").write_text(
        "input_dir: data\nbatch_size: 100000\nbatch_alone_mb: 100000\n"
    )
    write_sparse_tiff(tmp_path / "data" / "large.tif", (32, 8192, 8192))  # 4 GiB, 128 MiB planes
    # 100 inputs read in under a second each (3 x 6.5 MB at 20 MB/s), 97 s together
    for i in range(100):
        write_sparse_tiff(tmp_path / "data" / "medium" / f"{i:03d}.tif", (1, 1800, 1800))
    write_sparse_tiff(tmp_path / "data" / "small.tif", (2, 64, 64))
    disks = [path.stat().st_size for path in (tmp_path / "data").rglob("*.tif")]
    assert len(disks) == 102 and all(3 * size < 20_000_000 for size in sorted(disks)[:-1])

    found = planned(tmp_path)
    (batch,) = batches(tmp_path)
    assert len(batches(tmp_path)[batch]) == 102
    largest = 512 + 1024 + 3 * 256  # the large TIFF's (its pixels: twice its bytes, planes <= 256 MiB)
    reading = 2 + sum(3 * size for size in disks) // 20_000_000 // 60  # every input's bytes, summed
    # each of the 100 TIFFs alone reads in under a second: the bytes are summed before rounding
    assert reading > 2 + 3 * max(disks) // 20_000_000 // 60
    assert found["hash", batch] == {"threads": 2, "mem_mb": largest, "runtime": reading}
    assert found["extract_views", batch] == {"mem_mb": largest, "runtime": reading}
    assert found["walk", batch] == {"mem_mb": 1024, "runtime": 2}
    assert found["mix", batch] == found["index_batch", batch] == {"mem_mb": 1024, "runtime": 2}
