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
    from bioiscc.sources import BIOIO_SUFFIXES
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


# ---- resources of the rules ----
#
# What each job asks the cluster for (Slurm: --cpus-per-task, --mem, --time), scaled with its input
# so that a 40 GB scene and a 4 MB one do not ask for the same. Locally these only limit what runs
# at once (--cores, --resources). Sizes come from the walk manifest (results/<key>/walk.json: the
# pixel bytes of every scene and plane) once it exists and describes the input as it is now (same
# fingerprint); before that (the walk not run yet, or run in the same group job) from the input's
# bytes on disk. A missing, stale or failed manifest is no error, and no pixels are read: these
# functions run in the main Snakemake process, at DAG build and again when a job is submitted.
#
#   walk (reads headers, fingerprints every file of a store):
#     threads 1, mem_mb 1024, runtime 2 min + 1 min per 10 GB on disk
#   hash, extract_views (read every pixel once; hash also the raw bytes):
#     threads  2 if the pixels are 4 GiB or more (hash reads ahead in a second thread), else 1:
#              the read-ahead gains about 1.3x on one input, two one-thread jobs side by side
#              about 2x, so only an input long enough for its own wall time to matter gets two
#     mem_mb   readers that read plane by plane or chunk by chunk:
#                512 + min(pixels, 1024) + 3 x largest plane          (MiB)
#              readers that may hold a whole scene (LIF tile scans with dimensions other than
#              T, C, Z, which bioio-lif stitches in memory; the manifest names the reader but does
#              not mark mosaics, so every LIF read with bioio-lif counts; CZI mosaics are stitched
#              one plane at a time):
#                512 + 2 x largest scene + 3 x largest plane
#              at least 1024, at most 128 GiB
#     runtime  2 min + 1 min per full minute of reading pixels and bytes on disk at 20 MB/s,
#              at most 2 days
#   mix (reads the views' PNGs): threads 1, mem_mb 1024, runtime 2 min
#   every job, when Snakemake retries it (--retries, attempt n): n times the memory and runtime
#
# 512 MiB: Python, numpy and a reader's imports (bioio about 170 MB); 1024 MiB: the chunk cache
# (BIOISCC_CACHE_MB); 3 planes: the plane read, its big-endian copy, and the next one read ahead.
# Measured peaks are far below (benchmarks/results.md: 82-320 MB for 512 MiB of pixels). 20 MB/s
# is 10-30x slower than measured on a local disk: room for a busy shared file system. Without a
# manifest: the pixels (runtime, threads) are the bytes on disk times EXPANSION (formats that are
# often compressed), the largest scene is the bytes on disk (exact for an uncompressed LIF; a
# compressed CZI mosaic can need more, and then gets it on the retry and, with the manifest, on
# the next run), the largest plane at most 256 MiB. In a group job Snakemake adds up the jobs
# that may run side by side (threads, memory) and the runtimes of the layers it stacks them in
# (profile: cores). To override them: --set-resources hash:mem_mb=... or --set-threads
# hash=...; to cap the threads of every job: --max-threads.

import json
import math
from functools import lru_cache

MIB = 1 << 20
BASE_MEM_MB = 512
CHUNK_CACHE_MB = 1024
MIN_MEM_MB = 1024
MAX_MEM_MB = 128 * 1024
MIN_RUNTIME = 2
MAX_RUNTIME = 2 * 24 * 60
READ_BYTES_PER_S = 20 * 10**6
WALK_BYTES_PER_MIN = 10 * 10**9
READ_AHEAD_BYTES = 4096 * MIB
#: readers (as the manifest names them) that may hold a whole scene in memory: bioio-lif (a LIF
#: tile scan it stitches whole; the record names it for every LIF mosaic)
WHOLE_SCENE_READERS = ("bioio_lif",)
#: before the walk: formats whose reader may hold a whole scene (LIF mosaics)
WHOLE_SCENE_FORMATS = frozenset({"lif"})
#: before the walk: pixel bytes per byte on disk, at most (for the runtime and the threads)
EXPANSION = {"czi": 4, "ome-zarr": 4, "tiff": 2, "nd2": 2}
#: before the walk: the largest plane assumed
FALLBACK_PLANE_BYTES = 256 * MIB


@dataclass(frozen=True)
class Size:
    """What the resources of an input's jobs depend on (bytes)."""

    disk: int  # on disk (a store: all its files)
    pixels: int  # every scene's pixels
    scene: int  # the largest scene
    plane: int  # the largest plane
    whole: bool  # whether its reader may hold a whole scene in memory


def _format_of(path):
    """The format an input's name says, as the package's suffix table has it (else TIFF)."""
    name = path.lower().rstrip("/")
    if name.endswith(".zarr"):
        return "ome-zarr"
    return BIOIO_SUFFIXES.get(os.path.splitext(name)[1], "tiff")


@cache
def _disk_bytes(key):
    path = INPUTS[key].path
    try:
        if not os.path.isdir(path):
            return os.stat(path).st_size
        return sum(
            os.stat(os.path.join(directory, name)).st_size
            for directory, _, names in os.walk(path)
            for name in names
        )
    except OSError:
        return 0


@lru_cache(maxsize=4096)
def _manifest(path, stamp):
    """The walk manifest (its geometry only), read again whenever the file changes (stamp)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        scenes = [
            (s["bytes"], s.get("planes") or 1)
            for s in record["scenes"]
            if s.get("bytes")
        ]
        reader = record.get("reader") or ""
        return record.get("fingerprint"), Size(
            disk=0,
            pixels=sum(size for size, _ in scenes),
            scene=max((size for size, _ in scenes), default=0),
            plane=max((size // max(planes, 1) for size, planes in scenes), default=0),
            whole=any(name in reader for name in WHOLE_SCENE_READERS),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def input_size(wildcards):
    """The sizes of an input: from its walk manifest when that is current, else estimated."""
    key = _input(wildcards).key
    disk = _disk_bytes(key)
    path = Path(RESULTS, key, "walk.json")
    try:
        stat = path.stat()
        manifest = _manifest(str(path), (stat.st_mtime_ns, stat.st_size, stat.st_ino))
    except OSError:
        manifest = None
    if manifest is not None:
        fingerprint, size = manifest
        if size.pixels and fingerprint == _fingerprint(key):
            return Size(disk, size.pixels, size.scene, size.plane, size.whole)
    kind = _format_of(INPUTS[key].path)
    return Size(
        disk=disk,
        pixels=disk * EXPANSION.get(kind, 1),
        scene=disk,
        plane=min(disk, FALLBACK_PLANE_BYTES),
        whole=kind in WHOLE_SCENE_FORMATS,
    )


def _mb(size):
    return math.ceil(size / MIB)


def _clamp(value, low, high):
    return max(low, min(high, int(value)))


def light_mem_mb(wildcards, attempt):
    """MiB for a job that holds no pixels (walk, mix)."""
    return MIN_MEM_MB * attempt


def light_runtime(wildcards, attempt):
    """Minutes for a job that reads no pixels and no input (mix)."""
    return MIN_RUNTIME * attempt


def walk_runtime(wildcards, attempt):
    """Minutes for the walk: it reads headers, and stats every file of a store."""
    disk = _disk_bytes(_input(wildcards).key)
    minutes = MIN_RUNTIME + disk // WALK_BYTES_PER_MIN
    return _clamp(minutes * attempt, MIN_RUNTIME, MAX_RUNTIME)


def read_threads(wildcards):
    """Threads for a job that reads every pixel: 2 (read-ahead) from 4 GiB of pixels on."""
    return 2 if input_size(wildcards).pixels >= READ_AHEAD_BYTES else 1


def read_mem_mb(wildcards, attempt):
    """MiB for a job that reads every pixel (see the table above)."""
    size = input_size(wildcards)
    if size.whole:
        held = 2 * _mb(size.scene)
    else:
        held = min(_mb(size.pixels), CHUNK_CACHE_MB)
    mem = (BASE_MEM_MB + held + 3 * _mb(size.plane)) * attempt
    return _clamp(mem, MIN_MEM_MB, MAX_MEM_MB)


def runtime_minutes(wildcards, attempt):
    """Minutes for a job that reads every pixel and the raw bytes, at a conservative 20 MB/s."""
    size = input_size(wildcards)
    seconds = (size.pixels + size.disk) // READ_BYTES_PER_S
    minutes = MIN_RUNTIME + seconds // 60
    return _clamp(minutes * attempt, MIN_RUNTIME, MAX_RUNTIME)
