"""The Snakemake workflow, run for real (`snakemake --cores 2`) in temporary directories.

One workspace (small TIFFs, an OME-TIFF with two scenes, an OME-Zarr store, awkward names) is run
once per module; tests that change it work on a copy (mtimes kept, so the copy is up to date).
Which jobs ran is read from the jobs Snakemake reports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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
PER_INPUT_RULES = ("walk", "hash", "extract_views", "mix")
RUN_WIDE = [("all", None), ("index", None)]

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
    """(rule, key) of every job Snakemake reports running (or, with -n, would run)."""
    found: list[list[Any]] = []
    for line in output.splitlines():
        if rule := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            found.append([rule.group(1), None])
        elif (key := re.match(r"^\s+wildcards: key=(.+)$", line)) and found:
            found[-1][1] = key.group(1)
    return sorted((rule, key) for rule, key in found)


def jobs_of(*keys: str) -> list[tuple[str, str | None]]:
    """The jobs of these inputs, the index and `all`."""
    return sorted([(rule, key) for key in keys for rule in PER_INPUT_RULES] + RUN_WIDE)


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
    (root / "config" / "config.yaml").write_text("input_dir: data\n")
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
    assert jobs(output) == jobs_of(*INPUTS.values())
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
    assert "<table>" in html
    assert html.count('<img src="data:image/png;base64,') == sum(row["views"] for row in rows) > 8

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
    for key in INPUTS.values():
        for rule in PER_INPUT_RULES:
            assert (workdir / "logs" / key / f"{rule}.log").exists()
            assert (workdir / "logs" / key / f"{rule}.benchmark.tsv").exists()


def test_rerun_with_nothing_changed_runs_no_job(done: tuple[Path, str]) -> None:
    workdir, _ = done
    output = snakemake(workdir)
    assert jobs(output) == []
    assert "Nothing to be done" in output


def test_changed_file_reruns_only_its_jobs(workspace: Path) -> None:
    write_tiff(workspace / "data" / "plain.tif", seed=100)
    assert jobs(snakemake(workspace, "-n")) == jobs_of("plain.tif")
    assert jobs(snakemake(workspace)) == jobs_of("plain.tif")
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
    assert jobs(snakemake(workspace)) == jobs_of("store.ome.zarr")
    expected = json_lines(run_cli("hash", "data/store.ome.zarr", cwd=workspace, check=True).stdout)
    (row,) = [r for r in index_rows(workspace) if r["input"] == "store.ome.zarr"]
    assert row["iscc_code"] == expected[0]["iscc_code"]
    assert jobs(snakemake(workspace)) == []


def test_added_file_runs_only_its_jobs(workspace: Path) -> None:
    write_tiff(workspace / "data" / "sub" / "new.tif", seed=9)
    assert jobs(snakemake(workspace)) == jobs_of("sub/new.tif")
    assert "sub/new.tif" in {row["input"] for row in index_rows(workspace)}


def test_removed_file_reruns_only_the_index(workspace: Path) -> None:
    (workspace / "data" / "a_b.tif").unlink()
    assert jobs(snakemake(workspace)) == RUN_WIDE
    assert "a_b.tif" not in {row["input"] for row in index_rows(workspace)}


def test_input_inside_another_is_refused(workspace: Path) -> None:
    output = snakemake(workspace, "-n", "--config", "inputs=[data/store.ome.zarr/.zattrs]", check=False)
    assert "lies inside input data/store.ome.zarr" in output


def test_failed_record_names_the_crash(tmp_path: Path) -> None:
    """The rules' fallback when a command dies instead of recording its error."""
    scenes, container = tmp_path / "scenes.jsonl", tmp_path / "container.json"
    run_cli(
        "failed-record", "hash", "--exit-status", "139", "--scenes-output", str(scenes),
        "-o", str(container), "--", "x.czi", check=True,
    )  # fmt: skip
    (scene,) = json_lines(scenes.read_text())
    record = json.loads(container.read_text())
    for item in (scene, record):
        records.validate(item)
        assert item["status"] == "failed" and "status 139 (killed by SIGSEGV)" in item["error"]
    run_cli(
        "failed-record", "walk", "--exit-status", "1", "-o", str(tmp_path / "w.json"), "x.czi", check=True
    )
    records.validate(json.loads((tmp_path / "w.json").read_text()))
    for kind, expected in (("views", "bioiscc.views"), ("mix", "bioiscc.image")):
        target = tmp_path / f"{kind}.jsonl"
        run_cli("failed-record", kind, "--exit-status", "137", "-o", str(target), "--", "x.czi", check=True)
        (record,) = json_lines(target.read_text())
        records.validate(record)
        assert record["kind"] == expected and "killed by SIGKILL" in record["error"]
    # results are as readable as any new file (not private, as a bare mkstemp would leave them)
    assert (tmp_path / "w.json").stat().st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_changed_parameter_reruns_only_the_rules_it_affects(workspace: Path) -> None:
    output = snakemake(workspace, "--config", "simprints=True")
    # mix reads the scene records (for the composite ISCC-CODE), so it follows hash
    assert jobs(output) == sorted(
        [(rule, key) for key in INPUTS.values() for rule in ("hash", "mix")] + RUN_WIDE
    )
    scenes = json_lines((workspace / "results" / "plain.tif" / "scenes.jsonl").read_text())
    assert len(scenes[0]["simprints"]) == 2


def extra_config(workspace: Path, text: str) -> tuple[str, str]:
    """Options for a second config file (Snakemake's --config leaves nested values strings)."""
    path = workspace / "config" / "extra.yaml"
    path.write_text(text)
    return "--configfile", str(path)


def test_changed_view_settings_rerun_only_the_views(workspace: Path) -> None:
    options = extra_config(workspace, "views:\n  max_views: 1\n  bits: 64\n")
    output = snakemake(workspace, *options)
    assert jobs(output) == sorted(
        [(rule, key) for key in INPUTS.values() for rule in ("extract_views", "mix")] + RUN_WIDE
    )
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
    output = snakemake(workspace, *extra_config(workspace, "views:\n  enabled: false\n"))
    assert jobs(output) == sorted(
        [(rule, key) for key in INPUTS.values() for rule in ("walk", "hash")] + RUN_WIDE
    )
    rows = index_rows(workspace)
    assert all(row["status"] == "ok" and row["iscc_mixed"] is None for row in rows)
    assert all(row["views_status"] is None for row in rows)
    assert not list((workspace / "results").glob("*/image.jsonl"))
    assert "<img" not in (workspace / "results" / "index.html").read_text()


def test_corrupt_file_fails_alone_and_is_retried(workspace: Path) -> None:
    (workspace / "data" / "broken.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 8)
    output = snakemake(workspace)
    assert jobs(output) == jobs_of("broken.tif")
    rows = index_rows(workspace)
    (broken,) = [row for row in rows if row["input"] == "broken.tif"]
    assert broken["status"] == "failed" and broken["iscc_code"] is None and broken["error"]
    assert broken["views_status"] == "failed" and "corrupt or truncated TIFF" in broken["views_error"]
    assert all(row["status"] == row["views_status"] == "ok" for row in rows if row["input"] != "broken.tif")
    assert "bioiscc index: 8 inputs, 9 scenes: 8 done, 1 failed; views: 8 done, 1 failed" in output
    tsv = (workspace / "results" / "index.tsv").read_text()
    assert "broken.tif\t\t\tfailed" in tsv

    # the next run retries it (and only it); once it is readable it stays done
    assert jobs(snakemake(workspace)) == jobs_of("broken.tif")
    write_tiff(workspace / "data" / "broken.tif", seed=11)
    assert jobs(snakemake(workspace)) == jobs_of("broken.tif")
    assert all(row["status"] == "ok" for row in index_rows(workspace))
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
    assert ("bioiscc_walk", "plain.tif") in ran and ("bioiscc_index", None) in ran
    rows = json_lines((tmp_path / "imaging" / "results" / "index.jsonl").read_text())
    keys = {**INPUTS, "broken.tif": "broken.tif"}
    assert [row.pop("container") for row in rows] == [
        f"imaging/results/{keys[row['input']]}/container.json" for row in rows
    ]
    expected = [{k: v for k, v in row.items() if k != "container"} for row in index_rows(done[0])]
    assert [row for row in rows if row["input"] != "broken.tif"] == expected
    assert [row["status"] for row in rows if row["input"] == "broken.tif"] == ["failed"]
    assert (tmp_path / "imaging" / "logs" / "plain.tif" / "walk.log").exists()
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    # the failed input is retried under the prefix too, and nothing else reruns
    assert jobs(snakemake(tmp_path, snakefile=facility)) == [
        ("all", None),
        ("bioiscc_extract_views", "broken.tif"),
        ("bioiscc_hash", "broken.tif"),
        ("bioiscc_index", None),
        ("bioiscc_mix", "broken.tif"),
        ("bioiscc_walk", "broken.tif"),
    ]


def test_bundled_sample_data(tmp_path: Path) -> None:
    """The quick start's data: every input done, and the ND2 and its OME-Zarr copy share a code."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    output = snakemake(tmp_path, "--config", f"input_dir={REPO / 'resources' / 'sample-data'}")
    assert "0 failed" in output
    codes = {row["input"]: row["iscc_code"] for row in index_rows(tmp_path)}
    assert set(codes) == {
        "dv/toxo.dv",
        "nd2/example-zstack.nd2",
        "ome-tiff/ome-types_tiny.ome.tiff",
        "ome-zarr/example-zstack.ome.zarr",
    }
    assert codes["nd2/example-zstack.nd2"] == codes["ome-zarr/example-zstack.ome.zarr"]


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
    assert {req for req in pip if not req.startswith("bioiscc")} == wanted
