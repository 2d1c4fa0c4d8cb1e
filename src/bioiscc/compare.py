"""`bioiscc diff`: do two scenes hold the same pixels, and if not, which planes differ?

Each side is a source (read here, with per-plane fingerprints) or a file of records (`bioiscc.scene`
records, as `bioiscc hash --simprints` writes them, or a biocode container). The verdict of a scene
pair is one of:

- **identical**: the same canonical pixel stream (datahash) in the same dims, extra dims and type;
- **same pixels in another geometry**: the same stream in other dims, or the same planes (as a
  multiset of per-plane fingerprints) at other positions, e.g. planes reordered;
- **different**: the planes that differ, by position (z, c, t, extra indices), how many, and the
  Data-Code Hamming distance of the two scenes; and, when both sides have an ISCC-MIXED, whether
  they look alike.

Per-plane fingerprints are exact digests (BLAKE2b of each plane's canonical bytes) when both sides are
read here, else the planes' simprints from the records. A simprint is a Data-Code, a similarity
hash: a change of a few pixels in a large plane may leave it unchanged, and a diff of records then
says that no plane's simprint tells where the difference is. Knows nothing of click.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BioisccError, InputError, describe
from .imagewalk import PlaneWalk, ends_plane, plane_order
from .locations import redact
from .scene import SceneInfo, SceneReader, Source

DIFF = "bioiscc.diff"
IDENTICAL = "identical"
GEOMETRY = "same-pixels-other-geometry"
DIFFERENT = "different"
MISSING = "missing"
#: verdicts from best to worst; a diff's overall verdict is the worst of its scene pairs'
VERDICT_ORDER = (IDENTICAL, GEOMETRY, DIFFERENT, MISSING)
#: the file beside a container or scene records (the workflow's layout) whose ISCC-MIXEDs diff uses
IMAGE_RECORDS = "image.jsonl"
#: planes a verdict line names at most
NAMED_PLANES = 8
#: standard dimensions of a plane's position, in walk order from outermost
POSITION_DIMS = ("z", "c", "t")
BY_DIGEST = "digest"
BY_SIMPRINT = "simprint"

Position = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PlaneFacts:
    """One plane of a scene: its position and fingerprints (an exact digest, a simprint)."""

    position: Position
    simprint: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class SceneFacts:
    """What a diff needs of one scene: its codes, geometry, planes and (maybe) ISCC-MIXED."""

    source: str
    index: int
    name: str | None
    dims: Mapping[str, int]
    extra_dims: Mapping[str, int]
    dtype: str
    iscc_code: str
    units: tuple[str, str]
    datahash: str
    planes: tuple[PlaneFacts, ...] | None = None
    iscc_mixed: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "iscc_code": self.iscc_code,
            "datahash": self.datahash,
            "dims": dict(self.dims),
            "extra_dims": dict(self.extra_dims),
            "dtype": self.dtype,
            "iscc_mixed": self.iscc_mixed,
        }


@dataclass(frozen=True)
class Move:
    """A plane of A found at another position in B (or a plane that differs: `b` at the same place)."""

    a: Position | None
    b: Position | None
    simprint_distance: int | None = None


@dataclass
class SceneDiff:
    """The comparison of one scene of A with one scene of B."""

    a: SceneFacts | None
    b: SceneFacts | None
    verdict: str
    planes_by: str | None = None
    compared: int = 0
    changed: list[Move] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0
    data_distance: int | None = None
    mixed_distance: int | None = None
    mixed_bits: int | None = None
    note: str | None = None


# --- positions ------------------------------------------------------------------------------------


def positions(dims: Mapping[str, int], extra_dims: Mapping[str, int]) -> list[Position]:
    """The (z, c, t, extra...) position of every plane of a scene, in IMAGEWALK order."""
    info = SceneInfo(index=0, name="", dims=dict(dims), extra_dims=dict(extra_dims), dtype="uint8")
    names = list(extra_dims)
    return [
        (("z", z), ("c", c), ("t", t), *zip(names, extra, strict=True))
        for z, c, t, extra in plane_order(info)
    ]


def position_text(position: Position) -> str:
    return " ".join(f"{name}={index}" for name, index in position)


def position_dict(position: Position | None) -> dict[str, int] | None:
    return None if position is None else dict(position)


# --- facts from records ---------------------------------------------------------------------------


def is_record_file(path: str) -> bool:
    """Whether `path` is a JSON file (records) rather than an image source: its first byte is { or [."""
    candidate = Path(path)
    if not candidate.is_file():
        return False
    try:
        with candidate.open("rb") as stream:
            head = stream.read(64).lstrip()
    except OSError:
        return False
    return head[:1] in (b"{", b"[")


def facts_from_records(path: str) -> list[SceneFacts]:
    """The scenes of a file of `bioiscc.scene` records or a biocode container (with image records
    in it, or in image.jsonl beside it, for their ISCC-MIXEDs)."""
    records = _read_json_records(path)
    scenes, images = _split_records(records, path)
    if not scenes:
        raise InputError(path, "no bioiscc.scene record in it (give scene records or a biocode container)")
    beside = Path(path).with_name(IMAGE_RECORDS)
    if not images and beside.is_file() and beside.resolve() != Path(path).resolve():
        try:
            _, images = _split_records(_read_json_records(str(beside)), str(beside))
        except InputError:
            images = []  # an unreadable image.jsonl beside only costs the look-alike part
    mixed = _mixed_by_scene(images)
    return [_scene_facts(record, path, mixed) for record in scenes]


def _read_json_records(path: str) -> list[dict[str, Any]]:
    from .output import read_records
    from .records import check

    try:
        records = read_records(path)
        for record in records:  # those diff compares, checked against their schemas (a failed
            # record is reported as failed, whatever else it holds)
            kind = record.get("kind", "bioiscc.biocode")
            if kind in ("bioiscc.biocode", "bioiscc.scene", "bioiscc.image") and record.get("status") == "ok":
                check(record, None)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, describe(exc)) from exc
    except ValueError as exc:
        raise InputError(path, f"not JSON records ({describe(exc)})") from exc
    if not all(isinstance(r, dict) for r in records):
        raise InputError(path, "not JSON records (an entry is not an object)")
    return records


def _split_records(
    records: Iterable[dict[str, Any]], path: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    scenes: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for record in records:
        kind = record.get("kind")
        if kind == "bioiscc.biocode" or (kind is None and "parts" in record):
            scenes.extend(p for p in record.get("parts") or [] if isinstance(p, dict))
        elif kind == "bioiscc.scene":
            scenes.append(record)
        elif kind == "bioiscc.image":
            images.append(record)
        else:
            raise InputError(path, f"a {kind!r} record, not a bioiscc.scene record or biocode container")
    return scenes, images


def _mixed_by_scene(images: Iterable[dict[str, Any]]) -> dict[tuple[str, Any], str]:
    found: dict[tuple[str, Any], str] = {}
    for record in images:
        if record.get("status") == "ok" and record.get("iscc_mixed"):
            key = (str(record.get("source")), (record.get("scene") or {}).get("index"))
            found[key] = str(record["iscc_mixed"])
    return found


def _scene_facts(record: Mapping[str, Any], path: str, mixed: Mapping[tuple[str, Any], str]) -> SceneFacts:
    scene = record.get("scene") or {}
    index = scene.get("index")
    where = f"scene {index}"
    if record.get("status") != "ok":
        raise InputError(path, f"{where} failed: {record.get('error') or 'no codes'}")
    missing = [k for k in ("dims", "dtype", "iscc_code", "units", "datahash") if not record.get(k)]
    if missing:
        raise InputError(path, f"{where}: a scene record without {', '.join(missing)}")
    units = record["units"]
    if not isinstance(units, list) or len(units) != 2:
        raise InputError(path, f"{where}: units is not a pair of codes")
    dims = {str(k): int(v) for k, v in record["dims"].items()}
    extra = {str(k): int(v) for k, v in (record.get("extra_dims") or {}).items()}
    planes = _record_planes(record.get("simprints"), dims, extra, path, where)
    source = str(record.get("source") or path)
    return SceneFacts(
        source=source,
        index=int(index) if index is not None else 0,
        name=scene.get("name"),
        dims=dims,
        extra_dims=extra,
        dtype=str(record["dtype"]),
        iscc_code=str(record["iscc_code"]),
        units=(str(units[0]), str(units[1])),
        datahash=str(record["datahash"]),
        planes=planes,
        iscc_mixed=mixed.get((source, index)),
    )


def _record_planes(
    simprints: Any, dims: Mapping[str, int], extra: Mapping[str, int], path: str, where: str
) -> tuple[PlaneFacts, ...] | None:
    if simprints is None:
        return None
    try:
        count = SceneInfo(index=0, name="", dims=dict(dims), extra_dims=dict(extra), dtype="uint8").planes
    except KeyError as exc:
        raise InputError(path, f"{where}: dims lack {exc}") from exc
    if not isinstance(simprints, list) or len(simprints) != count:  # before listing `count` positions
        found = len(simprints) if isinstance(simprints, list) else "no list of"
        raise InputError(path, f"{where}: {found} simprints for {count} planes")
    planes: list[PlaneFacts] = []
    for entry, place in zip(simprints, positions(dims, extra), strict=True):
        if not isinstance(entry, dict) or not isinstance(entry.get("simprint"), str):
            raise InputError(path, f"{where}: a simprint entry without its simprint")
        offset = entry.get("offset")
        if offset is not None and offset != len(planes):
            raise InputError(path, f"{where}: simprints out of walk order (offset {offset})")
        planes.append(PlaneFacts(place, simprint=entry["simprint"]))
    return tuple(planes)


# --- facts from sources ---------------------------------------------------------------------------


class _DigestingWalk(PlaneWalk):
    """A walk whose canonical stream also leaves an exact digest of each plane in `digests`."""

    def __init__(self, reader: SceneReader) -> None:
        super().__init__(reader)
        self.digests: list[str] = []

    def canonical(self, in_place: bool = False, busy: bool = True) -> Generator[list[Any], None, None]:
        inner = super().canonical(in_place, busy=busy)  # the digests are this thread's work
        digest = hashlib.blake2b(digest_size=16)
        try:
            for pieces in inner:
                for piece in pieces:
                    digest.update(piece)
                if ends_plane(pieces):  # a large plane comes in row bands
                    self.digests.append(digest.hexdigest())
                    digest = hashlib.blake2b(digest_size=16)
                yield pieces
        finally:
            inner.close()


def facts_from_source(
    location: str,
    scenes: Sequence[int] | None = None,
    *,
    views: bool = True,
    source: str = "auto",
    reader: str = "native",
) -> list[SceneFacts]:
    """Read the selected scenes of a source (all by default): codes, per-plane simprints and digests
    and, with `views`, the ISCC-MIXED of the views `bioiscc imagecode` makes, in one pass."""
    from .api import opened

    with opened(location, source, reader) as src:
        try:
            infos = src.scenes()
        except BioisccError:
            raise
        except Exception as exc:
            raise InputError(location, describe(exc)) from exc
        chosen = range(len(infos)) if scenes is None else scenes
        for index in chosen:
            if not 0 <= index < len(infos):
                raise InputError(location, f"no scene {index} (the source has {len(infos)} scene(s))")
        return [_read_scene(src, infos[i], views) for i in chosen]


def _read_scene(src: Source, info: SceneInfo, views: bool) -> SceneFacts:
    from .api import describe_scene_error
    from .sumcode import hash_planes

    if not info.ok:
        raise InputError(src.location, f"scene {info.index}: {info.error}")
    tap = None
    try:
        scene_reader = src.open_scene(info)
        if views:
            from .views.extract import DEFAULT_MAX_VIEWS, DEFAULT_STRATEGIES, ViewTap

            tap = ViewTap(info, DEFAULT_STRATEGIES, DEFAULT_MAX_VIEWS)
            scene_reader = tap.reader(scene_reader)
        walk = _DigestingWalk(scene_reader)
        code = hash_planes(walk, simprints=True, wide=True)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        raise InputError(src.location, f"scene {info.index}: {describe_scene_error(exc)}") from exc
    prints = code.simprints or []
    planes = tuple(
        PlaneFacts(place, simprint=p.simprint, digest=d)
        for place, p, d in zip(positions(info.dims, info.extra_dims), prints, walk.digests, strict=True)
    )
    return SceneFacts(
        source=src.location,
        index=info.index,
        name=info.name,
        dims=dict(info.dims),
        extra_dims=dict(info.extra_dims),
        dtype=info.dtype,
        iscc_code=code.iscc_code,
        units=(code.units[0], code.units[1]),
        datahash=code.datahash,
        planes=planes,
        iscc_mixed=_mixed_of(src, info, tap, code) if tap is not None else None,
    )


def _mixed_of(src: Source, info: SceneInfo, tap: Any, code: Any) -> str | None:
    """The scene's ISCC-MIXED, as `bioiscc imagecode` gives it; None when no view could be made."""
    from .views import api as views_api

    try:
        outcome = views_api.SceneOutcome(info, views=tap.result(), code=code)
        record = views_api.image_record_of(views_api.Origin.of(src), outcome)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception:
        return None
    mixed = record.get("iscc_mixed")
    return str(mixed) if mixed else None


# --- comparing ------------------------------------------------------------------------------------


def hamming_bits(a: str, b: str) -> tuple[int, int] | None:
    """(differing bits, bits) of the bodies of two ISCC units; None when their lengths differ."""
    from .views.imagecode import code_body

    first, second = code_body(a), code_body(b)
    if len(first) != len(second):
        return None
    return _popcount_xor(first, second), 8 * len(first)


def _popcount_xor(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def simprint_distance(a: str | None, b: str | None) -> int | None:
    if a is None or b is None:
        return None
    first, second = base64.b64decode(a), base64.b64decode(b)
    return _popcount_xor(first, second) if len(first) == len(second) else None


def compare_scenes(a: SceneFacts | None, b: SceneFacts | None) -> SceneDiff:
    """The verdict on one scene of A and one of B (either may be missing)."""
    if a is None or b is None:
        return SceneDiff(a, b, MISSING)
    diff = SceneDiff(a, b, DIFFERENT)
    bits = hamming_bits(a.units[0], b.units[0])
    diff.data_distance = bits[0] if bits else None
    if a.iscc_mixed and b.iscc_mixed:
        mixed = hamming_bits(a.iscc_mixed, b.iscc_mixed)
        if mixed is not None:
            diff.mixed_distance, diff.mixed_bits = mixed
    same_geometry = (dict(a.dims), dict(a.extra_dims), a.dtype) == (dict(b.dims), dict(b.extra_dims), b.dtype)
    diff.planes_by = _planes_by(a, b)
    if a.datahash == b.datahash and a.dtype == b.dtype:
        diff.verdict = IDENTICAL if same_geometry else GEOMETRY
        if not same_geometry:
            diff.note = "the same pixel stream, cut into other dims"
        return diff
    if diff.planes_by is not None and a.dtype == b.dtype and _same_planes(a, b, diff.planes_by):
        diff.verdict = GEOMETRY
        diff.moved = _moves(a, b, diff.planes_by)
        return diff
    if a.dtype != b.dtype:
        diff.note = f"pixel types differ ({a.dtype}, {b.dtype})"
    _locate_changes(diff, a, b)
    return diff


def _planes_by(a: SceneFacts, b: SceneFacts) -> str | None:
    """The fingerprint both sides have for every plane: the exact digest, else the simprint."""
    if a.planes is None or b.planes is None:
        return None
    if all(p.digest for p in a.planes) and all(p.digest for p in b.planes):
        return BY_DIGEST
    if all(p.simprint for p in a.planes) and all(p.simprint for p in b.planes):
        return BY_SIMPRINT
    return None


def _print(plane: PlaneFacts, by: str) -> str:
    return str(plane.digest if by == BY_DIGEST else plane.simprint)


def _same_planes(a: SceneFacts, b: SceneFacts, by: str) -> bool:
    plane_shape = (a.dims["Y"], a.dims["X"]) == (b.dims["Y"], b.dims["X"])
    assert a.planes is not None and b.planes is not None
    return plane_shape and Counter(_print(p, by) for p in a.planes) == Counter(
        _print(p, by) for p in b.planes
    )


def _moves(a: SceneFacts, b: SceneFacts, by: str) -> list[Move]:
    """Where each plane of A that is not at its own position in B is in B (first unused match)."""
    assert a.planes is not None and b.planes is not None
    at_b: dict[str, list[Position]] = defaultdict(list)
    for plane in b.planes:
        at_b[_print(plane, by)].append(plane.position)
    moves = []
    for plane in a.planes:
        places = at_b[_print(plane, by)]
        place = plane.position if plane.position in places else places[0]
        places.remove(place)
        if place != plane.position:
            moves.append(Move(plane.position, place))
    return moves


def _locate_changes(diff: SceneDiff, a: SceneFacts, b: SceneFacts) -> None:
    """The planes that differ at the same position, and those only one side has."""
    by = diff.planes_by
    if by is None or a.planes is None or b.planes is None:
        return
    at_b = {p.position: p for p in b.planes}
    positions_a = {p.position for p in a.planes}
    for plane in a.planes:
        other = at_b.get(plane.position)
        if other is None:
            diff.only_a += 1
            continue
        diff.compared += 1
        if _print(plane, by) != _print(other, by) or (a.dims["Y"], a.dims["X"]) != (b.dims["Y"], b.dims["X"]):
            distance = simprint_distance(plane.simprint, other.simprint)
            diff.changed.append(Move(plane.position, other.position, distance))
    diff.only_b = sum(1 for p in b.planes if p.position not in positions_a)


def pair_scenes(
    first: Sequence[SceneFacts], second: Sequence[SceneFacts]
) -> list[tuple[SceneFacts | None, SceneFacts | None]]:
    """Scenes to compare: the only scene of each, else scenes of equal index."""
    if len(first) == 1 and len(second) == 1:
        return [(first[0], second[0])]
    by_a = {s.index: s for s in first}
    by_b = {s.index: s for s in second}
    return [(by_a.get(i), by_b.get(i)) for i in sorted(set(by_a) | set(by_b))]


def overall(diffs: Sequence[SceneDiff]) -> str:
    return max((d.verdict for d in diffs), key=VERDICT_ORDER.index, default=IDENTICAL)


# --- telling it -----------------------------------------------------------------------------------


def _name(facts: SceneFacts | None, label: str, several: bool) -> str:
    if facts is None:
        return label
    return f"{label} scene {facts.index}" if several else label


def verdict_line(diff: SceneDiff, label_a: str, label_b: str, several: bool = False) -> str:
    """One line for people: which scenes, the verdict and its evidence."""
    a, b = _name(diff.a, label_a, several), _name(diff.b, label_b, several)
    if diff.verdict == MISSING:
        present, side = (diff.a, label_b) if diff.a is not None else (diff.b, label_a)
        index = present.index if present is not None else "?"
        return f"{a} vs {b}: different: scene {index} is missing from {side}"
    head = f"{a} vs {b}: "
    if diff.verdict == IDENTICAL:
        assert diff.a is not None
        return head + f"identical pixels ({diff.a.iscc_code})"
    if diff.verdict == GEOMETRY:
        return head + "same pixels in another geometry: " + _geometry_text(diff)
    return head + "different pixels: " + "; ".join(filter(None, [*_change_texts(diff), _look_text(diff)]))


def _dims_text(facts: SceneFacts) -> str:
    sizes = {**dict(facts.dims), **dict(facts.extra_dims)}
    return " ".join(f"{k}={v}" for k, v in sizes.items() if k not in ("Y", "X") and v > 1) or "one plane"


def _geometry_text(diff: SceneDiff) -> str:
    assert diff.a is not None and diff.b is not None
    dims_a, dims_b = _dims_text(diff.a), _dims_text(diff.b)
    shape = f" ({dims_a} vs {dims_b})" if dims_a != dims_b else ""
    if diff.note:
        return diff.note + shape
    count = len(diff.a.planes or ())
    moved = ", ".join(f"{position_text(m.a or ())} -> {position_text(m.b or ())}" for m in diff.moved[:3]) + (
        f" and {len(diff.moved) - 3} more" if len(diff.moved) > 3 else ""
    )
    by = "exact" if diff.planes_by == BY_DIGEST else "by their simprints"
    return f"the same {count} planes ({by}), {len(diff.moved)} at other positions{shape}" + (
        f": {moved}" if moved else ""
    )


def _change_texts(diff: SceneDiff) -> list[str]:
    texts: list[str] = []
    if diff.note:
        texts.append(diff.note)
    if diff.planes_by is None:
        texts.append("planes not compared (no per-plane simprints on both sides)")
    elif diff.changed or diff.only_a or diff.only_b:
        if diff.compared:
            named = ", ".join(position_text(m.a or ()) for m in diff.changed[:NAMED_PLANES])
            more = f" and {len(diff.changed) - NAMED_PLANES} more" if len(diff.changed) > NAMED_PLANES else ""
            what = f" ({named}{more})" if named else ""
            texts.append(f"{len(diff.changed)} of {diff.compared} planes differ{what}")
        if diff.only_a or diff.only_b:
            texts.append(f"planes only in A: {diff.only_a}, only in B: {diff.only_b}")
    else:
        texts.append(
            f"no plane's simprint differs (of {diff.compared}): the change is too small for "
            "per-plane simprints to place it"
        )
    if diff.data_distance is not None:
        texts.append(f"Data-Code distance {diff.data_distance} of 256 bits")
    return texts


def _look_text(diff: SceneDiff) -> str | None:
    from .views.imagecode import SIMILAR_BITS

    if diff.mixed_distance is None or diff.mixed_bits is None:
        return None
    limit = SIMILAR_BITS * diff.mixed_bits // 256
    alike = "they look alike" if diff.mixed_distance <= limit else "they do not look alike"
    return f"{alike} (ISCC-MIXED distance {diff.mixed_distance} of {diff.mixed_bits} bits)"


def look_alike(diff: SceneDiff) -> bool | None:
    from .views.imagecode import SIMILAR_BITS

    if diff.mixed_distance is None or diff.mixed_bits is None:
        return None
    return diff.mixed_distance <= SIMILAR_BITS * diff.mixed_bits // 256


def diff_record(
    source_a: str, source_b: str, diffs: Sequence[SceneDiff], lines: Sequence[str]
) -> dict[str, Any]:
    """The `bioiscc.diff` record of a comparison."""
    from .records import GENERATOR

    return {
        "kind": DIFF,
        "generator": GENERATOR,
        "source": redact(source_a),
        "other": redact(source_b),
        "verdict": overall(diffs),
        "scenes": [_scene_entry(d, line) for d, line in zip(diffs, lines, strict=True)],
    }


def _scene_entry(diff: SceneDiff, line: str) -> dict[str, Any]:
    return {
        "a": diff.a.summary() if diff.a else None,
        "b": diff.b.summary() if diff.b else None,
        "verdict": diff.verdict,
        "line": line,
        "planes": {
            "by": diff.planes_by,
            "compared": diff.compared,
            "differ": len(diff.changed),
            "changed": [
                {"a": position_dict(m.a), "b": position_dict(m.b), "simprint_distance": m.simprint_distance}
                for m in diff.changed
            ],
            "moved": [{"a": position_dict(m.a), "b": position_dict(m.b)} for m in diff.moved],
            "only_a": diff.only_a,
            "only_b": diff.only_b,
        },
        "data_distance": diff.data_distance,
        "mixed_distance": diff.mixed_distance,
        "look_alike": look_alike(diff),
        "note": diff.note,
    }
