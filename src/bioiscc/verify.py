"""`bioiscc verify`: check sources against the scene codes stored for them, as `sha256sum -c` does.

Stored codes come from a *list*: an index (`index.jsonl` or `index.tsv`, as `bioiscc index` and the
workflow write it), biocode containers, `bioiscc.scene` records, or checksum lines as
`bioiscc hash --format lines` prints them (`ISCC:… *PATH`, `ISCC:… *PATH#SCENE`). Two modes:

- **check**: each listed scene is recomputed from its source (relative paths under a root, for a
  tree that moved) and is OK, FAILED (another code, or the scene is gone), MISSING (no such
  source) or UNREADABLE (the source or the scene cannot be read).
- **audit**: every scene code of an OLD list must be found in NEW (lists, or directories whose
  sources are hashed), whatever its name or format: OK (under the same name), MOVED (under another
  name: moved, copied or converted), FAILED (the name is there, with another code), MISSING;
  codes of NEW that OLD lacks are NEW.

Lists are read as streams, one line at a time (a container, one JSON document, whole). A check
hashes one source at a time, each once, whatever the number of its listed scenes. Knows nothing of
click; heavy modules (readers, numpy) are imported only when pixels are read.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import itertools
import json
import os
import posixpath
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .errors import BioisccError, InputError, describe, one_line
from .locations import is_omero_uri
from .output import note_input

VERIFY = "bioiscc.verify"
OK, FAILED, MISSING, UNREADABLE, MOVED, NEW = "OK", "FAILED", "MISSING", "UNREADABLE", "MOVED", "NEW"
#: statuses that mean a listed scene was not verified (exit 1)
BAD = frozenset({FAILED, MISSING, UNREADABLE})
CHECK, AUDIT = "check", "audit"

#: a scene code as lists store it (an ISCC-SUM, wide or narrow)
CODE = re.compile(r"ISCC:K[A-Z2-7]{8,}")
#: the scene index a checksum line appends to a path
SCENE_SUFFIX = re.compile(r"(.+)#([0-9]+)", re.DOTALL)
#: the index columns verify needs (`bioiscc index`'s TSV has more)
INDEX_COLUMNS = ("input", "scene", "iscc_code")

#: called with (scene index, bytes hashed so far in the scene, bytes of the scene)
Progress = Callable[[int, int, int], None]


class ListError(BioisccError):
    """A list of stored codes cannot be read at all (trouble: exit 2)."""


@dataclass(frozen=True)
class Entry:
    """One scene with its stored code: PATH as listed, its scene index, where it was listed."""

    path: str
    scene: int
    code: str
    name: str | None = None
    where: str = ""

    @property
    def label(self) -> str:
        return f"{self.path}#{self.scene}"


@dataclass(frozen=True)
class Skipped:
    """A line that holds no entry: improperly formatted, or a scene listed without a code."""

    where: str
    cause: str
    malformed: bool


@dataclass(frozen=True)
class Outcome:
    """What verify found for one scene (or one unreadable source, scene None)."""

    path: str
    scene: int | None
    status: str
    mode: str = CHECK
    name: str | None = None
    expected: str | None = None
    actual: str | None = None
    location: str | None = None
    found_as: str | None = None
    error: str | None = None
    where: str | None = None

    @property
    def label(self) -> str:
        return self.path if self.scene is None else f"{self.path}#{self.scene}"

    def line(self) -> str:
        """`PATH#SCENE: STATUS`, and where a MOVED scene was found; a name with a backslash or a
        line break is escaped and the line starts with a backslash, as `sha256sum -c` prints it."""
        names = [self.label, *([self.found_as] if self.found_as else [])]
        escape = any(char in name for name in names for char in "\\\n\r")
        shown = [_escaped(name) if escape else name for name in names]
        text = f"{shown[0]}: {self.status}" + (f" -> {shown[1]}" if self.found_as else "")
        return "\\" + text if escape else text

    def record(self) -> dict[str, Any]:
        """The `bioiscc.verify` record (verify.schema.json)."""
        from .records import GENERATOR

        return {
            "kind": VERIFY,
            "generator": GENERATOR,
            "source": self.path,
            "mode": self.mode,
            "scene": {"index": self.scene, "name": self.name},
            "status": self.status,
            "expected": self.expected,
            "actual": self.actual,
            "location": self.location,
            "found_as": self.found_as,
            "error": self.error,
            "listed_at": self.where,
        }


# --- checksum lines -------------------------------------------------------------------------


def checksum_line(code: str, path: str, scene: int | None) -> str:
    """`CODE *PATH` (scene None: the source's only scene), or `CODE *PATH#SCENE`.

    A path that itself ends in `#digits` always gets its scene, so that a line reads back one way.
    A path with a backslash or a line break is escaped and the line starts with a backslash, as
    sha256sum does.
    """
    if scene is None and SCENE_SUFFIX.fullmatch(path):
        scene = 0
    name = path if scene is None else f"{path}#{scene}"
    if any(char in name for char in "\\\n\r"):
        return f"\\{code} *{_escaped(name)}\n"
    return f"{code} *{name}\n"


def _escaped(name: str) -> str:
    """A name with its backslashes and line breaks escaped, as sha256sum writes them."""
    return name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def checksum_lines(records: Sequence[dict[str, Any]], selected: bool = False) -> str:
    """The checksum lines of one source's scene records (failed scenes have none).

    PATH alone stands for a source's only scene; with several records, or `selected` ones (chosen
    with --scene, so that the source may have others), each line names its scene.
    """
    several = len(records) > 1 or selected
    lines = []
    for record in records:
        if record.get("status") != "ok" or not record.get("iscc_code"):
            continue
        index = (record.get("scene") or {}).get("index")
        scene = index if several or index not in (0, None) else None
        lines.append(checksum_line(str(record["iscc_code"]), str(record["source"]), scene))
    return "".join(lines)


def parse_checksum_line(text: str) -> tuple[str, str, int] | None:
    """(code, path, scene) of a checksum line; None when it is not one."""
    escaped = text.startswith("\\")
    code, space, rest = text[escaped:].partition(" ")
    if not space or not CODE.fullmatch(code) or rest[:1] not in ("*", " "):
        return None
    name = _unescape(rest[1:]) if escaped else rest[1:]
    if not name:
        return None
    match = SCENE_SUFFIX.fullmatch(name)
    return (code, match[1], int(match[2])) if match else (code, name, 0)


def _unescape(text: str) -> str | None:
    out, chars = [], iter(text)
    for char in chars:
        if char == "\\":
            char = {"\\": "\\", "n": "\n", "r": "\r"}.get(next(chars, ""), "")
            if not char:
                return None
        out.append(char)
    return "".join(out)


# --- reading lists --------------------------------------------------------------------------


def read_list(name: str) -> Iterator[Entry | Skipped]:
    """The entries of a list file ('-': stdin), streamed; ListError when it is not a list at all."""
    try:
        if name == "-":
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
            yield from _read_stream(name, stdin)
            return
        note_input(name)  # no -o may replace it
        # A name that is not UTF-8 (a Latin-1 share) keeps its bytes, as `hash --format lines`
        # and sha256sum write them: undecodable bytes are lone surrogates, which os.fsencode undoes.
        with open(name, encoding="utf-8", errors="surrogateescape") as stream:
            yield from _read_stream(name, stream)
    except FileNotFoundError as exc:
        raise ListError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise ListError(f"{name}: is a directory, not a list of codes") from exc
    except OSError as exc:
        raise ListError(f"{name}: {exc.strerror or describe(exc)}") from exc


def _read_stream(name: str, stream: IO[str]) -> Iterator[Entry | Skipped]:
    lines = enumerate(stream, 1)
    for number, text in lines:
        text = text.removeprefix("\ufeff") if number == 1 else text
        if text.strip():
            break
    else:
        raise ListError(f"{name}: empty: no stored codes")
    first = text.strip()
    rest = itertools.chain([(number, text)], lines)
    if first.startswith(("ISCC:", "\\ISCC:")):
        yield from _from_checksum_lines(name, rest)
    elif first.startswith(("{", "[")):
        yield from _from_json(name, number, text, lines)
    elif all(column in text.rstrip("\r\n").split("\t") for column in INDEX_COLUMNS):
        yield from _from_tsv(name, rest)
    elif any("\udc80" <= char <= "\udcff" for char in text):  # an undecodable byte, and no list
        raise ListError(f"{name}: not UTF-8 text (line {number}): not a list of codes")
    else:
        raise ListError(f"{name}: line {number}: not an index, container, scene records or checksum lines")


def _from_checksum_lines(name: str, lines: Iterable[tuple[int, str]]) -> Iterator[Entry | Skipped]:
    for number, text in lines:
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            continue
        where = f"{name}:{number}"
        parsed = parse_checksum_line(text)
        if parsed is None:
            yield Skipped(where, "improperly formatted checksum line", malformed=True)
        else:
            code, path, scene = parsed
            yield Entry(path, scene, code, where=where)


def _from_json(
    name: str, number: int, first: str, lines: Iterator[tuple[int, str]]
) -> Iterator[Entry | Skipped]:
    """JSON Lines (index rows, scene records), or one JSON document (a container) from line `number`."""
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        value = None  # not one record per line: a JSON document (a container) over many lines
    if not isinstance(value, dict):
        text = first + "".join(line for _, line in lines)
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ListError(f"{name}: not JSON ({type(exc).__name__})") from exc
        records = document if isinstance(document, list) else [document]
        if not records or not _has_codes(records[0]):
            raise ListError(f"{name}: {_what(records[0] if records else None)}, which holds no stored codes")
        for record in records:
            yield from _record_entries(record, name)
        return
    if not _has_codes(value):
        raise ListError(f"{name}: line {number}: {_what(value)}, which holds no stored codes")
    yield from _record_entries(value, f"{name}:{number}")
    for number, text in lines:
        if not text.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            yield Skipped(where, "not a JSON record", malformed=True)
            continue
        yield from _record_entries(record, where)


def _has_codes(record: Any) -> bool:
    return isinstance(record, dict) and _record_kind(record) is not None


def _what(record: Any) -> str:
    if isinstance(record, dict) and record.get("kind"):
        return f"a {record['kind']} record"
    return "not an index row, container or scene record"


def _record_kind(record: dict[str, Any]) -> str | None:
    kind = record.get("kind")
    if kind == "bioiscc.scene":
        return "scene"
    if kind == "bioiscc.biocode" or (kind is None and isinstance(record.get("parts"), list)):
        return "container"
    if kind is None and "input" in record and "iscc_code" in record:
        return "row"
    return None


def _record_entries(record: Any, where: str) -> list[Entry | Skipped]:
    """The entries of one JSON record: an index row, a scene record or a container's parts."""
    kind = _record_kind(record) if isinstance(record, dict) else None
    if not isinstance(record, dict) or kind is None:
        return [Skipped(where, _what(record) + ", not one with a stored code", malformed=True)]
    if kind == "row":
        return [_entry(record.get("input"), record.get("scene"), record.get("iscc_code"), record, where)]
    if kind == "scene":
        scene = record.get("scene")
        index = scene.get("index") if isinstance(scene, dict) else None
        return [_entry(record.get("source"), index, record.get("iscc_code"), record, where)]
    parts = record["parts"] if isinstance(record.get("parts"), list) else []
    if not parts:
        cause = record.get("error") or "no scenes"
        return [Skipped(where, f"{record.get('source')}: a container without codes ({cause})", False)]
    return [
        entry
        for part in parts
        for entry in (
            _record_entries({"kind": "bioiscc.scene", **part}, where)
            if isinstance(part, dict)
            else [Skipped(where, "a container part that is not a record", malformed=True)]
        )
    ]


def _from_tsv(name: str, lines: Iterable[tuple[int, str]]) -> Iterator[Entry | Skipped]:
    line = [0]  # the number of the line the reader read last

    def texts() -> Iterator[str]:
        for number, text in lines:
            line[0] = number
            yield text

    try:
        yield from _tsv_entries(name, csv.reader(texts(), delimiter="\t"), line)
    except csv.Error as exc:  # a field beyond csv's limit, a NUL byte
        raise ListError(f"{name}:{line[0]}: not a TSV index ({exc})") from exc


def _tsv_entries(name: str, reader: Any, line: list[int]) -> Iterator[Entry | Skipped]:
    header = next(reader)
    for row in reader:
        where = f"{name}:{line[0]}"
        if not row or not any(row):
            continue
        if len(row) != len(header):
            yield Skipped(where, f"{len(row)} columns where the header has {len(header)}", malformed=True)
            continue
        fields = dict(zip(header, row, strict=True))
        scene = fields["scene"]
        index = int(scene) if scene.isdigit() else (scene or None)
        yield _entry(fields["input"], index, fields["iscc_code"] or None, fields, where)


def _entry(path: Any, scene: Any, code: Any, fields: dict[str, Any], where: str) -> Entry | Skipped:
    """An entry, or why the line holds none."""
    if not isinstance(path, str) or not path:
        return Skipped(where, "no source path", malformed=True)
    if code in (None, ""):
        label = path if scene is None else f"{path}#{scene}"
        status = fields.get("status") or "no code"
        return Skipped(where, f"{label}: no stored code (status {status} when recorded)", malformed=False)
    if not isinstance(code, str) or not CODE.fullmatch(code):
        return Skipped(where, f"not an ISCC-SUM: {str(code)[:40]!r}", malformed=True)
    if not isinstance(scene, int) or isinstance(scene, bool) or scene < 0:
        return Skipped(where, f"{path}: not a scene index: {scene!r}", malformed=True)
    name = fields.get("name")
    if name is None and isinstance(fields.get("scene"), dict):
        name = fields["scene"].get("name")
    return Entry(path, scene, code, name if isinstance(name, str) and name else None, where)


# --- codes ------------------------------------------------------------------------------------


@functools.cache
def _headers() -> tuple[bytes, bytes]:
    """The headers of a wide and of a narrow ISCC-SUM, as iscc-sum writes them."""
    from .sumcode import raw_sum

    wide, narrow = (_body(str(raw_sum([], wide=flag)["iscc_code"])) for flag in (True, False))
    return wide[:2], narrow[:2]


def _body(code: str) -> bytes:
    text = code.removeprefix("ISCC:")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def is_narrow(code: str) -> bool:
    return _body(code)[:2] == _headers()[1]


def narrowed(code: str) -> str:
    """The narrow (64 + 64-bit) ISCC-SUM of a wide one: each unit's first 64 of its 128 bits."""
    body = _body(code)
    wide_header, narrow_header = _headers()
    if body[:2] != wide_header or len(body) != 34:
        return code
    narrow = narrow_header + body[2:10] + body[18:26]
    return "ISCC:" + base64.b32encode(narrow).decode("ascii").rstrip("=")


def same_code(stored: str, actual: str) -> bool:
    """Whether two ISCC-SUMs agree: whole, or as narrow codes where one of them is narrow."""
    return stored == actual or narrowed(stored) == narrowed(actual)


# --- check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """How sources are found and opened: the root of relative paths, the --source and --reader."""

    root: str | None = None
    source_kind: str = "auto"
    reader: str = "native"

    def locate(self, path: str) -> str:
        if self.root is None or "://" in path or os.path.isabs(path):
            return path
        return os.path.join(self.root, path)


def by_source(items: Iterable[Entry | Skipped]) -> Iterator[list[Entry] | Skipped]:
    """Consecutive entries of one source together (as every bioiscc list writes them)."""
    group: list[Entry] = []
    for item in items:
        if isinstance(item, Skipped):
            yield item
            continue
        if group and item.path != group[0].path:
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def check_source(
    entries: Sequence[Entry], reading: Reading, progress: Progress | None = None
) -> list[Outcome]:
    """Recompute the listed scenes of one source (hashed once) and compare them with their codes."""
    location = reading.locate(entries[0].path)

    def outcome(entry: Entry, status: str, name: str | None = None, **more: Any) -> Outcome:
        return Outcome(
            entry.path,
            entry.scene,
            status,
            name=name or entry.name,
            expected=entry.code,
            location=location,
            where=entry.where,
            **more,
        )

    if not is_omero_uri(location) and not os.path.exists(location):
        return [outcome(e, MISSING, error="no such file or directory") for e in entries]
    wanted = sorted({entry.scene for entry in entries})
    narrow = all(is_narrow(entry.code) for entry in entries)
    try:
        records = _recompute(location, wanted, narrow, reading, progress)
    except InputError as exc:
        return [outcome(e, UNREADABLE, error=exc.cause) for e in entries]
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # a reader failing in a way nobody foresaw: that source, not the run
        cause = str(exc) if isinstance(exc, BioisccError) else describe(exc)
        return [outcome(e, UNREADABLE, error=one_line(cause)) for e in entries]
    found = {(record.get("scene") or {}).get("index"): record for record in records}
    results = []
    for entry in entries:
        record = found.get(entry.scene)
        if record is None:
            results.append(outcome(entry, FAILED, error=f"the source has no scene {entry.scene} now"))
            continue
        name = (record.get("scene") or {}).get("name") or entry.name
        actual = record.get("iscc_code")
        if record.get("status") != "ok" or not actual:
            results.append(outcome(entry, UNREADABLE, error=str(record.get("error"))))
        else:
            status = OK if same_code(entry.code, str(actual)) else FAILED
            results.append(outcome(entry, status, name=name, actual=actual))
    return results


def _recompute(
    location: str, wanted: list[int], narrow: bool, reading: Reading, progress: Progress | None
) -> list[dict[str, Any]]:
    """The scene records of the wanted scenes; scenes the source no longer has are left out."""
    from . import api

    options: dict[str, Any] = {"source": reading.source_kind, "reader": reading.reader}
    try:
        return api.hash_scenes(location, scenes=wanted, narrow=narrow, progress=progress, **options)
    except api.SceneSelectionError:
        count = len(api.scenes(location, **options))
        present = [scene for scene in wanted if scene < count]
        if not present:  # hash_scenes hashes every scene when given none
            return []
        return api.hash_scenes(location, scenes=present, narrow=narrow, progress=progress, **options)


def check(
    items: Iterable[Entry | Skipped], reading: Reading, progress: Progress | None = None
) -> Iterator[Outcome | Skipped]:
    """The outcome of every listed scene, one source at a time; skipped lines pass through."""
    for group in by_source(items):
        if isinstance(group, Skipped):
            yield group
        else:
            yield from check_source(group, reading, progress)


# --- audit -------------------------------------------------------------------------------------


def is_tree(path: str) -> bool:
    """Whether `path` names sources to hash (a directory, a store, an image file), not a list."""
    if path == "-" or "://" in path or not os.path.exists(path):
        return False
    if os.path.isdir(path):
        return True
    from pathlib import Path

    from .sources import detect

    return detect(Path(path)) in ("tiff", "bioio")


def tree_sources(path: str) -> Iterator[tuple[str, str]]:
    """(name, location) of every source under `path`: files bioiscc reads, OME-Zarr stores as one.

    Names are relative to `path` (a single file or store: its own name). Hidden files and folders
    are skipped, and links to folders are not followed.
    """
    from fnmatch import fnmatch
    from pathlib import Path

    from .sources import NATIVE_PATTERNS
    from .sources.omezarr import is_zarr_store

    if not os.path.isdir(path) or is_zarr_store(Path(path)):
        yield os.path.basename(os.path.normpath(path)), path
        return
    for directory, folders, files in os.walk(path):
        below = os.path.relpath(directory, path)
        prefix = "" if below == os.curdir else below.replace(os.sep, "/") + "/"
        searched = []
        for name in sorted(folders):
            full = os.path.join(directory, name)
            if name.startswith("."):
                continue
            if is_zarr_store(Path(full)):
                yield prefix + name, full
            elif not os.path.islink(full):
                searched.append(name)
        folders[:] = searched
        for name in sorted(files):
            if not name.startswith(".") and any(fnmatch(name.lower(), p) for p in NATIVE_PATTERNS):
                yield prefix + name, os.path.join(directory, name)


def hash_tree(
    path: str, narrow: bool, reading: Reading, progress: Progress | None = None
) -> Iterator[Entry | Outcome]:
    """The scene codes of every source under `path`, one source at a time; unreadable ones as outcomes."""
    from . import api

    for name, location in tree_sources(path):
        try:
            records = api.hash_scenes(
                location, narrow=narrow, source=reading.source_kind, reader=reading.reader, progress=progress
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            cause = exc.cause if isinstance(exc, InputError) else one_line(str(exc) or describe(exc))
            yield Outcome(name, None, UNREADABLE, AUDIT, location=location, error=cause)
            continue
        for record in records:
            scene = record.get("scene") or {}
            if record.get("status") == "ok" and record.get("iscc_code"):
                yield Entry(name, int(scene["index"]), str(record["iscc_code"]), scene.get("name"), location)
            else:
                yield Outcome(
                    name,
                    scene.get("index"),
                    UNREADABLE,
                    AUDIT,
                    name=scene.get("name"),
                    location=location,
                    error=str(record.get("error")),
                )


def _key_name(entry: Entry) -> tuple[str, int]:
    path = entry.path
    return (path if "://" in path else posixpath.normpath(path.replace(os.sep, "/")), entry.scene)


def audit(old: Sequence[Entry], new: Sequence[Entry]) -> Iterator[Outcome]:
    """Every scene of OLD found in NEW by its code (OK, MOVED), changed (FAILED) or MISSING; then NEW.

    Codes are compared whole; where one side has narrow codes and the other wide ones, as narrow codes.
    """
    mixed = len({is_narrow(e.code) for e in itertools.chain(old, new)}) > 1
    key: Callable[[str], str] = narrowed if mixed else str
    new_by_code: dict[str, list[Entry]] = {}
    new_by_name: dict[tuple[str, int], Entry] = {}
    for entry in new:
        new_by_code.setdefault(key(entry.code), []).append(entry)
        new_by_name[_key_name(entry)] = entry
    old_codes: set[str] = set()
    changed: set[tuple[str, int]] = set()
    for entry in old:
        code = key(entry.code)
        old_codes.add(code)
        same_name = new_by_name.get(_key_name(entry))
        if same_name is not None and key(same_name.code) == code:
            yield _settled(entry, OK, same_name)
        elif code in new_by_code:
            yield _settled(entry, MOVED, new_by_code[code][0])
        elif same_name is not None:
            changed.add(_key_name(same_name))
            yield _settled(
                entry, FAILED, same_name, "its name holds another code, and its code is not in NEW"
            )
        else:
            yield _settled(entry, MISSING, None, "its code is not in NEW")
    for entry in new:
        if key(entry.code) not in old_codes and _key_name(entry) not in changed:
            yield Outcome(
                entry.path, entry.scene, NEW, AUDIT, name=entry.name, actual=entry.code, location=entry.where
            )


def _settled(entry: Entry, status: str, found: Entry | None, error: str | None = None) -> Outcome:
    """The outcome of a scene of OLD, with the scene of NEW it was compared with."""
    return Outcome(
        entry.path,
        entry.scene,
        status,
        AUDIT,
        name=entry.name,
        expected=entry.code,
        actual=found.code if found else None,
        location=found.where if found else None,
        found_as=found.label if found and status == MOVED else None,
        error=error,
        where=entry.where,
    )
