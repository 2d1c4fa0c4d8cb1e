"""The report page (`results/index.html`) for a synthetic index of many scenes: time to write, size,
and, where Chromium is installed, the time a headless browser takes to load and render it.

    python benchmarks/bench_report.py                  # 100,000 scenes
    python benchmarks/bench_report.py --scenes 10000 --no-browser

The rows are as `bioiscc index` makes them (every column; 256-bit random codes in the real code
lengths; input paths of realistic length), 1 % failed with a one-line error, 2 % with flat views,
and 500 identical pairs grouped as `bioiscc similar` groups them. Every scene has 3 views, pointing
at three real PNGs written once (6 x 6, 128 x 128 and 512 x 300 pixels), so the page embeds
thumbnails up to its budget (`bioiscc.report_page.THUMB_BUDGET`) as it would for a real run.
Targets (at 100,000 scenes): written in at most 30 s, at most 60 MB, the first page rendered by
Chromium at most 10 s after navigation, without an error. Exits 1 when one is missed. Not part of pytest
(tests/test_report.py loads `synthetic_rows` small).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bioiscc.cli_workflow import INDEX_FIELDS, summary_line
from bioiscc.report_page import render_page

FORMATS = [("ome-tiff", "tifffile"), ("czi", "pylibczirw"), ("nd2", "nd2"), ("ome-zarr", "zarr")]
TARGET_SECONDS = 30.0
TARGET_MB = 60.0
TARGET_BROWSER_SECONDS = 10.0


def _code(rng: random.Random, header: str) -> str:
    """A code of the real length: ISCC: + header + base32 of 256 random bits."""
    body = base64.b32encode(header.encode() * 2 + rng.randbytes(32)).decode().rstrip("=")
    return "ISCC:" + body[:55]


def write_pngs(folder: Path) -> list[Path]:
    """Three real view PNGs: a tiny one, a square one and a wide one."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, shape in (("tiny", (6, 6)), ("square", (128, 128)), ("wide", (300, 512))):
        path = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, size=shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def synthetic_rows(scenes: int, pngs: list[Path], seed: int = 0) -> list[dict[str, Any]]:
    """`scenes` index rows as `bioiscc index` keeps them (with `_pngs`), some failed, some flat."""
    rng = random.Random(seed)
    rows = []
    for n in range(scenes):
        fmt, reader = FORMATS[n % len(FORMATS)]
        row: dict[str, Any] = dict.fromkeys(INDEX_FIELDS)
        row.update(
            input=f"lab{n % 37:02d}/project-{n % 211:03d}/2026-{1 + n % 12:02d}/sample_{n:07d}.{fmt}",
            scene=0,
            name=f"Scene #{n % 5}",
            container=f"results/x/{n}/container.json",
        )
        if n % 100 == 99:
            row.update(status="failed", scene=None, views_status="failed")
            row["error"] = row["views_error"] = "corrupt or truncated TIFF: invalid offset to first page"
            rows.append(row)
            continue
        row.update(
            status="ok",
            iscc_code=_code(rng, "K"),
            data_code=_code(rng, "G"),
            instance_code=_code(rng, "I"),
            datahash="1e20" + rng.randbytes(32).hex(),
            iscc_mixed=_code(rng, "E"),
            image_iscc_code=_code(rng, "K"),
            format=fmt,
            reader=f"{reader} 1.0",
            dtype="uint16",
            dims={"T": 1, "C": 2, "Z": 1 + n % 30, "Y": 512, "X": 512, "S": 1},
            planes=2 * (1 + n % 30),
            bytes=2 * 2 * 512 * 512 * (1 + n % 30),
            file_iscc_code=_code(rng, "K"),
            views=3,
            views_status="ok",
            views_flat=n % 50 == 7,
            _pngs=[(f"view_{k}", path) for k, path in enumerate(pngs)],
        )
        rows.append(row)
    return rows


def identical_groups(rows: list[dict[str, Any]], pairs: int) -> list[dict[str, Any]]:
    """`pairs` groups of two scenes, as `bioiscc similar --json` gives them (with their pairs)."""
    ok = [row for row in rows if row["status"] == "ok"]
    groups = []
    for number in range(1, min(pairs, len(ok) // 2) + 1):
        a, b = ok[2 * number - 2], ok[2 * number - 1]
        members = [{"input": a["input"], "scene": 0}, {"input": b["input"], "scene": 0}]
        pair = {"group": number, "relation": "identical", "a": members[0], "b": members[1]}
        groups.append({"group": number, "relation": "identical", "members": members, "pairs": [pair]})
    return groups


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def browser_load(browser: str, page: Path) -> tuple[float, float | None, str]:
    """Seconds for headless Chromium to start, load the page and dump its DOM (after the script
    ran); seconds from navigation to the first page of rows rendered, as the page measured it."""
    import re

    started = time.perf_counter()
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    ready = re.search(r'data-ready-ms="(\d+)"', result.stdout)
    return time.perf_counter() - started, int(ready.group(1)) / 1000 if ready else None, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--no-browser", action="store_true", help="Only write the page.")
    parser.add_argument("--keep", type=Path, help="Write the page here (default: a temporary folder).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        rows = synthetic_rows(args.scenes, write_pngs(folder / "views"))
        groups = identical_groups(rows, 500)
        page = args.keep or folder / "index.html"
        started = time.perf_counter()
        text = render_page(rows, summary_line(rows, len(rows), with_views=True), groups)
        page.write_text(text, encoding="utf-8")
        seconds = time.perf_counter() - started
        megabytes = page.stat().st_size / 1e6
        print(
            f"{args.scenes:,} scenes: written in {seconds:.1f} s, {megabytes:.1f} MB "
            f"({page.stat().st_size / args.scenes:.0f} bytes per scene); load {os.getloadavg()[0]:.2f}"
        )
        missed = seconds > TARGET_SECONDS or megabytes > TARGET_MB
        browser = None if args.no_browser else chromium()
        if browser is not None:
            load, ready, dom = browser_load(browser, page)
            rendered = ready is not None and 'data-rendered="100"' in dom and 'id="errors" hidden=""' in dom
            print(
                f"chromium: first page of rows rendered {ready} s after navigation; start, load and "
                f"DOM dump {load:.1f} s; rendered without error: {rendered}"
            )
            missed = missed or ready is None or not rendered or ready > TARGET_BROWSER_SECONDS
        elif not args.no_browser:
            print("chromium: not installed, browser load not measured")
    print("targets missed" if missed else "targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
