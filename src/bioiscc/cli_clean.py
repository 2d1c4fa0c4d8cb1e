"""`bioiscc clean-stale RESULTS`: remove the stale result folders the workflow lists.

The workflow writes RESULTS/stale.txt when it starts: the result folders of inputs that no longer
exist (RESULTS/<key>/) and of batches no longer in the run (RESULTS/_batches/<batch>/), one a line.
This command removes them, each only after checking it again here:

- it lies inside RESULTS (after resolving links), is not RESULTS itself, and is not a link;
- an input's folder: its walk.json names its input, that input no longer exists, and no other
  result folder (with a walk.json) lies inside it;
- a batch folder: RESULTS/_batches/b<12 hex digits>, not listed in RESULTS/_batches/batches.txt.

Anything else listed is kept, with a line saying why. RESULTS/stale.txt is rewritten to list what
is left. Registered on `bioiscc.cli.main` by the import at the end of `bioiscc.cli`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import click

from .cli import main
from .output import plural

#: a batch folder's name, as the workflow makes it
BATCH_NAME = re.compile(r"b[0-9a-f]{12}")
STALE_LIST = "stale.txt"


def _inside(path: Path, root: Path) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real != real_root and real.startswith(real_root.rstrip(os.sep) + os.sep)


def _current_batches(results: Path) -> set[str]:
    """The batches of the run, from the list `bioiscc index --rows-from` reads."""
    try:
        lines = (results / "_batches" / "batches.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    return {Path(line).parent.name for line in lines if line.strip()}


def _input_of(folder: Path) -> str | None:
    try:
        source = json.loads((folder / "walk.json").read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) and source else None


def why_kept(folder: Path, results: Path, current_batches: set[str]) -> str | None:
    """Why `folder` must not be removed (None: it is stale and may go)."""
    if folder.is_symlink():
        return "a link"
    if not _inside(folder, results):
        return f"not inside {results}"
    if not folder.is_dir():
        return "not a folder"
    real = Path(os.path.realpath(folder))
    if real.parent == Path(os.path.realpath(results / "_batches")):
        if not BATCH_NAME.fullmatch(real.name):
            return "not a batch folder"
        return "a batch of the run" if real.name in current_batches else None
    source = _input_of(folder)
    if source is None:
        return "no walk.json names its input"
    if "://" in source or os.path.lexists(source):
        return f"its input {source} exists"
    nested = next((p.parent for p in folder.rglob("walk.json") if p.parent != folder), None)
    if nested is not None:
        return f"it holds the results of another input ({nested})"
    return None


def _remove_empty_parents(folder: Path, results: Path) -> None:
    """Remove the folders that held only `folder` (results/sub/ of results/sub/a.tif), up to RESULTS."""
    top = os.path.realpath(results)
    parent = Path(os.path.realpath(folder.parent))
    while str(parent) != top and str(parent).startswith(top + os.sep):
        try:
            parent.rmdir()
        except OSError:  # not empty (or gone): the rest stays
            return
        parent = parent.parent


def _named_under(line: str, results: str) -> bool:
    """Whether a listed path names a folder under RESULTS as RESULTS is written: the list's paths are
    relative to the folder the workflow ran in, so `clean-stale .` from inside results/ (or an
    absolute RESULTS) must not read them from elsewhere and call them gone."""
    return os.path.normpath(line).startswith(os.path.normpath(results).rstrip(os.sep) + os.sep)


def _batch_logs(folder: Path, results: Path, logs: str | None) -> Path | None:
    """LOGS/_batches/<batch>/ of a stale batch folder, when it is a folder there (not a link)."""
    if logs is None or Path(os.path.realpath(folder.parent)) != Path(os.path.realpath(results / "_batches")):
        return None
    candidate = Path(logs) / "_batches" / folder.name
    if candidate.is_symlink() or not candidate.is_dir() or not _inside(candidate, Path(logs)):
        return None
    return candidate


@main.command(name="clean-stale")
@click.argument("results", type=click.Path(exists=True, file_okay=False))
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--logs",
    type=click.Path(file_okay=False),
    help="The workflow's logs folder: a removed batch's logs (LOGS/_batches/<batch>/) go too.",
)
def clean_stale(results: str, dry_run: bool, logs: str | None) -> None:
    """Remove the stale result folders RESULTS/stale.txt lists (see `snakemake clean_stale`).

    Each is checked again first: inside RESULTS, and the results of an input that no longer exists
    or of a batch no longer in the run. Paths are as the workflow wrote them (relative to the
    working directory). One line per folder on stderr, then a summary line.
    """
    root = Path(results)
    listing = root / STALE_LIST
    try:
        listed = [line for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        click.echo(
            f"bioiscc clean-stale: no {listing} (the workflow writes it when it starts): nothing to remove",
            err=True,
        )
        return
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"bioiscc: error: {listing}: cannot read it ({exc})", err=True)
        raise SystemExit(1) from exc
    current = _current_batches(root)
    removed, kept = [], []
    for line in listed:
        folder = Path(line)
        if not _named_under(line, results):  # never dropped from the list: it may be read elsewhere
            kept.append(line)
            click.echo(
                f"bioiscc: clean-stale: kept {line}: not under {results} as given (the list names folders "
                "as the workflow does: run clean-stale in the folder it ran in, with RESULTS as it names it)",
                err=True,
            )
            continue
        if not (folder.exists() or folder.is_symlink()):  # removed since: off the list, not "kept"
            click.echo(f"bioiscc: clean-stale: {line} is gone already", err=True)
            continue
        reason = why_kept(folder, root, current)
        if reason is not None:
            kept.append(line)
            click.echo(f"bioiscc: clean-stale: kept {line}: {reason}", err=True)
            continue
        if not dry_run:
            shutil.rmtree(folder)
            _remove_empty_parents(folder, root)
        removed.append(line)
        click.echo(f"bioiscc: clean-stale: {'would remove' if dry_run else 'removed'} {line}", err=True)
        batch_logs = _batch_logs(folder, root, logs)
        if batch_logs is not None:
            if not dry_run:
                shutil.rmtree(batch_logs)
            verb = "would remove" if dry_run else "removed"
            click.echo(f"bioiscc: clean-stale: {verb} {batch_logs}", err=True)
    if not dry_run and listed:
        from .output import write_text

        write_text("".join(f"{line}\n" for line in kept), str(listing))
    verb = "would remove" if dry_run else "removed"
    counted = plural(len(removed), "stale result folder")
    click.echo(f"bioiscc clean-stale: {verb} {counted}, kept {len(kept)}", err=True)
