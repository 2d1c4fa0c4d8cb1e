"""The option type of every file a command writes (-o, --tsv, --json, --batch-log, ...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .output import OutputError


class OutputFile(click.Path):
    """A file to write: its folder must exist and be writable. Checked before any work is done, so
    that a typo costs one line and exit 1 (`bioiscc.cli.Main`), not an hour of hashing."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        value = super().convert(value, param, ctx)
        if os.fsdecode(value) == "-":
            return value
        path = Path(os.fsdecode(value))
        folder = path.parent
        if not folder.is_dir():
            raise OutputError(f"{path}: cannot write: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: cannot write: the folder {folder} is not writable")
        return value
