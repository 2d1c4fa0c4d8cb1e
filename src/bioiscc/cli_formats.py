"""`bioiscc formats`: what this installation reads, as a table or as JSON.

    bioiscc formats           # native readers, then the installed bioio reader plugins
    bioiscc formats --json    # {"native": [...], "plugins": [...]}

Registered on `bioiscc.cli.main` by the import at the end of `bioiscc.cli`; the lists come from
`bioiscc.sources.catalog`.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import Any

import click

#: The commands this module registers on `bioiscc.cli.main` (imported by `bioiscc.cli` at its end).
COMMANDS = ("formats",)

from . import cli  # noqa: E402
from .errors import install_hint  # noqa: E402
from .output import write_text  # noqa: E402

#: suffixes shown per plugin (--json lists all)
SHOWN_SUFFIXES = 12
#: columns of the text listing
WIDTH = 79


def _group() -> click.Group:
    group: click.Group = cli.main
    return group


@_group().command()
@click.option("--json", "as_json", is_flag=True, help="Write JSON: {native: [...], plugins: [...]}.")
def formats(as_json: bool) -> None:
    """List the formats this installation reads: native readers and installed bioio plugins.

    A file no native reader claims is read by the first installed bioio plugin (marked "fallback")
    that claims its suffix and accepts the file.
    """
    from .sources.catalog import native_formats, plugin_formats

    native, plugins = native_formats(), plugin_formats()
    write_text(_listing(native, plugins, as_json), None)  # a full disk or closed stdout: one line


def _listing(native: list[dict[str, Any]], plugins: list[dict[str, Any]], as_json: bool) -> str:
    """The JSON document, or blocks of text that fit 80 columns (a reader's name, then its details)."""
    if as_json:
        return json.dumps({"native": native, "plugins": plugins}, indent=1) + "\n"
    lines = ["Native readers"]
    for row in native:
        lines.append(f"  {row['format']}")
        lines.extend(_detail("library", _library(row)))
        lines.extend(_detail("recognised by", _recognised(row)))
    lines += ["", "bioio reader plugins (the fallback: for files no native reader claims)"]
    if not plugins:
        lines.append("  none installed (for example: pip install bioio-imageio)")
    for row in plugins:
        lines.append(f"  {row['name']} {row['version']}: {_use(row)}")
        lines.extend(_detail("suffixes", _shorten(row["suffixes"])))
    return "\n".join(lines) + "\n"


def _detail(label: str, text: str) -> list[str]:
    """`label: text`, indented under its reader and wrapped at WIDTH columns."""
    return textwrap.wrap(
        f"{label}: {text}",
        WIDTH,
        initial_indent="      ",
        subsequent_indent="        ",
        break_on_hyphens=False,
    )


def _recognised(row: dict[str, Any]) -> str:
    how = str(row["recognised_by"])
    if row["suffixes"] and how != "suffix":
        return f"{how} ({_shorten(row['suffixes'], 6)})"
    return " ".join(row["suffixes"]) if how == "suffix" else how


def _library(row: dict[str, Any]) -> str:
    if row["version"] is None:
        return f"{row['library']} (not installed: {install_hint(row['extra'])})"
    return f"{row['library']} {row['version']}"


def _use(row: dict[str, Any]) -> str:
    return f"{row['use']}: {row['error']}" if row["error"] else row["use"]


def _shorten(suffixes: Sequence[str], count: int = SHOWN_SUFFIXES) -> str:
    shown = " ".join(suffixes[:count])
    more = len(suffixes) - count
    return f"{shown} … (+{more}, see --json)" if more > 0 else shown
