"""The `bioiscc` command line: a thin layer over `bioiscc.api`.

Exit codes (docs/spec/RECORDS.md): 0 done; 1 the input could not be read (one line on stderr,
nothing written); 2 usage error; 3 output written but some scene records failed; 130 interrupted
(Ctrl-C). With `--record-errors` a failure becomes a failed record and the exit code is 0.

Heavy imports (numpy, readers) happen inside the commands, so `bioiscc --version` is instant.
"""

from __future__ import annotations

import errno
import io
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click

from ._version import __version__
from .cli_batch import batch_options, hash_step, refuse_with_batch, run_batch, walk_step
from .cli_output import CheckedCommand, InputFile, InputLines, OutputFile

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command that Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as shells report `yes | head`
SOURCE_KINDS = ("auto", "tiff", "ome-zarr", "bioio")
READERS = ("native", "bioformats")


#: commands whose exit 1 is a verdict (the pixels differ): they fail with 2, "could not be checked"
VERDICT_COMMANDS = ("verify", "diff")
EXIT_COULD_NOT_CHECK = 2


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"bioiscc: error: {message}", err=True)
    sys.exit(code)


class ProgressLine:
    """A single updating line on stderr for long scenes (only when stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.shown = False

    def __call__(self, scene: int, done: int, total: int) -> None:
        """Called as a scene's bytes are hashed; shows at most two updates a second."""
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        self.show(scene, 100 * done / total if total else 100.0, total)

    def show(self, scene: int, percent: float, total: int) -> None:
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
        help="native: tifffile, zarr, aicspylibczi, nd2, liffile, mrc. bioformats: Bio-Formats "
        "(needs Java, opt-in).",
    )(func)
    func = click.option(
        "--source",
        "source_kind",
        type=click.Choice(SOURCE_KINDS),
        default="auto",
        show_default=True,
        help="How to open SOURCE. auto: by its content and name; tiff: tifffile; ome-zarr: as an "
        "OME-Zarr folder; bioio: by its suffix, with the CZI, ND2, LIF and DV readers, or a bioio "
        "plugin (for a TIFF: bioio-ome-tiff or bioio-tifffile, which no extra installs).",
    )(func)
    return func


def record_errors_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--record-errors",
        is_flag=True,
        help="Write a failed record instead of failing, and exit 0 (for workflows).",
    )(func)


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-o",
        "--output",
        type=OutputFile(),
        default=None,
        help="Write to this file (atomically) instead of stdout.",
    )(func)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """-o FILE and --record-errors, of the commands that write records."""
    return output_option(record_errors_option(func))


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
        help="Threads to keep busy: 1 reads, decodes and hashes in turn on one core; N decodes "
        "chunks in up to N threads while the hash runs beside them (default: the cores this "
        "process may use, which a Slurm job or taskset limits).",
    )(func)


def progress_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show progress on stderr (default: when stderr is a terminal).",
    )(func)


#: the commands other modules define (each decorates `main` when imported), by the module that
#: defines them: imported when a command is asked for, so that `bioiscc hash` does not import
#: the others (about 15 ms of every start); `--help` imports them all
LAZY_COMMANDS = {
    "container": "cli_workflow",
    "index": "cli_workflow",
    "clean-stale": "cli_clean",
    "diff": "cli_compare",
    "similar": "cli_compare",
    "formats": "cli_formats",
    "verify": "cli_verify",
    **{name: "cli_views" for name in ("extract-views", "mix", "imagecode", "views", "scenes", "thumb")},
}


class Main(click.Group):
    """The command group: an output that cannot be written ends a command with one line and exit 1;
    Ctrl-C with one line and exit 130 (click's own "Aborted!" exits 1, which here means an input
    that could not be read). Outputs are removed and hashing threads stopped on the way out. Its
    commands check their outputs against their inputs before they start (`CheckedCommand`)."""

    command_class = CheckedCommand

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = LAZY_COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            import importlib

            importlib.import_module(f"{__package__}.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def invoke(self, ctx: click.Context) -> Any:

        from .errors import describe
        from .output import InputFileError, OutputError, protect_inputs

        try:
            with protect_inputs():
                return super().invoke(ctx)
        except (OutputError, InputFileError) as exc:
            _fail(str(exc), self._failure_code(ctx))
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("bioiscc: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `| head` took what it wanted and closed the pipe: no message
            _quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except Exception as exc:  # a bug: still one line, not a traceback, unless asked for
            if os.environ.get("BIOISCC_DEBUG"):
                raise
            _fail(f"unexpected {describe(exc)} (BIOISCC_DEBUG=1 shows where)", self._failure_code(ctx))

    @staticmethod
    def _failure_code(ctx: click.Context) -> int:
        """1, or 2 for the commands whose 1 says the pixels differ."""
        return EXIT_COULD_NOT_CHECK if ctx.invoked_subcommand in VERDICT_COMMANDS else EXIT_FAILED


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on the closed pipe."""

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured)
        pass


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="bioiscc")
def main() -> None:
    """ISCC codes for microscopy data, computed from the pixels (IMAGEWALK).

    SOURCE is a file (OME-TIFF, TIFF, CZI, ND2, LIF, DV) or an OME-Zarr store; `bioiscc formats`
    lists what this installation reads, and `bioiscc COMMAND -h` explains each command.

    Exit codes: 0 done; 1 an input could not be read (one line on stderr, nothing written); 2 usage
    error; 3 output written, some scenes failed; 130 interrupted; 141 stdout closed by its reader
    (`| head`). `verify` and `diff`: 0 the pixels match, 1 they differ, 2 something could not be
    checked.
    """
    _quiet_libraries()
    _idle_blas()


def _idle_blas() -> None:
    """One OpenBLAS thread, unless the environment says otherwise (before numpy is imported).

    bioiscc does no linear algebra, but numpy's OpenBLAS starts a thread per core at import that
    spins for a while waiting for work: on 2 cores that took 0.05-0.1 s of CPU from the hash, and a
    512 MiB zstd OME-Zarr hashed in 1.28-1.43 s instead of 1.60-1.97 s (4 runs each, 2-core VM).
    """

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _quiet_libraries() -> None:
    """Reader libraries log and warn freely; our own one-line errors carry the cause.

    Set BIOISCC_DEBUG=1 to see their messages.
    """
    import logging
    import warnings

    if not os.environ.get("BIOISCC_DEBUG"):
        logging.getLogger().setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")
        # "Exception ignored in ...": zarr's chunk reads still in flight when a read fails are
        # destroyed with its event loop at exit, after the one-line error (3 runs in 30 under load)
        sys.unraisablehook = _ignore_unraisable


def _ignore_unraisable(unraisable: Any) -> None:
    """Drop an exception Python cannot raise (in a destructor, at exit): the command has said its
    one line already, or will."""


def _finish(
    source: str,
    text: str,
    output: str | None,
    failures: list[tuple[Any, str]],
    total: int,
    record_errors: bool,
    exact_names: bool = False,
) -> None:
    """Write `text` to the output (stdout without one) and exit as RECORDS.md says (`_conclude`)."""
    from .output import write_text

    _conclude(source, failures, total, record_errors, lambda: write_text(text, output, exact_names))


def _conclude(
    source: str, failures: list[tuple[Any, str]], total: int, record_errors: bool, write: Callable[[], None]
) -> None:
    """Call `write` and exit as RECORDS.md says.

    `failures` holds (scene index, error) of the failed scenes among `total`. When no scene at all
    could be read, the input as a whole failed: one line, exit 1, nothing written (unless
    --record-errors). When some failed, the output is written, each failure named on stderr, and
    the exit code is 3.
    """
    from .locations import redact

    source = redact(source)

    def where(index: Any) -> str:
        return f"{source}: scene {index}" if index is not None else source

    if failures and len(failures) == total and not record_errors:
        index, error = failures[0]
        more = f" (and {len(failures) - 1} more failed scene(s))" if len(failures) > 1 else ""
        _fail(f"{where(index)}: {error}{more}")
    write()
    for index, error in failures:
        click.echo(f"bioiscc: {where(index)}: {error}", err=True)
    if failures and not record_errors:
        sys.exit(EXIT_INCOMPLETE)


def _scene_failures(records: Iterable[dict[str, Any]]) -> list[tuple[Any, str]]:
    return [
        ((r.get("scene") or {}).get("index"), str(r.get("error"))) for r in records if r.get("status") != "ok"
    ]


def sources_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--from FILE: more SOURCEs, one per line ('-': stdin), as `find ... |` gives them."""
    return click.option(
        "--from",
        "from_file",
        type=InputLines(errors="surrogateescape"),
        help="Also read SOURCEs from this file, one per line ('-': stdin).",
    )(func)


def gather_sources(sources: tuple[str, ...], from_file: Any) -> list[str]:
    """The SOURCE arguments, then those listed in --from."""
    found = list(sources)
    if from_file is not None:
        found.extend(line.rstrip("\r\n") for line in from_file if line.strip())
    return found


def each_source(sources: list[str], one: Callable[[str], None]) -> None:
    """Run a one-source command over several sources; one failure never stops the others.

    Each source's records go to stdout in turn (JSON Lines), its errors to stderr. The exit code is
    the worst of the sources' (1 when a source could not be read at all, 3 when some scenes failed).
    A `--scene` that one source lacks is that source's failure, not a usage error that would stop
    the others.
    """
    worst = EXIT_OK
    for source in sources:
        try:
            one(source)
        except click.UsageError as exc:
            click.echo(f"bioiscc: error: {exc.format_message()}", err=True)
            worst = EXIT_FAILED
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
            worst = code if worst == EXIT_OK or code == EXIT_FAILED else worst
    if worst != EXIT_OK:
        sys.exit(worst)


def _walk_records(
    source: str, source_kind: str, reader: str, record_errors: bool
) -> tuple[dict[str, Any], list[tuple[Any, str]]]:
    from . import api
    from .errors import BioisccError

    try:
        record = api.walk(source, source=source_kind, reader=reader)
    except BioisccError as exc:
        if not record_errors:
            _fail(str(exc))
        record = api.failed_walk(source, getattr(exc, "cause", str(exc)))
    failures = [(s["index"], str(s["error"])) for s in record["scenes"] if s.get("status") == "failed"]
    return record, failures


def walk_one(
    source: str, source_kind: str, reader: str, output: str | None, record_errors: bool, lines: bool = False
) -> None:
    """The walk manifest of one source, written to `output` (stdout: None) as RECORDS.md says."""
    from .output import render

    record, failures = _walk_records(source, source_kind, reader, record_errors)
    _finish(source, render([record], lines=lines), output, failures, len(record["scenes"]), record_errors)


@main.command()
@click.argument("sources", nargs=-1)
@sources_option
@batch_options
@source_options
@output_options
@progress_option
def walk(
    sources: tuple[str, ...],
    from_file: Any,
    batch_file: str | None,
    batch_log: str | None,
    retry_failed: bool,
    source_kind: str,
    reader: str,
    output: str | None,
    record_errors: bool,
    progress: bool | None,
) -> None:
    """List the scenes of each SOURCE and their geometry (a bioiscc.walk manifest). Reads no pixels.

    One SOURCE: one JSON document. Several (arguments or --from): one manifest per line. --batch:
    DIR/walk.json per input (see `bioiscc.batch`).
    """
    if batch_file is not None:
        refuse_with_batch(SOURCE=sources, output=output, **{"--from": from_file})
        run_batch(walk_step(source_kind, reader), batch_file, batch_log, retry_failed, progress)
        return
    found = gather_sources(sources, from_file)
    if not found:
        raise click.UsageError("give a SOURCE (or --from FILE, or --batch FILE)")
    if len(found) == 1:
        walk_one(found[0], source_kind, reader, output, record_errors)
        return
    each_to(found, output, lambda s: walk_one(s, source_kind, reader, None, record_errors, lines=True))


def each_to(sources: list[str], output: str | None, one: Callable[[str], None]) -> None:
    """Several sources into one stream: stdout as each is done, or -o FILE once, atomically, at the end.

    The file holds the records of every source that could be read, also when others could not (the
    exit code says so); a usage error or an interrupt, which end the run early, write nothing.
    """
    if output is None:
        each_source(sources, one)
        return
    import io

    from .output import write_text

    buffer, real_stdout = io.StringIO(), sys.stdout
    sys.stdout = buffer
    failed: SystemExit | None = None
    try:
        each_source(sources, one)
    except SystemExit as exc:  # every source was done, some failed
        failed = exc
    finally:  # any other exception (usage error, Ctrl-C) leaves with nothing written
        sys.stdout = real_stdout
    if buffer.getvalue():  # a run in which every source failed writes nothing
        write_text(buffer.getvalue(), output)
    if failed is not None:
        raise failed


@main.command(name="hash")
@click.argument("sources", nargs=-1)
@click.option("--manifest", type=InputFile(), help="A walk manifest instead of SOURCE.")
@scenes_option
@click.option("--simprints", is_flag=True, help="Add per-plane simprints.")
@click.option(
    "--narrow", is_flag=True, help="ISO-conformant 64-bit ISCC-SUM (ISCC:KUA…) instead of the wide one."
)
@click.option(
    "--no-raw", is_flag=True, help="(--batch) Skip the raw-bytes ISCC-SUM in each input's container."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("json", "lines")),
    default="json",
    show_default=True,
    help="json: bioiscc.scene records. lines: one checksum line `ISCC:… *PATH` per scene (PATH#K "
    "where the source has several scenes), as iscc-sum prints them, for `bioiscc verify`.",
)
@sources_option
@batch_options
@source_options
@output_options
@threads_option
@progress_option
def hash_command(
    sources: tuple[str, ...],
    manifest: str | None,
    scenes: tuple[int, ...],
    simprints: bool,
    narrow: bool,
    no_raw: bool,
    output_format: str,
    from_file: Any,
    batch_file: str | None,
    batch_log: str | None,
    retry_failed: bool,
    source_kind: str,
    reader: str,
    output: str | None,
    record_errors: bool,
    progress: bool | None,
) -> None:
    """The ISCC-SUM of each scene of each SOURCE (bioiscc.scene records, one JSON per line).

    --batch: for each input, its scene records (DIR/scenes.jsonl) and biocode container
    (DIR/container.json, with the raw-bytes ISCC-SUM unless --no-raw) from its walk manifest
    DIR/walk.json, as the workflow's hash rule writes them (see `bioiscc.batch`).

    --format lines: `ISCC:… *PATH` per scene instead, the checksum lines `bioiscc verify` checks.
    """
    if batch_file is not None:
        refuse_with_batch(
            SOURCE=sources,
            output=output,
            manifest=manifest,
            scene=scenes,
            **{"--from": from_file, "--format lines": output_format == "lines"},
        )
        run_batch(hash_step(simprints, narrow, not no_raw), batch_file, batch_log, retry_failed, progress)
        return
    found = gather_sources(sources, from_file)
    if (not found) == (manifest is None):
        raise click.UsageError("give either SOURCE(s) or --manifest WALK.json")

    def one(source: str | None, target: str | None) -> None:
        hash_one(
            source,
            manifest,
            scenes,
            simprints,
            narrow,
            source_kind,
            reader,
            target,
            record_errors,
            progress,
            checksums=output_format == "lines",
        )

    if len(found) <= 1:
        one(found[0] if found else None, output)
        return
    each_to(found, output, lambda source: one(source, None))


def hash_one(
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
    checksums: bool = False,
) -> None:
    """The scene records of one source (or of the source a walk manifest describes).

    `checksums`: checksum lines (`bioiscc.verify.checksum_lines`) instead of the JSON records.
    """
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
    if checksums:
        from .verify import checksum_lines

        text = checksum_lines(results, selected=bool(scenes))
    else:
        text = render(results, lines=True)
    _finish(location, text, output, failures, len(results), record_errors, exact_names=checksums)


def _load_manifest(path: str) -> dict[str, Any]:
    from .output import read_record

    try:
        record = read_record(path, kind="bioiscc.walk")
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


def run() -> None:
    """The `bioiscc` program (its console script and `python -m bioiscc`): `main`, then the
    process ends without Python's teardown, where that is safe (`end_without_teardown`)."""
    _open_standard_streams()
    try:
        main()
    except SystemExit as done:
        end_without_teardown(done.code)
        raise


class _ClosedOutput(io.TextIOBase):
    """stdout of a program started with it closed (`>&-`): writing fails, as sha256sum's does."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def _open_standard_streams() -> None:
    """Python sets a standard stream the program was started without to None, and a command then
    failed on its first message ("'NoneType' object has no attribute 'isatty'", exit 1, even when
    all went well). Without stderr, messages go nowhere, as the caller asked; without stdout, a
    command that writes there fails in one line ("standard output: cannot write: Bad file
    descriptor"), and one that writes files is not stopped."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - kept open for the run
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()


def end_without_teardown(code: Any) -> None:
    """End the process with `code` now, skipping the interpreter's teardown, or return when that
    could lose something (then Python ends it as usual).

    The teardown frees every module and object one by one: 18 ms of the 0.14 s `bioiscc hash` takes
    on a small file, 20-25 ms after a 512 MiB one (2-core VM), paid by every command a shell loop or
    workflow runs. Nothing is lost by skipping it here: outputs are written and closed (atomically)
    before a command returns, the exit handlers still run (logging, temporary folders), the
    standard streams are flushed, and it is not done while a non-daemon thread still runs (a thread
    pool's workers: Python would wait for them). `BIOISCC_TEARDOWN=1` keeps the teardown.
    """
    import atexit
    import threading

    if code is None:
        code = 0
    if not isinstance(code, int) or os.environ.get("BIOISCC_TEARDOWN") == "1":
        return  # a message to print: Python does that
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()  # then cleared: not run twice if Python's own exit follows
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the program was started with that descriptor closed
                stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: Python's exit reports it as before
        return
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
