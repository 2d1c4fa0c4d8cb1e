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
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from .cli import _fail, _finish, _load_manifest, _scene_failures, main, output_options

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
    "format",
    "reader",
    "dtype",
    "dims",
    "planes",
    "bytes",
    "file_iscc_code",
    "error",
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
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the scene records here (JSON Lines, as `hash --manifest` writes them).",
)
@click.option("--simprints", is_flag=True, help="Add per-plane simprints to each part.")
@click.option(
    "--no-raw", is_flag=True, help="Skip the raw-bytes ISCC-SUM of the source (top-level codes null)."
)
@click.option("--narrow", is_flag=True, help="ISO-conformant 64-bit ISCC-SUMs instead of wide ones.")
@output_options
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
@click.option("--tsv", type=click.Path(dir_okay=False, writable=True), help="Write the index as TSV here.")
@click.option(
    "--jsonl",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the index as JSON Lines here (default: stdout, when --tsv is not given).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the index as an HTML table here (the workflow's report shows it).",
)
@click.option(
    "--relative-to",
    "base",
    type=click.Path(file_okay=False),
    help="Name inputs under this directory by their path relative to it.",
)
@click.option(
    "--retry-marker",
    metavar="NAME",
    help="For each container with a failed scene, write a new token into the file NAME beside it "
    "(the workflow passes the token to the input's walk, so that its next run retries that input).",
)
def index(
    containers: tuple[str, ...],
    from_file: IO[str] | None,
    tsv: str | None,
    jsonl: str | None,
    html_path: str | None,
    base: str | None,
    retry_marker: str | None,
) -> None:
    """One row per scene of the given biocode containers, and a summary line on stderr.

    Columns: input, scene, name, status, the scene's codes (iscc_code, data_code, instance_code,
    datahash), format, reader, dtype, dims, planes, bytes, file_iscc_code (the raw-bytes ISCC-SUM),
    error, container. An input that could not be read at all gives one failed row without a scene.
    Rows are sorted by input, then scene.
    """
    from .output import dumps, read_records, write_text

    paths = list(containers)
    if from_file is not None:
        paths.extend(line.rstrip("\r\n") for line in from_file if line.strip())
    rows: list[dict[str, Any]] = []
    failed_inputs: list[str] = []
    for path in paths:
        try:
            (record,) = read_records(path)
        except (OSError, ValueError) as exc:
            _fail(f"{path}: not a biocode container ({exc})")
        these = list(index_rows(record, path, base))
        rows.extend(these)
        if any(row["status"] != "ok" for row in these):
            failed_inputs.append(path)
    rows.sort(key=lambda row: (row["input"], -1 if row["scene"] is None else row["scene"]))

    summary = summary_line(rows, len(paths))
    if tsv is not None:
        write_text(render_tsv(rows), tsv)
    if html_path is not None:
        write_text(render_html(rows, summary), html_path)
    if jsonl is not None or (tsv is None and html_path is None):
        write_text("".join(dumps(row) + "\n" for row in rows), jsonl)
    if retry_marker:
        token = f"{time.time_ns()}\n"
        for path in failed_inputs:
            write_text(token, Path(path).parent / retry_marker)
        if failed_inputs:
            summary += f" ({len(failed_inputs)} input(s) with failures will be retried on the next run)"
    click.echo(summary, err=True)


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


def summary_line(rows: list[dict[str, Any]], inputs: int) -> str:
    done = sum(row["status"] == "ok" for row in rows)
    return f"bioiscc index: {inputs} inputs, {len(rows)} scenes: {done} done, {len(rows) - done} failed"


#: the columns the HTML table shows (the TSV and JSON Lines have all of them)
HTML_FIELDS = (
    "input",
    "scene",
    "name",
    "status",
    "iscc_code",
    "format",
    "dtype",
    "dims",
    "file_iscc_code",
    "error",
)


def render_html(rows: Iterable[dict[str, Any]], summary: str) -> str:
    """A self-contained HTML page with one table row per scene."""
    from html import escape

    head = "".join(f"<th>{escape(field)}</th>" for field in HTML_FIELDS)
    body = "".join(
        f'<tr class="{escape(row["status"])}">'
        + "".join(f"<td>{escape(_tsv_value(row[field]))}</td>" for field in HTML_FIELDS)
        + "</tr>\n"
        for row in rows
    )
    style = (
        "body{font-family:sans-serif;font-size:13px;color:#222;background:#fff}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "td:nth-child(5),td:nth-child(9){font-family:monospace}tr.failed{background:#fde8e8}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>bioiscc index</title>'
        f"<style>{style}</style></head><body>\n<p>{escape(summary)}</p>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n</body></html>\n"
    )


@main.command(name="failed-record", hidden=True)
@click.argument("kind", type=click.Choice(["walk", "hash"]))
@click.argument("source")
@click.option("--exit-status", type=int, required=True, help="The exit status of the command that failed.")
@click.option(
    "--scenes-output", type=click.Path(dir_okay=False, writable=True), help="(hash) The scene record."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
def failed_record(kind: str, source: str, exit_status: int, scenes_output: str | None, output: str) -> None:
    """Write the failed records of SOURCE that KIND would have written with --record-errors.

    The workflow's fallback for a command that crashed instead of recording its error (a reader
    killed by a signal, say): `walk` writes the walk manifest; `hash` the container and, with
    --scenes-output, the scene record.
    """
    from . import api, records
    from .output import render, write_text

    error = f"bioiscc exited with status {exit_status}{_signal_note(exit_status)}; see the {kind} log"
    if kind == "walk":
        write_text(render([api.failed_walk(source, error)], lines=False), output)
        return
    if scenes_output is not None:
        failed = records.scene_record(source, format=None, reader=None, info=None, error=error)
        write_text(render([failed], lines=True), scenes_output)
    write_text(render([api.failed_biocode(source, error)], lines=False), output)


def _signal_note(status: int) -> str:
    number = status - 128 if status > 128 else -status if status < 0 else 0
    try:
        return f" (killed by {signal.Signals(number).name})" if number else ""
    except ValueError:
        return ""
