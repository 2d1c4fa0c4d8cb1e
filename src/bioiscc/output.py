"""Writing records: JSON to stdout or to a file, atomically (a reader never sees half a file)."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def dumps(record: Mapping[str, Any], *, indent: int | None = None) -> str:
    return json.dumps(record, indent=indent, ensure_ascii=False, allow_nan=False)


def render(records: Iterable[Mapping[str, Any]], *, lines: bool) -> str:
    """JSON Lines (one record a line) or, for a single document, indented JSON."""
    if lines:
        return "".join(dumps(r) + "\n" for r in records)
    (record,) = list(records)
    return dumps(record, indent=1) + "\n"


def write_text(text: str, target: str | os.PathLike[str] | None) -> None:
    """Write to stdout (target None or "-"), or atomically replace `target`."""
    if target is None or str(target) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_atomically(text.encode("utf-8"), target)


def write_atomically(data: bytes, target: str | os.PathLike[str], durable: bool = True) -> None:
    """Replace `target` with `data` so that a reader never sees half a file.

    durable: flush it to the disk before it replaces the old file (so that a crash of the machine
    leaves the old or the new file, never an empty one); bookkeeping that is only a hint, such as
    the stamps of `bioiscc.batch`, skips that.
    """
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON document or JSON Lines file as a list of records."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        return [json.loads(line) for line in stripped.splitlines() if line.strip()]
    return value if isinstance(value, list) else [value]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 input`, `2 inputs`: a count with its noun, for summary lines (`many`: an irregular plural)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
