"""What a newcomer meets first: the install, the workflow as a module, skipped and stale inputs,
the file names of the preview commands, and the summaries (issue 15).

The workflow runs here are real (`snakemake --cores 2`) and small (a few tiny TIFFs, or the bundled
sample data once).
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

import click
import pytest

from tests.conftest import REPO, run_cli

yaml = pytest.importorskip("yaml")

SAMPLE_DATA = REPO / "resources" / "sample-data"
ENV_FILE = REPO / "envs" / "bioiscc.yaml"


def test_no_pypi_release_is_assumed() -> None:
    """bioiscc is not on PyPI: no install line may need it there, except as 'once released'."""
    env = yaml.safe_load(ENV_FILE.read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert not [entry for entry in pip if entry.replace(" ", "").startswith("bioiscc")], pip
    for doc in ("README.md", "config/README.md"):
        lines = (REPO / doc).read_text().splitlines()
        for number, line in enumerate(lines, 1):
            quoted_error = "bioiscc: error:" in line  # what the command says (it names the extra)
            if "pip install" in line and ("'bioiscc[" in line or '"bioiscc[' in line) and not quoted_error:
                once = "once released" in line.lower() or "once released" in lines[number - 2].lower()
                assert "@ git+" in line or once, f"{doc}:{number}: {line}"


def test_links_in_the_docs_stay_inside_the_clone() -> None:
    """Every relative Markdown link of the docs names a file of the repository (a user's clone has no
    ../shared)."""
    docs = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    for doc in docs:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(REPO) and resolved.exists(), f"{doc.relative_to(REPO)}: {target}"


def test_the_spec_copies_are_the_shared_spec() -> None:
    """docs/spec holds the contract so that a clone has it; it must be the project's shared one."""
    shared = REPO.parent / "shared" / "spec"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not here (a user's clone): nothing to compare the copies with")
    for name in ("IMAGEWALK.md", "RECORDS.md"):
        assert (REPO / "docs" / "spec" / name).read_text() == (shared / name).read_text(), name


def test_every_environment_variable_is_in_the_readme_table() -> None:
    """A variable the code reads (src, workflow, tests) has a row in README's table, and a row names
    a variable that exists."""
    used: set[str] = set()
    for folder in ("src", "workflow", "tests"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".smk", "") and path.is_file() and "__pycache__" not in path.parts:
                used |= set(re.findall(r"\bBIOISCC_[A-Z_]+[A-Z]\b", path.read_text(errors="replace")))
    used = {name for name in used if not any(other.startswith(name + "_") for other in used)}  # prefixes
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Environment variables") :].split("\n## ")[0]
    rows = set(re.findall(r"^\| `(BIOISCC_[A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert used - rows == set(), "variables without a README row"
    assert rows - used == set(), "README rows of variables nothing reads"


# ---- envs/bioiscc.yaml installs this checkout ----


def workflow_checkout(tmp_path: Path) -> str:
    """BIOISCC_CHECKOUT as the workflow sets it (a dry run of a Snakefile that includes it)."""
    host = tmp_path / "host"
    host.mkdir()
    include = f"include: {str(REPO / 'workflow' / 'Snakefile')!r}\n\n\n"
    (host / "Snakefile").write_text(include + 'print("checkout=" + os.environ["BIOISCC_CHECKOUT"])\n')
    env = {k: v for k, v in os.environ.items() if k != "BIOISCC_CHECKOUT"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(host)]
    command += ["--snakefile", str(host / "Snakefile"), "--config", f"input_dir={SAMPLE_DATA}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("checkout=")]
    return line.removeprefix("checkout=")


def test_conda_environment_installs_this_checkout(tmp_path: Path) -> None:
    """`--sdm conda`: Snakemake copies the environment file to .snakemake/conda/<hash>.yaml and runs
    `conda env create --file` on the copy; conda writes the pip entries to a requirements file
    beside the copy and runs pip there. Done here with pip's own requirements parser: the local
    entry must name this checkout, whose pyproject.toml is bioiscc's."""
    checkout = workflow_checkout(tmp_path)
    assert Path(checkout) == REPO

    env = yaml.safe_load(ENV_FILE.read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    local = [entry for entry in pip if entry.startswith("-")]
    assert local, pip
    copy = tmp_path / "work" / ".snakemake" / "conda" / "0123abcd.yaml"
    copy.parent.mkdir(parents=True)
    shutil.copy(ENV_FILE, copy)
    (copy.parent / "condaenv.requirements.txt").write_text("\n".join(local) + "\n")
    probe = (
        "from pip._internal.network.session import PipSession\n"
        "from pip._internal.req.constructors import install_req_from_parsed_requirement\n"
        "from pip._internal.req.req_file import parse_requirements\n"
        "for parsed in parse_requirements('condaenv.requirements.txt', session=PipSession()):\n"
        "    requirement = install_req_from_parsed_requirement(parsed)\n"
        "    print(requirement.editable, requirement.link.file_path)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "BIOISCC_CHECKOUT": checkout},
    )
    assert result.returncode == 0, result.stderr
    ((editable, path),) = [line.split(" ", 1) for line in result.stdout.splitlines()]
    assert editable == "True" and Path(path) == REPO
    project = tomllib.loads((Path(path) / "pyproject.toml").read_text())["project"]
    assert project["name"] == "bioiscc"


# ---- the workflow as a module ----

HOST = """configfile: "config.yaml"


module bioiscc:
    snakefile:
        {snakefile!r}
    config:
        config["bioiscc"]


use rule * from bioiscc
"""


def snakemake(workdir: Path, *args: str, check: bool = True) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} exited {result.returncode}:\n{output}")
    return output


@pytest.mark.workflow
@pytest.mark.slow
def test_module_mode_summary_and_report(tmp_path: Path) -> None:
    """A facility's Snakefile with `use rule * from bioiscc`: the run prints the summary line (the
    module's onsuccess never runs) and the report renders without a docutils warning (the report
    text reads input_dir from the config, which here is the facility's)."""
    (tmp_path / "Snakefile").write_text(HOST.format(snakefile=str(REPO / "workflow" / "Snakefile")))
    (tmp_path / "config.yaml").write_text(f"bioiscc:\n  input_dir: {SAMPLE_DATA}\n")
    output = snakemake(tmp_path, "--snakefile", str(tmp_path / "Snakefile"))
    assert (
        "bioiscc index: 4 inputs, 4 scenes: 4 done, 0 failed; views: 4 done, 0 failed; "
        "1 skipped (results/skipped.tsv)" in output
    )
    report = snakemake(tmp_path, "--snakefile", str(tmp_path / "Snakefile"), "--report", "report.html")
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert "WARNING" not in report and "ERROR/" not in report, report
    assert "Inline literal" not in report


# ---- skipped entries and stale results ----


def write_tiff(path: Path, seed: int) -> None:
    tifffile = pytest.importorskip("tifffile")
    np = pytest.importorskip("numpy")
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(seed).integers(0, 4096, size=(6, 5), dtype=np.uint16))


def tree(root: Path) -> dict[str, int]:
    """Every file under `root` with its size (what a clean may not touch)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.workflow
@pytest.mark.slow
def test_skipped_and_stale_results(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for seed, name in enumerate(("a.tif", "b.tif", "keep.tif", "sub/c.tif")):
        write_tiff(data / name, seed)
    (data / "README.txt").write_text("notes\n")
    write_tiff(data / ".hidden.tif", 9)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("input_dir: data\nviews: {enabled: false}\n")
    output = snakemake(tmp_path, "--snakefile", str(REPO / "workflow" / "Snakefile"))
    assert "bioiscc index: 4 inputs, 4 scenes: 4 done, 0 failed; 2 skipped (results/skipped.tsv)" in output
    assert (tmp_path / "results" / "skipped.tsv").read_text() == (
        "path\treason\n.hidden.tif\texcluded by '.*'\nREADME.txt\tno include pattern matches\n"
    )
    assert (tmp_path / "results" / "stale.txt").read_text() == ""
    (old_batch,) = [p.name for p in (tmp_path / "results" / "_batches").iterdir() if p.is_dir()]

    # a.tif (the first input: its batch gets a new name) and sub/c.tif are deleted; b.tif is
    # excluded, but still there: its results are not stale
    (data / "a.tif").unlink()
    shutil.rmtree(data / "sub")
    (tmp_path / "config" / "config.yaml").write_text(
        "input_dir: data\nviews: {enabled: false}\nexclude: ['.*', 'b.tif']\n"
    )
    output = snakemake(tmp_path, "--snakefile", str(REPO / "workflow" / "Snakefile"))
    assert (
        "bioiscc index: 1 input, 1 scene: 1 done, 0 failed; 3 skipped (results/skipped.tsv); "
        "3 stale result folders (results/stale.txt; snakemake clean_stale removes them)" in output
    )
    stale = ["results/a.tif", "results/sub/c.tif", f"results/_batches/{old_batch}"]
    assert (tmp_path / "results" / "stale.txt").read_text().splitlines() == stale
    assert "b.tif\texcluded by 'b.tif'" in (tmp_path / "results" / "skipped.tsv").read_text()
    page = (tmp_path / "results" / "index.html").read_text()
    assert "Skipped inputs (3)" in page and "<code>README.txt</code>: no include pattern matches" in page
    assert "Stale results (3)" in page and "<code>results/sub/c.tif</code>" in page

    # entries that are not stale, added by hand, are kept whatever the list says
    listing = tmp_path / "results" / "stale.txt"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "walk.json").write_text(json.dumps({"source": "data/gone.tif"}))
    (tmp_path / "results" / "link").symlink_to(tmp_path / "outside")
    (current_batch,) = [
        p.name for p in (tmp_path / "results" / "_batches").iterdir() if p.is_dir() and p.name != old_batch
    ]
    unsafe = [
        "results/b.tif",  # its input exists
        "results/keep.tif",  # an input of the run
        "data",  # outside results/
        str(tmp_path / "outside"),  # outside results/, absolute
        "results/../outside",  # outside results/, by ..
        "results/link",  # a link out of results/
        "results",  # results/ itself
        f"results/_batches/{current_batch}",  # a batch of the run
        "results/_batches/batches.txt",  # not a folder
    ]
    listing.write_text("".join(f"{line}\n" for line in unsafe))
    before = tree(tmp_path / "data"), tree(tmp_path / "outside"), tree(tmp_path / "results")
    result = run_cli("clean-stale", "results", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "removed 0 stale result folders, kept 9" in result.stderr
    assert (tree(tmp_path / "data"), tree(tmp_path / "outside")) == before[:2]
    assert tree(tmp_path / "results") == {**before[2], "stale.txt": listing.stat().st_size}
    assert listing.read_text().splitlines() == unsafe

    # `snakemake clean_stale` lists them again and removes exactly the stale folders (and the old
    # batch's logs, not the current one's)
    (tmp_path / "results" / "link").unlink()
    assert (tmp_path / "logs" / "_batches" / old_batch).is_dir()
    output = snakemake(tmp_path, "--snakefile", str(REPO / "workflow" / "Snakefile"), "clean_stale")
    assert "bioiscc clean-stale: removed 3 stale result folders, kept 0" in output
    assert not (tmp_path / "results" / "a.tif").exists() and not (tmp_path / "results" / "sub").exists()
    assert not (tmp_path / "results" / "_batches" / old_batch).exists()
    assert not (tmp_path / "logs" / "_batches" / old_batch).exists()
    assert (tmp_path / "logs" / "_batches" / current_batch).is_dir()
    assert (tmp_path / "results" / "b.tif" / "walk.json").exists()
    assert (tmp_path / "results" / "keep.tif" / "container.json").exists()
    assert tree(tmp_path / "data") == before[0]
    snakemake(tmp_path, "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n")
    assert (tmp_path / "results" / "stale.txt").read_text() == ""  # listed again: nothing is stale


# ---- preview commands: names that keep the suffix, never overwritten silently ----


def test_clean_stale_counts_what_it_kept_and_says_what_is_gone(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    result = run_cli("clean-stale", "results", cwd=tmp_path)
    assert result.returncode == 0 and "no results/stale.txt (the workflow writes it" in result.stderr
    (tmp_path / "results" / "stale.txt").write_text("results/gone.tif\nresults\n")
    result = run_cli("clean-stale", "results", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "results/gone.tif is gone already" in result.stderr
    assert result.stderr.splitlines()[-1] == "bioiscc clean-stale: removed 0 stale result folders, kept 1"
    assert (tmp_path / "results" / "stale.txt").read_text() == "results\n"
    # from inside results/ the list's paths (relative to the workflow's folder) are not read as gone
    (tmp_path / "results" / "stale.txt").write_text("results/gone.tif\n")
    result = run_cli("clean-stale", ".", cwd=tmp_path / "results")
    assert "kept results/gone.tif: not under . as given" in result.stderr
    assert (tmp_path / "results" / "stale.txt").read_text() == "results/gone.tif\n"


def test_scene_thumbnails_of_same_stem_do_not_collide(tmp_path: Path) -> None:
    pytest.importorskip("nd2")
    tifffile = pytest.importorskip("tifffile")
    np = pytest.importorskip("numpy")
    shutil.copy(SAMPLE_DATA / "nd2" / "example-zstack.nd2", tmp_path / "a.nd2")
    tifffile.imwrite(tmp_path / "a.tif", np.arange(600, dtype=np.uint16).reshape(20, 30))
    for name in ("a.nd2", "a.tif"):
        result = run_cli("scenes", name, cwd=tmp_path, check=True)
        assert result.stdout.split() == [f"{name}.scene_000.thumb.png"]
        assert run_cli("thumb", name, cwd=tmp_path, check=True).stdout.split() == [f"{name}.thumb.png"]
    made = sorted(p.name for p in tmp_path.glob("*.png"))
    assert made == [
        "a.nd2.scene_000.thumb.png",
        "a.nd2.thumb.png",
        "a.tif.scene_000.thumb.png",
        "a.tif.thumb.png",
    ]
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png")}
    for command in ("scenes", "thumb"):
        refused = run_cli(command, "a.tif", cwd=tmp_path)
        assert refused.returncode == 1 and refused.stdout == ""
        (line,) = refused.stderr.splitlines()
        assert line.startswith("bioiscc: error: a.tif.") and "exists; not overwritten (--force" in line
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png")} == before
    run_cli("thumb", "a.tif", "--force", cwd=tmp_path, check=True)
    assert (tmp_path / "a.tif.thumb.png").stat().st_mtime_ns != before["a.tif.thumb.png"]


def test_summaries_count_in_the_singular() -> None:
    from bioiscc.cli_workflow import summary_line

    row = {"input": "a.tif", "scene": 0, "status": "ok", "views_status": "ok"}
    assert summary_line([row], 1, with_views=True) == (
        "bioiscc index: 1 input, 1 scene: 1 done, 0 failed; views: 1 done, 0 failed"
    )
    assert summary_line([row, {**row, "input": "b.tif"}], 2).startswith("bioiscc index: 2 inputs, 2 scenes:")
    unread = {"input": "c.tif", "scene": None, "status": "failed", "views_status": None}
    assert summary_line([row, unread], 2) == (
        "bioiscc index: 2 inputs, 1 scene: 1 done, 0 failed; 1 input failed as a whole; failed: c.tif"
    )


# ---- every `bioiscc` command line the READMEs show, run on the bundled data ----

#: command lines that cannot run here, and why (matched by their start)
OMERO = "needs an OMERO server (tests/test_omero.py runs OMERO sources on a test double)"
NOT_RUN_HERE = {
    "bioiscc hash omero://": OMERO,
    "bioiscc walk omero://": OMERO,
    "python -m bioiscc.sources.omero": OMERO,
    "pip install": "installs software (tests/test_newcomer.py checks the install lines name no PyPI release)",
    "export OMERO_USER": "OMERO credentials",
    "bioiscc verify results/index.tsv --root /mnt/archive": "needs the workflow's index and a damaged "
    "copy of the data at /mnt/archive (tests/test_verify.py builds both)",
    "bioiscc verify --against codes.txt migrated/": "needs the migrated tree the README describes "
    "(tests/test_verify.py builds one)",
    "bioiscc similar index.jsonl": "needs the workflow's index of the bundled data and the two edited copies "
    "(tests/test_similar.py and the workflow tests run `similar` on real indexes)",
}
#: placeholders of the READMEs, and what stands for them here (the bundled data has no CZI)
PLACEHOLDERS = {
    "cells.czi": "cells.nd2",
    "x.czi": "x.nd2",
    "find /data -name '*.czi'": "find resources/sample-data -name '*.nd2'",
}
#: exit codes other than 0 that a shown command line gives, by design
EXIT_CODES = {
    "bioiscc diff resources/sample-data/nd2/example-zstack.nd2 changed.ome.tif": 1,
    "bioiscc diff resources/sample-data/nd2/example-zstack.nd2 reversed.ome.tif": 1,
    "bioiscc diff a.json b.json": 1,
}
#: shown command lines whose shown output is of other data than the bundled (not compared)
OUTPUT_OF_OTHER_DATA = ("bioiscc hash cells.czi", "bioiscc hash cells.ome.zarr")


def shown_commands(doc: str) -> list[tuple[int, int, str, list[str]]]:
    """(block, line number, command, the output shown after it) of each shell code block line of `doc`.

    In a block with `$ ` prompts, the prompted lines are commands and the lines after one are its
    shown output; in a block without, every line is a command. A here-document is part of its
    command. Comments after ` # ` are dropped.
    """
    found: list[tuple[int, int, str, list[str]]] = []
    lines = (REPO / doc).read_text().splitlines()
    number = 0
    while number < len(lines):
        fence = lines[number].strip()
        number += 1
        if not fence.startswith("```"):
            continue
        block: list[tuple[int, str]] = []
        while number < len(lines) and not lines[number].strip().startswith("```"):
            block.append((number + 1, lines[number]))
            number += 1
        number += 1
        if fence != "```":  # ```python and the like: not shell
            continue
        prompted = any(text.startswith("$ ") for _, text in block)
        block_number = block[0][0] if block else number
        index = 0
        while index < len(block):
            at, text = block[index]
            index += 1
            if prompted and not text.startswith("$ "):
                if found and found[-1][0] == block_number:
                    found[-1][3].append(text)
                continue
            command = text.removeprefix("$ ")
            if (here := re.search(r"<<'(\w+)'", command)) is not None:
                while index < len(block) and block[index][1] != here.group(1):
                    command += "\n" + block[index][1]
                    index += 1
                command += "\n" + here.group(1)
                index += 1
            else:
                command = re.sub(r"\s+#\s.*$", "", command).strip()
            if command:
                found.append((block_number, at, command, []))
    return found


def sandbox(root: Path) -> Path:
    """The bundled data where the README's commands expect it, and files for its placeholders."""
    shutil.copytree(SAMPLE_DATA, root / "resources" / "sample-data")
    for name in ("x.nd2", "cells.nd2"):
        shutil.copy(SAMPLE_DATA / "nd2" / "example-zstack.nd2", root / name)
    shutil.copytree(SAMPLE_DATA / "ome-zarr" / "example-zstack.ome.zarr", root / "cells.ome.zarr")
    (root / "batch.jsonl").write_text(json.dumps({"source": "x.nd2", "dir": "out/x.nd2"}) + "\n")
    return root


def shown_output_matches(shown: list[str], printed: str) -> list[str]:
    """The shown output lines that the command did not print (`…` stands for anything)."""
    printed_lines = printed.splitlines()
    missing = []
    for line in shown:
        pattern = ".*".join(re.escape(part) for part in line.split("…"))
        if not any(re.fullmatch(pattern, actual) for actual in printed_lines):
            missing.append(line)
    return missing


@pytest.mark.slow
@pytest.mark.parametrize("doc", ["README.md", "config/README.md"])
def test_readme_command_lines_run(doc: str, tmp_path: Path) -> None:
    pytest.importorskip("nd2")
    top = sandbox(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    ran, problems = [], []
    block, root = None, top
    for block_number, at, command, shown in shown_commands(doc):
        if block_number != block:  # each block starts at the top of the sandbox
            block, root = block_number, top
        if not re.search(r"(^|[|&;(]\s*)bioiscc ", command, re.M) and "bioiscc" not in command.split()[:3]:
            if not command.startswith(("cd ", "python - <<", "cat ")):
                continue  # no bioiscc command line (snakemake, installs): not this test's business
        if any(command.startswith(start) for start in NOT_RUN_HERE):
            continue
        as_shown = command
        for placeholder, actual in PLACEHOLDERS.items():
            command = command.replace(placeholder, actual)
        if command.startswith("cd "):
            root = root / command.removeprefix("cd ").strip()
            continue
        if shutil.which("jq") is None:
            to_code = f"{sys.executable} -c \"import json,sys; print(json.load(sys.stdin)['iscc_code'])\""
            command = command.replace("jq -r .iscc_code", to_code)
        result = subprocess.run(["bash", "-c", command], cwd=root, capture_output=True, text=True, env=env)
        ran.append(command)
        expected = EXIT_CODES.get(command, 0)
        if result.returncode != expected:
            problems.append(f"{doc}:{at}: `{command}` exited {result.returncode}: {result.stderr.strip()}")
            continue
        if shown and not as_shown.startswith(OUTPUT_OF_OTHER_DATA):
            missing = shown_output_matches(shown, result.stdout + result.stderr)
            if missing:
                printed = result.stdout + result.stderr
                problems.append(f"{doc}:{at}: `{command}` did not print {missing}; it printed:\n{printed}")
    assert not problems, "\n".join(problems)
    assert len([c for c in ran if "bioiscc " in c]) >= (12 if doc == "README.md" else 10), ran


def test_what_each_command_takes_is_what_the_readme_says() -> None:
    """README, Commands: which commands take -o FILE, -o DIR, --record-errors and --force."""
    from bioiscc.cli import main

    text = " ".join((REPO / "README.md").read_text().split())
    said = {  # the README's words -> (commands, -o names a file, --record-errors, --force)
        "`walk`, `hash`, `biocode`, `container` and `mix` take `-o FILE` (written atomically; default "
        "stdout) and `--record-errors`": ({"walk", "hash", "biocode", "container", "mix"}, True, True, False),
        "`imagecode` and `views` write their records to stdout and take `-o DIR` for the PNGs, and "
        "`--record-errors`": ({"imagecode", "views"}, False, True, False),
        "`extract-views` writes into `-o DIR` and takes `--record-errors`": (
            {"extract-views"},
            False,
            True,
            False,
        ),
        "`scenes` and `thumb` write PNGs into `-o DIR` (default: the current directory), print their paths, "
        "never replace a file unless given `--force`, and have no records": (
            {"scenes", "thumb"},
            False,
            False,
            True,
        ),
        "`verify` and `diff` take `-o FILE`": ({"verify", "diff"}, True, False, False),
    }
    for words, (names, to_file, record_errors, force) in said.items():
        assert words in text, words
        for name in names:
            command = main.get_command(click.Context(main), name)
            assert command is not None, name
            params = {option: param for param in command.params for option in param.opts}
            assert params["-o"].type.file_okay is to_file and params["-o"].type.dir_okay is not to_file, name
            assert ("--record-errors" in params) is record_errors, name
            assert ("--force" in params) is force, name
