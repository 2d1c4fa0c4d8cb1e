"""Helpers of the bioiscc workflow: the inputs, their result paths, the options of the rules.

The inputs are found when the workflow starts (one directory walk, one stat per file, and one per
file of each OME-Zarr store for its fingerprint). Each input has a *key*: its path relative to
input_dir, each path segment percent-encoded so that no input can write outside results/ and no
two inputs share a result directory. Everything an input produces lives under results/<key>/ and
logs/<key>/.
"""

import json
import os
import re
import stat
import string
import time
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from functools import cache
from hashlib import sha256
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

try:
    from bioiscc.fingerprint import entries, fingerprint_of
    from bioiscc.output import plural
    from bioiscc.locations import is_omero_uri, redact
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
        "duplicates.tsv",
        "duplicates.json",
        "verify.txt",
        "skipped.tsv",
        "stale.txt",
        "_extra",
        "_batches",
    }
)
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
    return _matching(patterns, relative, name) is not None


def _matching(patterns, relative, name):
    """The first pattern that matches (see _matches), or None."""
    relative, name = relative.lower(), name.lower()
    return next(
        (p for p in patterns if fnmatchcase(relative if "/" in p else name, p)), None
    )


#: why an entry of input_dir is not an input, as results/skipped.tsv says it
NOT_INCLUDED = "no include pattern matches"
STORE_NOT_INCLUDED = "a Zarr store no include pattern matches"
DIRECTORY_LINK = "a link to a directory (not searched)"
BROKEN_LINK = "a broken link"


def find_inputs(settings, skipped=None):
    """The inputs of the run, by key: those found in input_dir, then the extra `inputs`.

    Every file of input_dir that is not an input (and every excluded directory, which is not
    searched) is appended to `skipped` as (path relative to input_dir, why).
    """
    skipped = [] if skipped is None else skipped
    wanted = [p.lower() for p in settings["include"]]
    unwanted = [p.lower() for p in settings["exclude"]]
    as_written = {p.lower(): p for p in settings["exclude"]}  # for results/skipped.tsv
    root = os.path.normpath(settings["input_dir"])
    if not os.path.isdir(root):
        where = (
            ""
            if os.path.isabs(root)
            else f" (relative to the working directory {os.getcwd()})"
        )
        raise WorkflowError(
            f"bioiscc: input_dir {root!r} is not a directory{where}; "
            "give the data directory with --config input_dir=DIR, or in config/config.yaml"
        )
    if is_zarr_store(Path(root)):
        raise WorkflowError(
            f"bioiscc: input_dir {root!r} is an OME-Zarr store; "
            "point input_dir at the directory that holds it, or list it under inputs"
        )
    found = {}

    def add(key, path, relative=None):
        try:
            status = os.stat(path)  # the one stat of a file input (fingerprint, size)
        except OSError as exc:  # a link to nothing, or a link loop
            reason = f"{BROKEN_LINK} ({exc.strerror})"
            logger.warning(f"bioiscc: skipping {path}: {reason}")
            skipped.append((relative or path, reason))
            return
        if found.setdefault(key, Input(key, path)).path != path:
            raise WorkflowError(
                f"bioiscc: {path} and {found[key].path} share the key {key}"
            )
        if stat.S_ISREG(status.st_mode):
            FILE_STATS[key] = status

    for directory, dirnames, filenames in os.walk(root):
        below = os.path.relpath(directory, root)
        prefix = "" if below == os.curdir else f"{below.replace(os.sep, '/')}/"
        searched = []
        for name in sorted(dirnames):
            relative, full = f"{prefix}{name}", os.path.join(directory, name)
            excluded = _matching(unwanted, relative, name)
            if excluded is not None:
                skipped.append(
                    (f"{relative}/", f"excluded by {as_written[excluded]!r}")
                )
                continue
            if is_zarr_store(Path(full)):  # a store is one input, never searched
                if _matches(wanted, relative, name):
                    add(input_key(relative.split("/")), full, relative)
                else:
                    skipped.append((f"{relative}/", STORE_NOT_INCLUDED))
            elif os.path.islink(full):
                skipped.append((f"{relative}/", DIRECTORY_LINK))
            else:
                searched.append(name)
        dirnames[:] = searched
        for name in sorted(filenames):
            relative = f"{prefix}{name}"
            excluded = _matching(unwanted, relative, name)
            if excluded is not None:
                skipped.append((relative, f"excluded by {as_written[excluded]!r}"))
            elif _matches(wanted, relative, name):
                add(
                    input_key(relative.split("/")),
                    os.path.join(directory, name),
                    relative,
                )
            else:
                skipped.append((relative, NOT_INCLUDED))

    root_abs = os.path.abspath(root)
    for item in settings["inputs"]:
        path = os.path.abspath(item)
        if is_omero_uri(item):  # said without any user:password@ it may hold
            raise WorkflowError(
                f"bioiscc: inputs: {redact(item)}: OMERO images are not workflow inputs yet; "
                "hash them with `bioiscc hash` (credentials in OMERO_USER and OMERO_PASSWORD)"
            )
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


#: key -> the stat of a file input, taken when it was found
FILE_STATS = {}
#: (path relative to input_dir, why) of every entry of input_dir that is not an input
SKIPPED = []
INPUTS = find_inputs(config, SKIPPED)
#: results/ as the rules see it (with the prefix of a module that includes this workflow)
RESULTS = str(workflow.modifier.modify_path("results"))
if not INPUTS:
    logger.warning(
        f"bioiscc: no inputs in {config['input_dir']}: no file or store there matches the include"
        f" patterns (config/README.md); {plural(len(SKIPPED), 'entry', 'entries')} found there"
        f" are listed in {RESULTS}/skipped.tsv"
    )


# ---- batches ----
#
# The rules run over batches of inputs, not single inputs: one job, one process, many inputs, so
# that a directory of 100,000 small files costs about 100,000 / batch_size jobs per rule, not
# 100,000 (and as many Python start-ups). Inside a batch the commands reuse every input whose
# results are current (bioiscc.batch: a stamp per input and step), so a rerun for one changed
# input recomputes that input only.
#
# Membership is stable: the inputs in key order are cut after every key whose hash is 0 modulo
# batch_size (content-defined boundaries, as rsync and deduplicating backups cut files), so adding
# or removing an input changes its own batch only (or the two around a boundary it adds or removes).
# A batch has batch_size inputs on average and at most 4 x batch_size; an input of at least
# batch_alone_mb MB on disk is a batch of its own. A batch is named after its first input.

#: a batch is cut after at most this many times batch_size inputs
MAX_BATCH_FACTOR = 4


def _key_hash(key):
    return sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def make_batches(keys, batch_size, alone_bytes, disk_bytes):
    """{batch name: keys} for the sorted keys (see above)."""
    batches = {}
    current = []

    def close():
        if current:
            batches[f"b{_key_hash(current[0])[:12]}"] = tuple(current)
            current.clear()

    for key in keys:
        if disk_bytes(key) >= alone_bytes:
            close()
            current.append(key)
            close()
            continue
        current.append(key)
        natural = int(_key_hash(key)[:12], 16) % batch_size == 0
        if natural or len(current) >= MAX_BATCH_FACTOR * batch_size:
            close()
    close()
    return batches


def _batch(wildcards):
    try:
        return BATCHES[wildcards.batch]
    except KeyError:
        raise WorkflowError(f"bioiscc: no batch is named {wildcards.batch!r}") from None


def batch_fingerprint(wildcards):
    """Changes when any file of any input of the batch does (a store's chunks too): a params trigger."""
    text = "\n".join(_fingerprint(key) for key in _batch(wildcards))
    return sha256(text.encode()).hexdigest()


def batch_file(batch):
    """The batch file of `bioiscc ... --batch` (as the commands see it): each input's source and
    result folder. Written when the workflow starts (see sync_batch_files)."""
    return f"{RESULTS}/_batches/{batch}/inputs.jsonl"


def sync_file(path, text):
    """Make the file hold `text`, rewriting it only when it differs (its mtime says when it changed).

    Returns what the file held before when it was rewritten ("" when it was new), else None.
    """
    target = Path(path)
    try:
        before = target.read_text(encoding="utf-8")
        if before == text:
            return None
    except (OSError, UnicodeDecodeError):
        before = ""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)
    return before


def sync_batch_files():
    """Write the batch files, and the list of every batch's index rows, when they change.

    Done when the workflow starts rather than by jobs: a `run:` job would start Snakemake again,
    and the lists are too long for a command line. A file changes only when the membership does,
    so that only the batches whose inputs came or went rerun. The inputs a rewritten batch file
    no longer lists are remembered (see sync_stale).
    """
    from bioiscc.batch import batch_line

    dropped = {}
    for batch, keys in BATCHES.items():
        lines = [batch_line(INPUTS[key].path, f"{RESULTS}/{key}") for key in keys]
        before = sync_file(batch_file(batch), "".join(lines))
        if before:
            dropped.update(_batch_entries(before))
    rows = [f"{RESULTS}/_batches/{batch}/index.jsonl\n" for batch in BATCHES]
    sync_file(BATCH_LIST, "".join(rows))
    return dropped


# ---- skipped entries and stale results ----
#
# results/skipped.tsv lists every entry of input_dir that is not an input (path, why), from the
# one directory walk that finds the inputs. results/stale.txt lists the result folders of inputs
# that no longer exist (results/<key>/), and the folders of batches that no longer exist
# (results/_batches/<batch>/): `snakemake clean_stale` (bioiscc clean-stale) removes them. Past
# inputs are known from the batch files, not from a walk of results/ (a million files at 100,000
# inputs): the inputs a batch file stops listing, and those of batch folders no longer in the run,
# are kept in results/_batches/orphans.jsonl (batch lines) while their results exist, so that an
# input excluded today and deleted later still becomes stale then. An orphan whose input still
# exists (excluded, or input_dir changed) is not stale: its results are kept.

#: a batch folder's name (make_batches)
BATCH_NAME = re.compile(r"b[0-9a-f]{12}")


def _batch_entries(text):
    """{result folder: source} of the lines of a batch file (lines that cannot be read are skipped)."""
    found = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            found[str(entry["dir"])] = str(entry["source"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _read_entries(path):
    try:
        return _batch_entries(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def _gone(source):
    """Whether an input no longer exists (an OMERO image is never known to be gone)."""
    return "://" not in source and not os.path.lexists(source)


def _folder_prefixes(folders):
    """Every folder that holds one of `folders` (a stale folder must not hold a current one)."""
    prefixes = set()
    for folder in folders:
        parts = folder.split("/")
        prefixes.update("/".join(parts[:end]) for end in range(1, len(parts)))
    return prefixes


def sync_stale(dropped):
    """Write results/stale.txt and results/_batches/orphans.jsonl; the stale folders."""
    from bioiscc.batch import batch_line

    batches_dir = Path(RESULTS, "_batches")
    old_batches = []
    try:
        with os.scandir(batches_dir) as found:
            old_batches = sorted(
                entry.name
                for entry in found
                if entry.is_dir(follow_symlinks=False)
                and BATCH_NAME.fullmatch(entry.name)
                and entry.name not in BATCHES
            )
    except OSError:
        pass
    past = _read_entries(ORPHANS)
    past.update(dropped)
    for batch in old_batches:
        past.update(_read_entries(batch_file(batch)))
    current = {f"{RESULTS}/{key}" for key in INPUTS}
    holding = _folder_prefixes(current)
    orphans = {
        folder: source
        for folder, source in sorted(past.items())
        if folder not in current and folder not in holding and os.path.isdir(folder)
    }
    sync_file(ORPHANS, "".join(batch_line(s, f) for f, s in orphans.items()))
    stale = [folder for folder, source in orphans.items() if _gone(source)]
    stale += [f"{RESULTS}/_batches/{batch}" for batch in old_batches]
    sync_file(STALE_LIST, "".join(f"{folder}\n" for folder in stale))
    return stale


def sync_skipped():
    """Write results/skipped.tsv: every entry of input_dir that is not an input, and why."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(("path", "reason"))
    writer.writerows(SKIPPED)
    sync_file(SKIPPED_LIST, buffer.getvalue())


def all_batch_rows(wildcards):
    """Every batch's index rows (as Snakemake tracks them)."""
    return [f"results/_batches/{batch}/index.jsonl" for batch in BATCHES]


def batch_mixed(wildcards):
    """The batch's mix log when views are enabled (the index adds the image records)."""
    return (
        [f"results/_batches/{wildcards.batch}/mix.jsonl"]
        if config["views"]["enabled"]
        else []
    )


def batch_retry(wildcards):
    """Changes on every run while a step of the batch recorded a failure: a params rerun trigger.

    The batch then reruns, and its commands (--retry-failed) recompute the failed inputs only.
    """
    if not config["retry_failed"]:
        return ""
    return _retry_marks(wildcards.batch)


@cache
def _retry_marks(batch):
    marks, failed = [], set()
    for step in BATCH_STEPS:
        path = Path(RESULTS, "_batches", batch, f"{step}.jsonl")
        try:
            text = path.read_text(encoding="utf-8")
            if FAILED_MARK in text:
                # readable in Snakemake's rerun reason, and new after every run that failed again
                written = datetime.fromtimestamp(path.stat().st_mtime).isoformat(
                    timespec="microseconds"
                )
                marks.append(f"retry: {step} failed at {written};")
                failed.update(_failed_sources(text))
        except OSError:
            continue
    if failed:
        named = ", ".join(sorted(failed)[:3]) + (", ..." if len(failed) > 3 else "")
        logger.info(
            f"bioiscc: batch {batch}: retrying {plural(len(failed), 'input')} that failed last time: {named}"
        )
    return " ".join(marks)


def _failed_sources(text):
    for line in text.splitlines():
        if FAILED_MARK in line:
            try:
                yield json.loads(line)["source"]
            except (ValueError, KeyError, TypeError):
                continue


#: the batch logs the commands write (bioiscc.batch), by rule
BATCH_STEPS = ("walk", "hash", "views", "mix")
#: how a failed input shows in a batch log line
FAILED_MARK = '"status": "failed"'


@cache
def _entries(key):
    """(relative path, size, mtime_ns) of every file of the input (a file: from its one stat)."""
    found = FILE_STATS.get(key)
    if found is not None:
        return [(Path(INPUTS[key].path).name, found.st_size, found.st_mtime_ns)]
    try:
        return entries(INPUTS[key].path)
    except OSError:  # vanished or unreadable since it was found: the walk will say so
        return []


@cache
def _fingerprint(key):
    """The input's fingerprint, as `bioiscc walk` records it."""
    return fingerprint_of(_entries(key))


def view_options(settings):
    """The options of `bioiscc extract-views` from the config's views section."""
    strategies = " ".join(f"-s {name}" for name in settings["strategies"])
    return f"-n {settings['max_views']} {strategies}"


def flags(**options):
    """Command-line flags from boolean options: flags(simprints=True) -> "--simprints"."""
    return " ".join(f"--{name.replace('_', '-')}" for name, on in options.items() if on)


#: when this run started (the summary is repeated only when this run made the index)
RUN_STARTED = time.time()


def log_index_summary(path="logs/index.log"):
    """Repeat the index's summary line (scenes done and failed) at the end of the run.

    Only when the index was made by this run: not after `snakemake clean_stale` or `verify`.
    (In a module the handler does not run; the index job prints the line itself.)
    """
    try:
        log = Path(path)
        if log.stat().st_mtime < RUN_STARTED:
            return
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in reversed(lines):
        if line.startswith("bioiscc index:"):
            logger.info(line)
            return


# ---- resources of the rules ----
#
# What each batch job asks the cluster for (Slurm: --cpus-per-task, --mem, --time), scaled with its
# inputs so that a 40 GB scene and a 4 MB one do not ask for the same: the inputs of a batch are
# processed one after another, so memory is that of its most demanding input and runtime the sum
# of its inputs' (plus 1 min per 1,000 inputs for their start and stamps); the formulas below are
# per input. Locally these only limit what runs
# at once (--cores, --resources). Sizes come from the walk manifest (results/<key>/walk.json: the
# pixel bytes of every scene and plane) once it exists and describes the input as it is now (same
# fingerprint); before that (the walk not run yet, or run in the same group job) from the input's
# bytes on disk. A missing, stale or failed manifest is no error, and no pixels are read: these
# functions run in the main Snakemake process, at DAG build and again when a job is submitted.
#
#   walk (reads headers, fingerprints every file of a store):
#     threads 1, mem_mb 1024, runtime 2 min + 1 min per 10 GB on disk
#   hash, extract_views (read every pixel once; hash also the raw bytes):
#     threads  2 if the pixels are 4 GiB or more (hash then runs in two threads beside the
#              reading one, bioiscc.hasher), else 1 (all in one thread): that gains 1.3-1.4x on
#              one input, two one-thread jobs side by side about 2x, so only an input long enough
#              for its own wall time to matter gets two
#     mem_mb   readers that read plane by plane or chunk by chunk:
#                512 + min(pixels, 1024) + 3 x largest plane          (MiB)
#              readers that may hold a whole scene (LIF tile scans with dimensions other than
#              T, C, Z, which bioio-lif stitches in memory; the manifest names the reader but does
#              not mark mosaics, so every LIF read with bioio-lif counts; CZI mosaics are stitched
#              one plane at a time; bioio plugins of the fallback, whose base reader loads a
#              scene whole unless the plugin reads planes itself):
#                512 + 2 x largest scene + 3 x largest plane
#              at least 1024, at most 128 GiB
#     runtime  2 min + 1 min per full minute of reading pixels and bytes on disk at 20 MB/s,
#              at most 2 days
#   mix (reads the views' PNGs): threads 1, mem_mb 1024, runtime 2 min
#   every job, when Snakemake retries it (--retries, attempt n): n times the memory and runtime
#
# 512 MiB: Python, numpy and a reader's imports (40-170 MB); 1024 MiB: the chunk cache
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

import math

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
#: readers (as the manifest names them) that may hold a whole scene in memory: every bioio plugin
#: (bioio-lif stitches a LIF tile scan whole, the record names it for every LIF mosaic; the plugins
#: of the fallback, "bioio_imageio 1.3.0", read through bioio's base reader) but Bio-Formats
WHOLE_SCENE_READERS = ("bioio_",)
PLANE_READERS = ("bioio_bioformats",)
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
    return sum(size for _, size, _ in _entries(key))


@cache
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
            whole=any(name in reader for name in WHOLE_SCENE_READERS)
            and not any(name in reader for name in PLANE_READERS),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def input_size(key):
    """The sizes of an input: from its walk manifest when that is current, else estimated.

    Not cached: a job's resources are computed again when it is submitted (a retry too), by then
    perhaps with a manifest (_manifest reads it once per change).
    """
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


def _sizes(wildcards):
    return [input_size(key) for key in _batch(wildcards)]


def _mb(size):
    return math.ceil(size / MIB)


def _clamp(value, low, high):
    return max(low, min(high, int(value)))


def light_mem_mb(wildcards, attempt):
    """MiB for a job that holds no pixels (walk, mix)."""
    return MIN_MEM_MB * attempt


def light_runtime(wildcards, attempt):
    """Minutes for a batch that reads no pixels (mix): 2 min + 1 min per 1,000 inputs."""
    return _clamp(
        (MIN_RUNTIME + len(_batch(wildcards)) // 1000) * attempt,
        MIN_RUNTIME,
        MAX_RUNTIME,
    )


def walk_runtime(wildcards, attempt):
    """Minutes for the walk: it reads headers, and stats every file of a store."""
    disk = sum(_disk_bytes(key) for key in _batch(wildcards))
    minutes = MIN_RUNTIME + disk // WALK_BYTES_PER_MIN + len(_batch(wildcards)) // 1000
    return _clamp(minutes * attempt, MIN_RUNTIME, MAX_RUNTIME)


def read_threads(wildcards):
    """Threads for a batch that reads every pixel: 2 (hashing in two threads beside the reader, or
    a read-ahead thread) when an input has 4 GiB or more.

    From the bytes on disk only (no manifest is read): threads are decided for every job when the
    DAG is built.
    """
    largest = max(
        (
            _disk_bytes(key) * EXPANSION.get(_format_of(INPUTS[key].path), 1)
            for key in _batch(wildcards)
        ),
        default=0,
    )
    return 2 if largest >= READ_AHEAD_BYTES else 1


def _input_mem_mb(size):
    held = 2 * _mb(size.scene) if size.whole else min(_mb(size.pixels), CHUNK_CACHE_MB)
    return BASE_MEM_MB + held + 3 * _mb(size.plane)


def read_mem_mb(wildcards, attempt):
    """MiB for a batch that reads every pixel: its most demanding input (they run one at a time)."""
    mem = max((_input_mem_mb(size) for size in _sizes(wildcards)), default=MIN_MEM_MB)
    return _clamp(mem * attempt, MIN_MEM_MB, MAX_MEM_MB)


def runtime_minutes(wildcards, attempt):
    """Minutes for a batch that reads every pixel and the raw bytes, at a conservative 20 MB/s."""
    # the bytes of all inputs, then the seconds: rounded down per input, inputs read in under a
    # second each (a batch of small files) would count for nothing
    seconds = (
        sum(size.pixels + size.disk for size in _sizes(wildcards)) // READ_BYTES_PER_S
    )
    minutes = MIN_RUNTIME + seconds // 60 + len(_batch(wildcards)) // 1000
    return _clamp(minutes * attempt, MIN_RUNTIME, MAX_RUNTIME)


# the batches of the run (after the sizes on disk: a large input is a batch of its own)
BATCHES = make_batches(
    INPUTS, config["batch_size"], config["batch_alone_mb"] * 10**6, _disk_bytes
)
#: the list `bioiscc index --rows-from` reads (as the commands see it)
BATCH_LIST = f"{RESULTS}/_batches/batches.txt"
#: the past inputs whose results are still there, the stale folders and the skipped entries
ORPHANS = f"{RESULTS}/_batches/orphans.jsonl"
STALE_LIST = f"{RESULTS}/stale.txt"
SKIPPED_LIST = f"{RESULTS}/skipped.tsv"
STALE = sync_stale(sync_batch_files())
sync_skipped()


def batch_repairs(wildcards):
    """A params rerun trigger of every batch rule: how often results of the batch were found
    changed or removed by hand (see find_damaged_batches); it changes only when that happens.
    """
    return REPAIRS.get(wildcards.batch) or _repair_count(wildcards.batch)


@cache
def _repair_count(batch):
    try:
        return _repairs_file(batch).read_text()[:20]
    except OSError:
        return ""


def _repairs_file(batch):
    return Path(RESULTS, "_batches", batch, "repairs.txt")


def find_damaged_batches(steps):
    """Rerun the batches whose per-input results were changed or removed by hand since they ran.

    Snakemake tracks a batch's logs, not the results/<key>/ files its inputs got; each log line
    holds the size and mtime of that input's outputs as stamped. One stat per output (no stamp,
    no pixels read) finds a result that no longer matches, and a log removed by hand is missing
    beside the batch's others. Such a batch's repair count (a params trigger of its rules) goes
    up: Snakemake reruns the batch, whose commands recompute the damaged inputs only (their stamps
    no longer match) and reuse the others.
    """
    repairs = {}
    for batch in BATCHES:
        logs = [
            os.path.join(RESULTS, "_batches", batch, f"{step}.jsonl") for step in steps
        ]
        damaged = _damaged_output(logs)
        if damaged is None:
            continue
        logger.info(
            f"bioiscc: {damaged} was changed or removed by hand: rerunning batch {batch}"
        )
        try:
            count = int(_repairs_file(batch).read_text())
        except (OSError, ValueError):
            count = 0
        repairs[batch] = str(count + 1)
        sync_file(_repairs_file(batch), repairs[batch])
    return repairs


def _damaged_output(logs):
    """The first output (or log) that is not as the batch logs say; None when all are."""
    exists = [os.path.exists(log) for log in logs]
    if not any(exists):
        return None  # the batch has not run yet
    last = max(i for i, found in enumerate(exists) if found)
    if not all(exists[:last]):  # a step's log removed by hand after later steps ran
        return logs[exists.index(False)]
    # later steps that have not run yet (--until, a failed job) are no damage; the last log, the
    # index rows, names no outputs
    for log in logs[:-1][: last + 1]:
        try:
            text = Path(log).read_text(encoding="utf-8").strip()
            # one JSON document for the whole log: half the time of a json.loads per line
            for entry in json.loads(f"[{text.replace(chr(10), ',')}]"):
                for name, (size, mtime_ns) in (entry.get("outputs") or {}).items():
                    path = os.path.join(entry["dir"], name)
                    try:
                        found = os.stat(path)
                    except OSError:
                        return path
                    if found.st_size != size or found.st_mtime_ns != mtime_ns:
                        return path
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return log  # a log damaged itself
    return None


#: batch -> its repair count, for the batches found damaged now
REPAIRS = find_damaged_batches(
    [*(BATCH_STEPS if config["views"]["enabled"] else BATCH_STEPS[:2]), "index"]
)
