"""Writing records: JSON to stdout or to a file, atomically (a reader never sees half a file)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


def dumps(record: Any, *, indent: int | None = None) -> str:
    """JSON as UTF-8 text; a path that is not UTF-8 (its undecodable bytes are lone surrogates, as
    os.fsdecode gives them) keeps them as \\udcXX escapes, which json.loads and os.fsencode turn back
    into the same bytes."""
    text = json.dumps(record, indent=indent, ensure_ascii=False, allow_nan=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(record, indent=indent, ensure_ascii=True, allow_nan=False)
    return text


def render(records: Iterable[Mapping[str, Any]], *, lines: bool) -> str:
    """JSON Lines (one record a line) or, for a single document, indented JSON."""
    if lines:
        return "".join(dumps(r) + "\n" for r in records)
    (record,) = list(records)
    return dumps(record, indent=1) + "\n"


def write_text(text: str, target: str | os.PathLike[str] | None, exact_names: bool = False) -> None:
    """Write to stdout (target None or "-"), or atomically replace `target`. With `exact_names`
    (checksum lines), a name that is not UTF-8 keeps its own bytes, as sha256sum writes it, so
    that `verify` finds the file again; otherwise see `encoded`."""
    data = text.encode("utf-8", "surrogateescape") if exact_names else encoded(text)
    if target is None or str(target) == "-":
        try:
            _write_stdout(data)
        except BrokenPipeError:  # `| head`: the reader has what it wanted (the command exits quietly)
            raise
        except OSError as exc:  # a full disk behind a redirection
            raise OutputError(f"standard output: cannot write: {exc.strerror or exc}") from exc
        return
    write_atomically(data, target)


def _write_stdout(data: bytes) -> None:
    binary = getattr(sys.stdout, "buffer", None)  # none when stdout is being captured as text
    if binary is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        sys.stdout.flush()
        binary.write(data)
    sys.stdout.flush()


def encoded(text: str) -> bytes:
    """UTF-8 bytes of text meant for people and spreadsheets (TSV, HTML): an
    undecodable byte of a file name (a lone surrogate) shows as \\udcXX, so the file stays UTF-8.
    JSON keeps such names exactly (see `dumps`)."""
    return text.encode("utf-8", "backslashreplace")


class OutputError(Exception):
    """An output cannot be written (no such directory, read-only, disk full, it is an input):
    the CLI prints one line and exits 1."""


class InputFileError(Exception):
    """A file an option names to read is missing or unreadable: the CLI prints one line and exits 1
    (2 for verify and diff, whose 1 says the pixels differ)."""


#: (device, inode) of the files the running command read (None: not inside a command; see
#: `protect_inputs`)
_inputs_read: set[tuple[int, int]] | None = None


@contextlib.contextmanager
def protect_inputs() -> Iterator[None]:
    """While a command runs, no output may replace a file it read (`-o` naming its own input)."""
    global _inputs_read
    _inputs_read = set()
    try:
        yield
    finally:
        _inputs_read = None


def note_input(path: str | os.PathLike[str]) -> None:
    """Remember a file the command reads, so that no output replaces it ('-' is stdin: no file)."""
    if _inputs_read is not None and os.fspath(path) != "-":
        try:
            status = os.stat(path)
        except OSError:
            return
        _inputs_read.add((status.st_dev, status.st_ino))


def refuse_inputs(path: Path) -> None:
    """OutputError when `path` is a file the running command read."""
    if not _inputs_read:
        return
    try:
        status = os.stat(path)
    except OSError:
        return
    if (status.st_dev, status.st_ino) in _inputs_read:
        raise OutputError(f"{path}: is an input of this command; not overwriting it")


#: bytes of the target's name kept in its temporary file's name (mkstemp adds 12, NAME_MAX is 255)
TEMPORARY_NAME_BYTES = 200


def temporary_prefix(path: Path) -> str:
    """`.NAME.` for the temporary file beside `path`, NAME cut so that the whole fits NAME_MAX."""
    name = os.fsencode(path.name)[:TEMPORARY_NAME_BYTES]
    return f".{os.fsdecode(name)}."


def write_atomically(data: bytes, target: str | os.PathLike[str], durable: bool = True) -> None:
    """Replace `target` with `data` so that a reader never sees half a file.

    durable: flush it to the disk before it replaces the old file (so that a crash of the machine
    leaves the old or the new file, never an empty one); bookkeeping that is only a hint, such as
    the stamps of `bioiscc.batch`, skips that. Raises `OutputError` (one line) when it cannot be
    written; no temporary file is left behind.
    """
    path = Path(target)
    refuse_inputs(path)
    try:
        replaced = replaced_file(path)
        if replaced is None:
            with open(path, "wb") as stream:
                stream.write(data)
        else:
            _write_atomically(data, replaced, durable)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def replaced_file(path: Path) -> Path | None:
    """The file an output to `path` replaces atomically: `path`, or the file a link points to (the
    link stays). None when `path` is a device, a FIFO or a socket (/dev/null, /dev/stdout): such a
    target is written to, never replaced by a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Path(os.path.realpath(path))
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # a folder fails, with its cause, when replaced
        return Path(os.path.realpath(path))
    return None


def _write_atomically(data: bytes, path: Path, durable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); a result should be as readable as any new file.
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def read_records(path: str | os.PathLike[str], kind: str | None = None) -> list[dict[str, Any]]:
    """Read a JSON document or JSON Lines file as a list of records (JSON objects).

    kind: check each record against that kind's schema ("any": against the schema of the kind it
    names). Raises ValueError (one line) for anything else: not UTF-8, not JSON, NaN or Infinity,
    nested beyond reason, not objects, not matching the schema.
    """
    note_input(path)
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    try:
        try:
            value = _strict_loads(stripped)
        except json.JSONDecodeError:
            value = [_strict_loads(line) for line in stripped.splitlines() if line.strip()]
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    found = value if isinstance(value, list) else [value]
    if not all(isinstance(record, dict) for record in found):
        raise ValueError("not JSON records (an entry is not an object)")
    if kind is not None:
        from .records import check

        for record in found:
            check(record, None if kind == "any" else kind)
    return found


def read_record(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """The one record of a JSON file (`read_records`); ValueError (one line) when it holds none or
    several."""
    found = read_records(path, kind)
    if len(found) != 1:
        raise ValueError("an empty file" if not found else f"{len(found)} records, not one")
    return found[0]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return number


def _strict_loads(text: str) -> Any:
    """json.loads without NaN and Infinity (which no record holds and no output may)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 input`, `2 inputs`: a count with its noun, for summary lines (`many`: an irregular plural)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
