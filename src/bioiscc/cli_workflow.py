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
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import click

from .cli import (
    EXIT_FAILED,
    _fail,
    _finish,
    _load_manifest,
    _scene_failures,
    main,
    output_options,
    threads_option,
)
from .cli_output import InputFile, InputLines, OutputFile
from .output import note_input

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
    "views_flat",
    "views_error",
    "container",
)


@main.command()
@click.option(
    "--manifest",
    required=True,
    type=InputFile(),
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
@click.argument("containers", nargs=-1)
@click.option(
    "--from",
    "from_file",
    type=InputLines(),
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
    help="Write the index as an HTML page here (the workflow's report shows it): counts, groups, "
    "legend, and a sortable, filterable table with the views as thumbnails.",
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
    type=InputFile(),
    help="A `bioiscc similar --json` record of these rows: the HTML page lists its groups (scenes that "
    "share pixels, near-identical and look-alike scenes).",
)
@click.option(
    "--rows-from",
    type=InputLines(),
    help="Index the rows of the `--rows-output` files listed in this file, one path per line ('-': "
    "stdin), instead of reading containers: a cheap merge of indexes made batch by batch.",
)
@click.option(
    "--skipped",
    "skipped_tsv",
    type=InputFile(),
    help="The workflow's list of files that are not inputs (TSV: path, reason): counted in the summary.",
)
@click.option(
    "--stale",
    "stale_list",
    type=InputFile(),
    help="The workflow's list of stale result folders (one a line): counted in the summary.",
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
    skipped_tsv: str | None,
    stale_list: str | None,
) -> None:
    """One row per scene of the given biocode containers, and a summary line on stderr.

    Columns: input, scene, name, status, the scene's codes (iscc_code, data_code, instance_code,
    datahash), with --images its iscc_mixed and image_iscc_code (ISCC-MIXED + Data + Instance),
    format, reader, dtype, dims, planes, bytes, file_iscc_code (the raw-bytes ISCC-SUM), error,
    with --images the number of views, views_status, views_flat (every view flat: no picture) and
    views_error, and container. An input that could not be read at all gives one failed row without
    a scene. Rows are sorted by input, then scene; the HTML page (bioiscc.report_page) lists
    failures and warnings first and shows each scene's views beside its codes.
    """
    from .output import dumps, write_text

    if not containers and from_file is None and batch_file is None and rows_from is None:
        raise click.UsageError("give CONTAINERS (or --from FILE, --batch FILE or --rows-from FILE)")
    paths = list(containers)
    if from_file is not None:
        paths.extend(line.rstrip("\r\n") for line in from_file if line.strip())
    if batch_file is not None:
        paths.extend(str(item.folder / "container.json") for item in _batch_items(batch_file))
    unreadable: list[str] = []
    rows = _container_rows(paths, base, images, unreadable)
    if unreadable and len(unreadable) == len(paths) and rows_from is None:
        _fail(unreadable[0])  # nothing could be read: one line, nothing written
    inputs = len(paths)
    if rows_from is not None:
        merged, inputs_merged = _merged_rows(line.rstrip("\r\n") for line in rows_from if line.strip())
        rows.extend(merged)
        inputs += inputs_merged
    rows.sort(key=lambda row: (row["input"], -1 if row["scene"] is None else row["scene"]))

    with_views = images is not None or any(row["views_status"] is not None for row in rows)
    skipped = _skipped_entries(skipped_tsv) if skipped_tsv is not None else []
    stale = _stale_entries(stale_list) if stale_list is not None else []
    notes = _list_notes(skipped_tsv, len(skipped), stale_list, len(stale))
    summary = summary_line(rows, inputs, with_views=with_views, notes=notes)
    if rows_output is not None:
        write_text("".join(dumps(_stored(row)) + "\n" for row in rows), rows_output)
    if tsv is not None:
        write_text(render_tsv(rows), tsv)
    if html_path is not None:
        from .report_page import render_page

        groups = _similar_groups(similar_json) if similar_json else None
        write_text(render_page(rows, summary, groups, skipped=skipped, stale=stale), html_path)
    if jsonl is not None or (tsv is None and html_path is None and rows_output is None):
        write_text("".join(dumps(public(row)) + "\n" for row in rows), jsonl)
    for line in unreadable:
        click.echo(f"bioiscc: error: {line}", err=True)
    click.echo(summary, err=True)
    if unreadable:  # the others are indexed; exit 1 says some container could not be read
        sys.exit(EXIT_FAILED)


def _batch_items(batch_file: str) -> list[Any]:
    from .batch import BatchFileError, read_items

    try:
        return read_items(batch_file)
    except BatchFileError as exc:
        _fail(str(exc))


def _container_rows(
    paths: list[str], base: str | None, images: str | None, unreadable: list[str]
) -> list[dict[str, Any]]:
    """The rows of the containers at `paths` (and of their image records). A container that cannot
    be read gets one failed row, its one-line error is added to `unreadable`, and the others go on."""
    from .output import read_record

    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            record = read_record(path, kind="bioiscc.biocode")
        except (OSError, ValueError) as exc:
            cause = _unreadable_container(exc)
            unreadable.append(f"{path}: {cause}")
            rows.append(_row({"input": path, "container": path}, scene=None, status="failed", error=cause))
            continue
        these = list(index_rows(record, path, base))
        if images is not None:
            add_images(these, Path(path).parent / images)
        rows.extend(these)
    return rows


def _unreadable_container(exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError):
        return f"cannot read it: {exc.strerror or exc}"
    return f"not a biocode container ({exc})"


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
        note_input(name)  # no output may replace it
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
            views_flat=record.get("flat"),
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
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return " ".join(f"{key}={size}" for key, size in value.items())
    return str(value)


#: failed inputs the summary line names at most
NAMED_FAILURES = 3


def _skipped_entries(path: str) -> list[dict[str, str]]:
    """The workflow's files that are not inputs (TSV: path, reason)."""
    import csv

    try:
        with open(path, encoding="utf-8", newline="") as stream:
            return [dict(row) for row in csv.DictReader(stream, delimiter="\t")]
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{path}: cannot read it ({exc})")


def _stale_entries(path: str) -> list[dict[str, str]]:
    """The workflow's stale result folders (one a line)."""
    try:
        with open(path, encoding="utf-8") as stream:
            folders = [line.strip() for line in stream if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{path}: cannot read it ({exc})")
    reason = "its input no longer exists or its batch is gone"
    return [{"path": folder, "reason": reason} for folder in folders]


def _list_notes(skipped_tsv: str | None, skipped: int, stale_list: str | None, stale: int) -> list[str]:
    """The summary's notes on the workflow's lists of skipped files and stale result folders."""
    from .output import plural

    notes = []
    if skipped_tsv is not None and skipped:
        notes.append(f"{skipped} skipped ({skipped_tsv})")
    if stale_list is not None and stale:
        folders = plural(stale, "stale result folder")
        notes.append(f"{folders} ({stale_list}; snakemake clean_stale removes them)")
    return notes


def summary_line(
    rows: list[dict[str, Any]], inputs: int, with_views: bool = False, notes: Sequence[str] = ()
) -> str:
    from .output import plural

    scenes = [row for row in rows if row["scene"] is not None]  # the others: inputs not read at all
    done = sum(row["status"] == "ok" for row in scenes)
    line = (
        f"bioiscc index: {plural(inputs, 'input')}, {plural(len(scenes), 'scene')}: "
        f"{done} done, {len(scenes) - done} failed"
    )
    if len(scenes) < len(rows):
        line += f"; {plural(len(rows) - len(scenes), 'input')} failed as a whole"
    if with_views:
        views_done = sum(row["views_status"] == "ok" for row in scenes)
        line += f"; views: {views_done} done, {len(scenes) - views_done} failed"
    failed = sorted({row["input"] for row in rows if _row_state(row) == "failed"})
    if failed:
        more = f" and {len(failed) - NAMED_FAILURES} more" if len(failed) > NAMED_FAILURES else ""
        line += f"; failed: {', '.join(failed[:NAMED_FAILURES])}{more}"
    return "; ".join([line, *notes])


def _similar_groups(path: str) -> list[dict[str, Any]]:
    """The groups of a `bioiscc similar --json` record, each with its pairs."""
    from .output import read_record

    try:
        record = read_record(path)
        groups = {group["group"]: {**group, "pairs": []} for group in record.get("groups") or []}
        for pair in record.get("pairs") or []:
            groups[pair["group"]]["pairs"].append(pair)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(f"{path}: not a bioiscc similar record ({type(exc).__name__}: {exc})")
    return list(groups.values())


def _row_state(row: dict[str, Any]) -> str:
    return "failed" if row["status"] != "ok" or row["views_status"] == "failed" else "ok"
