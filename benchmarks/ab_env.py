"""A/B runs of `bioiscc hash FILE` under different environment settings, alternating, in fresh processes.

    python benchmarks/ab_env.py FILE RUNS SETTING...

Each SETTING is `NAME=VALUE[,NAME=VALUE...]` (`-` for none), or `iscc-sum` (the `iscc-sum`
command on FILE) or `iscc-sum:PATH` (on another file, such as the raw-pixel OME-TIFF). Every run
takes its turn with the others, so that all see the same machine load; printed per setting: the
median wall time (with the best and the first quartile) and the median CPU time (user + system of
the command, from getrusage). Used for the A/B figures in benchmarks/README.md (BIOISCC_HANDOFF,
BIOISCC_READAHEAD, BIOISCC_MMAP, BIOISCC_TEARDOWN); benchmarks/bench_hash.py gives the table of
every format.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time


def command_and_env(setting: str, path: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if setting == "iscc-sum":
        return ["iscc-sum", path], env
    if setting.startswith("iscc-sum:"):
        return ["iscc-sum", setting.removeprefix("iscc-sum:")], env
    for pair in setting.split(",") if setting != "-" else []:
        name, _, value = pair.partition("=")
        env[name] = value
    return ["bioiscc", "hash", path], env


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, runs, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    results: dict[str, list[tuple[float, float]]] = {setting: [] for setting in settings}
    for _ in range(runs):
        for setting in settings:
            results[setting].append(timed(*command_and_env(setting, path)))
    for setting, measured in results.items():
        walls = sorted(wall for wall, _ in measured)
        cpu = statistics.median(cpu for _, cpu in measured)
        print(
            f"{setting:40s} wall median {statistics.median(walls):.3f} "
            f"(best {walls[0]:.3f}, q1 {walls[len(walls) // 4]:.3f})  cpu median {cpu:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
