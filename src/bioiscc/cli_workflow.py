"""Commands the Snakemake workflow chains after `walk`: `container` per input, `index` across a run.

    bioiscc walk a.czi -o walk.json
    bioiscc container --manifest walk.json --scenes-output scenes.jsonl -o container.json
    bioiscc index container.json other/container.json --tsv index.tsv

`container` hashes every scene of a walked source and adds the raw-bytes ISCC-SUM in one process
(the JSON `bioiscc biocode` gives; its scene records are those `bioiscc hash --manifest` gives).
`index` tabulates containers, one row per scene. The commands are registered on `bioiscc.cli.main`
by the import at the end of `bioiscc.cli`; heavy imports stay inside the commands, so that
`bioiscc --version` stays instant.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from .cli import _fail, _finish, _load_manifest, _scene_failures, main, output_options, threads_option
from .cli_output import OutputFile

#: columns of results/index.tsv, in order (index.jsonl rows carry the same keys)
INDEX_FIELDS = (
    "input",
    "scene",
    "name",
    "status",
    "iscc_code",
    "data_code",
    "instance_code",
    "datahash",
    "iscc_mixed",
    "image_iscc_code",
    "format",
    "reader",
    "dtype",
    "dims",
    "planes",
    "bytes",
    "file_iscc_code",
    "error",
    "views",
    "views_status",
    "views_error",
    "container",
)


@main.command()
@click.option(
    "--manifest",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The walk manifest of the source.",
)
@click.option(
    "--scenes-output",
    type=OutputFile(),
    help="Also write the scene records here (JSON Lines, as `hash --manifest` writes them).",
)
@click.option("--simprints", is_flag=True, help="Add per-plane simprints to each part.")
@click.option(
    "--no-raw", is_flag=True, help="Skip the raw-bytes ISCC-SUM of the source (top-level codes null)."
)
@click.option("--narrow", is_flag=True, help="ISO-conformant 64-bit ISCC-SUMs instead of wide ones.")
@output_options
@threads_option
def container(
    manifest: str,
    scenes_output: str | None,
    simprints: bool,
    no_raw: bool,
    narrow: bool,
    output: str | None,
    record_errors: bool,
) -> None:
    """The biocode container of a walked source: every scene hashed, and the raw-bytes ISCC-SUM.

    The JSON `biocode SOURCE` gives, for the source a walk manifest describes (refused if the source
    changed since the walk), in one process; --scenes-output also writes the scene records, so that
    `hash --manifest` need not read the pixels a second time.
    """
    container_one(manifest, scenes_output, simprints, no_raw, narrow, output, record_errors)


def container_one(
    manifest: str,
    scenes_output: str | None,
    simprints: bool,
    no_raw: bool,
    narrow: bool,
    output: str | None,
    record_errors: bool,
) -> None:
    """The container (and scene records) of the source a walk manifest describes."""
    from . import api, records
    from .errors import BioisccError, describe
    from .fingerprint import raw_chunks
    from .output import render, write_text
    from .sumcode import raw_sum

    walk_record = _load_manifest(manifest)
    source = str(walk_record["source"])
    try:
        parts = api.hash_manifest(walk_record, simprints=simprints, narrow=narrow)
    except BioisccError as exc:
        if not record_errors:
            _fail(str(exc))
        cause = getattr(exc, "cause", str(exc))
        failed = records.scene_record(
            source, format=None, reader=None, info=None, error=cause, simprints=simprints
        )
        if scenes_output is not None:
            write_text(render([failed], lines=True), scenes_output)
        write_text(render([api.failed_biocode(source, cause)], lines=False), output)
        return

    raw: dict[str, Any] | None = None
    error: str | None = None
    if not no_raw and os.path.exists(source):  # a local file or store (OMERO has no file bytes)
        try:
            raw = raw_sum(raw_chunks(source), wide=not narrow)
        except OSError as exc:
            error = describe(exc)
            if not record_errors:
                _fail(f"{source}: {error}")
    failures = _scene_failures(parts)
    if scenes_output is not None and (record_errors or len(failures) < len(parts)):
        write_text(render(parts, lines=True), scenes_output)
    record = records.biocode_record(source, raw=raw, parts=parts, error=error)
    _finish(source, render([record], lines=False), output, failures, len(parts), record_errors)


@main.command()
@click.argument("containers", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--from",
    "from_file",
    type=click.File("r", encoding="utf-8"),
    help="Also read container paths from this file, one per line ('-': stdin).",
)
@click.option("--tsv", type=OutputFile(), help="Write the index as TSV here.")
@click.option(
    "--jsonl",
    type=OutputFile(),
    help="Write the index as JSON Lines here (default: stdout, when --tsv is not given).",
)
@click.option(
    "--html",
    "html_path",
    type=OutputFile(),
    help="Write the index as an HTML table here (the workflow's report shows it).",
)
@click.option(
    "--relative-to",
    "base",
    type=click.Path(file_okay=False),
    help="Name inputs under this directory by their path relative to it.",
)
@click.option(
    "--images",
    metavar="NAME",
    help="Add each scene's ISCC-MIXED, composite ISCC-CODE and views from the image records "
    "(`bioiscc mix` JSON Lines) in the file NAME beside each container.",
)
@click.option(
    "--batch",
    "batch_file",
    metavar="FILE",
    help="Also index the container.json in the dir of each input of this batch file (see `hash --batch`).",
)
@click.option(
    "--rows-output",
    type=OutputFile(),
    help="Write the rows, with their views' PNG paths, here (JSON Lines), for a later `index --rows-from`.",
)
@click.option(
    "--similar",
    "similar_json",
    type=click.Path(dir_okay=False),
    help="A `bioiscc similar --json` record of these rows: the HTML page lists its groups (scenes that "
    "share pixels, near-identical and look-alike scenes).",
)
@click.option(
    "--rows-from",
    type=click.File("r", encoding="utf-8"),
    help="Index the rows of the `--rows-output` files listed in this file, one path per line ('-': "
    "stdin), instead of reading containers: a cheap merge of indexes made batch by batch.",
)
def index(
    containers: tuple[str, ...],
    from_file: IO[str] | None,
    tsv: str | None,
    jsonl: str | None,
    html_path: str | None,
    base: str | None,
    images: str | None,
    batch_file: str | None,
    rows_output: str | None,
    rows_from: IO[str] | None,
    similar_json: str | None,
) -> None:
    """One row per scene of the given biocode containers, and a summary line on stderr.

    Columns: input, scene, name, status, the scene's codes (iscc_code, data_code, instance_code,
    datahash), with --images its iscc_mixed and image_iscc_code (ISCC-MIXED + Data + Instance),
    format, reader, dtype, dims, planes, bytes, file_iscc_code (the raw-bytes ISCC-SUM), error,
    with --images the number of views, views_status and views_error, and container. An input that
    could not be read at all gives one failed row without a scene. Rows are sorted by input, then
    scene; the HTML table shows each scene's views beside its codes.
    """
    from .output import dumps, write_text

    paths = list(containers)
    if from_file is not None:
        paths.extend(line.rstrip("\r\n") for line in from_file if line.strip())
    if batch_file is not None:
        paths.extend(str(item.folder / "container.json") for item in _batch_items(batch_file))
    rows = _container_rows(paths, base, images)
    inputs = len(paths)
    if rows_from is not None:
        merged, inputs_merged = _merged_rows(line.rstrip("\r\n") for line in rows_from if line.strip())
        rows.extend(merged)
        inputs += inputs_merged
    rows.sort(key=lambda row: (row["input"], -1 if row["scene"] is None else row["scene"]))

    with_views = images is not None or any(row["views_status"] is not None for row in rows)
    summary = summary_line(rows, inputs, with_views=with_views)
    if rows_output is not None:
        write_text("".join(dumps(_stored(row)) + "\n" for row in rows), rows_output)
    if tsv is not None:
        write_text(render_tsv(rows), tsv)
    if html_path is not None:
        groups = _similar_groups(similar_json) if similar_json else None
        write_text(render_html(rows, summary, groups), html_path)
    if jsonl is not None or (tsv is None and html_path is None and rows_output is None):
        write_text("".join(dumps(public(row)) + "\n" for row in rows), jsonl)
    click.echo(summary, err=True)


def _batch_items(batch_file: str) -> list[Any]:
    from .batch import BatchFileError, read_items

    try:
        return read_items(batch_file)
    except BatchFileError as exc:
        _fail(str(exc))


def _container_rows(paths: list[str], base: str | None, images: str | None) -> list[dict[str, Any]]:
    """The rows of the containers at `paths` (and of their image records)."""
    from .output import read_records

    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            (record,) = read_records(path, kind="bioiscc.biocode")
        except (OSError, ValueError) as exc:
            _fail(f"{path}: not a biocode container ({exc})")
        these = list(index_rows(record, path, base))
        if images is not None:
            add_images(these, Path(path).parent / images)
        rows.extend(these)
    return rows


#: the key under which `--rows-output` keeps a row's view PNGs (paths as given to index)
PNGS_KEY = "view_pngs"


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    """A row as `--rows-output` keeps it: public fields and its view PNGs."""
    return {**public(row), PNGS_KEY: [[view_id, str(path)] for view_id, path in row.get("_pngs") or []]}


def _merged_rows(files: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """The rows kept by `--rows-output` in each of `files`, and how many inputs they are of."""
    import json

    rows: list[dict[str, Any]] = []
    containers: set[str] = set()
    for name in files:
        try:
            with open(name, encoding="utf-8") as stream:
                for line in stream:
                    if not line.strip():
                        continue
                    stored = json.loads(line)
                    pngs = stored.pop(PNGS_KEY, None) or []
                    row = _row({}, **{key: stored.get(key) for key in INDEX_FIELDS})
                    row["_pngs"] = [tuple(pair) for pair in pngs]  # paths stay strings: cheap
                    rows.append(row)
                    containers.add(str(row["container"]))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            _fail(f"{name}: not a file of index rows ({type(exc).__name__}: {exc})")
    return rows, len(containers)


def index_rows(record: dict[str, Any], path: str, base: str | None) -> Iterator[dict[str, Any]]:
    """The index rows of one biocode container."""
    source = str(record.get("source", ""))
    common = {
        "input": input_name(source, base),
        "file_iscc_code": record.get("iscc_code"),
        "container": path,
    }
    container_error = record.get("error")
    parts = record.get("parts") or []
    if not parts:
        yield _row(common, scene=None, status="failed", error=container_error or "no scenes")
        return
    for part in parts:
        scene = part.get("scene") or {}
        units = part.get("units") or [None, None]
        dims = {**(part.get("dims") or {}), **(part.get("extra_dims") or {})}
        failed = part.get("status") != "ok" or container_error
        yield _row(
            common,
            scene=scene.get("index"),
            name=scene.get("name"),
            status="failed" if failed else "ok",
            iscc_code=part.get("iscc_code"),
            data_code=units[0],
            instance_code=units[1],
            datahash=part.get("datahash"),
            format=part.get("format"),
            reader=part.get("reader"),
            dtype=part.get("dtype"),
            dims=dims or None,
            planes=part.get("planes"),
            bytes=part.get("bytes"),
            error=part.get("error") or container_error,
        )


def add_images(rows: list[dict[str, Any]], path: Path) -> None:
    """Add the codes and views of the image records in `path` to the rows of their scenes."""
    from .output import read_records

    try:
        records = read_records(str(path), kind="bioiscc.image")
    except FileNotFoundError:
        records, missing = [], "no image record (views not made)"
    except (OSError, ValueError) as exc:
        records, missing = [], f"{path}: not an image record ({exc})"
    else:
        missing = "no image record for this scene"
    by_scene = {(r.get("scene") or {}).get("index"): r for r in records}
    whole = by_scene.get(None)  # the input's views failed as a whole
    for row in rows:
        record = by_scene.get(row["scene"], whole)
        if record is None:
            row.update(views_status="failed", views_error=missing)
            continue
        views = record.get("views") or []
        row.update(
            iscc_mixed=record.get("iscc_mixed"),
            image_iscc_code=record.get("iscc_code"),
            views=len(views),
            views_status=record.get("status"),
            views_error=record.get("error"),
            _pngs=[(v.get("id"), path.parent / v["png"]) for v in views if v.get("png")],
        )


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its private keys (those starting with _, for the HTML table)."""
    return {key: value for key, value in row.items() if not key.startswith("_")}


def _row(common: dict[str, Any], **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(INDEX_FIELDS)
    row.update(common)
    row.update(values)
    return row


def input_name(source: str, base: str | None) -> str:
    """The source's path relative to `base` when it lies inside it, else the source as recorded."""
    if base is None or "://" in source or not source:
        return source
    relative = os.path.relpath(os.path.abspath(source), os.path.abspath(base))
    if relative == os.curdir or relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return source
    return Path(relative).as_posix()


def render_tsv(rows: Iterable[dict[str, Any]]) -> str:
    """Tab-separated, with a header line; dims as `T=1 C=2 ...`; a field with a tab is quoted."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(INDEX_FIELDS)
    for row in rows:
        writer.writerow([_tsv_value(row[field]) for field in INDEX_FIELDS])
    return buffer.getvalue()


def _tsv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{key}={size}" for key, size in value.items())
    return str(value)


#: failed inputs the summary line names at most
NAMED_FAILURES = 3


def summary_line(rows: list[dict[str, Any]], inputs: int, with_views: bool = False) -> str:
    done = sum(row["status"] == "ok" for row in rows)
    line = f"bioiscc index: {inputs} inputs, {len(rows)} scenes: {done} done, {len(rows) - done} failed"
    if with_views:
        views_done = sum(row["views_status"] == "ok" for row in rows)
        line += f"; views: {views_done} done, {len(rows) - views_done} failed"
    failed = sorted({row["input"] for row in rows if _row_state(row) == "failed"})
    if failed:
        more = f" and {len(failed) - NAMED_FAILURES} more" if len(failed) > NAMED_FAILURES else ""
        line += f" (failed: {', '.join(failed[:NAMED_FAILURES])}{more})"
    return line


#: the columns the HTML table shows (the TSV and JSON Lines have all of them); "views" holds the
#: view thumbnails and the error column also shows views_error
HTML_FIELDS = (
    "input",
    "scene",
    "name",
    "status",
    "iscc_code",
    "iscc_mixed",
    "views",
    "format",
    "dtype",
    "dims",
    "file_iscc_code",
    "error",
)
#: columns in a fixed-width font
CODE_FIELDS = frozenset({"iscc_code", "iscc_mixed", "file_iscc_code"})
#: longest side of a view thumbnail in the HTML table, in pixels
THUMB_PIXELS = 64
#: thumbnails embedded in one HTML table at most (each about 3 KB); later scenes show a count
THUMB_BUDGET = 3000


def _similar_groups(path: str) -> list[dict[str, Any]]:
    """The groups of a `bioiscc similar --json` record, each with its pairs."""
    from .output import read_records

    try:
        (record,) = read_records(path)
        groups = {group["group"]: {**group, "pairs": []} for group in record.get("groups") or []}
        for pair in record.get("pairs") or []:
            groups[pair["group"]]["pairs"].append(pair)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(f"{path}: not a bioiscc similar record ({type(exc).__name__}: {exc})")
    return list(groups.values())


#: groups the HTML page lists at most (the TSV of `bioiscc similar` has them all)
GROUP_BUDGET = 500


def _groups_html(groups: list[dict[str, Any]]) -> str:
    """Sections listing the scenes that share pixels, and the near-identical and look-alike ones."""
    from html import escape

    def scene(member: dict[str, Any]) -> str:
        return f"<code>{escape(str(member.get('input')))}</code> #{escape(str(member.get('scene')))}"

    sections = []
    for relation, title, note in (
        ("identical", "Scenes that share pixels", "the same ISCC-SUM: the same pixels in any format"),
        ("near-identical", "Near-identical scenes", "Data-Codes a few bits apart: nearly the same pixels"),
        ("look-alike", "Look-alike scenes", "ISCC-MIXEDs of their views a few bits apart"),
    ):
        chosen = [group for group in groups if group.get("relation") == relation]
        if not chosen:
            continue
        items = []
        for group in chosen[:GROUP_BUDGET]:
            members = ", ".join(scene(m) for m in group.get("members") or [])
            distances = sorted({p.get("data_distance") for p in group["pairs"]} - {None})
            detail = (
                f" (Data-Code distance {', '.join(map(str, distances))})" if relation != "identical" else ""
            )
            items.append(f"<li>group {escape(str(group.get('group')))}: {members}{escape(detail)}</li>")
        more = (
            f"<p>({len(chosen) - GROUP_BUDGET} more in duplicates.tsv)</p>"
            if len(chosen) > GROUP_BUDGET
            else ""
        )
        sections.append(
            f"<h2>{escape(title)} ({len(chosen)})</h2><p>{escape(note)}</p><ul>{''.join(items)}</ul>{more}"
        )
    return "\n".join(sections) or "<p>No two scenes share pixels or look alike.</p>"


def render_html(
    rows: Iterable[dict[str, Any]], summary: str, groups: list[dict[str, Any]] | None = None
) -> str:
    """A self-contained HTML page with one table row per scene, views as embedded thumbnails, and
    (given the groups of `bioiscc similar`) the scenes that share pixels or look alike."""
    from html import escape

    rows = list(rows)
    with_views = any(row["views_status"] is not None for row in rows)
    fields = [f for f in HTML_FIELDS if with_views or f not in ("iscc_mixed", "views")]
    budget = [THUMB_BUDGET]

    def cell(row: dict[str, Any], field: str) -> str:
        if field == "views":
            return _thumbnails(row, budget)
        value = row[field]
        if field == "error" and row["views_error"]:
            value = "; ".join(filter(None, [value, f"views: {row['views_error']}"]))
        css = ' class="code"' if field in CODE_FIELDS else ""
        return f"<td{css}>{escape(_tsv_value(value))}</td>"

    head = "".join(f"<th>{escape(field)}</th>" for field in fields)
    body = "".join(
        f'<tr class="{escape(_row_state(row))}">' + "".join(cell(row, f) for f in fields) + "</tr>\n"
        for row in rows
    )
    style = (
        "body{font-family:sans-serif;font-size:13px;color:#222;background:#fff}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;"
        "vertical-align:top}td.code{font-family:monospace;word-break:break-all;max-width:28em}"
        "td.views img{margin:0 2px 2px 0;image-rendering:pixelated;background:#000}"
        "tr.failed{background:#fde8e8}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>bioiscc index</title>'
        f"<style>{style}</style></head><body>\n<p>{escape(summary)}</p>\n"
        f"{_groups_html(groups) if groups is not None else ''}\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n</body></html>\n"
    )


def _row_state(row: dict[str, Any]) -> str:
    return "failed" if row["status"] != "ok" or row["views_status"] == "failed" else "ok"


def _thumbnails(row: dict[str, Any], budget: list[int]) -> str:
    """The row's views as <img> tags with data URIs, while the table's budget lasts."""
    from html import escape

    pngs = row.get("_pngs") or []
    tags = []
    for view_id, path in pngs:
        if budget[0] <= 0:
            break
        uri = _thumbnail_uri(path)
        if uri is None:
            continue
        budget[0] -= 1
        name = escape(str(view_id))
        tags.append(f'<img src="{uri}" alt="{name}" title="{name}">')
    if len(tags) < len(pngs):
        tags.append(f"<span>({len(pngs) - len(tags)} more not shown)</span>")
    return f'<td class="views">{"".join(tags)}</td>'


def _thumbnail_uri(path: Path | str) -> str | None:
    """A small PNG of the view as a data URI; None when the PNG cannot be read."""
    import base64
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_PIXELS, THUMB_PIXELS), Image.Resampling.BOX)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
