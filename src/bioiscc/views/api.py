"""What the view commands call: views of a scene, their records, `mix`, and `imagecode`.

    >>> from bioiscc.views import api
    >>> with api.opened("cells.czi") as src:
    ...     outcome = api.scene_views(src, src.scenes()[0], with_sum=True)
    ...     record = api.image_record_of(api.Origin.of(src), outcome, bits=256)

A scene that cannot be read does not raise: its outcome carries the error and its records have
status "failed". Errors of the input as a whole raise `bioiscc.InputError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import describe_scene_error, opened
from ..errors import InputError, describe
from ..imagewalk import iter_planes
from ..scene import SceneInfo, Source
from ..sumcode import SumCode, hash_planes
from . import VIEWS_ALGORITHM, records
from .extract import DEFAULT_MAX_VIEWS, DEFAULT_STRATEGIES, SceneViews, ViewTap, read_views
from .imagecode import DEFAULT_BITS, composite_code, image_code, mixed_code
from .normalize import gray_of
from .png import read_png, write_png
from .render import SELECTION_BITS, View

VIEWS_JSON = "views.json"

__all__ = [
    "Origin",
    "SceneOutcome",
    "image_record_of",
    "mix",
    "opened",
    "scene_views",
    "views_record_of",
    "write_pngs",
]


@dataclass(frozen=True)
class Origin:
    """Where records come from: the source as given, its format and reader."""

    source: str
    format: str | None
    reader: str | None

    @classmethod
    def of(cls, src: Source) -> Origin:
        return cls(src.location, src.format, src.reader_name)


@dataclass(frozen=True)
class SceneOutcome:
    """The views of one scene (and its ISCC-SUM when asked for), or why they could not be made."""

    info: SceneInfo
    views: SceneViews | None = None
    code: SumCode | None = None
    error: str | None = None


def scene_views(
    src: Source,
    info: SceneInfo,
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    max_views: int = DEFAULT_MAX_VIEWS,
    with_sum: bool = False,
) -> SceneOutcome:
    """The views of a scene; with `with_sum`, also its wide ISCC-SUM from the same single read."""
    if not info.ok:
        return SceneOutcome(info, error=info.error)
    try:
        reader = src.open_scene(info)
        if not with_sum:
            return SceneOutcome(info, views=read_views(reader, strategies, max_views))
        tap = ViewTap(info, strategies, max_views)
        code = hash_planes(iter_planes(tap.reader(reader)), wide=True)
        return SceneOutcome(info, views=tap.result(), code=code)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        return SceneOutcome(info, error=describe_scene_error(exc))


def png_name(view: View) -> str:
    return f"{view.id}.png"


def write_pngs(outcome: SceneOutcome, directory: Path) -> dict[str, str]:
    """Write the views of a scene as 8-bit PNGs into `directory`; their file names by view id.

    All or none: an error or Ctrl-C midway removes the PNGs already written.
    """
    if outcome.views is None:
        return {}
    names: dict[str, str] = {}
    try:
        for view in outcome.views.selection.views:
            names[view.id] = png_name(view)
            write_png(view.image, directory / names[view.id])
    except BaseException:
        remove_pngs(directory, names.values())
        raise
    return names


def write_views(origin: Origin, outcome: SceneOutcome, directory: Path) -> None:
    """A scene's PNGs and its views.json in `directory`, replacing an earlier run's: the PNGs the
    old views.json listed and the new one does not are removed after it is in place; an error or
    Ctrl-C before then leaves the old views.json and its PNGs (the new PNGs are removed)."""
    from ..output import render, write_text

    earlier = listed_pngs(directory / VIEWS_JSON)
    names = write_pngs(outcome, directory)
    try:
        write_text(render([views_record_of(origin, outcome, names)], lines=False), directory / VIEWS_JSON)
    except BaseException:
        remove_pngs(directory, set(names.values()) - earlier)
        raise
    remove_pngs(directory, earlier - set(names.values()))


def listed_pngs(views_json: Path) -> set[str]:
    """The PNG names a views.json lists (none when it is missing or not a views record)."""
    import json

    try:
        record = json.loads(views_json.read_text(encoding="utf-8"))
        return {str(view["png"]) for view in record["views"] if view.get("png")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def remove_pngs(directory: Path, names: Any) -> None:
    """Remove these PNGs of `directory` (names with a folder part, or not .png, are left alone)."""
    for name in names:
        if Path(name).name == name and name.endswith(".png"):
            (directory / name).unlink(missing_ok=True)


def _selection_figures(views: SceneViews) -> dict[str, Any]:
    return {
        "strategies": list(views.strategies),
        "max_views": views.max_views,
        "candidates": views.planned,
        "rendered": views.selection.rendered,
        "planes_binned": views.planes_binned,
    }


def views_record_of(
    origin: Origin, outcome: SceneOutcome, png_names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The `bioiscc.views` record of a scene (views.json); PNG paths relative to its folder."""
    fields: dict[str, Any] = {"format": origin.format, "reader": origin.reader, "info": outcome.info}
    if outcome.views is None:
        return records.views_record(origin.source, **fields, error=outcome.error or "failed")
    entries = []
    for view in outcome.views.selection.views:
        height, width = view.image.shape[:2]
        entries.append(
            {
                "id": view.id,
                **_placement(view),
                "png": (png_names or {}).get(view.id),
                "width": width,
                "height": height,
                "mode": view.mode,
                "iscc_image": view.code,
                "quality": view.quality(),
            }
        )
    return records.views_record(
        origin.source,
        **fields,
        views=entries,
        dropped=outcome.views.selection.dropped,
        selection=_selection_figures(outcome.views),
    )


def _placement(view: View) -> dict[str, Any]:
    candidate = view.candidate
    return records.placement(candidate.strategy, candidate.channels, candidate.z, candidate.t)


def image_record_of(
    origin: Origin,
    outcome: SceneOutcome,
    *,
    bits: int = DEFAULT_BITS,
    png_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `bioiscc.image` record of a scene from its in-memory views (and ISCC-SUM, if computed)."""
    fields: dict[str, Any] = {
        "format": origin.format,
        "reader": origin.reader,
        "info": outcome.info,
        "bits": bits,
    }
    if outcome.views is None:
        return records.image_record(origin.source, **fields, error=outcome.error or "failed")
    views = outcome.views.selection.views
    codes = [view.code if bits == SELECTION_BITS else image_code(gray_of(view.image), bits) for view in views]
    entries = [
        {"id": v.id, **_placement(v), "iscc_image": code, "png": (png_names or {}).get(v.id)}
        for v, code in zip(views, codes, strict=True)
    ]
    mixed = mixed_code(codes, bits)
    scene_sum = None
    composite = None
    if outcome.code is not None:
        scene_sum = {
            "iscc_code": outcome.code.iscc_code,
            "units": outcome.code.units,
            "datahash": outcome.code.datahash,
        }
        composite = composite_code(mixed[0], outcome.code.units)
    return records.image_record(
        origin.source,
        **fields,
        views=entries,
        mixed=mixed,
        flat=all(v.flat for v in views),
        scene_sum=scene_sum,
        iscc_code=composite,
    )


# --- mix: from views.json (and a scene record) ----------------------------------------------------


def mix(
    views_record: Mapping[str, Any],
    folder: Path,
    *,
    bits: int = DEFAULT_BITS,
    scene_record: Mapping[str, Any] | None = None,
    where: str = VIEWS_JSON,
) -> dict[str, Any]:
    """The `bioiscc.image` record of a views.json: codes computed from its PNGs (in `folder`).

    A failed views record, or a failed scene record, gives a failed image record. A views.json whose
    PNGs are missing or unreadable, or a scene record of another scene, raises `InputError`.
    """
    if views_record.get("kind") != records.VIEWS:
        raise InputError(where, f"not a views record (kind {views_record.get('kind')!r})")
    algorithm = views_record.get("views_algorithm")
    if algorithm != VIEWS_ALGORITHM:  # the image record would claim views of another algorithm
        raise InputError(where, f"views of algorithm {algorithm!r}; this bioiscc mixes {VIEWS_ALGORITHM!r}")
    origin = Origin(
        str(views_record.get("source") or where), views_record.get("format"), views_record.get("reader")
    )
    info = records.info_of(views_record)
    fields: dict[str, Any] = {"format": origin.format, "reader": origin.reader, "info": info, "bits": bits}
    if views_record.get("status") != "ok":
        return records.image_record(origin.source, **fields, error=str(views_record.get("error") or "failed"))
    entries, codes = _coded_entries(views_record, folder, bits, where)
    mixed = mixed_code(codes, bits)
    flat = all(bool((e.get("quality") or {}).get("flat")) for e in views_record["views"])
    if scene_record is None:
        return records.image_record(origin.source, **fields, views=entries, mixed=mixed, flat=flat)
    if scene_record.get("status") != "ok":
        cause = f"the scene's ISCC-SUM failed: {scene_record.get('error') or 'failed'}"
        return records.image_record(origin.source, **fields, error=cause)
    return records.image_record(
        origin.source,
        **fields,
        views=entries,
        mixed=mixed,
        flat=flat,
        scene_sum=scene_record,
        iscc_code=composite_code(mixed[0], scene_record["units"]),
    )


def _coded_entries(
    views_record: Mapping[str, Any], folder: Path, bits: int, where: str
) -> tuple[list[dict[str, Any]], list[str]]:
    entries, codes = [], []
    for view in views_record.get("views") or []:
        if not view.get("png"):
            raise InputError(where, f"view {view.get('id')!r} has no PNG")
        name = str(view["png"])
        if Path(name).is_absolute() or ".." in Path(name).parts:  # written under the folder, by views
            raise InputError(where, f"view {view.get('id')!r}: PNG {name!r} is not in the views folder")
        path = folder / name
        try:
            image = read_png(path)
        except FileNotFoundError as exc:
            raise InputError(
                where,
                f"view {view.get('id')!r}: PNG {path} is missing (a view's PNG is named relative to"
                " the folder of its views JSON: keep that file in the folder `views -o` wrote)",
            ) from exc
        except Exception as exc:
            raise InputError(where, f"view {view.get('id')!r}: {describe(exc)}") from exc
        code = image_code(gray_of(image), bits)
        codes.append(code)
        entries.append(
            {
                "id": view["id"],
                **records.placement(view["strategy"], view["channels"], view.get("z"), view["t"]),
                "iscc_image": code,
                "png": view["png"],
            }
        )
    if not codes:
        raise InputError(where, "a views record without views")
    return entries, codes


def pick_scene_record(
    candidates: Sequence[Mapping[str, Any]], views_record: Mapping[str, Any], where: str
) -> Mapping[str, Any]:
    """The scene record (from `hash`, or the parts of a biocode) of the scene the views show."""
    flat: list[Mapping[str, Any]] = []
    for record in candidates:
        flat.extend((record.get("parts") or []) if record.get("kind") == "bioiscc.biocode" else [record])
    scenes = [r for r in flat if r.get("kind") == "bioiscc.scene"]
    if not scenes:
        raise InputError(where, "no bioiscc.scene record in it")
    index = (views_record.get("scene") or {}).get("index")
    matching = [r for r in scenes if (r.get("scene") or {}).get("index") == index]
    if not matching:
        raise InputError(where, f"no scene record of scene {index}")
    chosen = matching[0]
    if chosen.get("status") == "ok" and views_record.get("status") == "ok":
        for key in ("dims", "extra_dims", "dtype"):
            if chosen.get(key) != views_record.get(key):
                raise InputError(where, f"describes another image: its {key} differ from the views' scene")
    return chosen
