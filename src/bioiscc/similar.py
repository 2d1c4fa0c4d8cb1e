"""`bioiscc similar`: duplicate, near-identical and look-alike scenes across indexes.

Reads index rows (`results/index.jsonl` or `index.tsv`, as `bioiscc index` writes them) as a stream
and keeps, per scene, its input, scene index and three codes packed into numpy arrays: the
Instance-Code (exact identity of the pixel stream), the Data-Code (similarity of the pixel bytes)
and, where views were made, the ISCC-MIXED (similarity of how the scene looks). Then:

1. **identical**: scenes with the same Instance-Code, i.e. the same ISCC-SUM (blocking by exact
   match: each class of identical scenes is one code from here on);
2. **near-identical**: Data-Codes within `data_threshold` bits of 256;
3. **look-alike**: ISCC-MIXEDs within `mixed_threshold` bits (of 256), pixels not near-identical.

Pairs within a threshold are found among distinct codes by `near_pairs`: exactly by brute force
(vectorised popcount of XORed 64-bit words) while that is cheap, else through hash tables on bits of
the codes. When `threshold + 1` disjoint blocks of the code are still long enough to be selective,
every pair within the threshold agrees on one block (pigeonhole), so the search stays exact;
otherwise tables of randomly sampled bits (bit-sampling LSH for the Hamming distance), as many as it
takes to find a pair at the threshold with probability `recall` (closer pairs more surely). Every
candidate is checked with its true distance, so no pair beyond a threshold is reported. Tables are
searched by two threads (numpy releases the GIL in its sorting and arithmetic). An index made for
binary codes (usearch's HNSW with the Hamming metric, which iscc-usearch extends) was measured
against this: at 1,000,000 codes it took 86 s and found 70% of planted pairs within 32 bits, where
the tables take about 6 s and find all (1,000 pairs planted 1-32 bits apart, on a 2-core VM).

Output rows: an identical class lists each member with its first scene; a near-identical or
look-alike relation between two classes is one row, between their first scenes. Scenes are related
transitively into groups (connected components); a group's relation is its weakest link. Knows
nothing of click.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from .errors import BioisccError, one_line
from .output import note_input

SIMILAR = "bioiscc.similar"
IDENTICAL = "identical"
NEAR = "near-identical"
LOOK_ALIKE = "look-alike"
RELATIONS = (IDENTICAL, NEAR, LOOK_ALIKE)
#: Data-Codes within this many of 256 bits: nearly the same pixel bytes (most content-defined
#: chunks of the stream in common: replacing one of the 30 planes of the CellDivision sample moves
#: its Data-Code 11-13 bits; unrelated samples are 106 bits apart or more)
DATA_THRESHOLD = 16
#: ISCC-MIXEDs within this many of 256 bits show the same image (docs/views.md, section 8)
MIXED_THRESHOLD = 32
#: the chance that a table search finds a given pair exactly at the threshold (closer: more surely)
DEFAULT_RECALL = 0.999
#: brute force while it compares at most this many pairs of codes (exact, and about 0.1 s here)
BRUTE_PAIRS = 20_000_000
#: rows decoded at a time while the index is read
CHUNK_ROWS = 65536
METHODS = ("auto", "brute", "tables")
#: threads that search tables side by side (the benchmark machine has 2 cores)
THREADS = min(2, os.cpu_count() or 1)
TSV_FIELDS = (
    "group",
    "relation",
    "input_a",
    "scene_a",
    "input_b",
    "scene_b",
    "data_distance",
    "mixed_distance",
)
#: columns an index must have, in the order of a `Row`
NEEDED = ("input", "scene", "status", "instance_code", "data_code")


class IndexError_(BioisccError):
    """An index that cannot be read; the message names the file and the cause."""

    def __init__(self, path: str, cause: str) -> None:
        self.source = path
        self.cause = one_line(cause)
        super().__init__(f"{path}: {self.cause}")


# --- popcount and codes ---------------------------------------------------------------------------

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount_rows(words: np.ndarray) -> np.ndarray:
    """Set bits of each row of a 2D uint64 array, as int64."""
    return _popcount(words).sum(axis=1, dtype=np.int64)


def as_words(codes: np.ndarray) -> np.ndarray:
    """(n, bytes) uint8 codes as (n, bytes/8) uint64 words (a view when possible)."""
    return np.ascontiguousarray(codes).view(np.uint64)


_B32_VALUES = np.full(256, 255, dtype=np.uint8)
_B32_VALUES[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)] = np.arange(
    32, dtype=np.uint8
)


def decode_bodies(codes: Sequence[str], column: str, where: str) -> np.ndarray:
    """The bodies of ISCC units of one kind and length (e.g. 256-bit Data-Codes) as (n, bytes) uint8.

    Decodes base32 for all codes at once, 8 characters (40 bits) at a time; the header (learnt from
    the first code) must be the same in every code, so that the body is the same bytes of each.
    """
    text = _code_text(codes, column, where)
    values = _B32_VALUES[text]
    if (values == 255).any():
        row = int(np.flatnonzero((values == 255).any(axis=1))[0])
        raise IndexError_(where, f"{column}: not an ISCC code: {codes[row]!r}")
    count, length = values.shape
    groups = -(-length // 8)
    padded = np.zeros((count, groups * 8), dtype=np.uint64)
    padded[:, :length] = values
    padded = padded.reshape(count, groups, 8)
    bits40 = np.zeros((count, groups), dtype=np.uint64)
    for k in range(8):
        bits40 |= padded[:, :, k] << np.uint64(35 - 5 * k)
    whole = np.empty((count, groups, 5), dtype=np.uint8)
    for k in range(5):
        whole[:, :, k] = (bits40 >> np.uint64(32 - 8 * k)).astype(np.uint8)
    whole = whole.reshape(count, groups * 5)[:, : length * 5 // 8]
    header = _header_bytes(codes[0], whole.shape[1], column, where)
    if (whole[:, :header] != whole[0, :header]).any():
        raise IndexError_(where, f"{column}: codes of different kinds or lengths in one column")
    return np.ascontiguousarray(whole[:, header:])


def _code_text(codes: Sequence[str], column: str, where: str) -> np.ndarray:
    """The base32 characters of each code (without `ISCC:`) as an (n, length) uint8 array."""
    length = len(codes[0])
    try:
        joined = "".join(codes).encode("ascii")
    except UnicodeEncodeError as exc:
        raise IndexError_(where, f"{column}: not an ISCC code") from exc
    if len(joined) != length * len(codes) or any(len(c) != length for c in codes):
        raise IndexError_(where, f"{column}: codes of different lengths")
    text = np.frombuffer(joined, dtype=np.uint8).reshape(len(codes), length)
    prefix = np.frombuffer(b"ISCC:", dtype=np.uint8)
    if length > 5 and (text[:, :5] == prefix).all():
        return text[:, 5:]
    if (text[:, :5] == prefix).any(axis=1).any():
        raise IndexError_(where, f"{column}: codes with and without the ISCC: prefix")
    return text


def _header_bytes(code: str, total: int, column: str, where: str) -> int:
    import iscc_core

    try:
        body = iscc_core.decode_header(iscc_core.decode_base32(iscc_core.iscc_clean(code)))[-1]
    except Exception as exc:
        raise IndexError_(where, f"{column}: not an ISCC code: {code!r}") from exc
    return total - len(body)


# --- reading indexes ------------------------------------------------------------------------------

Row = tuple[Any, Any, Any, Any, Any, Any]  # input, scene, status, instance_code, data_code, iscc_mixed


def iter_index(path: str) -> Iterator[list[Row]]:
    """The rows of one index, JSON Lines or TSV (told apart by the first character), in chunks."""
    note_input(path)  # no output may replace it
    try:
        stream: IO[str] = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise IndexError_(path, exc.strerror or str(exc)) from exc
    try:
        first = stream.readline()
        if not first and _names_json_lines(path):
            return  # JSON Lines of no rows: the index of a folder with no inputs
        if not first.strip():
            raise IndexError_(path, "empty, or no header line (not an index)")
        if first.lstrip().startswith("{"):
            yield from _json_chunks(path, first, stream)
        else:
            yield from _tsv_chunks(path, first, stream)
    except UnicodeDecodeError as exc:
        raise IndexError_(path, "not a text file (not an index)") from exc
    except (csv.Error, RecursionError) as exc:  # a field beyond csv's limit; JSON nested too deeply
        raise IndexError_(path, f"not an index ({type(exc).__name__}: {str(exc)[:80]})") from exc
    finally:
        if stream is not sys.stdin:
            stream.close()


def _names_json_lines(path: str) -> bool:
    """True for standard input and a file named as JSON Lines, whose empty form has no rows; an empty
    TSV lacks its header line."""
    return path == "-" or path.lower().endswith((".jsonl", ".ndjson"))


def _batches(stream: Iterable[str], size: int) -> Iterator[list[str]]:
    lines = iter(stream)
    while batch := list(itertools.islice(lines, size)):
        yield batch


def _json_chunks(path: str, first: str, stream: IO[str]) -> Iterator[list[Row]]:
    number = 0
    for lines in _batches(itertools.chain([first], stream), CHUNK_ROWS):
        try:
            yield _json_rows(lines)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            _blame_line(path, lines, number)
            raise
        number += len(lines)


def _json_rows(lines: list[str]) -> list[Row]:
    """The fields `similar` needs of each JSON line (each row is dropped as soon as it is read)."""
    loads = json.loads
    rows: list[Row] = []
    append = rows.append
    for line in lines:
        if line.strip():
            r = loads(line)
            append(
                (r["input"], r["scene"], r["status"], r["instance_code"], r["data_code"], r.get("iscc_mixed"))
            )
    return rows


def _blame_line(path: str, lines: list[str], before: int) -> None:
    """Raise the error of the first bad line of a chunk, with its line number."""
    for number, line in enumerate(lines, start=before + 1):
        try:
            _json_rows([line])
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            raise IndexError_(path, f"line {number}: not an index row ({str(exc)[:80]})") from exc
        except KeyError as exc:
            raise IndexError_(path, f"line {number}: not an index row (no {exc.args[0]})") from exc


def _tsv_chunks(path: str, first: str, stream: IO[str]) -> Iterator[list[Row]]:
    header = next(csv.reader([first], delimiter="\t"))
    missing = [name for name in NEEDED if name not in header]
    if missing:
        raise IndexError_(path, f"not a bioiscc index (no column {', '.join(missing)})")
    at = [header.index(name) for name in NEEDED]
    mixed_at = header.index("iscc_mixed") if "iscc_mixed" in header else None
    width = len(header)
    number = 1
    for lines in _batches(stream, CHUNK_ROWS):
        cells = [c for c in csv.reader(lines, delimiter="\t") if c]
        bad = next((k for k, c in enumerate(cells) if len(c) != width), None)
        if bad is not None:
            raise IndexError_(
                path, f"line {number + bad + 1}: {len(cells[bad])} columns, the header has {width}"
            )
        number += len(lines)
        yield [
            (c[at[0]], c[at[1]], c[at[2]], c[at[3]], c[at[4]], c[mixed_at] if mixed_at is not None else None)
            for c in cells
        ]


@dataclass
class Scenes:
    """The scenes of the indexes: names and packed codes, one row per scene with codes."""

    inputs: list[str]
    scenes: list[int | None]
    instance: np.ndarray  # (n, 32) uint8
    data: np.ndarray  # (n, 32) uint8
    mixed: np.ndarray  # (n, bytes) uint8; rows without an ISCC-MIXED are zeros
    has_mixed: np.ndarray  # (n,) bool
    mixed_bits: int | None
    skipped: int = 0  # failed rows, and rows without codes
    other_mixed: int = 0  # ISCC-MIXEDs of another length than the first, left out

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class _Loader:
    """Collects rows and decodes their codes a chunk at a time (no code string outlives its chunk)."""

    inputs: list[str] = field(default_factory=list)
    scenes: list[int | None] = field(default_factory=list)
    instance: list[np.ndarray] = field(default_factory=list)
    data: list[np.ndarray] = field(default_factory=list)
    mixed: list[np.ndarray] = field(default_factory=list)
    has_mixed: list[np.ndarray] = field(default_factory=list)
    mixed_length: int | None = None
    mixed_bytes: int | None = None
    skipped: int = 0
    other_mixed: int = 0

    def add(self, rows: list[Row], where: str) -> None:
        ok = [r for r in rows if r[2] == "ok" and r[3] and r[4]]
        self.skipped += len(rows) - len(ok)
        if not ok:
            return
        self.inputs.extend([str(r[0]) for r in ok])
        self.scenes.extend([None if r[1] is None or r[1] == "" else int(r[1]) for r in ok])
        instance = decode_bodies([r[3] for r in ok], "instance_code", where)
        self.instance.append(_check_256(instance, "instance_code", where))
        self.data.append(
            _check_256(decode_bodies([r[4] for r in ok], "data_code", where), "data_code", where)
        )
        self._add_mixed([r[5] or "" for r in ok], where)

    def _add_mixed(self, codes: list[str], where: str) -> None:
        if self.mixed_length is None:
            first = next((c for c in codes if c), None)
            if first is not None:
                self.mixed_length = len(first)
                self.mixed_bytes = decode_bodies([first], "iscc_mixed", where).shape[1]
        present = np.array([len(c) == self.mixed_length for c in codes], dtype=bool)
        self.other_mixed += sum(1 for c in codes if c) - int(present.sum())
        block = np.zeros((len(codes), self.mixed_bytes or 0), dtype=np.uint8)
        if present.any():
            chosen = [c for c, p in zip(codes, present.tolist(), strict=True) if p]
            block[present] = decode_bodies(chosen, "iscc_mixed", where)
        self.mixed.append(block)
        self.has_mixed.append(present)

    def result(self) -> Scenes:
        width = self.mixed_bytes or 0
        mixed = [m if m.shape[1] == width else np.zeros((len(m), width), np.uint8) for m in self.mixed]
        return Scenes(
            inputs=self.inputs,
            scenes=self.scenes,
            instance=_stack(self.instance, 32),
            data=_stack(self.data, 32),
            mixed=_stack(mixed, width),
            has_mixed=np.concatenate(self.has_mixed) if self.has_mixed else np.zeros(0, dtype=bool),
            mixed_bits=8 * width if width else None,
            skipped=self.skipped,
            other_mixed=self.other_mixed,
        )


def _check_256(bodies: np.ndarray, column: str, where: str) -> np.ndarray:
    if bodies.shape[1] != 32:
        raise IndexError_(where, f"{column}: {8 * bodies.shape[1]}-bit codes, expected 256-bit units")
    return bodies


def _stack(parts: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.uint8)


def load_scenes(paths: Iterable[str]) -> Scenes:
    """The scenes of one or more indexes with their codes decoded (failed rows are counted, not kept)."""
    loader = _Loader()
    for path in paths:
        for rows in iter_index(path):
            try:
                loader.add(rows, path)
            except (TypeError, ValueError) as exc:
                raise IndexError_(path, f"a row with a bad field ({exc})") from exc
    return loader.result()


# --- exact classes --------------------------------------------------------------------------------


def exact_classes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class of each row among equal codes, and each class's first row; classes in first-row order."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    words = as_words(codes)
    order = _sorted_rows(words)
    ordered = words[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    firsts = order[new]
    by_first = np.argsort(firsts, kind="stable")
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    labels = np.empty(n, dtype=np.int64)
    labels[order] = rank[np.cumsum(new) - 1]
    return labels, firsts[by_first]


def _sorted_rows(words: np.ndarray) -> np.ndarray:
    """The rows in lexicographic order of their words, equal rows in row order (a stable lexsort):
    sorted by the first word, then only the runs that tie on it by all words."""
    order = np.argsort(words[:, 0], kind="stable")
    first = words[order, 0]
    ties = np.flatnonzero(first[1:] == first[:-1])
    if ties.size and words.shape[1] > 1:
        places = np.union1d(ties, ties + 1)  # runs of a tied first word, in order
        rows = order[places]
        order[places] = rows[np.lexsort(words[rows].T[::-1])]
    return order


# --- pairs within a Hamming distance --------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How `near_pairs` searches: brute force, or tables of bit positions (exact or sampled)."""

    method: str
    tables: tuple[np.ndarray, ...] = ()
    exact: bool = True

    def describe(self) -> str:
        if self.method == "brute":
            return "brute force (exact)"
        if self.exact:
            return f"pigeonhole over {len(self.tables)} blocks (exact)"
        bits = len(self.tables[0]) if self.tables else 0
        return f"bit sampling, {len(self.tables)} tables of {bits} bits (approximate)"


def plan_search(
    n: int, nbits: int, threshold: int, method: str = "auto", recall: float = DEFAULT_RECALL, seed: int = 0
) -> Plan:
    """The cheapest search that finds the pairs within `threshold` among `n` codes of `nbits`.

    Costs count codes keyed and sorted per table plus candidate pairs checked (twice as dear) among
    random codes. The exact pigeonhole tables are taken unless bit sampling is over twice as cheap.
    """
    if method not in METHODS:
        raise ValueError(f"unknown search method {method!r}")
    if method == "brute" or (method == "auto" and n * (n - 1) // 2 <= BRUTE_PAIRS):
        return Plan("brute")
    sampled_cost, sampled = _sampled_plan(n, nbits, threshold, recall, seed)
    blocks = threshold + 1
    if blocks <= nbits:
        split = [block[:64] for block in np.array_split(np.arange(nbits), blocks)]
        exact_cost = sum(_table_cost(n, len(block)) for block in split)
        if exact_cost <= 2 * sampled_cost:
            return Plan("tables", tuple(split), exact=True)
    return sampled


def _table_cost(n: int, bits: int) -> float:
    return n + 2 * (n * (n - 1) / 2 / 2.0**bits)


def _sampled_plan(n: int, nbits: int, threshold: int, recall: float, seed: int) -> tuple[float, Plan]:
    """Bit-sampling tables: the key length that costs least for the recall, and its cost."""
    best: tuple[float, int, int] | None = None
    for bits in range(8, min(nbits - threshold, 64) + 1):
        hit = math.prod((nbits - threshold - i) / (nbits - i) for i in range(bits))
        count = math.ceil(math.log(1 - recall) / math.log1p(-hit)) if hit < 1 else 1
        cost = count * _table_cost(n, bits)
        if best is None or cost < best[0]:
            best = (cost, bits, count)
    if best is None:  # a threshold so wide that no bit is left to key on: compare everything
        return float(n) * n, Plan("brute")
    cost, bits, count = best
    rng = np.random.default_rng(seed)
    tables: list[np.ndarray] = []
    while len(tables) < count:
        shuffled = rng.permutation(nbits)
        for start in range(0, nbits - bits + 1, bits):  # disjoint tables within a round
            if len(tables) < count:
                tables.append(np.sort(shuffled[start : start + bits]))
    return cost, Plan("tables", tuple(tables), exact=False)


def near_pairs(codes: np.ndarray, threshold: int, plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, of distinct rows of `codes` within `threshold` bits, and their distances."""
    if len(codes) < 2 or threshold < 1:  # distinct codes are at least one bit apart
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    words = as_words(codes)
    if plan.method == "brute":
        return _brute_pairs(words, threshold)
    return _table_pairs(codes, words, threshold, plan.tables)


def _brute_pairs(words: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair, a band of rows against the rows after them at a time, one 64-bit word at a time."""
    n, width = words.shape
    step = max(1, (1 << 21) // n)
    columns = [np.ascontiguousarray(words[:, w]) for w in range(width)]
    found_i, found_j, found_d = [], [], []
    for start in range(0, n - 1, step):
        stop = min(n, start + step)
        distance = np.zeros((stop - start, n - start - 1), dtype=np.uint16)
        for column in columns:
            distance += _popcount(column[start:stop, None] ^ column[None, start + 1 :])
        ii, jj = np.nonzero(distance <= threshold)
        keep = jj >= ii  # row start + ii against row start + 1 + jj: only the pairs after it
        found_i.append(ii[keep] + start)
        found_j.append(jj[keep] + start + 1)
        found_d.append(distance[ii[keep], jj[keep]])
    return _joined(found_i), _joined(found_j), _joined(found_d)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of every uint64 of an array, as uint8 of the same shape."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.asarray(np.bitwise_count(words), dtype=np.uint8)
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape, 8)
    return _POPCOUNT8[as_bytes].sum(axis=-1, dtype=np.uint8)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _table_pairs(
    codes: np.ndarray, words: np.ndarray, threshold: int, tables: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs within `threshold` among the rows that share a key in some table; the tables are
    searched by `THREADS` threads (numpy releases the GIL in the sorting and arithmetic)."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(codes)
    bucket_bits = min(40, max(8, math.ceil(math.log2(n)) + 2))

    def search(part: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [_close_in_table(words, threshold, table, bucket_bits) for table in part]

    threads = max(1, min(THREADS, len(tables)))
    parts = [tables[k::threads] for k in range(threads)]
    if threads == 1:
        found = search(parts[0])
    else:
        with ThreadPoolExecutor(threads) as pool:
            found = [pairs for result in pool.map(search, parts) for pairs in result]
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pairs = np.unique(np.concatenate(found))
    i, j = pairs // n, pairs % n
    return i, j, popcount_rows(words[i] ^ words[j])


def _close_in_table(words: np.ndarray, threshold: int, table: np.ndarray, bucket_bits: int) -> np.ndarray:
    """Pairs (as i * n + j, i < j) within `threshold` among the rows with equal keys in one table."""
    n = len(words)
    keys = _table_keys(words, table)
    crowded = _crowded(keys, bucket_bits)
    # sort the keys with the row in their low bits (a plain sort is faster than an argsort); the
    # keys lose those bits, which only adds candidates
    row_bits = max(1, (n - 1).bit_length())
    low = np.uint64((1 << row_bits) - 1)
    packed = (keys[crowded] & ~low) | crowded.astype(np.uint64)
    packed.sort()
    order = (packed & low).astype(np.intp)
    found = [np.zeros(0, dtype=np.int64)]
    for i, j in _equal_key_pairs(packed >> np.uint64(row_bits), order):
        distance = popcount_rows(words[i] ^ words[j])
        close = distance <= threshold
        if close.any():
            lo, hi = np.minimum(i[close], j[close]), np.maximum(i[close], j[close])
            found.append(lo.astype(np.int64) * n + hi)
    return np.concatenate(found)


#: odd 64-bit multipliers of the table keys' hash, one per word of a code
_MULTIPLIERS = np.random.default_rng(20261204).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


def _table_keys(words: np.ndarray, table: np.ndarray) -> np.ndarray:
    """A 64-bit hash of the bits of `table` of every code (equal bits, equal key; unequal bits
    rarely share a key, and candidates are checked anyway)."""
    mask_bytes = np.zeros(words.shape[1] * 8, dtype=np.uint8)
    np.bitwise_or.at(mask_bytes, table // 8, (1 << (7 - table % 8)).astype(np.uint8))
    masks = mask_bytes.view(np.uint64)
    keys = np.zeros(len(words), dtype=np.uint64)
    for w in np.flatnonzero(masks):
        keys += (words[:, w] & masks[w]) * _MULTIPLIERS[w]
    keys ^= keys >> np.uint64(29)
    keys *= _MULTIPLIERS[-1]
    return keys


def _crowded(keys: np.ndarray, bucket_bits: int) -> np.ndarray:
    """Rows whose key's top `bucket_bits` bits are shared by another row: the only rows that can have
    an equal key, found by counting instead of sorting everything."""
    buckets = (keys >> np.uint64(64 - bucket_bits)).astype(np.intp)
    counts = np.bincount(buckets, minlength=1 << bucket_bits)
    return np.flatnonzero(counts[buckets] > 1)


def _equal_key_pairs(sorted_keys: np.ndarray, order: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair of rows with equal keys, a batch per distance in the sorted order."""
    n = len(sorted_keys)
    starts = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    step = 1
    while starts.size:
        yield order[starts], order[starts + step]
        step += 1
        starts = starts[starts + step < n]
        starts = starts[sorted_keys[starts + step] == sorted_keys[starts]]


# --- the relations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    group: int
    relation: str
    a: int  # row
    b: int  # row
    data_distance: int
    mixed_distance: int | None


@dataclass
class Result:
    """What `find_similar` found: pairs, groups (rows, in order) and how it searched."""

    scenes: Scenes
    data_threshold: int
    mixed_threshold: int | None
    pairs: list[Pair]
    groups: list[tuple[int, str, list[int]]]  # id, relation, member rows
    search: dict[str, str | None]


def find_similar(
    scenes: Scenes,
    data_threshold: int = DATA_THRESHOLD,
    mixed_threshold: int | None = MIXED_THRESHOLD,
    method: str = "auto",
    recall: float = DEFAULT_RECALL,
) -> Result:
    """Identical, near-identical and look-alike scenes; `mixed_threshold` None skips look-alikes."""
    labels, firsts = exact_classes(scenes.instance)
    classes = len(firsts)
    cross: list[np.ndarray] = []  # pairs of classes, as (k, 2) arrays
    search: dict[str, str | None] = {"data_code": None, "iscc_mixed": None}

    data_labels, data_firsts = exact_classes(scenes.data[firsts])
    cross.append(_stars(data_labels))
    plan = plan_search(len(data_firsts), 256, data_threshold, method, recall)
    search["data_code"] = plan.describe()
    i, j, _ = near_pairs(scenes.data[firsts[data_firsts]], data_threshold, plan)
    cross.append(np.stack([data_firsts[i], data_firsts[j]], axis=1))

    mixed_rows = _mixed_rows(scenes, labels, classes)
    threshold = _scaled(mixed_threshold, scenes.mixed_bits)
    if threshold is not None and scenes.mixed_bits:
        with_mixed = np.flatnonzero(mixed_rows >= 0)
        mixed_labels, mixed_firsts = exact_classes(scenes.mixed[mixed_rows[with_mixed]])
        cross.append(with_mixed[_stars(mixed_labels)])
        plan = plan_search(len(mixed_firsts), scenes.mixed_bits, threshold, method, recall)
        search["iscc_mixed"] = plan.describe()
        i, j, _ = near_pairs(scenes.mixed[mixed_rows[with_mixed[mixed_firsts]]], threshold, plan)
        cross.append(np.stack([with_mixed[mixed_firsts[i]], with_mixed[mixed_firsts[j]]], axis=1))

    class_pairs = _unique_pairs(cross, classes)
    pairs, groups = _relate(scenes, labels, firsts, mixed_rows, class_pairs, data_threshold)
    return Result(scenes, data_threshold, threshold, pairs, groups, search)


def _scaled(threshold: int | None, bits: int | None) -> int | None:
    """A threshold given in bits of 256, for codes of `bits` (64-bit ISCC-MIXEDs)."""
    if threshold is None or bits is None:
        return threshold
    return threshold * bits // 256


def _stars(labels: np.ndarray) -> np.ndarray:
    """(first member, other member) of every class of `labels` with more than one member."""
    if len(labels) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    first = order[new][np.cumsum(new) - 1]
    others = ~new
    return np.stack([first[others], order[others]], axis=1)


def _mixed_rows(scenes: Scenes, labels: np.ndarray, classes: int) -> np.ndarray:
    """Per identical class, its first row with an ISCC-MIXED (-1: none)."""
    none = len(labels)
    rows = np.full(classes, none, dtype=np.int64)
    with_mixed = np.flatnonzero(scenes.has_mixed)
    np.minimum.at(rows, labels[with_mixed], with_mixed)
    rows[rows == none] = -1
    return rows


def _unique_pairs(parts: list[np.ndarray], classes: int) -> np.ndarray:
    pairs = np.concatenate([p.reshape(-1, 2) for p in parts]).astype(np.int64)
    if not len(pairs):
        return np.zeros((0, 2), dtype=np.int64)
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    keys = np.unique(lo[lo != hi] * classes + hi[lo != hi])
    return np.stack([keys // classes, keys % classes], axis=1)


def _relate(
    scenes: Scenes,
    labels: np.ndarray,
    firsts: np.ndarray,
    mixed_rows: np.ndarray,
    class_pairs: np.ndarray,
    data_threshold: int,
) -> tuple[list[Pair], list[tuple[int, str, list[int]]]]:
    """Pairs with both distances and their relation, and the groups (connected components)."""
    components = _components(len(firsts), class_pairs)
    identical = _stars(labels)  # rows (first of its class, another)
    rows_a = np.concatenate([identical[:, 0], firsts[class_pairs[:, 0]]])
    rows_b = np.concatenate([identical[:, 1], firsts[class_pairs[:, 1]]])
    data = popcount_rows(as_words(scenes.data[rows_a]) ^ as_words(scenes.data[rows_b]))
    mixed = _mixed_distances(scenes, labels, mixed_rows, rows_a, rows_b)
    kinds = np.where(data <= data_threshold, 1, 2)
    kinds[: len(identical)] = 0
    group_of_row = components[labels]
    members = _members(group_of_row)
    weakest: dict[int, int] = {}
    pairs = []
    for a, b, d, m, kind in zip(
        rows_a.tolist(), rows_b.tolist(), data.tolist(), mixed, kinds.tolist(), strict=True
    ):
        group = int(group_of_row[a])
        weakest[group] = max(weakest.get(group, 0), kind)
        pairs.append(Pair(group, RELATIONS[kind], a, b, d, m))
    numbers = {group: number for number, group in enumerate(sorted(weakest, key=lambda g: members[g][0]), 1)}
    pairs = sorted(
        (Pair(numbers[p.group], p.relation, p.a, p.b, p.data_distance, p.mixed_distance) for p in pairs),
        key=lambda p: (p.group, RELATIONS.index(p.relation), p.a, p.b),
    )
    groups = [
        (numbers[g], RELATIONS[weakest[g]], members[g]) for g in sorted(numbers, key=numbers.__getitem__)
    ]
    return pairs, groups


def _mixed_distances(
    scenes: Scenes, labels: np.ndarray, mixed_rows: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray
) -> list[int | None]:
    if not scenes.mixed_bits:
        return [None] * len(rows_a)
    # a scene without an ISCC-MIXED of its own takes that of an identical scene
    ma = np.where(scenes.has_mixed[rows_a], rows_a, mixed_rows[labels[rows_a]])
    mb = np.where(scenes.has_mixed[rows_b], rows_b, mixed_rows[labels[rows_b]])
    known = (ma >= 0) & (mb >= 0)
    distance = popcount_rows(
        as_words(scenes.mixed[np.maximum(ma, 0)]) ^ as_words(scenes.mixed[np.maximum(mb, 0)])
    )
    return [int(d) if k else None for d, k in zip(distance.tolist(), known.tolist(), strict=True)]


def _components(nodes: int, edges: np.ndarray) -> np.ndarray:
    """Connected components (union-find over the nodes that have edges): each node's root."""
    roots = np.arange(nodes, dtype=np.int64)
    if not len(edges):
        return roots
    touched, local = np.unique(edges, return_inverse=True)
    parent = list(range(len(touched)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in local.reshape(-1, 2).tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the smallest node (touched is sorted) is the root
    roots[touched] = touched[[root(x) for x in range(len(touched))]]
    return roots


def _members(group_of_row: np.ndarray) -> dict[int, list[int]]:
    """Rows of every group that has more than one, in row order."""
    counts = np.bincount(group_of_row, minlength=1)
    rows = np.flatnonzero(counts[group_of_row] > 1)
    order = rows[np.argsort(group_of_row[rows], kind="stable")]
    ordered = group_of_row[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    return {int(group_of_row[part[0]]): part.tolist() for part in np.split(order, cuts) if len(part)}


# --- output ---------------------------------------------------------------------------------------


def _scene_text(scene: int | None) -> str:
    return "" if scene is None else str(scene)


def render_tsv(result: Result) -> str:
    """One line per pair: group, relation, the two scenes and both distances."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(TSV_FIELDS)
    s = result.scenes
    for p in result.pairs:
        writer.writerow(
            [
                p.group,
                p.relation,
                s.inputs[p.a],
                _scene_text(s.scenes[p.a]),
                s.inputs[p.b],
                _scene_text(s.scenes[p.b]),
                p.data_distance,
                "" if p.mixed_distance is None else p.mixed_distance,
            ]
        )
    return buffer.getvalue()


def similar_record(result: Result, indexes: Sequence[str]) -> dict[str, Any]:
    """The `bioiscc.similar` record: thresholds, how it searched, groups and pairs."""
    from .locations import redact
    from .records import GENERATOR

    s = result.scenes

    def scene(row: int) -> dict[str, Any]:
        return {"input": s.inputs[row], "scene": s.scenes[row]}

    return {
        "kind": SIMILAR,
        "generator": GENERATOR,
        "source": redact(indexes[0]) if indexes else "-",
        "indexes": [redact(i) for i in indexes],
        "scenes": len(s),
        "skipped": s.skipped,
        "thresholds": {"data_code": result.data_threshold, "iscc_mixed": result.mixed_threshold},
        "search": result.search,
        "groups": [
            {"group": number, "relation": relation, "members": [scene(r) for r in rows]}
            for number, relation, rows in result.groups
        ],
        "pairs": [
            {
                "group": p.group,
                "relation": p.relation,
                "a": scene(p.a),
                "b": scene(p.b),
                "data_distance": p.data_distance,
                "mixed_distance": p.mixed_distance,
            }
            for p in result.pairs
        ],
    }


def summary_line(result: Result) -> str:
    counts = {relation: 0 for relation in RELATIONS}
    for _, relation, _ in result.groups:
        counts[relation] += 1
    grouped = sum(len(rows) for _, _, rows in result.groups)
    skipped = f" ({_count(result.scenes.skipped, 'failed row')} left out)" if result.scenes.skipped else ""
    return (
        f"bioiscc similar: {_count(len(result.scenes), 'scene')}{skipped}: "
        f"{_count(len(result.groups), 'group')} of {_count(grouped, 'scene')} "
        f"(by their loosest pair: {counts[IDENTICAL]} identical, {counts[NEAR]} near-identical, "
        f"{counts[LOOK_ALIKE]} look-alike), "
        f"{_count(len(result.pairs), 'pair')}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
