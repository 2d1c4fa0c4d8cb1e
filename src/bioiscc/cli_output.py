"""The option type of every file a command writes (-o, --tsv, --json, --batch-log, ...) and of the
files options name to read (--manifest, --from, ...), and the command class that checks those
outputs against the command's own inputs before any work."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .output import InputFileError, OutputError


class OutputFile(click.Path):
    """A file to write: its folder must exist and be writable. Checked before any work is done, so
    that a typo costs one line and exit 1 (`bioiscc.cli.Main`), not an hour of hashing."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if os.fsdecode(value) == "-":
            return super().convert(value, param, ctx)
        path = Path(os.fsdecode(value))
        if os.path.isdir(value):  # not Path(""), which is the current directory
            raise OutputError(f"{path}: cannot write: it is a directory")
        value = super().convert(value, param, ctx)
        folder = path.parent
        if not folder.is_dir():
            raise OutputError(f"{path}: cannot write: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: cannot write: the folder {folder} is not writable")
        return value


class InputFile(click.Path):
    """A file an option names to read (a manifest, a record): missing, a directory or unreadable is
    one line and exit 1 (`bioiscc.cli.Main`), as for a file named as an argument, not a usage error."""

    def __init__(self) -> None:
        super().__init__()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        check_readable(os.fsdecode(value), dash_is_stdin=False)
        return super().convert(value, param, ctx)


class InputLines(click.File):
    """A list of names to read, one per line ('-': stdin), opened as text; checked as `InputFile`."""

    def __init__(self, errors: str = "strict") -> None:
        super().__init__("r", encoding="utf-8", errors=errors)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (str, bytes, os.PathLike)):
            check_readable(os.fsdecode(value))
        return super().convert(value, param, ctx)


def check_readable(name: str, dash_is_stdin: bool = True) -> None:
    """Raise InputFileError unless `name` is a file that can be opened for reading, or '-' where
    that means standard input."""
    if name == "-" and dash_is_stdin:
        return
    if os.path.isdir(name):  # not Path(""), which is the current directory
        raise InputFileError(f"{name}: cannot read it: it is a directory")
    try:
        with open(name, "rb"):
            pass
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read it: {exc.strerror or exc}") from exc


class OutputFolder(click.Path):
    """A folder to write into, made if missing: refused before any work when it is a file, or when
    the folder it would be made in is a file or is not writable (not after reading the pixels)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(os.fsdecode(value))
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            raise OutputError(f"{path}: cannot make this folder: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: cannot write: the folder {existing} is not writable")
        return super().convert(value, param, ctx)


class CheckedCommand(click.Command):
    """A command that refuses, before any work, an output naming one of its input files or another
    of its outputs (`similar index.tsv --tsv index.tsv`, `hash --from list.txt -o list.txt`). Inputs
    found only while running (the files a list names) are refused when written (`output.note_input`)."""

    def invoke(self, ctx: click.Context) -> Any:
        refuse_clashing_outputs(self.params, ctx.params)
        return super().invoke(ctx)


def refuse_clashing_outputs(params: list[click.Parameter], values: dict[str, Any]) -> None:
    """OutputError when an OutputFile value is the same file as another argument's value."""
    inputs: set[Any] = set()
    outputs: set[Any] = set()
    to_stdout = [p for p in params if isinstance(p.type, OutputFile) and _is_stdout(values, p)]
    if len(to_stdout) > 1:  # their lines would interleave
        raise OutputError("standard output ('-') is given as two outputs of this command")
    for param in sorted(params, key=lambda p: isinstance(p.type, OutputFile)):  # inputs first
        for name in _file_names(values.get(param.name or "")):
            identity = _identity(name)
            if not isinstance(param.type, OutputFile):
                inputs.add(identity)
            elif identity in inputs:
                raise OutputError(f"{name}: is an input of this command; not overwriting it")
            elif identity in outputs:
                raise OutputError(f"{name}: is given as two outputs of this command")
            else:
                outputs.add(identity)


def _is_stdout(values: dict[str, Any], param: click.Parameter) -> bool:
    value = values.get(param.name or "")
    return isinstance(value, (str, os.PathLike)) and os.fsdecode(value) == "-"


def _file_names(value: Any) -> Iterator[str]:
    """The file names in an argument's value: strings, paths, open files (their name), in tuples."""
    for item in value if isinstance(value, (tuple, list)) else (value,):
        name = getattr(item, "name", item)  # click.File gives an open file
        if isinstance(name, (str, bytes, os.PathLike)) and os.fsdecode(name) not in ("-", "<stdin>", ""):
            yield os.fsdecode(name)


def _identity(name: str) -> Any:
    """What tells files apart: (device, inode) of an existing regular file, else its resolved path
    (a file not there yet); None for a device, a FIFO or a folder (not replaced, or refused later)."""
    try:
        status = os.stat(name)
    except FileNotFoundError:
        return os.path.realpath(name)
    except (OSError, ValueError):
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISREG(status.st_mode) else None
