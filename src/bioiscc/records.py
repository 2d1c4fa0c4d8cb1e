"""The records the commands exchange (docs/spec/RECORDS.md), and their JSON Schemas.

Builders here turn typed results into plain dicts with the contract's field names; every record
carries `kind`, `generator` and `source`. The schemas ship in `bioiscc/schemas/`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ._version import __version__
from .imagewalk import IMAGEWALK_VERSION
from .locations import redact
from .scene import SceneInfo
from .sumcode import SumCode

GENERATOR = f"bioiscc {__version__}"

WALK = "bioiscc.walk"
SCENE = "bioiscc.scene"
BIOCODE = "bioiscc.biocode"

SCHEMA_FILES = {
    WALK: "walk.schema.json",
    SCENE: "scene.schema.json",
    BIOCODE: "biocode.schema.json",
    "bioiscc.views": "views.schema.json",
    "bioiscc.image": "image.schema.json",
    "bioiscc.verify": "verify.schema.json",
    "bioiscc.diff": "diff.schema.json",
    "bioiscc.similar": "similar.schema.json",
}


def _common(kind: str, source: str) -> dict[str, Any]:
    # `source` is the location as given, never with credentials (RECORDS.md)
    return {"kind": kind, "generator": GENERATOR, "source": redact(source)}


def scene_entry(info: SceneInfo) -> dict[str, Any]:
    """A scene as the walk manifest lists it."""
    entry: dict[str, Any] = {"index": info.index, "name": info.name}
    if info.ok:
        entry.update(
            dims=dict(info.dims),
            extra_dims=dict(info.extra_dims),
            dtype=info.dtype,
            planes=info.planes,
            bytes=info.bytes,
            status="ok",
            error=None,
        )
    else:
        entry.update(
            dims=None,
            extra_dims=None,
            dtype=None,
            planes=None,
            bytes=None,
            status="failed",
            error=info.error,
        )
    return entry


def walk_record(
    source: str,
    *,
    format: str | None,
    reader: str | None,
    fingerprint: str | None,
    scenes: list[SceneInfo],
    error: str | None = None,
) -> dict[str, Any]:
    record = _common(WALK, source)
    record.update(
        format=format,
        reader=reader,
        fingerprint=fingerprint,
        status="failed" if error else "ok",
        error=error,
        scenes=[scene_entry(s) for s in scenes],
    )
    return record


def scene_record(
    source: str,
    *,
    format: str | None,
    reader: str | None,
    info: SceneInfo | None,
    code: SumCode | None = None,
    error: str | None = None,
    simprints: bool = False,
) -> dict[str, Any]:
    """A `bioiscc.scene` record: codes when `code` is given, else a failed record with `error`."""
    record = _common(SCENE, source)
    known = info if info is not None and info.ok else None
    record.update(
        format=format,
        reader=reader,
        imagewalk=IMAGEWALK_VERSION,
        scene={"index": info.index if info else None, "name": info.name if info else None},
        dims=dict(known.dims) if known else None,
        extra_dims=dict(known.extra_dims) if known else None,
        dtype=known.dtype if known else None,
        planes=known.planes if known else None,
        bytes=known.bytes if known else None,
        status="ok" if code is not None else "failed",
        error=None if code is not None else (error or "failed"),
        iscc_code=code.iscc_code if code else None,
        units=code.units if code else None,
        datahash=code.datahash if code else None,
    )
    if simprints:
        record["simprints"] = (
            [s.as_dict() for s in code.simprints] if code and code.simprints is not None else None
        )
    return record


def biocode_record(
    source: str, *, raw: dict[str, Any] | None, parts: list[dict[str, Any]], error: str | None = None
) -> dict[str, Any]:
    """The iscc-bio style container: raw-bytes ISCC-SUM at the top, scene records as `parts`."""
    record: dict[str, Any] = {
        "iscc_code": raw["iscc_code"] if raw else None,
        "units": raw["units"] if raw else None,
        "datahash": raw["datahash"] if raw else None,
        "filesize": raw["filesize"] if raw else None,
        "generator": GENERATOR,
        "kind": BIOCODE,
        "source": redact(source),
        "status": "failed" if error or any(p["status"] != "ok" for p in parts) else "ok",
        "error": error,
        "parts": parts,
    }
    return record


@cache
def schema(kind: str) -> dict[str, Any]:
    from importlib.resources import files  # only validation needs the schemas: not on the hot path

    text = files("bioiscc").joinpath("schemas", SCHEMA_FILES[kind]).read_text(encoding="utf-8")
    return json.loads(text)


def validate(record: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if the record does not match its kind's schema."""
    _validator(record.get("kind", BIOCODE)).validate(record)


@cache
def _validator(kind: str) -> Any:
    import jsonschema
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry().with_resources(
        (schema(name)["$id"], Resource.from_contents(schema(name))) for name in SCHEMA_FILES
    )
    return jsonschema.Draft202012Validator(schema(kind), registry=registry)


def check(record: dict[str, Any], kind: str | None) -> None:
    """A record read from a file, checked before any command relies on its fields: ValueError (one
    line) unless it is a `kind` record (None: of the kind it names) as its schema describes."""
    import jsonschema

    from .errors import one_line

    named = record.get("kind", BIOCODE)
    wanted = named if kind is None else kind
    if not isinstance(wanted, str) or wanted not in SCHEMA_FILES or named != wanted:
        raise ValueError(f"not a {kind or 'bioiscc'} record (kind {one_line(repr(named), 60)})")
    error = jsonschema.exceptions.best_match(_validator(wanted).iter_errors(record))
    if error is not None:
        where = "/".join(str(step) for step in error.absolute_path) or "the record"
        raise ValueError(f"not a valid {wanted} record: {where}: {one_line(error.message, 120)}")
