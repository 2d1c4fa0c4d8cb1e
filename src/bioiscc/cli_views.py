"""The view commands: extract-views, mix, imagecode, views, scenes, thumb (docs/views.md).

Registered on `bioiscc.cli.main` by importing this module at the end of `bioiscc/cli.py`. Exit codes
as docs/spec/RECORDS.md fixes them: 0 done; 1 the input could not be read (one line on stderr,
nothing written); 2 usage error; 3 output written but some scene failed. `--record-errors` turns a
failure into a failed record and exit 0. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

#: The commands this module registers on `bioiscc.cli.main`. Defined before `bioiscc.cli` is imported:
#: `bioiscc.cli` imports this name at its end, whichever of the two modules is imported first.
COMMANDS = ("extract-views", "mix", "imagecode", "views", "scenes", "thumb")

from . import cli  # noqa: E402
from .cli import (  # noqa: E402
    _conclude,
    _fail,
    _scene_failures,
    output_option,
    progress_option,
    record_errors_option,
    scenes_option,
    source_options,
    threads_option,
)
from .cli_batch import (  # noqa: E402
    batch_options,
    mix_step,
    refuse_with_batch,
    run_batch,
    views_step,
)
from .cli_output import InputFile, OutputFolder  # noqa: E402

if TYPE_CHECKING:
    from .scene import SceneInfo, Source

STRATEGIES = ("mip", "best_focus", "representative", "composite")
DEFAULT_MAX_VIEWS = 5
PREVIEW_MAX_VIEWS = 8
BITS = ("256", "64")
Failures = list[tuple[Any, str]]
T = TypeVar("T")


def _group() -> click.Group:
    """The `bioiscc` command group the view commands join."""
    group: click.Group = cli.main
    return group


def _require_view_libraries() -> None:
    """Views need iscc-core (ISCC-IMAGE, ISCC-MIXED) and Pillow (PNG): say so in one line.

    The libraries are found without importing them, and imported in a background thread while the
    command opens and reads its input (iscc-core takes a few tenths of a second to import); code that
    needs them waits for that import through Python's module lock.
    """
    import importlib
    import importlib.util
    import threading

    wanted = (("iscc_core", "iscc-core"), ("PIL", "pillow"))
    missing = [package for module, package in wanted if importlib.util.find_spec(module) is None]
    if missing:
        needed = " and ".join(missing)
        _fail(f"views and image codes need {needed}; install with: pip install {' '.join(missing)}")

    def preload() -> None:
        for module in ("iscc_core", "PIL.Image"):
            try:
                importlib.import_module(module)
            except Exception:  # pragma: no cover - the real import reports it where it is needed
                return

    threading.Thread(target=preload, name="bioiscc-preload", daemon=True).start()


def shown(source: str) -> str:
    """SOURCE as records and messages show it: without credentials (an OMERO URI's user:password@)."""
    from .locations import redact

    return redact(source)


def view_options(default_max: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "-n",
            "--max-views",
            type=click.IntRange(min=1),
            default=default_max,
            show_default=True,
            help="Keep at most this many views per scene (near-duplicates are dropped first).",
        )(func)
        func = click.option(
            "-s",
            "--strategy",
            "strategies",
            type=click.Choice(STRATEGIES),
            multiple=True,
            help="View strategy (repeatable; default: all four).",
        )(func)
        return func

    return decorate


def _strategies(chosen: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(s for s in STRATEGIES if s in chosen) if chosen else STRATEGIES


def _with_scenes(
    source: str, source_kind: str, reader: str, work: Callable[[Source, list[SceneInfo]], T]
) -> T:
    """Open SOURCE, list its scenes and run `work` on them; an unreadable input raises `BioisccError`."""
    from . import api

    with api.opened(source, source_kind, reader) as src:
        return work(src, api._list_scenes(src))


def _chosen_scenes(source: str, infos: list[SceneInfo], chosen: Sequence[int]) -> list[SceneInfo]:
    for index in chosen:
        if not 0 <= index < len(infos):
            raise click.UsageError(f"{source}: no scene {index} (the source has {len(infos)} scene(s))")
    return [infos[i] for i in dict.fromkeys(chosen)] if chosen else list(infos)  # each scene once


# --- extract-views ------------------------------------------------------------------------------


@_group().command(name="extract-views")
@click.argument("source", required=False)
@click.option("--scene", type=click.IntRange(min=0), default=0, show_default=True, help="Scene index.")
@click.option(
    "-o",
    "--output-dir",
    type=OutputFolder(),
    help="Folder for views.json and the view PNGs (required without --batch).",
)
@view_options(DEFAULT_MAX_VIEWS)
@source_options
@record_errors_option
@batch_options
@progress_option
def extract_views(
    source: str | None,
    scene: int,
    output_dir: str | None,
    strategies: tuple[str, ...],
    max_views: int,
    source_kind: str,
    reader: str,
    record_errors: bool,
    batch_file: str | None,
    batch_log: str | None,
    retry_failed: bool,
    progress: bool | None,
) -> None:
    """Extract the views of one scene of SOURCE: 8-bit PNGs and DIR/views.json (bioiscc.views).

    --batch: every scene of each input, into DIR/views/ (PNGs in scene-K/, one views record per scene
    in views.jsonl), as the workflow's extract_views rule writes them (see `bioiscc.batch`).
    """
    if batch_file is not None:
        refuse_with_batch(SOURCE=source, output_dir=output_dir)
        step = views_step(_strategies(strategies), max_views, source_kind, reader)
        run_batch(step, batch_file, batch_log, retry_failed, progress)
        return
    if source is None or output_dir is None:
        raise click.UsageError("give SOURCE and -o DIR (or --batch FILE)")
    _require_view_libraries()
    from .errors import BioisccError
    from .output import render, write_text
    from .views import api as views_api

    folder = Path(output_dir)
    chosen = _strategies(strategies)

    def work(src: Source, infos: list[SceneInfo]) -> tuple[Any, Any]:
        (info,) = _chosen_scenes(shown(source), infos, [scene])
        outcome = views_api.scene_views(src, info, strategies=chosen, max_views=max_views)
        return views_api.Origin.of(src), outcome

    try:
        origin, outcome = _with_scenes(source, source_kind, reader, work)
    except BioisccError as exc:
        if not record_errors:
            _fail(str(exc))
        record = views_api.records.views_record(
            shown(source), format=None, reader=None, info=None, error=getattr(exc, "cause", str(exc))
        )
        _conclude(
            source, [], 1, True, lambda: write_text(render([record], lines=False), folder / "views.json")
        )
        return
    info = outcome.info

    def write() -> None:
        views_api.write_views(origin, outcome, folder)

    failures = [] if outcome.error is None else [(info.index, outcome.error)]
    _conclude(source, failures, 1, record_errors, write)


# --- mix -------------------------------------------------------------------------------------------


@_group().command()
@click.argument("views_json", required=False)
@click.option(
    "--sum",
    "scene_json",
    type=InputFile(),
    default=None,
    help="The scene's bioiscc.scene record (from hash): adds the composite ISCC-CODE.",
)
@click.option(
    "--bits", type=click.Choice(BITS), default="256", show_default=True, help="ISCC-IMAGE/-MIXED bits."
)
@output_option
@record_errors_option
@batch_options
@progress_option
def mix(
    views_json: str | None,
    scene_json: str | None,
    bits: str,
    output: str | None,
    record_errors: bool,
    batch_file: str | None,
    batch_log: str | None,
    retry_failed: bool,
    progress: bool | None,
) -> None:
    """ISCC-IMAGE of each view of VIEWS_JSON, the scene's ISCC-MIXED, and with --sum its ISCC-CODE.

    VIEWS_JSON is a views.json, or the JSON Lines of `views -o DIR` saved in DIR (one scene a line):
    one bioiscc.image record per views record (JSON Lines). PNG paths in VIEWS_JSON are relative to
    its folder; in the output, to the folder of -o FILE (to VIEWS_JSON's folder on stdout).

    --batch: for each input, DIR/image.jsonl from DIR/views/views.jsonl and DIR/scenes.jsonl, as the
    workflow's mix rule writes it (see `bioiscc.batch`).
    """
    if batch_file is not None:
        refuse_with_batch(VIEWS_JSON=views_json, output=output, sum=scene_json)
        run_batch(mix_step(int(bits)), batch_file, batch_log, retry_failed, progress)
        return
    if views_json is None:
        raise click.UsageError("give VIEWS_JSON (or --batch FILE)")
    mix_one(views_json, scene_json, int(bits), output, record_errors)


def mix_one(
    views_json: str, scene_json: str | None, bits: int, output: str | None, record_errors: bool
) -> None:
    """The image records of one views record file (see `mix`)."""
    _require_view_libraries()
    from .errors import InputError
    from .output import read_records, render, write_text
    from .views import api as views_api

    def mixed(views_record: dict[str, Any], scene_records: list[dict[str, Any]] | None) -> dict[str, Any]:
        scene_record = None
        if scene_records is not None and views_record.get("status") == "ok":
            scene_record = views_api.pick_scene_record(scene_records, views_record, str(scene_json))
        return views_api.mix(
            views_record, Path(views_json).parent, bits=bits, scene_record=scene_record, where=views_json
        )

    try:
        views_records = _records_of(views_json, read_records, "bioiscc.views")
        if not views_records:
            raise InputError(views_json, "no views record in it")
        scene_records = None if scene_json is None else _records_of(scene_json, read_records, "bioiscc.scene")
        results = [mixed(record, scene_records) for record in views_records]
    except InputError as exc:
        if not record_errors:
            _fail(str(exc))
        results = [
            views_api.records.image_record(
                views_json, format=None, reader=None, info=None, bits=bits, error=exc.cause
            )
        ]
    if output is not None:
        _rebase_pngs(results, Path(views_json).parent, Path(output).parent)
    source = str(results[0].get("source") or views_json)
    _conclude(
        source,
        _scene_failures(results),
        len(results),
        record_errors,
        lambda: write_text(render(results, lines=True), output),
    )


def _rebase_pngs(results: list[dict[str, Any]], origin: Path, target: Path) -> None:
    """Make the PNG paths of image records, relative to `origin`, relative to `target` instead."""
    for record in results:
        for view in record.get("views") or []:
            if view.get("png"):
                view["png"] = Path(os.path.relpath(origin / view["png"], target)).as_posix()


def _records_of(
    path: str, read_records: Callable[[str, str], list[dict[str, Any]]], kind: str
) -> list[dict[str, Any]]:
    from .errors import InputError

    try:
        return read_records(path, kind)
    except FileNotFoundError as exc:
        raise InputError(path, "no such file") from exc
    except OSError as exc:  # a directory, no permission
        raise InputError(path, f"cannot read it: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise InputError(path, f"not a JSON record ({type(exc).__name__}: {exc})") from exc


# --- imagecode ----------------------------------------------------------------------------------


@_group().command()
@click.argument("source")
@click.option(
    "-o",
    "--output-dir",
    type=OutputFolder(),
    default=None,
    help="Also write each scene's view PNGs and views.json into DIR/scene-K/.",
)
@view_options(DEFAULT_MAX_VIEWS)
@scenes_option
@click.option(
    "--bits", type=click.Choice(BITS), default="256", show_default=True, help="ISCC-IMAGE/-MIXED bits."
)
@click.option("--no-sum", is_flag=True, help="Skip the ISCC-SUM (reads only the planes the views need).")
@click.option("--text", is_flag=True, help="Print for people instead of JSON Lines.")
@source_options
@record_errors_option
@threads_option
def imagecode(
    source: str,
    output_dir: str | None,
    strategies: tuple[str, ...],
    max_views: int,
    scenes: tuple[int, ...],
    bits: str,
    no_sum: bool,
    text: bool,
    source_kind: str,
    reader: str,
    record_errors: bool,
) -> None:
    """Views, ISCC-IMAGEs, ISCC-MIXED, ISCC-SUM and composite ISCC-CODE of every scene of SOURCE.

    One bioiscc.image record per scene (JSON Lines). The scene is read once for all codes.
    """
    _require_view_libraries()
    from .errors import BioisccError
    from .output import render, write_text
    from .views import api as views_api

    def work(src: Source, infos: list[SceneInfo]) -> tuple[Any, list[Any]]:
        found = [
            views_api.scene_views(
                src, info, strategies=_strategies(strategies), max_views=max_views, with_sum=not no_sum
            )
            for info in _chosen_scenes(shown(source), infos, scenes)
        ]
        return views_api.Origin.of(src), found

    try:
        origin, outcomes = _with_scenes(source, source_kind, reader, work)
    except BioisccError as exc:
        if not record_errors:
            _fail(str(exc))
        failed = views_api.records.image_record(
            shown(source),
            format=None,
            reader=None,
            info=None,
            bits=int(bits),
            error=getattr(exc, "cause", str(exc)),
        )
        _conclude(source, [], 1, True, lambda: write_text(render([failed], lines=True), None))
        return
    folder = Path(output_dir) if output_dir else None
    names = [_scene_names(outcome, folder) for outcome in outcomes]
    results = [
        views_api.image_record_of(origin, outcome, bits=int(bits), png_names=png_names)
        for outcome, png_names in zip(outcomes, names, strict=True)
    ]

    def write() -> None:
        if folder is not None:
            for outcome in outcomes:
                if outcome.views is not None:
                    _write_scene_folder(views_api, origin, outcome, folder)
        write_text(_image_text(results) if text else render(results, lines=True), None)

    _conclude(source, _scene_failures(results), len(results), record_errors, write)


def _scene_folder(folder: Path, index: int) -> Path:
    return folder / f"scene-{index}"


def _scene_names(outcome: Any, folder: Path | None) -> dict[str, str] | None:
    """PNG paths (relative to `folder`) that `_write_scene_folder` will write."""
    if folder is None or outcome.views is None:
        return None
    prefix = f"scene-{outcome.info.index}"
    return {v.id: f"{prefix}/{v.id}.png" for v in outcome.views.selection.views}


def _write_scene_folder(views_api: Any, origin: Any, outcome: Any, folder: Path) -> None:
    views_api.write_views(origin, outcome, _scene_folder(folder, outcome.info.index))


def _image_text(results: Sequence[dict[str, Any]]) -> str:
    lines = []
    for record in results:
        scene = record.get("scene") or {}
        lines.append(
            f"{record['source']}  scene {scene.get('index')} ({scene.get('name')}): {record['status']}"
        )
        if record["status"] != "ok":
            lines.append(f"  error:      {record['error']}")
            continue
        if record.get("iscc_sum"):
            lines.append(f"  ISCC-SUM:   {record['iscc_sum']}")
        for view in record["views"]:
            lines.append(f"  view {view['id']:<32} {view['iscc_image']}")
        lines.append(f"  ISCC-MIXED: {record['iscc_mixed']}")
        if record.get("iscc_code"):
            lines.append(f"  ISCC-CODE:  {record['iscc_code']}")
        for warning in record.get("warnings") or []:
            lines.append(f"  warning:    {warning}")
    return "\n".join(lines) + "\n"


# --- views (preview) -----------------------------------------------------------------------------


@_group().command()
@click.argument("source")
@click.option(
    "-o",
    "--output-dir",
    type=OutputFolder(),
    default=None,
    help="Write each scene's view PNGs and views.json into DIR/scene-K/.",
)
@view_options(PREVIEW_MAX_VIEWS)
@scenes_option
@source_options
@record_errors_option
def views(
    source: str,
    output_dir: str | None,
    strategies: tuple[str, ...],
    max_views: int,
    scenes: tuple[int, ...],
    source_kind: str,
    reader: str,
    record_errors: bool,
) -> None:
    """Views of every scene of SOURCE (bioiscc.views records, JSON Lines); PNGs with -o DIR.

    At most 8 views a scene by default, as iscc-bio previews them; `-n 5` gives the views (and so
    the ISCC-MIXED) of `imagecode` and the workflow. For `bioiscc mix`, save the records in DIR
    (`> DIR/views.jsonl`): their PNGs are named relative to it.
    """
    folder = Path(output_dir) if output_dir else None
    views_to(
        source, folder, None, _strategies(strategies), max_views, scenes, source_kind, reader, record_errors
    )


def views_into(
    source: str, folder: Path, strategies: tuple[str, ...], max_views: int, source_kind: str, reader: str
) -> None:
    """Every scene's views of SOURCE into `folder` (scene-K/ PNGs) and `folder`/views.jsonl."""
    views_to(source, folder, folder / "views.jsonl", strategies, max_views, (), source_kind, reader, True)


def views_to(
    source: str,
    folder: Path | None,
    records_output: Path | None,
    strategies: tuple[str, ...],
    max_views: int,
    scenes: tuple[int, ...],
    source_kind: str,
    reader: str,
    record_errors: bool,
) -> None:
    """The views records of SOURCE to `records_output` (stdout: None), their PNGs into `folder`."""
    _require_view_libraries()
    from .errors import BioisccError
    from .output import render, write_text
    from .views import api as views_api

    def work(src: Source, infos: list[SceneInfo]) -> tuple[Any, list[Any]]:
        found = [
            views_api.scene_views(src, info, strategies=strategies, max_views=max_views)
            for info in _chosen_scenes(shown(source), infos, scenes)
        ]
        return views_api.Origin.of(src), found

    try:
        origin, outcomes = _with_scenes(source, source_kind, reader, work)
    except BioisccError as exc:
        if not record_errors:
            _fail(str(exc))
        failed = views_api.records.views_record(
            shown(source), format=None, reader=None, info=None, error=getattr(exc, "cause", str(exc))
        )
        _conclude(source, [], 1, True, lambda: write_text(render([failed], lines=True), records_output))
        return
    results = [views_api.views_record_of(origin, o, _scene_names(o, folder)) for o in outcomes]

    def write() -> None:
        if folder is not None:
            for outcome in outcomes:
                if outcome.views is not None:
                    _write_scene_folder(views_api, origin, outcome, folder)
        write_text(render(results, lines=True), records_output)

    _conclude(source, _scene_failures(results), len(results), record_errors, write)


# --- scenes and thumb (previews) -----------------------------------------------------------------


def _thumb_name_of_scene(source: str, index: int) -> str:
    """`a.czi.scene_000.thumb.png`: the source's whole name, so a.czi and a.nd2 never share one."""
    return f"{Path(source.rstrip('/')).name}.scene_{index:03d}.thumb.png"


def _thumb_name(source: str) -> str:
    """`a.czi.thumb.png`."""
    return f"{Path(source.rstrip('/')).name}.thumb.png"


def _refuse_overwrite(targets: Sequence[Path], force: bool) -> None:
    """Refuse, before anything is written, to replace a file that is there (unless --force)."""
    existing = [target for target in targets if target.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        _fail(f"{existing[0]} exists{more}; not overwritten (--force replaces it)")


def force_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--force", is_flag=True, help="Replace thumbnails that are already there.")(func)


@_group().command(name="scenes")
@click.argument("source")
@click.option(
    "-o",
    "--output-dir",
    type=OutputFolder(),
    default=".",
    show_default=True,
    help="Folder for the thumbnails (NAME.scene_KKK.thumb.png, NAME with its suffix).",
)
@force_option
@source_options
def scenes_command(source: str, output_dir: str, force: bool, source_kind: str, reader: str) -> None:
    """One thumbnail per scene of SOURCE (pyramid levels may be used; no codes).

    Writes NAME.scene_KKK.thumb.png (NAME: the source's file name with its suffix) and prints each
    path; refuses to replace a file that is there unless --force.
    """
    _require_view_libraries()
    from .errors import BioisccError

    folder = Path(output_dir)
    try:
        made, failures, total = _with_scenes(source, source_kind, reader, _thumbnails)
    except BioisccError as exc:
        _fail(str(exc))
    targets = [(folder / _thumb_name_of_scene(shown(source), index), image) for index, image in made]
    _refuse_overwrite([target for target, _ in targets], force)

    def write() -> None:
        from .output import write_text
        from .views.png import write_png

        for target, image in targets:
            write_png(image, target)
            write_text(f"{target}\n", None, exact_names=True)

    _conclude(source, failures, total, False, write)


@_group().command()
@click.argument("source")
@click.option(
    "-o",
    "--output-dir",
    type=OutputFolder(),
    default=".",
    show_default=True,
    help="Folder for the thumbnail (NAME.thumb.png, NAME with its suffix).",
)
@force_option
@source_options
def thumb(source: str, output_dir: str, force: bool, source_kind: str, reader: str) -> None:
    """One representative thumbnail of SOURCE: its first readable scene.

    Writes NAME.thumb.png (NAME: the source's file name with its suffix) and prints its path;
    refuses to replace a file that is there unless --force.
    """
    _require_view_libraries()
    from .errors import BioisccError

    try:
        made, failures, _ = _with_scenes(source, source_kind, reader, _first_thumbnail)
    except BioisccError as exc:
        _fail(str(exc))
    if not made:
        index, error = failures[0] if failures else (None, "no scene")
        _fail(f"{source}: scene {index}: {error}")
    target = Path(output_dir) / _thumb_name(shown(source))
    _refuse_overwrite([target], force)

    def write() -> None:
        from .output import write_text
        from .views.png import write_png

        write_png(made[0][1], target)
        write_text(f"{target}\n", None, exact_names=True)

    # scenes the walk found unreadable are named (exit 3), as `hash` names them
    _conclude(source, failures, len(failures) + 1, False, write)


def _first_thumbnail(src: Source, infos: list[SceneInfo]) -> tuple[list[Any], Failures, int]:
    return _thumbnails(src, infos, first_only=True)


def _thumbnails(
    src: Source, infos: list[SceneInfo], first_only: bool = False
) -> tuple[list[Any], Failures, int]:
    from .api import describe_scene_error
    from .views.thumbs import scene_thumbnail

    made: list[Any] = []
    failures: Failures = []
    for info in infos:
        if not info.ok:
            failures.append((info.index, str(info.error)))
            continue
        if first_only and made:
            continue  # the thumbnail is made; the rest are only checked as the walk does
        try:
            made.append((info.index, scene_thumbnail(src, info)))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            failures.append((info.index, describe_scene_error(exc)))
            continue
    return made, failures, len(infos)
