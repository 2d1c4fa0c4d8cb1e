"""The comparison commands: `diff` (two scenes, plane by plane) and `similar` (across indexes).

    bioiscc diff a.ome.tiff b.ome.zarr          # one verdict line per scene pair
    bioiscc similar results/index.jsonl --tsv similar.tsv --json similar.json

`diff` exits as `cmp` does: 0 identical, 1 different (also: the same pixels in another geometry),
2 trouble (an input that cannot be read, a bad record, a usage error), with one line on stderr.
`similar` exits 0, or 1 when an index cannot be read. Registered on `bioiscc.cli.main` by the import
at the end of `bioiscc.cli`; the logic is in `bioiscc.compare` and `bioiscc.similar`.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, NoReturn

import click

#: The commands this module registers on `bioiscc.cli.main`. Defined before `bioiscc.cli` is imported:
#: `bioiscc.cli` imports this name at its end, whichever of the two modules is imported first.
COMMANDS = ("diff", "similar")

from . import cli  # noqa: E402
from .cli import EXIT_FAILED, output_option, source_options, threads_option  # noqa: E402
from .cli_output import OutputFile  # noqa: E402

if TYPE_CHECKING:
    from .compare import SceneFacts

#: `diff` exit codes, as cmp(1)
DIFF_SAME, DIFF_DIFFERENT, DIFF_TROUBLE = 0, 1, 2


def _group() -> click.Group:
    """The `bioiscc` command group these commands join."""
    group: click.Group = cli.main
    return group


def _trouble(message: str) -> NoReturn:
    click.echo(f"bioiscc: error: {message}", err=True)
    sys.exit(DIFF_TROUBLE)


@_group().command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option(
    "--scene",
    "scene_a",
    type=click.IntRange(min=0),
    help="Compare scene K of A (default: every scene, paired by index).",
)
@click.option(
    "--scene-b", type=click.IntRange(min=0), help="With scene K of B (default: the same K as --scene)."
)
@click.option(
    "--no-views", is_flag=True, help="Skip the views of sources: no ISCC-MIXED, no look-alike verdict."
)
@click.option("--json", "as_json", is_flag=True, help="Write the bioiscc.diff record, not verdict lines.")
@output_option
@source_options
@threads_option
def diff(
    first: str,
    second: str,
    scene_a: int | None,
    scene_b: int | None,
    no_views: bool,
    as_json: bool,
    output: str | None,
    source_kind: str,
    reader: str,
) -> None:
    """Do A and B hold the same pixels? One verdict line per scene pair.

    A and B are sources (files, OME-Zarr stores), or files of records: bioiscc.scene records from
    `bioiscc hash --simprints`, or biocode containers (with their image.jsonl beside them, if any,
    for the ISCC-MIXED). Verdicts: identical pixels; the same pixels in another geometry (planes
    reordered, other dims); or different pixels, with the planes that differ by position (z, c, t,
    extra dimensions), how many, the Data-Code distance and whether they look alike (ISCC-MIXED).
    Exit code: 0 identical, 1 different, 2 trouble.
    """
    from .compare import compare_scenes, diff_record, overall, pair_scenes, verdict_line
    from .errors import BioisccError
    from .locations import redact
    from .output import render, write_text

    if scene_b is not None and scene_a is None:
        raise click.UsageError("--scene-b needs --scene (the scene of A)")
    wanted_b = scene_b if scene_b is not None else scene_a
    try:
        facts_a = _facts(first, scene_a, no_views, source_kind, reader)
        facts_b = _facts(second, wanted_b, no_views, source_kind, reader)
    except BioisccError as exc:
        _trouble(str(exc))
    pairs = pair_scenes(facts_a, facts_b)
    diffs = [compare_scenes(a, b) for a, b in pairs]
    several = len(pairs) > 1 or scene_a is not None or any(f.index for f in [*facts_a, *facts_b])
    label_a, label_b = redact(first), redact(second)
    lines = [verdict_line(d, label_a, label_b, several) for d in diffs]
    if as_json:
        text = render([diff_record(first, second, diffs, lines)], lines=False)
    else:
        text = "".join(line + "\n" for line in lines)
    try:
        write_text(text, output)
    except OSError as exc:
        _trouble(f"{output}: {exc.strerror or exc}")
    sys.exit(DIFF_SAME if overall(diffs) == "identical" else DIFF_DIFFERENT)


def _facts(
    location: str, scene: int | None, no_views: bool, source_kind: str, reader: str
) -> list[SceneFacts]:
    """The scenes of one side: from records, or read from the source."""
    from .compare import facts_from_records, facts_from_source, is_record_file
    from .errors import InputError

    if not is_record_file(location):
        wanted = None if scene is None else [scene]
        return facts_from_source(location, wanted, views=not no_views, source=source_kind, reader=reader)
    found = facts_from_records(location)
    if scene is None:
        return found
    chosen = [f for f in found if f.index == scene]
    if not chosen:
        raise InputError(location, f"no record of scene {scene} in it")
    return chosen[:1]


@_group().command()
@click.argument("indexes", nargs=-1, required=True, metavar="INDEX...")
@click.option("--tsv", type=OutputFile(), help="Write the pairs as TSV here.")
@click.option(
    "--json",
    "json_path",
    type=OutputFile(),
    help="Write the bioiscc.similar record (groups and pairs) here ('-': stdout).",
)
@click.option(
    "--data-threshold",
    type=click.IntRange(0, 128),
    default=16,
    show_default=True,
    help="Near-identical pixels: Data-Codes at most this many of 256 bits apart.",
)
@click.option(
    "--mixed-threshold",
    type=click.IntRange(0, 128),
    default=32,
    show_default=True,
    help="Look-alikes: ISCC-MIXEDs at most this many of 256 bits apart.",
)
@click.option("--no-look-alikes", is_flag=True, help="Skip the ISCC-MIXED search.")
@click.option(
    "--search",
    type=click.Choice(("auto", "brute", "tables")),
    default="auto",
    show_default=True,
    help="brute: compare every pair (exact); tables: hash tables on bits of the codes; auto: brute "
    "force while cheap.",
)
def similar(
    indexes: tuple[str, ...],
    tsv: str | None,
    json_path: str | None,
    data_threshold: int,
    mixed_threshold: int,
    no_look_alikes: bool,
    search: str,
) -> None:
    """Identical, near-identical and look-alike scenes across the rows of index files.

    INDEX is results/index.jsonl or index.tsv as `bioiscc index` writes them ('-': stdin). Scenes
    with the same ISCC-SUM are identical; Data-Codes within --data-threshold bits are near-identical
    pixels; ISCC-MIXEDs within --mixed-threshold bits (where views were made) look alike. Output:
    one TSV line per pair (group, relation, the two scenes, Data-Code and ISCC-MIXED distances; an
    identical group lists each member with its first), by default on stdout; --json also the groups.
    """
    from . import similar as found
    from .output import dumps, write_text

    started = time.perf_counter()
    try:
        scenes = found.load_scenes(indexes)
    except found.IndexError_ as exc:
        click.echo(f"bioiscc: error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    result = found.find_similar(
        scenes,
        data_threshold=data_threshold,
        mixed_threshold=None if no_look_alikes else mixed_threshold,
        method=search,
    )
    if tsv is not None or json_path is None:
        write_text(found.render_tsv(result), tsv)
    if json_path is not None:
        write_text(dumps(found.similar_record(result, list(indexes)), indent=1) + "\n", json_path)
    click.echo(f"{found.summary_line(result)} in {time.perf_counter() - started:.1f} s", err=True)
