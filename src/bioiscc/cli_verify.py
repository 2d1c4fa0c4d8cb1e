"""`bioiscc verify`: check sources against stored scene codes, as `sha256sum -c` checks files.

    bioiscc hash --format lines a.czi b.nd2 > codes.txt && bioiscc verify codes.txt
    bioiscc verify results/index.jsonl --root /data/microscopy          # in place, or a moved tree
    bioiscc verify --against old/index.jsonl /data/converted            # a migration or conversion

Exit codes: 0 every listed scene verified; 1 some scene FAILED, MISSING or UNREADABLE (in an audit:
a code of OLD is not in NEW, or a source of NEW is unreadable); 2 trouble (a list that cannot be
read, no entry in it, or, with --strict, improperly formatted lines or scenes listed without a
code). The logic is in `bioiscc.verify`; the command is registered on `bioiscc.cli.main` by the
import at the end of `bioiscc.cli`, and imports nothing heavy until it runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

#: The command this module registers on `bioiscc.cli.main`. Defined before `bioiscc.cli` is imported:
#: `bioiscc.cli` imports this name at its end, whichever of the two modules is imported first.
COMMANDS = ("verify",)

from . import cli  # noqa: E402
from .cli import ProgressLine, progress_option, source_options, threads_option  # noqa: E402
from .cli_output import OutputFile  # noqa: E402
from .output import plural  # noqa: E402

if TYPE_CHECKING:
    from .verify import Entry, Outcome, Reading, Skipped

EXIT_OK, EXIT_BAD, EXIT_TROUBLE = 0, 1, 2


def _group() -> click.Group:
    """The `bioiscc` command group the command joins."""
    group: click.Group = cli.main
    return group


class Trouble(Exception):
    """Verification cannot go on: one line on stderr, exit 2, nothing written."""


class Output:
    """stdout, or a file written as the results come and put in place, atomically, at the end."""

    def __init__(self, target: str | None) -> None:
        from .output import replaced_file, temporary_prefix

        self.target: Path | None = None
        self.temporary: str | None = None
        self.stream: IO[str] = sys.stdout
        self.name = "standard output" if target in (None, "-") else str(target)  # for messages
        if target in (None, "-"):
            try:  # a name that is not UTF-8 is printed with its own bytes, as sha256sum -c does
                sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
            except (AttributeError, ValueError):  # not a text file of Python's own
                pass
            return
        self.target = replaced_file(Path(str(target)))  # a link's target, not the link
        if self.target is None:  # /dev/null, a FIFO: written to, not replaced
            self.stream = open(str(target), "w", encoding="utf-8", errors="surrogateescape")
        else:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            handle, self.temporary = tempfile.mkstemp(
                prefix=temporary_prefix(self.target), suffix=".tmp", dir=self.target.parent
            )
            self.stream = os.fdopen(handle, "w", encoding="utf-8", errors="surrogateescape")

    def write(self, text: str) -> None:
        """Write `text`; on stdout or a device, at once (each line as its source is checked)."""
        try:
            self.stream.write(text)
            if self.temporary is None:
                self.stream.flush()
        except BrokenPipeError:  # `| head` closed the pipe: the command ends quietly (exit 141)
            raise
        except OSError as exc:  # a full disk: no half-written report stays behind
            self.discard()
            raise Trouble(f"{self.name}: cannot write: {exc.strerror or exc}") from exc

    def commit(self) -> None:
        if self.temporary is None or self.target is None:
            try:
                self.stream.flush()
            except OSError as exc:
                raise Trouble(f"{self.name}: cannot write: {exc.strerror or exc}") from exc
            return
        from .output import OutputError, _umask, refuse_inputs

        try:
            refuse_inputs(self.target)  # `-o` naming a list or a source it checked
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            os.chmod(self.temporary, 0o666 & ~_umask())
            os.replace(self.temporary, self.target)
        except (OSError, OutputError) as exc:
            self.discard()
            cause = (
                str(exc)
                if isinstance(exc, OutputError)
                else f"{self.target}: cannot write: {exc.strerror or exc}"
            )
            raise Trouble(cause) from exc

    def discard(self) -> None:
        if self.temporary is not None:
            try:
                self.stream.close()
            except OSError:  # what was buffered cannot be written either: it is thrown away
                pass
            Path(self.temporary).unlink(missing_ok=True)


class Progress(ProgressLine):
    """One updating line on stderr: scenes checked so far and the scene being hashed."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled)
        self.checked = 0
        self.current = ""
        self.width = 0

    def show(self, scene: int, percent: float, total: int) -> None:
        where = f"{self.current[-60:]} scene {scene}" if self.current else f"scene {scene}"
        text = f"bioiscc verify: {self.checked:,} scenes checked; {where}: {percent:5.1f}%"
        click.echo("\r" + text.ljust(self.width), err=True, nl=False)
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            click.echo("\r" + " " * self.width + "\r", err=True, nl=False)
            self.width = 0


class Report:
    """Prints outcomes and skipped lines as the options say, and counts them."""

    def __init__(
        self, output: Output, as_json: bool, quiet: bool, silent: bool, warn: bool, progress: Progress
    ) -> None:
        self.output, self.as_json, self.quiet, self.silent, self.warn = output, as_json, quiet, silent, warn
        self.progress = progress
        self.counts: Counter[str] = Counter()
        self.malformed = 0
        self.uncoded = 0
        self.entries = 0

    def outcome(self, outcome: Outcome) -> None:
        from .output import dumps
        from .verify import CHECK, FAILED, OK, UNREADABLE

        self.counts[outcome.status] += 1
        self.progress.checked += 1
        if self.silent:
            return
        self.progress.clear()
        if not (self.quiet and outcome.status == OK):
            self.output.write(dumps(outcome.record()) + "\n" if self.as_json else outcome.line() + "\n")
        named = outcome.status == UNREADABLE or (outcome.status, outcome.mode) == (FAILED, CHECK)
        if outcome.error and named:
            click.echo(f"bioiscc: verify: {outcome.label}: {outcome.error}", err=True)

    def skipped(self, item: Skipped) -> None:
        if item.malformed:
            self.malformed += 1
        else:
            self.uncoded += 1
        if self.warn and not self.silent:
            self.progress.clear()
            click.echo(f"bioiscc: verify: {item.where}: {item.cause}", err=True)

    def summary(self, audit: bool) -> str:
        from .verify import FAILED, MISSING, MOVED, NEW, OK, UNREADABLE

        count = self.counts
        if audit:
            old = sum(count[s] for s in (OK, MOVED, FAILED, MISSING))
            line = (
                f"bioiscc verify: {_scenes(old)} of OLD: {count[OK]} OK, {count[MOVED]} MOVED, "
                f"{count[FAILED]} FAILED, {count[MISSING]} MISSING; in NEW: {count[NEW]} NEW, "
                f"{count[UNREADABLE]} UNREADABLE"
            )
        else:
            line = (
                f"bioiscc verify: {_scenes(sum(count.values()))}: {count[OK]} OK, {count[FAILED]} FAILED, "
                f"{count[MISSING]} MISSING, {count[UNREADABLE]} UNREADABLE"
            )
            if count[MISSING] and count[MISSING] == sum(count.values()):
                line += " (relative paths are looked up under --root DIR, by default the current directory)"
        if self.malformed:
            line += f"; {plural(self.malformed, 'line')} improperly formatted"
        if self.uncoded:
            line += f"; {plural(self.uncoded, 'listed scene')} without a stored code, not verified"
        return line


def _scenes(number: int) -> str:
    return f"{number} scene" if number == 1 else f"{number} scenes"


@_group().command()
@click.argument("lists", nargs=-1, metavar="LIST...")
@click.option(
    "--against",
    "old",
    multiple=True,
    metavar="OLD",
    help="Audit: every scene code of OLD (a list, or a directory to hash) must be in the LISTs or "
    "directories given as arguments (NEW), under any name or format. Repeatable.",
)
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False),
    help="The directory the listed relative paths are relative to (default: the current directory); "
    "for an index, the input_dir it was made with, or where that tree is now.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not print OK for each verified scene.")
@click.option("--status", "silent", is_flag=True, help="Print nothing; the exit code says it all.")
@click.option("-w", "--warn", is_flag=True, help="Name each improperly formatted line (and uncoded scene).")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 2 for improperly formatted lines or scenes listed without a code (when all else is OK).",
)
@click.option("--json", "as_json", is_flag=True, help="One bioiscc.verify record per scene (JSON Lines).")
@click.option(
    "-o",
    "--output",
    type=OutputFile(),
    help="Write the results to this file (put in place atomically at the end) instead of stdout.",
)
@source_options
@threads_option
@progress_option
def verify(
    lists: tuple[str, ...],
    old: tuple[str, ...],
    root: str | None,
    quiet: bool,
    silent: bool,
    warn: bool,
    strict: bool,
    as_json: bool,
    output: str | None,
    source_kind: str,
    reader: str,
    progress: bool | None,
) -> None:
    """Check sources against the scene codes stored in each LIST ('-': stdin).

    A LIST is an index (index.jsonl or index.tsv, as `bioiscc index` and the workflow write it),
    biocode containers, bioiscc.scene records, or checksum lines (`bioiscc hash --format lines`).
    Each listed scene is recomputed from its source, each source hashed once, and printed as
    `PATH#SCENE: OK`, `FAILED` (another code, or no such scene now), `MISSING` (no such source) or
    `UNREADABLE` (the cause on stderr). Relative paths are looked up under --root.

    With --against OLD, the arguments are NEW (lists, or directories and image files to hash):
    each scene of OLD is OK (same name, same code), MOVED (its code found under another name: moved,
    copied or converted), FAILED (its name holds another code) or MISSING; codes only in NEW are NEW,
    sources of NEW that cannot be read UNREADABLE. Names are compared as listed; a directory's
    sources are named relative to it.

    Exit status: 0 all verified, 1 any FAILED, MISSING or UNREADABLE, 2 trouble.
    """
    from .verify import Reading

    if not lists:
        raise click.UsageError("give a LIST of stored codes (or, with --against OLD, NEW)")
    if old and root is not None:
        raise click.UsageError("--root is for checking in place; an audit (--against) compares names")
    if silent and (as_json or output is not None):
        raise click.UsageError("--status prints nothing: it cannot be combined with --json or -o")
    line = Progress(sys.stderr.isatty() if progress is None else progress)
    reading = Reading(root=root, source_kind=source_kind, reader=reader)
    try:
        _require([*old, *lists], trees=bool(old))
        sink = _open_output(output)
    except Trouble as exc:
        _trouble(exc, line, None)
    report = Report(sink, as_json, quiet, silent, warn, line)
    try:
        if old:
            _audit(old, lists, reading, report, line)
        else:
            _check(lists, reading, report, line)
    except Trouble as exc:
        _trouble(exc, line, sink)
    except BaseException:  # Ctrl-C (exit 130) or a bug: no half-written report stays behind
        sink.discard()
        raise
    line.clear()
    try:
        sink.commit()
    except Trouble as exc:
        _trouble(exc, line, None)
    if not silent:
        click.echo(report.summary(audit=bool(old)), err=True)
    sys.exit(_exit_code(report, strict))


def _open_output(target: str | None) -> Output:
    try:
        return Output(target)
    except OSError as exc:
        raise Trouble(f"{target}: cannot be written: {exc.strerror or exc}") from exc


def _trouble(exc: Trouble, progress: Progress, sink: Output | None) -> NoReturn:
    progress.clear()
    if sink is not None:
        sink.discard()
    click.echo(f"bioiscc: error: {exc}", err=True)
    sys.exit(EXIT_TROUBLE)


def _exit_code(report: Report, strict: bool) -> int:
    from .verify import BAD

    if any(report.counts[status] for status in BAD):
        return EXIT_BAD
    if strict and (report.malformed or report.uncoded):
        return EXIT_TROUBLE
    return EXIT_OK


def _require(names: list[str], trees: bool) -> None:
    """Every LIST (or, in an audit, tree) is there before hours of hashing begin."""
    for name in names:
        if name == "-" or (trees and "://" in name):
            continue
        if not os.path.exists(name):
            raise Trouble(f"{name}: no such file")
        if os.path.isdir(name) and not trees:
            raise Trouble(f"{name}: is a directory, not a list of codes (to compare trees: --against OLD)")


def _check(lists: tuple[str, ...], reading: Reading, report: Report, progress: Progress) -> None:
    from .verify import ListError, Skipped, by_source, check_source, read_list

    for name in lists:
        try:
            for group in by_source(read_list(name)):
                if isinstance(group, Skipped):
                    report.skipped(group)
                    continue
                report.entries += len(group)
                progress.current = group[0].path
                for outcome in check_source(group, reading, progress):
                    report.outcome(outcome)
        except ListError as exc:
            raise Trouble(str(exc)) from exc
    if not report.entries:
        raise Trouble(f"{', '.join(lists)}: no scene with a stored code to verify")


def _audit(
    old: tuple[str, ...], new: tuple[str, ...], reading: Reading, report: Report, progress: Progress
) -> None:
    from .verify import audit, is_narrow

    before = _gather(old, False, reading, report, progress)
    if not before:
        raise Trouble(f"{', '.join(old)}: no scene with a stored code (OLD)")
    # a directory of NEW is hashed as OLD's codes were: narrow where they all are
    after = _gather(new, all(is_narrow(entry.code) for entry in before), reading, report, progress)
    report.entries = len(before)
    for outcome in audit(before, after):
        report.outcome(outcome)


def _gather(
    names: tuple[str, ...], narrow: bool, reading: Reading, report: Report, progress: Progress
) -> list[Entry]:
    """The entries of lists, and of the sources under directories (hashed); reports what is skipped."""
    from .verify import Entry, ListError, Skipped, hash_tree, is_tree, read_list

    found: list[Entry] = []
    for name in names:
        items: Any = hash_tree(name, narrow, reading, progress) if is_tree(name) else read_list(name)
        try:
            for item in items:
                if isinstance(item, Entry):
                    found.append(item)
                elif isinstance(item, Skipped):
                    report.skipped(item)
                else:
                    report.outcome(item)
        except ListError as exc:
            raise Trouble(str(exc)) from exc
    return found
