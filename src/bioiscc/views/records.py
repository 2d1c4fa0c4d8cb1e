"""The `bioiscc.views` and `bioiscc.image` records (docs/spec/RECORDS.md, "Views and image codes").

`bioiscc.views` (views.json, from `extract-views` and `views`): per view its id, strategy, channels,
z/t, quality figures, PNG path (relative to the views.json folder) and 256-bit ISCC-IMAGE.
`bioiscc.image` (from `mix` and `imagecode`): scene, views_algorithm, views (id, strategy,
iscc_image), iscc_mixed and, given the scene's ISCC-SUM, the composite iscc_code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..locations import redact
from ..records import GENERATOR
from ..scene import SceneInfo
from . import VIEWS_ALGORITHM

VIEWS = "bioiscc.views"
IMAGE = "bioiscc.image"
FLAT_WARNING = (
    "every view is flat (no contrast, or no finite pixel): its ISCC-IMAGE is the code of a uniform "
    "mid-gray image and carries no picture"
)


def _scene_fields(
    kind: str, source: str, format: str | None, reader: str | None, info: SceneInfo | None
) -> dict[str, Any]:
    known = info if info is not None and info.ok else None
    return {
        "kind": kind,
        "generator": GENERATOR,
        "source": redact(source),
        "format": format,
        "reader": reader,
        "views_algorithm": VIEWS_ALGORITHM,
        "scene": {"index": info.index if info else None, "name": info.name if info else None},
        "dims": dict(known.dims) if known else None,
        "extra_dims": dict(known.extra_dims) if known else None,
        "dtype": known.dtype if known else None,
    }


def placement(strategy: str, channels: Sequence[int], z: int | None, t: int) -> dict[str, Any]:
    """Where a view comes from: its channels (effective, samples folded in), z (null: all), t."""
    return {
        "strategy": strategy,
        "channels": list(channels),
        "c": channels[0] if len(channels) == 1 else None,
        "z": z,
        "t": t,
    }


def views_record(
    source: str,
    *,
    format: str | None,
    reader: str | None,
    info: SceneInfo | None,
    views: Sequence[Mapping[str, Any]] = (),
    dropped: Sequence[Mapping[str, Any]] = (),
    selection: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A `bioiscc.views` record; `views` are the view entries, `selection` how they were chosen."""
    record = _scene_fields(VIEWS, source, format, reader, info)
    record.update(
        status="failed" if error else "ok",
        error=error,
        selection=dict(selection) if selection else None,
        views=[dict(v) for v in views],
        dropped=[dict(d) for d in dropped],
    )
    return record


def image_record(
    source: str,
    *,
    format: str | None,
    reader: str | None,
    info: SceneInfo | None,
    bits: int,
    views: Sequence[Mapping[str, Any]] = (),
    mixed: tuple[str, str] | None = None,
    flat: bool = False,
    scene_sum: Mapping[str, Any] | None = None,
    iscc_code: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A `bioiscc.image` record; `mixed` is (ISCC-MIXED, rule), `scene_sum` the scene record's codes."""
    record = _scene_fields(IMAGE, source, format, reader, info)
    failed = error is not None
    record.update(
        status="failed" if failed else "ok",
        error=error,
        bits=bits,
        views=[dict(v) for v in views] if not failed else [],
        iscc_mixed=mixed[0] if mixed and not failed else None,
        mixed_rule=mixed[1] if mixed and not failed else None,
        flat=flat if not failed else None,
        iscc_sum=scene_sum.get("iscc_code") if scene_sum and not failed else None,
        units=list(scene_sum["units"]) if scene_sum and not failed else None,
        datahash=scene_sum.get("datahash") if scene_sum and not failed else None,
        iscc_code=iscc_code if not failed else None,
        warnings=[FLAT_WARNING] if flat and not failed else [],
    )
    return record


def info_of(record: Mapping[str, Any]) -> SceneInfo | None:
    """The scene a views or scene record describes, as a `SceneInfo` (None when it names none)."""
    scene = record.get("scene") or {}
    if scene.get("index") is None:
        return None
    dims = record.get("dims")
    return SceneInfo(
        index=int(scene["index"]),
        name=str(scene.get("name") or ""),
        dims=dict(dims) if dims else {},
        extra_dims=dict(record.get("extra_dims") or {}),
        dtype=str(record.get("dtype") or ""),
        error=None if dims else str(record.get("error") or "failed"),
    )
