"""The batch form of the per-input commands (`--batch FILE`): the steps, and the options they share.

    bioiscc walk --batch B.jsonl --batch-log walk.log.jsonl          # DIR/walk.json
    bioiscc hash --batch B.jsonl --batch-log hash.log.jsonl          # DIR/scenes.jsonl, DIR/container.json
    bioiscc extract-views --batch B.jsonl --batch-log views.log.jsonl  # DIR/views/ (PNGs, views.jsonl)
    bioiscc mix --batch B.jsonl --batch-log mix.log.jsonl            # DIR/image.jsonl

Each step writes, for each input of the batch file, the files the one-input command writes when the
workflow gives it DIR (see `bioiscc.batch`), with `--record-errors` semantics, and reuses the inputs
whose stamps say their results are current. The one-input commands are called as they are, so that
a batch and a run per input give identical files.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_output import OutputFile

if TYPE_CHECKING:  # bioiscc.batch is imported where a batch runs: not on every command's start
    from .batch import Item, Step

WALK_JSON = "walk.json"
SCENES_JSONL = "scenes.jsonl"
CONTAINER_JSON = "container.json"
VIEWS_DIR = "views"
VIEWS_JSONL = "views/views.jsonl"
IMAGE_JSONL = "image.jsonl"


def batch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--batch, --batch-log, --retry-failed: the batch form of a per-input command."""
    func = click.option(
        "--retry-failed",
        is_flag=True,
        help="(--batch) Recompute inputs whose results record a failure (default: reuse them too).",
    )(func)
    func = click.option(
        "--batch-log",
        type=OutputFile(),
        help="(--batch) Write what was done per input here (JSON Lines: computed or reused, status).",
    )(func)
    func = click.option(
        "--batch",
        "batch_file",
        metavar="FILE",
        help='Many inputs: FILE (or - for stdin) has one JSON line {"source": ..., "dir": ...} per input; '
        "each input's results go into its dir; inputs whose results are current are reused.",
    )(func)
    return func


def run_batch(
    step: Step, batch_file: str, batch_log: str | None, retry_failed: bool, progress: bool | None = None
) -> None:
    """Run a step over a batch file; exit 1 only when the batch file itself cannot be read."""
    from .batch import BatchFileError, read_items, run

    try:
        items = read_items(batch_file)
    except BatchFileError as exc:
        click.echo(f"bioiscc: error: {exc}", err=True)
        sys.exit(1)
    shown = sys.stderr.isatty() if progress is None else progress
    run(step, items, batch_log, retry_failed=retry_failed, progress=shown)


def refuse_with_batch(**given: Any) -> None:
    """--batch names its inputs and outputs itself: SOURCE arguments and -o make no sense with it."""
    clashes = [name for name, value in given.items() if value]
    if clashes:
        raise click.UsageError(f"--batch cannot be combined with {', '.join(clashes)}")


def _is_local(source: str) -> bool:
    return "://" not in source


def _source_digest(kind: str, item: Item, *settings: Any) -> str | None:
    from .batch import digest_of
    from .fingerprint import fingerprint

    if not _is_local(item.source):  # an OMERO image has no fingerprint: always recomputed
        return None
    return digest_of(kind, item.source, fingerprint(item.source), *settings)


def _upstream_digest(kind: str, item: Item, upstream: tuple[str, ...], *settings: Any) -> str | None:
    from .batch import digest_of, file_digest

    digests = [file_digest(item.folder / name) for name in upstream]
    if any(d is None for d in digests):
        return None
    return digest_of(kind, item.source, digests, *settings)


def _status_of(*names: str) -> Callable[[Item], tuple[str, str | None]]:
    from .batch import records_status

    return lambda item: records_status(item.folder / name for name in names)


# ---- the steps ----


def walk_step(source_kind: str, reader: str) -> Step:
    from . import cli

    def compute(item: Item) -> None:
        cli.walk_one(item.source, source_kind, reader, str(item.folder / WALK_JSON), record_errors=True)

    def fallback(item: Item, error: str) -> None:
        from .api import failed_walk
        from .output import render, write_text

        write_text(render([failed_walk(item.source, error)], lines=False), item.folder / WALK_JSON)

    from .batch import Step

    return Step(
        name="walk",
        outputs=(WALK_JSON,),
        digest=lambda item: _source_digest("walk", item, source_kind, reader),
        compute=compute,
        fallback=fallback,
        status=_status_of(WALK_JSON),
    )


def hash_step(simprints: bool, narrow: bool, raw: bool) -> Step:
    """Hash each input from its walk manifest: its scene records and its biocode container."""
    from . import cli_workflow

    def compute(item: Item) -> None:
        cli_workflow.container_one(
            str(item.folder / WALK_JSON),
            scenes_output=str(item.folder / SCENES_JSONL),
            simprints=simprints,
            no_raw=not raw,
            narrow=narrow,
            output=str(item.folder / CONTAINER_JSON),
            record_errors=True,
        )

    def fallback(item: Item, error: str) -> None:
        from . import api, records
        from .output import render, write_text

        failed = records.scene_record(
            item.source, format=None, reader=None, info=None, error=error, simprints=simprints
        )
        write_text(render([failed], lines=True), item.folder / SCENES_JSONL)
        write_text(
            render([api.failed_biocode(item.source, error)], lines=False), item.folder / CONTAINER_JSON
        )

    from .batch import Step

    return Step(
        name="hash",
        outputs=(SCENES_JSONL, CONTAINER_JSON),
        digest=lambda item: _upstream_digest("hash", item, (WALK_JSON,), simprints, narrow, raw),
        compute=compute,
        fallback=fallback,
        status=_status_of(CONTAINER_JSON),
    )


def views_step(strategies: tuple[str, ...], max_views: int, source_kind: str, reader: str) -> Step:
    """Each input's views (every scene) as PNGs and views.jsonl in DIR/views/, replaced whole."""
    from . import cli_views

    def compute(item: Item) -> None:
        with _replaced_folder(item.folder / VIEWS_DIR) as folder:
            cli_views.views_into(item.source, folder, strategies, max_views, source_kind, reader)

    def fallback(item: Item, error: str) -> None:
        from .output import render, write_text
        from .views import records as view_records

        with _replaced_folder(item.folder / VIEWS_DIR) as folder:
            failed = view_records.views_record(item.source, format=None, reader=None, info=None, error=error)
            write_text(render([failed], lines=True), folder / "views.jsonl")

    from .batch import Step

    return Step(
        name="views",
        outputs=(VIEWS_JSONL,),
        digest=lambda item: _upstream_digest(
            "views", item, (WALK_JSON,), list(strategies), max_views, source_kind, reader
        ),
        compute=compute,
        fallback=fallback,
        status=_status_of(VIEWS_JSONL),
    )


def mix_step(bits: int) -> Step:
    """Each input's image record from its views and scene records."""
    from . import cli_views

    def compute(item: Item) -> None:
        cli_views.mix_one(
            str(item.folder / VIEWS_JSONL),
            str(item.folder / SCENES_JSONL),
            bits,
            str(item.folder / IMAGE_JSONL),
            record_errors=True,
        )

    def fallback(item: Item, error: str) -> None:
        from .output import render, write_text
        from .views import records as view_records

        failed = view_records.image_record(
            item.source, format=None, reader=None, info=None, bits=bits, error=error
        )
        write_text(render([failed], lines=True), item.folder / IMAGE_JSONL)

    from .batch import Step

    return Step(
        name="mix",
        outputs=(IMAGE_JSONL,),
        digest=lambda item: _upstream_digest("mix", item, (VIEWS_JSONL, SCENES_JSONL), bits),
        compute=compute,
        fallback=fallback,
        status=_status_of(IMAGE_JSONL),
    )


class _replaced_folder:
    """A fresh folder that replaces `target` whole when the block succeeds (never half old, half new)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.fresh = target.with_name(f".{target.name}.new-{os.getpid()}")

    def __enter__(self) -> Path:
        # this one, and those a killed run left (another process id)
        for kind in ("new", "old"):
            for stale in self.target.parent.glob(f".{self.target.name}.{kind}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        self.fresh.mkdir(parents=True)
        return self.fresh

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None:
            shutil.rmtree(self.fresh, ignore_errors=True)
            return
        old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        if self.target.exists():
            os.replace(self.target, old)
        os.replace(self.fresh, self.target)
        shutil.rmtree(old, ignore_errors=True)
