"""The `bioiscc` command line: a thin layer over `bioiscc.api`.

Exit codes (shared/spec/RECORDS.md): 0 done; 1 the input could not be read (one line on stderr,
nothing written); 2 usage error; 3 output written but some scene records failed. With
`--record-errors` a failure becomes a failed record and the exit code is 0.

Heavy imports (numpy, readers) happen inside the commands, so `bioiscc --version` is instant.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click

from ._version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
SOURCE_KINDS = ("auto", "tiff", "ome-zarr", "bioio")
READERS = ("native", "bioformats")


def _fail(message: str) -> NoReturn:
    click.echo(f"bioiscc: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


class ProgressLine:
    """A single updating line on stderr for long scenes (only when stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.shown = False

    def __call__(self, scene: int, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        percent = 100 * done / total if total else 100
        click.echo(
            f"\rbioiscc: scene {scene}: {percent:5.1f}% of {total / 2**20:,.1f} MiB", err=True, nl=False
        )
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command that opens a source shares."""
    func = click.option(
        "--reader",
        type=click.Choice(READERS),
        default="native",
        show_default=True,
        help="native: tifffile, zarr, liffile, mrc, bioio plugins (CZI, ND2). bioformats: Bio-Formats "
        "(needs Java, opt-in).",
    )(func)
    func = click.option(
        "--source",
        "source_kind",
        type=click.Choice(SOURCE_KINDS),
        default="auto",
        show_default=True,
        help="How to open SOURCE; auto decides from the path.",
    )(func)
    return func


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--record-errors",
        is_flag=True,
        help="Write a failed record instead of failing, and exit 0 (for workflows).",
    )(func)
    func = click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        default=None,
        help="Write to this file (atomically) instead of stdout.",
    )(func)
    return func


def scenes_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The repeatable --scene of the commands that work on several scenes."""
    return click.option(
        "--scene",
        "scenes",
        type=click.IntRange(min=0),
        multiple=True,
        help="Scene index (repeatable; default all).",
    )(func)


def threads_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--threads: 1 reads and hashes in turn on one core; more overlap reading with hashing."""

    def apply(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        from .imagewalk import use_threads

        use_threads(value)
        return value

    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        callback=apply,
        expose_value=False,
        help="Threads to use: 1 reads and hashes in turn (one core); 2 or more read the next "
        "planes while hashing (default: 2).",
    )(func)


def progress_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show progress on stderr (default: when stderr is a terminal).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="bioiscc")
def main() -> None:
    """ISCC codes for microscopy data, computed from the pixels (IMAGEWALK).

    SOURCE is a file (OME-TIFF, TIFF, CZI, ND2, LIF, DV) or an OME-Zarr store.
    """
    _quiet_libraries()


def _quiet_libraries() -> None:
    """Reader libraries log and warn freely; our own one-line errors carry the cause.

    Set BIOISCC_DEBUG=1 to see their messages.
    """
    import logging
    import os
    import warnings

    if not os.environ.get("BIOISCC_DEBUG"):
        logging.getLogger().setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")


def _finish(
    source: str,
    text: str,
    output: str | None,
    failures: list[tuple[Any, str]],
    total: int,
    record_errors: bool,
) -> None:
    """Write the output and exit as RECORDS.md says.

    `failures` holds (scene index, error) of the failed scenes among `total`. When no scene at all
    could be read, the input as a whole failed: one line, exit 1, nothing written (unless
    --record-errors). When some failed, the output is written and the exit code is 3.
    """
    from .locations import redact
    from .output import write_text

    source = redact(source)
    if failures and len(failures) == total and not record_errors:
        index, error = failures[0]
        more = f" (and {len(failures) - 1} more failed scene(s))" if len(failures) > 1 else ""
        _fail(f"{source}: scene {index}: {error}{more}")
    write_text(text, output)
    for index, error in failures:
        where = f"{source}: scene {index}" if index is not None else source
        click.echo(f"bioiscc: {where}: {error}", err=True)
    if failures and not record_errors:
        sys.exit(EXIT_INCOMPLETE)


def _scene_failures(records: Iterable[dict[str, Any]]) -> list[tuple[Any, str]]:
    return [
        ((r.get("scene") or {}).get("index"), str(r.get("error"))) for r in records if r.get("status") != "ok"
    ]


@main.command()
@click.argument("source")
@source_options
@output_options
def walk(source: str, source_kind: str, reader: str, output: str | None, record_errors: bool) -> None:
    """List the scenes of SOURCE and their geometry (a bioiscc.walk manifest). Reads no pixels."""
    from . import api
    from .errors import BioisccError
    from .output import render

    try:
        record = api.walk(source, source=source_kind, reader=reader)
    except BioisccError as exc:
        if not record_errors:
            _fail(str(exc))
        record = api.failed_walk(source, getattr(exc, "cause", str(exc)))
    failures = [(s["index"], str(s["error"])) for s in record["scenes"] if s.get("status") == "failed"]
    _finish(source, render([record], lines=False), output, failures, len(record["scenes"]), record_errors)


@main.command(name="hash")
@click.argument("source", required=False)
@click.option(
    "--manifest", type=click.Path(exists=True, dir_okay=False), help="A walk manifest instead of SOURCE."
)
@scenes_option
@click.option("--simprints", is_flag=True, help="Add per-plane simprints.")
@click.option(
    "--narrow", is_flag=True, help="ISO-conformant 64-bit ISCC-SUM (ISCC:KUA…) instead of the wide one."
)
@source_options
@output_options
@threads_option
@progress_option
def hash_command(
    source: str | None,
    manifest: str | None,
    scenes: tuple[int, ...],
    simprints: bool,
    narrow: bool,
    source_kind: str,
    reader: str,
    output: str | None,
    record_errors: bool,
    progress: bool | None,
) -> None:
    """The ISCC-SUM of each scene of SOURCE (bioiscc.scene records, one JSON per line)."""
    if (source is None) == (manifest is None):
        raise click.UsageError("give either SOURCE or --manifest WALK.json")
    from . import api, records
    from .errors import BioisccError
    from .output import render

    line = ProgressLine(sys.stderr.isatty() if progress is None else progress)
    location = source or ""
    try:
        if manifest is not None:
            walk_record = _load_manifest(manifest)
            location = str(walk_record.get("source", manifest))
            results = api.hash_manifest(
                walk_record, scenes=scenes, simprints=simprints, narrow=narrow, progress=line
            )
        else:
            results = api.hash_scenes(
                location,
                scenes=scenes,
                simprints=simprints,
                narrow=narrow,
                source=source_kind,
                reader=reader,
                progress=line,
            )
    except api.SceneSelectionError as exc:
        raise click.UsageError(str(exc)) from exc
    except BioisccError as exc:
        line.close()
        if not record_errors:
            _fail(str(exc))
        cause = getattr(exc, "cause", str(exc))
        results = [
            records.scene_record(
                location, format=None, reader=None, info=None, error=cause, simprints=simprints
            )
        ]
    line.close()
    failures = _scene_failures(results)
    _finish(location, render(results, lines=True), output, failures, len(results), record_errors)


def _load_manifest(path: str) -> dict[str, Any]:
    from .output import read_records

    try:
        (record,) = read_records(path)
    except Exception as exc:
        _fail(f"{path}: not a walk manifest ({exc})")
    if record.get("kind") != "bioiscc.walk":
        _fail(f"{path}: not a walk manifest (kind {record.get('kind')!r})")
    return record


@main.command()
@click.argument("source")
@click.option("--simprints", is_flag=True, help="Add per-plane simprints to each part.")
@click.option(
    "--no-raw", is_flag=True, help="Skip the raw-bytes ISCC-SUM of the file (top-level codes null)."
)
@click.option("--narrow", is_flag=True, help="ISO-conformant 64-bit ISCC-SUMs instead of wide ones.")
@source_options
@output_options
@threads_option
@progress_option
def biocode(
    source: str,
    simprints: bool,
    no_raw: bool,
    narrow: bool,
    source_kind: str,
    reader: str,
    output: str | None,
    record_errors: bool,
    progress: bool | None,
) -> None:
    """The iscc-bio container: the file's raw-bytes ISCC-SUM and every scene's code as parts."""
    from . import api
    from .errors import BioisccError
    from .output import render

    line = ProgressLine(sys.stderr.isatty() if progress is None else progress)
    try:
        record = api.biocode(
            source,
            simprints=simprints,
            raw=not no_raw,
            narrow=narrow,
            source=source_kind,
            reader=reader,
            progress=line,
        )
    except BioisccError as exc:
        line.close()
        if not record_errors:
            _fail(str(exc))
        record = api.failed_biocode(source, getattr(exc, "cause", str(exc)))
    line.close()
    failures = _scene_failures(record["parts"])
    _finish(source, render([record], lines=False), output, failures, len(record["parts"]), record_errors)


if __name__ == "__main__":  # pragma: no cover
    main()
from . import cli_workflow  # noqa: E402,F401
from .cli_views import COMMANDS as _VIEW_COMMANDS  # noqa: E402,F401
