"""Fingerprints of inputs: cheap to compute (stat only), change when any file of the source does.

A directory's mtime does not change when a chunk file inside it is rewritten, so a store's
fingerprint stats every file of the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

Entry = tuple[str, int, int]  # relative path, size, mtime_ns


def entries(path: str | os.PathLike[str]) -> list[Entry]:
    """(relative path, size, mtime_ns) of every file of a source (a file: itself), sorted."""
    return sorted(_entries(Path(path)))


def _entries(path: Path) -> Iterator[Entry]:
    if path.is_file():
        stat = path.stat()
        yield path.name, stat.st_size, stat.st_mtime_ns
        return
    for directory, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(directory, name)
            stat = full.stat()
            yield full.relative_to(path).as_posix(), stat.st_size, stat.st_mtime_ns


def fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of the sorted (relative path, size, mtime_ns) of every file of the source."""
    return fingerprint_of(entries(path))


def fingerprint_of(found: list[Entry]) -> str:
    """The fingerprint of a source from its sorted entries (see `entries`)."""
    return hashlib.sha256(json.dumps(found, separators=(",", ":")).encode()).hexdigest()


def raw_chunks(path: str | os.PathLike[str], size: int = 4 * 1024 * 1024) -> Iterator[bytes]:
    """The bytes of a file, or of a directory's files in TREEWALK-ISCC order (as `iscc-sum --tree`)."""
    path = Path(path)
    if path.is_dir():
        from iscc_sum.treewalk import treewalk_iscc

        files: Iterator[Path] = treewalk_iscc(path)
    else:
        files = iter([path])
    for file in files:
        with open(file, "rb") as handle:
            while chunk := handle.read(size):
                yield chunk
