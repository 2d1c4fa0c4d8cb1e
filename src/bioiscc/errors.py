"""Errors that carry a one-line, user-facing cause.

Every error a user can cause (a missing, empty, corrupt or unsupported input, a reader plugin that is
not installed) is raised as an `InputError` naming the input and the cause, so the CLI can print one
line and exit 1 without a traceback.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType


class BioisccError(Exception):
    """Base class of the errors bioiscc raises on purpose."""


class InputError(BioisccError):
    """The input as a whole cannot be read: the command fails (exit 1) or writes a failed record."""

    def __init__(self, source: str, cause: str) -> None:
        self.source = source
        self.cause = one_line(cause)
        super().__init__(f"{source}: {self.cause}")


def install_hint(extra: str, package: str = "") -> str:
    """How to add an extra to an installation of bioiscc (not on PyPI yet: from a clone); without an
    extra (a reader no extra installs), how to install the package itself."""
    if not extra:
        return f"pip install {package}"
    if extra == "omero":  # omero-py needs a zeroc-ice wheel PyPI does not have for Python 3.11
        return "install bioiscc's 'omero' extra as docs/omero.md says (a prebuilt zeroc-ice wheel first)"
    return f"install bioiscc's '{extra}' extra (in a clone of bioiscc: pip install '.[{extra}]')"


class MissingPluginError(InputError):
    """The reader a format needs is not installed; the message names the extra to install."""

    def __init__(self, source: str, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(source, f"reading this format needs {package}; {install_hint(extra, package)}")


def import_reader(source: str, module: str, extra: str) -> ModuleType:
    """Import the library that reads a format, or say which extra installs it (MissingPluginError)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPluginError(source, module, extra) from exc


class SceneSelectionError(BioisccError):
    """A requested scene index does not exist in the source (the command line's usage error, exit 2)."""


class SceneError(BioisccError):
    """One scene cannot be read; the others can. Reported as a failed scene record."""


def one_line(text: str, limit: int = 300) -> str:
    """Fold a message (often a library's multi-line exception) into one bounded line."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


#: libCZI's words for a read past the end of the file
LIBCZI_SHORT_READ = re.compile(
    r"Not enough data read at offset (\d+) -> requested: (\d+) bytes, actually got (\d+) bytes"
)

#: causes bioiscc words itself
WORDED = ("truncated: ", "corrupt: ", "too large: ")
#: decoders' words for compressed data that inflates beyond the buffer the header's sizes make
INFLATES_TOO_FAR = ("INSUFFICIENT_SPACE", "Destination buffer is too small", "buffer too small")


#: the address in a Python object's default repr
OBJECT_ADDRESS = re.compile(r" object at 0x[0-9a-fA-F]+>")


def describe(exc: BaseException) -> str:
    """A one-line cause for an exception raised by a reader library."""
    text = OBJECT_ADDRESS.sub(">", one_line(str(exc)))  # "<... object at 0x7f...>" tells a user nothing
    short_read = LIBCZI_SHORT_READ.search(text)
    if short_read:
        offset, wanted, got = (int(n) for n in short_read.groups())
        return (
            f"truncated: the file ends at byte {offset + got}, inside data that reaches byte "
            f"{offset + wanted} (libCZI read {got} of {wanted} bytes at byte {offset})"
        )
    name = type(exc).__name__
    if text.startswith(WORDED):  # bioiscc's own words, raised from inside a reader library's call
        return text
    if any(words in text for words in INFLATES_TOO_FAR):
        return f"corrupt: compressed data inflates beyond the size its header declares ({name}: {text})"
    return f"{name}: {text}" if text else name
