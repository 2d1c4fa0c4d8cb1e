"""The Snakemake workflow, run for real (`snakemake --cores 2`) in temporary directories.

One workspace (small TIFFs, an OME-TIFF with two scenes, an OME-Zarr store, awkward names) is run
once per module, in batches of about BATCH_SIZE inputs; tests that change it work on a copy (mtimes
kept, so the copy is up to date). Which jobs ran is read from the jobs Snakemake reports; which
inputs were computed (not reused) inside them, from the batch logs the commands write
(results/_batches/<batch>/<step>.jsonl).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bioiscc import records
from tests.conftest import REPO, json_lines, run_cli

pytest.importorskip("snakemake")
tifffile = pytest.importorskip("tifffile")
np = pytest.importorskip("numpy")

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SNAKEFILE = REPO / "workflow" / "Snakefile"
BATCH_RULES = ("walk", "hash", "extract_views", "mix", "index_batch")
#: the batch logs of the commands, by the rule that writes them
STEP_OF_RULE = {"walk": "walk", "hash": "hash", "extract_views": "views", "mix": "mix"}
RUN_WIDE = [("all", None), ("duplicates", None), ("index", None), ("page", None)]
#: inputs per batch on average in the workspace (7 inputs: several batches)
BATCH_SIZE = 3

#: input (relative to data/) -> its key (results/<key>/)
INPUTS = {
    "plain.tif": "plain.tif",
    "two scenes.ome.tif": "two%20scenes.ome.tif",
    "a.b.tif": "a.b.tif",
    "a_b.tif": "a_b.tif",
    "sub/deeper/ünïcode (1).TIF": "sub/deeper/ünïcode%20%281%29.TIF",
    "index.tsv/inner.tif": "%69ndex.tsv/inner.tif",
    "store.ome.zarr": "store.ome.zarr",
}


# ---- helpers ----


def snakemake(workdir: Path, *args: str, snakefile: Path = SNAKEFILE, check: bool = True) -> str:
    """Run the venv's Snakemake in `workdir`; its whole output (stdout and stderr)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)]
    command += ["--directory", str(workdir), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} exited {result.returncode}:\n{output}")
    return output


def jobs(output: str) -> list[tuple[str, str | None]]:
    """(rule, batch) of every job Snakemake reports running (or, with -n, would run)."""
    found: list[list[Any]] = []
    for line in output.splitlines():
        if rule := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            found.append([rule.group(1), None])
        elif (batch := re.match(r"^\s+wildcards: batch=(.+)$", line)) and found:
            found[-1][1] = batch.group(1)
    return sorted((rule, batch) for rule, batch in found)


def batches(workdir: Path, prefix: str = "") -> dict[str, list[str]]:
    """batch -> the inputs (relative to data/) it holds, from the batch files the workflow writes."""
    found = {}
    for path in sorted((workdir / prefix / "results" / "_batches").glob("*/inputs.jsonl")):
        found[path.parent.name] = [relative(entry["source"]) for entry in json_lines(path.read_text())]
    return found


def relative(source: str) -> str:
    return source.split("data/", 1)[1]


def batch_of(workdir: Path, name: str, prefix: str = "") -> str:
    (batch,) = [batch for batch, names in batches(workdir, prefix).items() if name in names]
    return batch


def jobs_of(workdir: Path, *names: str, rules: tuple[str, ...] = BATCH_RULES) -> list[tuple[str, str | None]]:
    """The jobs of the batches these inputs are in, the index and `all`."""
    chosen = {batch_of(workdir, name) for name in names}
    return sorted([(rule, batch) for batch in chosen for rule in rules] + RUN_WIDE)


def computed(workdir: Path, since: float, prefix: str = "") -> dict[str, list[str]]:
    """Step -> the inputs its command computed (not reused) since then, from the batch logs."""
    found: dict[str, list[str]] = {step: [] for step in STEP_OF_RULE.values()}
    for step in found:
        for log in (workdir / prefix / "results" / "_batches").glob(f"*/{step}.jsonl"):
            if log.stat().st_mtime < since:
                continue
            found[step] += [
                relative(e["source"]) for e in json_lines(log.read_text()) if e["action"] == "computed"
            ]
        found[step].sort()
    return found


def only(*names: str, steps: tuple[str, ...] = tuple(STEP_OF_RULE.values())) -> dict[str, list[str]]:
    """What `computed` gives when exactly these inputs were computed by these steps."""
    return {step: sorted(names) if step in steps else [] for step in STEP_OF_RULE.values()}


def run_and_see(workdir: Path, *args: str) -> tuple[list[tuple[str, str | None]], dict[str, list[str]], str]:
    """Run Snakemake: the jobs it ran, the inputs computed inside them, and its output."""
    since = time.time() - 0.01
    output = snakemake(workdir, *args)
    return jobs(output), computed(workdir, since), output


def write_tiff(path: Path, seed: int, shape: tuple[int, ...] = (2, 16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(0, 4096, size=shape, dtype=np.uint16)
    tifffile.imwrite(path, data)


def write_two_scenes(path: Path) -> None:
    rng = np.random.default_rng(7)
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(rng.integers(0, 255, size=(8, 12), dtype=np.uint8), metadata={"axes": "YX"})
        writer.write(rng.integers(0, 4096, size=(2, 10, 6), dtype=np.uint16), metadata={"axes": "CYX"})


def write_store(path: Path) -> None:
    """An OME-Zarr store (NGFF 0.4), 2x16x16 uint16 in 8 chunks of 1x8x8."""
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    data = np.random.default_rng(3).integers(1, 4096, size=(2, 16, 16), dtype=np.uint16)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(
        data, group, scale_factors=[], axes="cyx", fmt=FormatV04(), storage_options={"chunks": (1, 8, 8)}
    )


def store_array(path: Path) -> Any:
    import zarr

    level0 = json.loads((path / ".zattrs").read_text())["multiscales"][0]["datasets"][0]["path"]
    return zarr.open_array(str(path / level0), mode="r+")


def index_rows(workdir: Path) -> list[dict[str, Any]]:
    return json_lines((workdir / "results" / "index.jsonl").read_text())


def copy_workspace(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def make_workspace(root: Path) -> Path:
    data = root / "data"
    write_tiff(data / "plain.tif", seed=1)
    write_two_scenes(data / "two scenes.ome.tif")
    write_tiff(data / "a.b.tif", seed=2, shape=(4, 4))
    write_tiff(data / "a_b.tif", seed=3, shape=(5, 4))
    write_tiff(data / "sub" / "deeper" / "ünïcode (1).TIF", seed=4, shape=(3, 7))
    write_tiff(data / "index.tsv" / "inner.tif", seed=5, shape=(6, 6))
    write_store(data / "store.ome.zarr")
    write_tiff(data / ".hidden.tif", seed=6)  # excluded by default
    (data / "notes.txt").write_text("not an image\n")  # not included
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(f"input_dir: data\nbatch_size: {BATCH_SIZE}\n")
    return root


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The workspace after its first run, and that run's output."""
    workdir = make_workspace(tmp_path_factory.mktemp("workflow") / "ws")
    return workdir, snakemake(workdir)


@pytest.fixture
def workspace(done: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the run workspace, for a test to change."""
    return copy_workspace(done[0], tmp_path / "ws")


# ---- tests ----


def test_first_run_codes_and_index(done: tuple[Path, str]) -> None:
    workdir, output = done
    held = batches(workdir)
    assert sorted(name for names in held.values() for name in names) == sorted(INPUTS)
    assert len(held) > 1  # several batches, each run once by each rule
    assert jobs(output) == sorted([(rule, batch) for batch in held for rule in BATCH_RULES] + RUN_WIDE)
    assert computed(workdir, 0) == only(*INPUTS)
    rows = index_rows(workdir)
    assert sorted({row["input"] for row in rows}) == sorted(INPUTS)
    assert all(row["status"] == "ok" and row["error"] is None for row in rows), rows
    assert "bioiscc index: 7 inputs, 8 scenes: 8 done, 0 failed; views: 8 done, 0 failed" in output

    for name in INPUTS:  # the codes are those `bioiscc hash` gives for the same file
        expected = json_lines(run_cli("hash", f"data/{name}", cwd=workdir, check=True).stdout)
        got = [row for row in rows if row["input"] == name]
        assert [
            (r["scene"], r["name"], r["iscc_code"], r["data_code"], r["instance_code"], r["datahash"])
            for r in got
        ] == [
            (e["scene"]["index"], e["scene"]["name"], e["iscc_code"], *e["units"], e["datahash"])
            for e in expected
        ]
    assert [row["scene"] for row in rows if row["input"] == "two scenes.ome.tif"] == [0, 1]

    # the container is what `bioiscc biocode` gives, and the TSV has the same rows as the JSONL
    for name, key in INPUTS.items():
        container = json.loads((workdir / "results" / key / "container.json").read_text())
        biocode = json.loads(run_cli("biocode", f"data/{name}", cwd=workdir, check=True).stdout)
        assert container == biocode
        records.validate(container)
        records.validate(json.loads((workdir / "results" / key / "walk.json").read_text()))
    tsv = (workdir / "results" / "index.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:5] == ["input", "scene", "name", "status", "iscc_code"]
    assert [line.split("\t")[4] for line in tsv[1:]] == [row["iscc_code"] for row in rows]
    html = (workdir / "results" / "index.html").read_text()
    assert '<table class="rows"' in html  # the views as thumbnails, in the rows embedded as JSON
    assert html.count('"data:image/png;base64,') == sum(row["views"] for row in rows) > 8

    # the views and codes are those `bioiscc imagecode` gives (same defaults: 5 views, 256 bits)
    for name, key in INPUTS.items():
        expected = json_lines(run_cli("imagecode", f"data/{name}", cwd=workdir, check=True).stdout)
        got = [row for row in rows if row["input"] == name]
        assert [(r["iscc_mixed"], r["image_iscc_code"], r["views"], r["views_status"]) for r in got] == [
            (e["iscc_mixed"], e["iscc_code"], len(e["views"]), "ok") for e in expected
        ]
        images = json_lines((workdir / "results" / key / "image.jsonl").read_text())
        assert [[v["iscc_image"] for v in i["views"]] for i in images] == [
            [v["iscc_image"] for v in e["views"]] for e in expected
        ]
        for image in images:
            records.validate(image)
            for view in image["views"]:  # PNG paths are relative to image.jsonl
                png = workdir / "results" / key / view["png"]
                assert png.read_bytes().startswith(b"\x89PNG")

    # nothing is written outside results/ and logs/; every job has its log and benchmark
    assert sorted(p.name for p in workdir.iterdir()) == [".snakemake", "config", "data", "logs", "results"]
    for batch in held:
        for rule in BATCH_RULES:
            name = "index" if rule == "index_batch" else rule
            assert (workdir / "logs" / "_batches" / batch / f"{name}.log").exists()
            assert (workdir / "logs" / "_batches" / batch / f"{name}.benchmark.tsv").exists()
    # results are as readable as any new file (not private, as a bare mkstemp would leave them)
    assert (
        workdir / "results" / "plain.tif" / "walk.json"
    ).stat().st_mode & 0o777 == 0o666 & ~current_umask()
    # the per-input results are where they were before batches: results/<key>/
    for key in INPUTS.values():
        assert {"walk.json", "scenes.jsonl", "container.json", "image.jsonl", "views"} <= {
            p.name for p in (workdir / "results" / key).iterdir()
        }


def test_rerun_with_nothing_changed_runs_no_job(done: tuple[Path, str]) -> None:
    workdir, _ = done
    output = snakemake(workdir)
    assert jobs(output) == []
    assert "Nothing to be done" in output


def test_partial_run_is_not_taken_for_damage(tmp_path: Path) -> None:
    """After `--until walk` the batches' later steps have simply not run: the next run plans those,
    not the walk again (a missing later log is no result removed by hand)."""
    workdir = tmp_path / "ws"
    write_tiff(workdir / "data" / "plain.tif", seed=1)
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text("input_dir: data\n")
    snakemake(workdir, "--until", "walk")
    output = snakemake(workdir, "-n")
    planned = [rule for rule, _ in jobs(output)]
    assert "walk" not in planned and "hash" in planned, output
    assert "changed or removed by hand" not in output


def test_changed_file_recomputes_only_itself(workspace: Path) -> None:
    write_tiff(workspace / "data" / "plain.tif", seed=100)
    assert jobs(snakemake(workspace, "-n")) == jobs_of(workspace, "plain.tif")
    ran, done, _ = run_and_see(workspace)
    assert ran == jobs_of(workspace, "plain.tif")
    assert done == only("plain.tif")  # the other inputs of its batch are reused, not recomputed
    expected = json_lines(run_cli("hash", "data/plain.tif", cwd=workspace, check=True).stdout)
    (row,) = [r for r in index_rows(workspace) if r["input"] == "plain.tif"]
    assert row["iscc_code"] == expected[0]["iscc_code"]
    assert jobs(snakemake(workspace)) == []


def test_changed_chunk_reruns_only_its_store(workspace: Path) -> None:
    store = workspace / "data" / "store.ome.zarr"
    before = store.stat().st_mtime_ns
    array = store_array(store)
    array[1, 9, 9] = array[1, 9, 9] + 1  # one chunk file rewritten, deep inside the store
    assert store.stat().st_mtime_ns == before  # so the store's own mtime cannot tell
    ran, done, _ = run_and_see(workspace)
    assert ran == jobs_of(workspace, "store.ome.zarr") and done == only("store.ome.zarr")
    expected = json_lines(run_cli("hash", "data/store.ome.zarr", cwd=workspace, check=True).stdout)
    (row,) = [r for r in index_rows(workspace) if r["input"] == "store.ome.zarr"]
    assert row["iscc_code"] == expected[0]["iscc_code"]
    assert jobs(snakemake(workspace)) == []


def test_added_file_computes_only_itself(workspace: Path) -> None:
    before = batches(workspace)
    write_tiff(workspace / "data" / "sub" / "new.tif", seed=9)
    ran, done, _ = run_and_see(workspace)
    assert done == only("sub/new.tif")
    assert "sub/new.tif" in {row["input"] for row in index_rows(workspace)}
    # membership is stable: the batches without the new input are the batches they were
    after = batches(workspace)
    changed = {batch for batch in after if after[batch] != before.get(batch)}
    assert batch_of(workspace, "sub/new.tif") in changed and len(changed) <= 2
    assert {b: names for b, names in after.items() if b not in changed} == {
        b: names for b, names in before.items() if b not in changed and b in after
    }
    assert ran == sorted([(rule, batch) for batch in changed for rule in BATCH_RULES] + RUN_WIDE)


def test_removed_file_recomputes_nothing(workspace: Path) -> None:
    (workspace / "data" / "a_b.tif").unlink()
    ran, done, _ = run_and_see(workspace)
    assert done == only()  # its batch reruns (its input list changed), reusing every other input
    assert {rule for rule, _ in ran} <= {*BATCH_RULES, *(rule for rule, _ in RUN_WIDE)}
    assert "a_b.tif" not in {row["input"] for row in index_rows(workspace)}


def test_input_inside_another_is_refused(workspace: Path) -> None:
    output = snakemake(workspace, "-n", "--config", "inputs=[data/store.ome.zarr/.zattrs]", check=False)
    assert "lies inside input data/store.ome.zarr" in output


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_changed_parameter_reruns_only_the_rules_it_affects(workspace: Path) -> None:
    ran, done, _ = run_and_see(workspace, "--config", "simprints=True")
    # mix reads the scene records (for the composite ISCC-CODE), so it follows hash
    assert ran == jobs_of(workspace, *INPUTS, rules=("hash", "mix", "index_batch"))
    assert done == only(*INPUTS, steps=("hash", "mix"))  # the walks and views are reused
    scenes = json_lines((workspace / "results" / "plain.tif" / "scenes.jsonl").read_text())
    assert len(scenes[0]["simprints"]) == 2


def extra_config(workspace: Path, text: str) -> tuple[str, str]:
    """Options for a second config file (Snakemake's --config leaves nested values strings)."""
    path = workspace / "config" / "extra.yaml"
    path.write_text(text)
    return "--configfile", str(path)


def test_changed_view_settings_rerun_only_the_views(workspace: Path) -> None:
    options = extra_config(workspace, "views:\n  max_views: 1\n  bits: 64\n")
    ran, done, _ = run_and_see(workspace, *options)
    assert ran == jobs_of(workspace, *INPUTS, rules=("extract_views", "mix", "index_batch"))
    assert done == only(*INPUTS, steps=("views", "mix"))
    rows = index_rows(workspace)
    assert all(row["views"] == 1 and row["iscc_mixed"].startswith("ISCC:EQA") for row in rows), rows
    (expected,) = json_lines(
        run_cli("imagecode", "-n", "1", "--bits", "64", "data/plain.tif", cwd=workspace, check=True).stdout
    )
    (row,) = [r for r in rows if r["input"] == "plain.tif"]
    assert row["iscc_mixed"] == expected["iscc_mixed"]
    assert jobs(snakemake(workspace, *options)) == []


def test_views_disabled(workspace: Path) -> None:
    shutil.rmtree(workspace / "results")
    ran, done, _ = run_and_see(workspace, *extra_config(workspace, "views:\n  enabled: false\n"))
    assert ran == jobs_of(workspace, *INPUTS, rules=("walk", "hash", "index_batch"))
    assert done == only(*INPUTS, steps=("walk", "hash"))
    rows = index_rows(workspace)
    assert all(row["status"] == "ok" and row["iscc_mixed"] is None for row in rows)
    assert all(row["views_status"] is None for row in rows)
    assert not list((workspace / "results").glob("*/image.jsonl"))
    assert "data:image/png" not in (workspace / "results" / "index.html").read_text()


def test_corrupt_file_fails_alone_and_is_retried(workspace: Path) -> None:
    (workspace / "data" / "broken.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 8)
    ran, done, output = run_and_see(workspace)
    assert done == only("broken.tif")
    rows = index_rows(workspace)
    (broken,) = [row for row in rows if row["input"] == "broken.tif"]
    assert broken["status"] == "failed" and broken["iscc_code"] is None and broken["error"]
    assert broken["views_status"] == "failed" and "corrupt or truncated TIFF" in broken["views_error"]
    assert all(row["status"] == row["views_status"] == "ok" for row in rows if row["input"] != "broken.tif")
    assert (
        "bioiscc index: 8 inputs, 8 scenes: 8 done, 0 failed; 1 input failed as a whole; "
        "views: 8 done, 0 failed; failed: broken.tif" in output
    )
    tsv = (workspace / "results" / "index.tsv").read_text()
    assert "broken.tif\t\t\tfailed" in tsv

    # the next run retries it (and only it); once it is readable it stays done
    ran, done, output = run_and_see(workspace)
    assert ran == jobs_of(workspace, "broken.tif") and done == only("broken.tif")
    assert (
        f"batch {batch_of(workspace, 'broken.tif')}: retrying 1 input that failed last time: "
        "data/broken.tif" in output
    )
    write_tiff(workspace / "data" / "broken.tif", seed=11)
    ran, done, _ = run_and_see(workspace)
    assert ran == jobs_of(workspace, "broken.tif") and done == only("broken.tif")
    assert all(row["status"] == "ok" for row in index_rows(workspace))
    ran, done, _ = run_and_see(workspace)  # the batch reruns once more, as its failure is gone
    assert done == only()
    assert jobs(snakemake(workspace)) == []


def test_module_with_prefix(done: tuple[Path, str], tmp_path: Path) -> None:
    """A facility includes the workflow as a module, exactly as config/README.md shows."""
    shutil.copytree(done[0] / "data", tmp_path / "data")
    (tmp_path / "data" / "broken.tif").write_bytes(b"not a tiff")
    (tmp_path / "config.yaml").write_text("bioiscc:\n  input_dir: data\n")
    (tmp_path / "Snakefile").write_text(
        f"""configfile: "config.yaml"


module bioiscc:
    snakefile:
        {str(SNAKEFILE)!r}
    config:
        config["bioiscc"]
    prefix:
        "imaging"


use rule * from bioiscc as bioiscc_*


rule all:
    input:
        rules.bioiscc_index.output.tsv,
    default_target: True
"""
    )
    facility = tmp_path / "Snakefile"
    ran = jobs(snakemake(tmp_path, snakefile=facility))
    (batch,) = batches(tmp_path, prefix="imaging")  # the default batch_size: one batch here
    assert ("bioiscc_walk", batch) in ran and ("bioiscc_index", None) in ran
    rows = json_lines((tmp_path / "imaging" / "results" / "index.jsonl").read_text())
    keys = {**INPUTS, "broken.tif": "broken.tif"}
    assert [row.pop("container") for row in rows] == [
        f"imaging/results/{keys[row['input']]}/container.json" for row in rows
    ]
    expected = [{k: v for k, v in row.items() if k != "container"} for row in index_rows(done[0])]
    assert [row for row in rows if row["input"] != "broken.tif"] == expected
    assert [row["status"] for row in rows if row["input"] == "broken.tif"] == ["failed"]
    assert (tmp_path / "imaging" / "logs" / "_batches" / batch / "walk.log").exists()
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    # the failed input is retried under the prefix too, and nothing else is recomputed
    since = time.time() - 0.01
    assert jobs(snakemake(tmp_path, snakefile=facility)) == sorted(
        [(f"bioiscc_{rule}", batch) for rule in BATCH_RULES] + [("all", None), ("bioiscc_index", None)]
    )
    assert computed(tmp_path, since, prefix="imaging") == only("broken.tif")


def test_bundled_sample_data(tmp_path: Path) -> None:
    """The quick start's data: every input done, and the ND2 and its OME-Zarr copy share a code."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    data = shutil.copytree(REPO / "resources" / "sample-data", tmp_path / "data")
    output = snakemake(tmp_path, "--config", f"input_dir={data}")
    assert "0 failed" in output
    codes = {row["input"]: row["iscc_code"] for row in index_rows(tmp_path)}
    assert set(codes) == {
        "dv/toxo.dv",
        "nd2/example-zstack.nd2",
        "ome-tiff/ome-types_tiny.ome.tiff",
        "ome-zarr/example-zstack.ome.zarr",
    }
    assert codes["nd2/example-zstack.nd2"] == codes["ome-zarr/example-zstack.ome.zarr"]
    # the tiny OME-TIFF (6 x 6, constant channels) has flat views, and the index says so
    assert {row["input"] for row in index_rows(tmp_path) if row["views_flat"]} == {
        "ome-tiff/ome-types_tiny.ome.tiff"
    }
    # the two share pixels: duplicates.tsv and the page say so, and nothing else is related
    pairs = (tmp_path / "results" / "duplicates.tsv").read_text().splitlines()
    assert [line.split("\t")[:6] for line in pairs[1:]] == [
        ["1", "identical", "nd2/example-zstack.nd2", "0", "ome-zarr/example-zstack.ome.zarr", "0"]
    ]
    page = (tmp_path / "results" / "index.html").read_text()
    assert "Scenes that share pixels (1)" in page and "<code>ome-zarr/example-zstack.ome.zarr</code>" in page

    # `snakemake verify`: every scene recomputed and OK; after a change to one input, the run fails
    output = snakemake(tmp_path, "verify", "--config", f"input_dir={data}")
    verified = (tmp_path / "results" / "verify.txt").read_text().splitlines()
    assert sorted(verified) == sorted(f"{name}#0: OK" for name in codes)
    assert "bioiscc verify: 4 scenes: 4 OK, 0 FAILED, 0 MISSING, 0 UNREADABLE" in output  # on the console
    pixels = tifffile.memmap(data / "ome-tiff" / "ome-types_tiny.ome.tiff", mode="r+")
    pixels.flat[0] ^= 1  # one bit of one pixel
    pixels.flush()
    del pixels
    output = snakemake(tmp_path, "verify", "--config", f"input_dir={data}", check=False)
    assert "Error in rule verify" in output
    assert "ome-tiff/ome-types_tiny.ome.tiff#0: FAILED\nbioiscc verify: 4 scenes: 3 OK, 1 FAILED" in output
    assert "ome-tiff/ome-types_tiny.ome.tiff#0: FAILED" in (tmp_path / "results" / "verify.txt").read_text()
    assert "1 FAILED" in (tmp_path / "logs" / "verify.log").read_text()
    # an index verify cannot read: its error on the console, and no report of an earlier run
    (tmp_path / "results" / "index.jsonl").write_text("{oops\n")
    output = snakemake(tmp_path, "verify", "--config", f"input_dir={data}", check=False)
    assert "bioiscc: error: results/index.jsonl" in output and "#0: FAILED" not in output
    assert not (tmp_path / "results" / "verify.txt").exists()


def test_a_folder_without_inputs_gives_an_empty_index(tmp_path: Path) -> None:
    """input_dir pointed at the wrong folder (or one whose files the patterns skip): a warning that
    says so, an empty index, page and duplicates list, and nothing to verify; the run succeeds."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("not an image\n")
    output = snakemake(tmp_path, "--config", f"input_dir={data}")
    assert f"bioiscc: no inputs in {data}: no file or store there matches the include patterns" in output
    assert "bioiscc index: 0 inputs, 0 scenes: 0 done, 0 failed; 1 skipped" in output
    results = tmp_path / "results"
    assert (results / "index.jsonl").read_text() == ""
    assert (results / "duplicates.tsv").read_text().splitlines() == [
        "group\trelation\tinput_a\tscene_a\tinput_b\tscene_b\tdata_distance\tmixed_distance"
    ]
    assert "0 inputs" in (results / "index.html").read_text()
    assert (results / "skipped.tsv").read_text().splitlines()[1].startswith("notes.txt\t")
    output = snakemake(tmp_path, "verify", "--config", f"input_dir={data}")
    assert "bioiscc verify: the index lists no scenes (no inputs): nothing to verify" in output


def test_lint_and_format(tmp_path: Path) -> None:
    output = snakemake(REPO, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in output, output
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", str(REPO / "workflow")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_defaults_are_the_native_formats() -> None:
    yaml = pytest.importorskip("yaml")
    from bioiscc.sources import NATIVE_PATTERNS

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert tuple(schema["properties"]["include"]["default"]) == NATIVE_PATTERNS
    assert tuple(config["include"]) == NATIVE_PATTERNS
    defaults = {key: spec.get("default") for key, spec in schema["properties"].items()}
    defaults["views"] = {
        key: spec["default"] for key, spec in schema["properties"]["views"]["properties"].items()
    }
    assert {key: config[key] for key in defaults} == defaults
    # the workflow's views are those of `bioiscc imagecode` with its defaults
    from bioiscc.cli_views import DEFAULT_MAX_VIEWS, STRATEGIES

    assert config["views"] == {
        "enabled": True,
        "strategies": list(STRATEGIES),
        "max_views": DEFAULT_MAX_VIEWS,
        "bits": 256,
    }


def test_conda_environment_lists_the_package_dependencies() -> None:
    yaml = pytest.importorskip("yaml")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["all"])
    wanted = {req for req in wanted if not req.startswith("snakemake")}
    env = yaml.safe_load((REPO / "envs" / "bioiscc.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    # bioiscc itself comes from the checkout (an option line: tests/test_newcomer.py checks it)
    assert {req for req in pip if not req.startswith("-")} == wanted


def test_batches_of_any_size_give_the_same_index(done: tuple[Path, str], tmp_path: Path) -> None:
    """One input per batch (as the workflow ran before batches) and all inputs in one batch."""
    expected = index_rows(done[0])
    for size in (1, 1000):
        workdir = tmp_path / f"size{size}"
        shutil.copytree(done[0] / "data", workdir / "data")
        (workdir / "config").mkdir()
        (workdir / "config" / "config.yaml").write_text(f"input_dir: data\nbatch_size: {size}\n")
        snakemake(workdir)
        assert len(batches(workdir)) == (len(INPUTS) if size == 1 else 1)
        assert index_rows(workdir) == expected


@pytest.mark.slow
def test_scale_benchmark_small(tmp_path: Path) -> None:
    """benchmarks/workflow_scale.py at a small size: it checks the job and input counts itself
    (exactly one input recomputed after a change, the CZI copies sharing one code) and fails if not."""
    script = REPO / "benchmarks" / "workflow_scale.py"
    command = [sys.executable, str(script), "--tiff", "150", "--czi", "20", "--dag", "500"]
    command += ["--batch-size", "20", "--cases", "tiff,czi,dag", "--workdir", str(tmp_path / "scale")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| tiff 150 | rerun, one input changed |" in result.stdout
    assert "computed: data/plate_0000/image_000000.ome.tif only" in result.stdout


def test_config_file_optional_and_boolean_words(done: tuple[Path, str], tmp_path: Path) -> None:
    """An empty (or no) config/config.yaml is fine, and booleans take the usual words on the command line."""
    shutil.copytree(done[0] / "data", tmp_path / "data")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("")
    output = snakemake(
        tmp_path, "-n", "--config", "input_dir=data", "retry_failed=false", "views={enabled: no}"
    )
    assert "extract_views" not in {rule for rule, _ in jobs(output)}
    assert ("walk", None) not in jobs(output) and any(rule == "walk" for rule, _ in jobs(output))
    (tmp_path / "config" / "config.yaml").unlink()
    assert any(
        rule == "extract_views" for rule, _ in jobs(snakemake(tmp_path, "-n", "--config", "input_dir=data"))
    )
    refused = snakemake(tmp_path, "-n", "--config", "input_dir=data", "simprints=perhaps", check=False)
    assert "'perhaps' is not of type 'boolean'" in refused


def test_a_missing_input_dir_says_where_it_was_looked_for(tmp_path: Path) -> None:
    output = snakemake(tmp_path, "-n", "--config", "input_dir=no-such-data", check=False)
    assert "input_dir 'no-such-data' is not a directory" in output
    assert f"(relative to the working directory {tmp_path})" in output and "--config input_dir=DIR" in output
