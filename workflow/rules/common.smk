"""Helpers of the bioiscc workflow: the inputs, their result paths, the options of the rules.

The inputs are found when the workflow starts (one directory walk, one stat per file, and one per
file of each OME-Zarr store for its fingerprint). Each input has a *key*: its path relative to
input_dir, each path segment percent-encoded so that no input can write outside results/ and no
two inputs share a result directory. Everything an input produces lives under results/<key>/ and
logs/<key>/.
"""

import os
import string
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from hashlib import sha256
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

try:
    from bioiscc.fingerprint import fingerprint
    from bioiscc.sources.omezarr import is_zarr_store
except ImportError as exc:
    raise WorkflowError(
        "the bioiscc workflow needs bioiscc installed beside Snakemake: pip install 'bioiscc[all]'"
    ) from exc


#: characters a key keeps as they are (besides non-ASCII letters and digits); others are %XX
SAFE_CHARACTERS = frozenset(f"{string.ascii_letters}{string.digits}._-+,=@~")
#: names at the top of results/ and logs/ that belong to the run, not to an input
RESERVED_NAMES = frozenset(
    {
        "index.tsv",
        "index.jsonl",
        "index.html",
        "index.log",
        "index.benchmark.tsv",
        "_extra",
    }
)
#: the file beside an input's container where the index records a failure (see retry_token)
RETRY_MARKER = "retry"
#: longest key segment in bytes (file systems allow 255); longer names end in %h<digest>
MAX_SEGMENT_BYTES = 200


@dataclass(frozen=True)
class Input:
    """One input: a file or an OME-Zarr store."""

    key: str  # results/<key>/, logs/<key>/
    path: str  # input_dir/relative path, or the extra input as configured


def _percent(character):
    return "".join(
        f"%{byte:02X}" for byte in character.encode("utf-8", "surrogateescape")
    )


def encode_segment(name):
    """One path segment as it appears in a key: reversible, shell- and Snakemake-safe."""
    if name in (".", ".."):
        return name.replace(".", "%2E")
    encoded = "".join(
        c if c in SAFE_CHARACTERS or (c.isalnum() and not c.isascii()) else _percent(c)
        for c in name
    )
    if len(encoded.encode("utf-8", "surrogateescape")) <= MAX_SEGMENT_BYTES:
        return encoded
    # "%h" never occurs in an encoded name (after % come two upper-case hex digits)
    digest = sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    head = ""
    for c in encoded:
        if (
            len(f"{head}{c}".encode("utf-8", "surrogateescape"))
            > MAX_SEGMENT_BYTES - 40
        ):
            break
        head = f"{head}{c}"
    return f"{head}%h{digest}"


def input_key(parts):
    """The key of an input from the segments of its path."""
    segments = [encode_segment(part) for part in parts]
    if segments[0].lower() in RESERVED_NAMES:
        segments[0] = f"{_percent(segments[0][0])}{segments[0][1:]}"
    return "/".join(segments)


def _matches(patterns, relative, name):
    """Whether a pattern matches: one without / the name, one with / the relative path."""
    relative, name = relative.lower(), name.lower()
    return any(fnmatchcase(relative if "/" in p else name, p) for p in patterns)


def find_inputs(settings):
    """The inputs of the run, by key: those found in input_dir, then the extra `inputs`."""
    wanted = [p.lower() for p in settings["include"]]
    unwanted = [p.lower() for p in settings["exclude"]]
    root = os.path.normpath(settings["input_dir"])
    if not os.path.isdir(root):
        raise WorkflowError(f"bioiscc: input_dir {root!r} is not a directory")
    if is_zarr_store(Path(root)):
        raise WorkflowError(
            f"bioiscc: input_dir {root!r} is an OME-Zarr store; "
            "point input_dir at the directory that holds it, or list it under inputs"
        )
    found = {}

    def add(key, path):
        if not os.path.exists(path):
            logger.warning(f"bioiscc: skipping {path}: a broken link")
        elif found.setdefault(key, Input(key, path)).path != path:
            raise WorkflowError(
                f"bioiscc: {path} and {found[key].path} share the key {key}"
            )

    for directory, dirnames, filenames in os.walk(root):
        below = os.path.relpath(directory, root)
        prefix = "" if below == os.curdir else f"{below.replace(os.sep, '/')}/"
        searched = []
        for name in sorted(dirnames):
            relative, full = f"{prefix}{name}", os.path.join(directory, name)
            if _matches(unwanted, relative, name):
                continue
            if is_zarr_store(Path(full)):  # a store is one input, never searched
                if _matches(wanted, relative, name):
                    add(input_key(relative.split("/")), full)
            elif not os.path.islink(full):
                searched.append(name)
        dirnames[:] = searched
        for name in sorted(filenames):
            relative = f"{prefix}{name}"
            if _matches(wanted, relative, name) and not _matches(
                unwanted, relative, name
            ):
                add(input_key(relative.split("/")), os.path.join(directory, name))

    root_abs = os.path.abspath(root)
    for item in settings["inputs"]:
        path = os.path.abspath(item)
        if not os.path.exists(path):
            raise WorkflowError(f"bioiscc: inputs: {item!r} does not exist")
        relative = os.path.relpath(path, root_abs)
        if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
            add(input_key(Path(relative).parts), os.path.join(root, relative))
        else:
            add(f"_extra/{input_key(Path(path).parts[1:])}", item)

    for key in found:  # an input inside another would write into its result directory
        parts = key.split("/")
        for end in range(1, len(parts)):
            outer = found.get("/".join(parts[:end]))
            if outer is not None:
                raise WorkflowError(
                    f"bioiscc: input {found[key].path} lies inside input {outer.path}"
                )
    return dict(sorted(found.items()))


INPUTS = find_inputs(config)
#: results/ as the rules see it (with the prefix of a module that includes this workflow)
RESULTS = str(workflow.modifier.modify_path("results"))


# ---- input functions and parameters of the rules ----


def _input(wildcards):
    try:
        return INPUTS[wildcards.key]
    except KeyError:
        raise WorkflowError(
            f"bioiscc: no input has the key {wildcards.key!r}"
        ) from None


def input_path(wildcards):
    """The input as Snakemake tracks it: unprefixed when this workflow is a module with a prefix."""
    return local(_input(wildcards).path)


def input_source(wildcards):
    """The input as the commands get it and the records name it."""
    return _input(wildcards).path


@cache
def _fingerprint(key):
    return fingerprint(INPUTS[key].path)


def input_fingerprint(wildcards):
    """Changes when any file of the input does (a store's chunks too): a params rerun trigger."""
    return _fingerprint(_input(wildcards).key)


def all_containers(wildcards):
    return [f"results/{key}/container.json" for key in INPUTS]


def all_images(wildcards):
    """The image records (views, ISCC-MIXED) of every input, when views are enabled."""
    if not config["views"]["enabled"]:
        return []
    return [f"results/{key}/image.jsonl" for key in INPUTS]


def view_options(settings):
    """The options of `bioiscc views` from the config's views section."""
    strategies = " ".join(f"-s {name}" for name in settings["strategies"])
    return f"-n {settings['max_views']} {strategies}"


def flags(**options):
    """Command-line flags from boolean options: flags(simprints=True) -> "--simprints"."""
    return " ".join(f"--{name.replace('_', '-')}" for name, on in options.items() if on)


def retry_token(wildcards):
    """Changes whenever the index records a failure of the input: a params rerun trigger.

    The index writes a new token beside the container of each input with a failed scene; the
    walk's params change, so the next run redoes that input (once per recorded failure).
    """
    return _retry_token(_input(wildcards).key)


@cache
def _retry_token(key):
    try:
        return Path(RESULTS, key, RETRY_MARKER).read_text(encoding="utf-8").strip()
    except OSError:  # no failure recorded
        return ""


def runtime_minutes(wildcards, input):
    """Minutes for a job that reads the whole input, at a conservative 10 MB/s."""
    return 10 + int(input.size_mb / 600)


def log_index_summary(path="logs/index.log"):
    """Repeat the index's summary line (scenes done and failed) at the end of the run."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in reversed(lines):
        if line.startswith("bioiscc index:"):
            logger.info(line)
            return
