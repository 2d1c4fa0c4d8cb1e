"""Many inputs in one process: the batch form of `walk`, `hash`, `extract-views`, `mix` and `index`.

A *batch file* lists inputs as JSON Lines, one `{"source": PATH, "dir": FOLDER}` a line (JSON, so
that any file name, a newline or undecodable bytes included, survives). Each input's results go
into its own FOLDER under the names the one-input commands are given by the workflow (`walk.json`,
`scenes.jsonl` and `container.json`, `views/`, `image.jsonl`): a batch writes exactly the files
that one command per input would write, so the per-input results stay the contract.

Reuse. After an input's outputs are written, a *stamp* `FOLDER/.STEP.stamp` records the digest of
everything they depend on (the source's fingerprint or the upstream records, the settings, the
bioiscc version), their status and the size and mtime of each output. An input whose stamp matches
is reused, not recomputed: a batch rerun for one changed input costs one input's work plus a stat
and a small read per other input. An output edited, truncated or removed by hand no longer matches
its stamp and is rebuilt. A failed input is recomputed when `retry_failed` is set.

Isolation. One input's failure never stops the others: a reader error becomes a failed record (the
commands' `--record-errors`), and a crash of the reader itself (a segmentation fault in a C library,
an out-of-memory kill) is caught by running the batch in a forked child: when the child dies, the
parent writes the failed records of the input it was working on and forks again for the rest.

The *batch log* (JSON Lines, one line per input: source, dir, action computed|reused, status,
error, seconds) says what was done; the workflow's tests and benchmarks read which inputs were
computed from it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._version import __version__
from .output import note_input, plural

COMPUTED, REUSED = "computed", "reused"


@dataclass(frozen=True)
class Item:
    """One input of a batch: its source, and the folder its results go into."""

    source: str
    folder: Path


@dataclass(frozen=True)
class Step:
    """One per-input command in batch form.

    `outputs` are the files (relative to an input's folder) the stamp guards; `digest` is what they
    depend on (None: never reused, e.g. an OMERO image, which has no fingerprint); `compute` writes
    them (failures as failed records); `fallback` writes failed records when `compute` crashed;
    `status` reads the outcome back from the outputs ("ok" or "failed", and the first error).
    """

    name: str
    outputs: tuple[str, ...]
    digest: Callable[[Item], str | None]
    compute: Callable[[Item], None]
    fallback: Callable[[Item, str], None]
    status: Callable[[Item], tuple[str, str | None]]


class BatchFileError(ValueError):
    """A batch file that cannot be read: one line, exit 1."""


def read_items(path: str) -> list[Item]:
    """The inputs of a batch file ('-': stdin)."""
    note_input(path)  # no output (the batch log) may replace it
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchFileError(f"{path}: cannot read the batch file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"{path}: cannot read the batch file: not UTF-8 text ({exc.reason})") from exc
    items = []
    lines_of: dict[str, int] = {}  # each input's folder, by the line that names it
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            source, folder = entry["source"], entry["dir"]
            if not isinstance(source, str) or not isinstance(folder, str) or not source or not folder:
                raise TypeError("source and dir must be non-empty strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise BatchFileError(
                f'{path}: line {number}: not a batch entry {{"source": ..., "dir": ...}} ({exc})'
            ) from exc
        _check_folder(path, number, folder, lines_of)
        items.append(Item(source, Path(folder)))
    return items


def _check_folder(path: str, number: int, folder: str, lines_of: dict[str, int]) -> None:
    """An input's result folder is its own (two inputs would overwrite each other's results), and a
    folder or not there yet."""
    same = os.path.realpath(folder)
    if same in lines_of:
        raise BatchFileError(f"{path}: line {number}: dir {folder} is also the dir of line {lines_of[same]}")
    lines_of[same] = number
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise BatchFileError(f"{path}: line {number}: dir {folder} is there and is not a folder")


def batch_line(source: str, folder: str) -> str:
    """One line of a batch file."""
    from .output import dumps

    return dumps({"source": source, "dir": folder}) + "\n"


# ---- digests and stamps ----


def digest_of(*parts: Any) -> str:
    """sha256 of the parts (JSON-able values), with the bioiscc version: a new version recomputes."""
    text = json.dumps([__version__, *parts], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path) -> str | None:
    """sha256 of a (small) file's bytes; None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _stamp_path(item: Item, step: str) -> Path:
    return item.folder / f".{step}.stamp"


def _output_state(item: Item, outputs: Iterable[str]) -> dict[str, list[int]] | None:
    state = {}
    for name in outputs:
        try:
            stat = (item.folder / name).stat()
        except OSError:
            return None
        state[name] = [stat.st_size, stat.st_mtime_ns]
    return state


def is_current(
    item: Item, step: Step, digest: str | None, retry_failed: bool, state: dict[str, list[int]] | None
) -> bool:
    """Whether the outputs of `step` for `item` (now in `state`) were made from what they depend on
    now, untouched."""
    if digest is None:
        return False
    try:
        stamp = json.loads(_stamp_path(item, step.name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("digest") != digest:
        return False
    if retry_failed and stamp.get("status") != "ok":
        return False
    return state is not None and stamp.get("outputs") == state


def write_stamp(item: Item, step: Step, digest: str | None, status: str) -> dict[str, list[int]] | None:
    """Stamp the outputs as made from `digest`; their state (size, mtime of each), as stamped."""
    from .output import write_atomically

    path = _stamp_path(item, step.name)
    state = _output_state(item, step.outputs)
    if digest is None or state is None:
        path.unlink(missing_ok=True)
        return state
    stamp = {"digest": digest, "status": status, "outputs": state}
    # a stamp lost in a crash only costs a recomputation: no need to wait for the disk
    write_atomically(json.dumps(stamp, sort_keys=True).encode() + b"\n", path, durable=False)
    return state


# ---- running a batch ----


@dataclass
class Outcome:
    source: str
    dir: str
    action: str
    status: str
    error: str | None
    seconds: float
    #: the size and mtime_ns of each output as stamped: the workflow notices an output changed or
    #: removed by hand by comparing these with a stat, without reading any stamp
    outputs: dict[str, list[int]] | None = None

    def line(self) -> str:
        from .output import dumps

        return dumps(self.__dict__) + "\n"


def process(step: Step, item: Item, retry_failed: bool) -> Outcome:
    """Reuse or compute one input; any failure ends as failed records, never as an exception."""
    started = time.monotonic()
    digest = _digest(step, item)
    state = _output_state(item, step.outputs)
    if is_current(item, step, digest, retry_failed, state):
        status, error = step.status(item)
        return Outcome(_shown(item), str(item.folder), REUSED, status, error, 0.0, state)
    _forget_stamp(item, step)
    _remove_leftovers(item, step)
    try:
        step.compute(item)
    except SystemExit as exc:  # a command's one-line failure (already printed)
        if exc.code not in (0, None):
            step.fallback(item, str(getattr(exc, "message", None) or f"exited with status {exc.code}"))
    except Exception as exc:  # a bug or an unexpected library error: a failed record, not a stop
        from .errors import describe

        print(f"bioiscc: {_shown(item)}: {describe(exc)}", file=sys.stderr)
        step.fallback(item, describe(exc))
    status, error = step.status(item)
    state = write_stamp(item, step, digest, status)
    return Outcome(_shown(item), str(item.folder), COMPUTED, status, error, time.monotonic() - started, state)


def _shown(item: Item) -> str:
    """The source as logs may show it: a URI without credentials."""
    from .locations import redact

    return redact(item.source)


def _digest(step: Step, item: Item) -> str | None:
    try:
        return step.digest(item)
    except Exception:  # a source that cannot be fingerprinted (gone, unreadable): compute, fail there
        return None


def _remove_leftovers(item: Item, step: Step) -> None:
    """Temporary files a killed run of this step left beside its outputs and its stamp.

    Only this step's: two steps of one input run side by side (the workflow's hash and
    extract_views both follow walk, and write into the same folder), and removing every `.*.tmp`
    there deleted the other step's file in the middle of its atomic write (found as a rare
    "cannot write: No such file or directory" in a workflow test).
    """
    from .output import temporary_prefix

    targets = [item.folder / name for name in step.outputs] + [_stamp_path(item, step.name)]
    try:
        for target in targets:
            for leftover in target.parent.glob(glob.escape(temporary_prefix(target)) + "*.tmp"):
                leftover.unlink(missing_ok=True)
    except OSError:
        pass


def _forget_stamp(item: Item, step: Step) -> None:
    """Drop the stamp before recomputing, so that outputs left half-made never look current."""
    try:
        _stamp_path(item, step.name).unlink(missing_ok=True)
    except OSError:
        pass


def run(
    step: Step,
    items: Sequence[Item],
    log_path: str | None,
    *,
    retry_failed: bool = False,
    progress: bool = False,
    isolate: bool = True,
) -> list[Outcome]:
    """Process every input of a batch; write the batch log (atomically) and a summary on stderr."""
    from .output import write_text

    if isolate and hasattr(os, "fork"):
        outcomes = _run_forked(step, items, retry_failed, progress)
    else:
        outcomes = [
            _report(process(step, item, retry_failed), i, len(items), progress)
            for i, item in enumerate(items)
        ]
    if log_path is not None:
        write_text("".join(outcome.line() for outcome in outcomes), log_path)
    print(summary(step.name, outcomes), file=sys.stderr)
    return outcomes


def summary(name: str, outcomes: Sequence[Outcome]) -> str:
    computed = sum(o.action == COMPUTED for o in outcomes)
    failed = [o for o in outcomes if o.status != "ok"]
    line = (
        f"bioiscc {name}: {plural(len(outcomes), 'input')}: {computed} computed, "
        f"{len(outcomes) - computed} reused, {len(failed)} failed"
    )
    if failed:
        named = ", ".join(o.source for o in failed[:3])
        line += f" ({named}{', ...' if len(failed) > 3 else ''})"
    return line


def _report(outcome: Outcome, index: int, total: int, progress: bool) -> Outcome:
    if outcome.action == COMPUTED:
        state = "ok" if outcome.status == "ok" else f"failed: {outcome.error}"
        print(f"bioiscc: {outcome.source}: computed in {outcome.seconds:.2f} s, {state}", file=sys.stderr)
    if progress:
        print(f"\rbioiscc: {index + 1}/{total} inputs", end="", file=sys.stderr, flush=True)
        if index + 1 == total:
            print(file=sys.stderr)
    return outcome


def _run_forked(step: Step, items: Sequence[Item], retry_failed: bool, progress: bool) -> list[Outcome]:
    """Process the inputs in forked children; a child's death fails only the input it was on."""
    outcomes: list[Outcome] = []
    start = 0
    while start < len(items):
        sys.stdout.flush()
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: work through the rest, one line to the parent per input
            os.close(read_end)
            code = 0
            try:
                with os.fdopen(write_end, "w", encoding="utf-8") as channel:
                    for index in range(start, len(items)):
                        channel.write(f"start {index}\n")
                        channel.flush()
                        outcome = _report(
                            process(step, items[index], retry_failed), index, len(items), progress
                        )
                        channel.write(outcome.line())
                        channel.flush()
            except BaseException:  # pragma: no cover - the parent records the input as failed
                code = 70
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_end)
        current: int | None = None
        with os.fdopen(read_end, "r", encoding="utf-8") as channel:
            for line in channel:
                if line.startswith("start "):
                    current = int(line.split()[1])
                else:
                    outcomes.append(Outcome(**json.loads(line)))
                    current = None
        _, wait_status = os.waitpid(pid, 0)
        if current is None:
            break  # the child finished every input
        outcomes.append(_crashed(step, items[current], wait_status))
        start = current + 1
    return outcomes


def _crashed(step: Step, item: Item, wait_status: int) -> Outcome:
    """The failed records of an input whose reader took the process down."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        error = f"the reader crashed on this input (killed by {name})"
    else:
        error = f"the reader crashed on this input (exit status {os.WEXITSTATUS(wait_status)})"
    print(f"bioiscc: {_shown(item)}: {error}", file=sys.stderr)
    _forget_stamp(item, step)
    try:
        step.fallback(item, error)
        status, recorded = step.status(item)
        # stamped as failed: reused as such, so that it crashes again only when retried
        state = write_stamp(item, step, _digest(step, item), status)
    except Exception as exc:  # pragma: no cover - a full disk, say: the log still says failed
        status, recorded = "failed", f"{error}; its failed record could not be written ({exc})"
        state = None
    return Outcome(_shown(item), str(item.folder), COMPUTED, status, recorded or error, 0.0, state)


# ---- reading outcomes back from records ----


def records_status(paths: Iterable[Path]) -> tuple[str, str | None]:
    """ "ok" when every record (and every part of a container) in the files has status ok."""
    from .output import read_records

    for path in paths:
        try:
            found = read_records(path)
        except FileNotFoundError:
            return "failed", f"{path.name} was not written"
        except (OSError, ValueError) as exc:
            return "failed", f"{path.name}: unreadable ({exc})"
        if not found:
            return "failed", f"{path.name} is empty"
        for record in found:
            # a container's failed part says why; the container itself may only say "failed"
            for entry in [*(record.get("parts") or []), record]:
                if entry.get("status") not in (None, "ok"):
                    return "failed", str(entry.get("error") or "failed")
    return "ok", None
