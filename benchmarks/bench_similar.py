"""`bioiscc similar` on a synthetic index of many scenes: wall time and peak RSS, planted groups found.

    python benchmarks/bench_similar.py                       # 1,000,000 scenes, the targets
    python benchmarks/bench_similar.py --scenes 100000 --runs 3 --search tables

Writes (once, then reuses) an index.jsonl as `bioiscc index` writes it, with every column, into
--workdir: random 256-bit Data-, Instance- and ISCC-MIXED codes, and planted among them

- duplicate groups of 2-5 scenes with the same codes (identical pixels in several files),
- near-duplicate pairs: Data-Codes 1..16 bits apart, other Instance-Codes, ISCC-MIXEDs 0..8 bits apart,
- look-alike pairs: unrelated Data-Codes, ISCC-MIXEDs 1..32 bits apart,
- a few failed rows (no codes).

Random 256-bit codes are 128 +- 8 bits apart, so no pair but the planted ones is within a threshold:
the planted relations are exactly what `similar` must report. In fresh processes, alternating, it
measures the baselines and the subject:

- `read`: read every line of the index and json.loads it (the floor of any tool reading it);
- `load`: `bioiscc.similar.load_scenes`, the reading and decoding part of `similar`;
- `similar`: `bioiscc similar INDEX --tsv ... --json ...`, the command;
- `similar-tsv`: the same on the same index as TSV (index.tsv; cheaper to parse than JSON).

Peak RSS is the child's maximum resident set size (os.wait4). Targets (at 1,000,000 scenes): the
command in at most 60 s and 2 GB; every planted group and pair found, and nothing else. Exits 1 when
one is missed. Not part of pytest (tests/test_similar.py runs `make_index` and `check` small).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bioiscc.cli_workflow import INDEX_FIELDS, _tsv_value

TARGET_SECONDS = 60.0
TARGET_MB = 2048.0
DATA_BITS = 16
MIXED_BITS = 32
B32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)


# --- the synthetic index --------------------------------------------------------------------------


@dataclass
class Planted:
    """What was planted, by row: groups of identical rows, near and look-alike pairs."""

    identical: list[list[int]] = field(default_factory=list)
    near: list[tuple[int, int]] = field(default_factory=list)
    look_alike: list[tuple[int, int]] = field(default_factory=list)
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "near": self.near,
            "look_alike": self.look_alike,
            "failed": self.failed,
        }


def headers() -> dict[str, bytes]:
    """The header bytes of each kind of code, from codes iscc-core makes."""
    import iscc_core as ic

    def head(mtype: Any, stype: Any, bits: int) -> bytes:
        code = ic.encode_component(
            mtype=mtype, stype=stype, version=ic.VS.V0, bit_length=bits, digest=bytes(32)
        )
        return bytes(ic.decode_base32(code)[:2])

    wide = bytes(
        ic.decode_base32(ic.iscc_clean("ISCC:K4AA77OGJ6QXTHBKOHWUJWHYZXZZCM3M3NSGZDS4VIWOZASJ4OJY6DY"))
    )
    return {
        "data": head(ic.MT.DATA, ic.ST.NONE, 256),
        "instance": head(ic.MT.INSTANCE, ic.ST.NONE, 256),
        "mixed": head(ic.MT.CONTENT, ic.ST_CC.MIXED, 256),
        "sum": wide[:2],
    }


def encode(header: bytes, bodies: np.ndarray) -> list[str]:
    """ISCC codes (base32, no padding) of `header` + each row of `bodies`, all at once."""
    whole = np.concatenate([np.tile(np.frombuffer(header, np.uint8), (len(bodies), 1)), bodies], axis=1)
    bits = np.unpackbits(whole, axis=1)
    pad = (-bits.shape[1]) % 5
    bits = np.pad(bits, ((0, 0), (0, pad)))
    groups = bits.reshape(len(bodies), -1, 5)
    values = groups @ np.array([16, 8, 4, 2, 1], dtype=np.uint8)
    chars = B32[values.astype(np.intp)]
    text = chars.tobytes().decode("ascii")
    width = chars.shape[1]
    return ["ISCC:" + text[k * width : (k + 1) * width] for k in range(len(bodies))]


def flip(rng: np.random.Generator, body: np.ndarray, bits: int) -> np.ndarray:
    """A copy of a 32-byte body with `bits` distinct bits flipped."""
    out = body.copy()
    for position in rng.choice(256, size=bits, replace=False):
        out[position // 8] ^= np.uint8(1 << (7 - position % 8))
    return out


def plant(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, Planted]:
    """Random codes for n scenes, with groups and pairs planted (about 8% of rows) and failed rows."""
    data = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    instance = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    mixed = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    planted = Planted()
    order = rng.permutation(n)  # planted rows are scattered over the index
    cursor = 0

    def take(k: int) -> list[int]:
        nonlocal cursor
        rows = sorted(int(r) for r in order[cursor : cursor + k])
        cursor += k
        return rows

    for _ in range(n // 100):  # identical groups of 2-5
        rows = take(int(rng.integers(2, 6)))
        for r in rows[1:]:
            data[r], instance[r], mixed[r] = data[rows[0]], instance[rows[0]], mixed[rows[0]]
        planted.identical.append(rows)
    for _ in range(n // 100):  # near-identical pairs
        a, b = take(2)
        data[b] = flip(rng, data[a], int(rng.integers(1, DATA_BITS + 1)))
        mixed[b] = flip(rng, mixed[a], int(rng.integers(0, 9)))
        planted.near.append((a, b))
    for _ in range(n // 100):  # look-alike pairs
        a, b = take(2)
        mixed[b] = flip(rng, mixed[a], int(rng.integers(1, MIXED_BITS + 1)))
        planted.look_alike.append((a, b))
    failed = take(n // 1000)
    planted.failed = len(failed)
    instance[failed] = 0  # marks them: written as failed rows below
    return data, instance, mixed, planted


def make_index(path: Path, n: int, seed: int = 1) -> Planted:
    """Write an index.jsonl of n synthetic scenes to `path`; what was planted."""
    rng = np.random.default_rng(seed)
    data, instance, mixed, planted = plant(n, rng)
    failed = set(r for r in np.flatnonzero(~instance.any(axis=1)).tolist())
    head = headers()
    sums = np.concatenate([data[:, :16], instance[:, :16]], axis=1)
    columns = {
        "data": encode(head["data"], data),
        "instance": encode(head["instance"], instance),
        "mixed": encode(head["mixed"], mixed),
        "sum": encode(head["sum"], sums),
    }
    with (
        open(path, "w", encoding="utf-8") as out,
        open(path.with_suffix(".tsv"), "w", encoding="utf-8") as tsv,
    ):
        tsv.write("\t".join(INDEX_FIELDS) + "\n")
        for row in range(n):
            values = _row(row, columns, row in failed)
            out.write(json.dumps(values) + "\n")
            tsv.write("\t".join(_tsv_value(values[name]) for name in INDEX_FIELDS) + "\n")
    return planted


def _row(row: int, columns: dict[str, list[str]], failed: bool) -> dict[str, Any]:
    plate, well = divmod(row, 1000)
    name = f"plates/plate_{plate:04d}/well_{well:03d}.ome.zarr"
    ok = not failed
    return {
        "input": name,
        "scene": 0,
        "name": "Image:0",
        "status": "ok" if ok else "failed",
        "iscc_code": columns["sum"][row] if ok else None,
        "data_code": columns["data"][row] if ok else None,
        "instance_code": columns["instance"][row] if ok else None,
        "datahash": None,
        "iscc_mixed": columns["mixed"][row] if ok else None,
        "image_iscc_code": None,
        "format": "ome-zarr",
        "reader": "zarr 3.1.5",
        "dtype": "uint16",
        "dims": {"T": 1, "C": 2, "Z": 8, "Y": 512, "X": 512, "S": 1},
        "planes": 16,
        "bytes": 8388608,
        "file_iscc_code": None,
        "error": None if ok else "TiffFileError: not a TIFF file",
        "views": 4 if ok else None,
        "views_status": "ok" if ok else "failed",
        "views_flat": False if ok else None,
        "views_error": None,
        "container": f"results/{name}/container.json",
    }


# --- checking what similar found ------------------------------------------------------------------


def name_of(row: int) -> str:
    plate, well = divmod(row, 1000)
    return f"plates/plate_{plate:04d}/well_{well:03d}.ome.zarr"


def check(record: dict[str, Any], planted: Planted) -> list[str]:
    """What `similar`'s record misses or adds against the planted groups and pairs (empty: all right)."""
    problems: list[str] = []
    group_of: dict[str, int] = {}
    relation_of_group: dict[int, str] = {}
    for group in record["groups"]:
        relation_of_group[group["group"]] = group["relation"]
        for member in group["members"]:
            group_of[member["input"]] = group["group"]
    pairs = {frozenset((p["a"]["input"], p["b"]["input"])): p for p in record["pairs"]}

    for rows in planted.identical:
        groups = {group_of.get(name_of(r)) for r in rows}
        if len(groups) != 1 or None in groups:
            problems.append(f"identical group {rows} split or missing: {groups}")
        elif relation_of_group[groups.pop()] != "identical":
            problems.append(f"identical group {rows} is not an identical group")
    for relation, planted_pairs in (("near-identical", planted.near), ("look-alike", planted.look_alike)):
        for a, b in planted_pairs:
            pair = pairs.get(frozenset((name_of(a), name_of(b))))
            if pair is None:
                problems.append(f"{relation} pair {a}, {b} not found")
            elif pair["relation"] != relation:
                problems.append(f"{relation} pair {a}, {b} reported as {pair['relation']}")
    expected_groups = len(planted.identical) + len(planted.near) + len(planted.look_alike)
    if len(record["groups"]) != expected_groups:
        problems.append(f"{len(record['groups'])} groups, {expected_groups} planted")
    expected_pairs = sum(len(g) - 1 for g in planted.identical) + len(planted.near) + len(planted.look_alike)
    if len(record["pairs"]) != expected_pairs:
        problems.append(f"{len(record['pairs'])} pairs, {expected_pairs} planted")
    if record["skipped"] != planted.failed:
        problems.append(f"{record['skipped']} rows skipped, {planted.failed} failed rows planted")
    return problems


# --- measuring ------------------------------------------------------------------------------------

READ = (
    "import json, sys\n"
    "n = 0\n"
    "with open(sys.argv[1], encoding='utf-8') as f:\n"
    "    for line in f:\n"
    "        json.loads(line); n += 1\n"
)
LOAD = "import sys\nfrom bioiscc.similar import load_scenes\nload_scenes([sys.argv[1]])\n"


GNU_TIME = "/usr/bin/time"


def measure(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stderr of a command run in a fresh process.

    The peak RSS is GNU time's (its own small process forks the command), else the child's from
    os.wait4 (which may count the pages of this process that the child had before it ran the command).
    """
    timed = os.path.exists(GNU_TIME)
    full = [GNU_TIME, "-f", "%M", *command] if timed else command
    started = time.perf_counter()
    process = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}: {err}")
    if timed:
        *rest, last = err.strip().splitlines() or ["0"]
        return seconds, int(last) / 1024, "\n".join(rest)
    return seconds, usage.ru_maxrss / 1024, err.strip()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bioiscc-bench-similar"))
    parser.add_argument("--search", default="auto", choices=("auto", "brute", "tables"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    index = args.workdir / f"index-{args.scenes}-{args.seed}.jsonl"
    planted_file = index.with_suffix(".planted.json")
    if not (index.exists() and index.with_suffix(".tsv").exists() and planted_file.exists()):
        started = time.perf_counter()
        planted = make_index(index, args.scenes, args.seed)
        planted_file.write_text(json.dumps(planted.as_dict()))
        print(
            f"wrote {index} ({index.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s"
        )
    stored = json.loads(planted_file.read_text())
    planted = Planted(
        [list(g) for g in stored["identical"]],
        [tuple(p) for p in stored["near"]],
        [tuple(p) for p in stored["look_alike"]],
        stored["failed"],
    )
    out_json = args.workdir / "similar.json"
    commands = {
        "read": [sys.executable, "-c", READ, str(index)],
        "load": [sys.executable, "-c", LOAD, str(index)],
        "similar": [
            sys.executable, "-m", "bioiscc", "similar", str(index), "--search", args.search,
            "--tsv", str(args.workdir / "similar.tsv"), "--json", str(out_json),
        ],
        "similar-tsv": [
            sys.executable, "-m", "bioiscc", "similar", str(index.with_suffix(".tsv")), "--search",
            args.search, "--tsv", str(args.workdir / "similar-from-tsv.tsv"),
        ],
    }  # fmt: skip
    print(machine())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    summary = ""
    for run in range(args.runs):
        for name, command in commands.items():
            seconds, rss, err = measure(command)
            results[name].append((seconds, rss))
            if name == "similar":
                summary = err
            print(f"run {run + 1} {name:11s} {seconds:6.1f} s {rss:7.0f} MB", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(summary)

    problems = check(json.loads(out_json.read_text()), planted)
    if (args.workdir / "similar.tsv").read_bytes() != (args.workdir / "similar-from-tsv.tsv").read_bytes():
        problems.append("similar found other pairs in the TSV index than in the JSON Lines index")
    print(f"| {args.scenes:,} scenes | median (best) s | peak RSS MB |")
    print("| --- | ---: | ---: |")
    for name, values in results.items():
        times = [s for s, _ in values]
        peak = max(r for _, r in values)
        print(f"| {name} | {statistics.median(times):.1f} ({min(times):.1f}) | {peak:.0f} |")
    planted_pairs = sum(len(g) - 1 for g in planted.identical) + len(planted.near) + len(planted.look_alike)
    print(
        f"planted: {len(planted.identical)} identical groups, {len(planted.near)} near-identical pairs, "
        f"{len(planted.look_alike)} look-alike pairs ({planted_pairs} pairs), {planted.failed} failed rows: "
        + ("all found, nothing else" if not problems else f"{len(problems)} problems")
    )
    for problem in problems[:20]:
        print("  " + problem)
    seconds = statistics.median(s for s, _ in results["similar"])
    rss = max(r for _, r in results["similar"])
    missed = []
    if args.scenes >= 1_000_000 and seconds > TARGET_SECONDS:
        missed.append(f"wall {seconds:.1f} s > {TARGET_SECONDS:.0f} s")
    if args.scenes >= 1_000_000 and rss > TARGET_MB:
        missed.append(f"peak RSS {rss:.0f} MB > {TARGET_MB:.0f} MB")
    if problems:
        missed.append("planted relations not found exactly")
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
