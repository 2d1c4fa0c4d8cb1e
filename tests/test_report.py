"""The report page (`results/index.html`), built by the real commands and loaded in a real browser.

The page is made as the workflow makes it: `bioiscc walk/hash/extract-views/mix --batch` and
`bioiscc index --batch --rows-output` over a few small TIFFs (two with the same pixels, one flat,
one 6 x 6, one broken), `bioiscc similar` over the index, and `bioiscc index --rows-from --similar
--html`. Headless Chromium (Debian's `chromium`) loads it, runs its script and dumps the DOM; the
page writes any script error or blocked request into #errors, and the number of rows it rendered
into <body data-rendered>. Filters are set through the page's address (`#state=flat`), as a user's
link would, and through its controls, worked by a page that frames it (HARNESS). Without Chromium
these tests skip, unless BIOISCC_REQUIRE_BROWSER=1 (CI), which turns its absence into a failure.
A screenshot is written to tests/artifacts/report.png.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO, json_lines, run_cli

np = pytest.importorskip("numpy")
tifffile = pytest.importorskip("tifffile")

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
#: input -> the state the page gives it, in the page's order: failures and warnings first
EXPECTED = {
    "broken.tif": "failed",
    "flat.tif": "flat",
    "copy.ome.tif": "ok",
    "plain.tif": "ok",
    "tiny.tif": "ok",
}


def chromium() -> str:
    """The Chromium command, or skip (fail under BIOISCC_REQUIRE_BROWSER=1) when it is absent."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        reason = "Chromium not installed (apt-get install chromium)"
        if os.environ.get("BIOISCC_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; BIOISCC_REQUIRE_BROWSER=1 requires it")
        pytest.skip(reason)
    return found


def headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    command += ["--enable-logging=stderr", "--v=0"]  # console messages on stderr
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


class Page(HTMLParser):
    """What a test reads of the rendered DOM: body attributes, table rows, the #errors text."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.rows: list[dict[str, str | None]] = []
        self.errors: str | None = None
        self.errors_hidden = False
        self._in_errors = False
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.body = found
        elif tag == "tr" and "data-input" in found:
            self.rows.append(found)
        elif tag == "pre" and found.get("id") == "errors":
            self.errors, self._in_errors = "", True
            self.errors_hidden = "hidden" in found

    def handle_endtag(self, tag: str) -> None:
        self._in_errors = self._in_errors and tag != "pre"

    def handle_data(self, data: str) -> None:
        if self._in_errors:
            self.errors = (self.errors or "") + data


def load(browser: str, page: Path, fragment: str = "") -> Page:
    """The page's DOM after its script ran; fails on any script error, blocked request or console
    message (the page logs nothing when all is well)."""
    result = headless(browser, "--virtual-time-budget=10000", "--dump-dom", page.as_uri() + fragment)
    assert result.returncode == 0, result.stderr
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    dom = Page(result.stdout)
    assert dom.errors == "" and dom.errors_hidden, dom.errors
    assert dom.body.get("data-rendered") is not None, "the page's script did not finish"
    return dom


def inputs(dom: Page) -> list[str | None]:
    return [row["data-input"] for row in dom.rows]


def write_inputs(data: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 4096, size=(2, 16, 16), dtype=np.uint16)
    data.mkdir()
    tifffile.imwrite(data / "plain.tif", pixels)
    tifffile.imwrite(data / "copy.ome.tif", pixels, ome=True)  # the same pixels, another format
    tifffile.imwrite(data / "flat.tif", np.full((6, 6), 7, dtype=np.uint8))  # no contrast: flat views
    tifffile.imwrite(data / "tiny.tif", rng.integers(0, 255, size=(6, 6), dtype=np.uint8))
    (data / "broken.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 8)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with index.html, index.jsonl and duplicates.json, made by the workflow's commands."""
    root = tmp_path_factory.mktemp("report")
    write_inputs(root / "data")
    batch = root / "batch.jsonl"
    batch.write_text(
        "".join(
            json.dumps({"source": f"data/{p.name}", "dir": f"results/{p.name}"}) + "\n"
            for p in sorted((root / "data").iterdir())
        )
    )

    def bioiscc(*args: str) -> None:
        run_cli(*args, cwd=root, check=True)

    for step in ("walk", "hash", "extract-views", "mix"):
        bioiscc(step, "--batch", "batch.jsonl", "--batch-log", f"{step}.log.jsonl", "--no-progress")
    bioiscc("index", "--batch", "batch.jsonl", "--relative-to", "data", "--images", "image.jsonl",
            "--rows-output", "rows.jsonl")  # fmt: skip
    (root / "batches.txt").write_text("rows.jsonl\n")
    bioiscc("index", "--rows-from", "batches.txt", "--jsonl", "index.jsonl")
    bioiscc("similar", "index.jsonl", "--json", "duplicates.json")
    bioiscc("index", "--rows-from", "batches.txt", "--similar", "duplicates.json", "--html", "index.html")
    return root


# ---- the page as written (no browser) ----


def embedded(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_index_rows_say_which_views_are_flat(built: Path) -> None:
    rows = {row["input"]: row for row in json_lines((built / "index.jsonl").read_text())}
    assert rows["flat.tif"]["views_status"] == "ok" and rows["flat.tif"]["views_flat"] is True
    assert [rows[name]["views_flat"] for name in ("plain.tif", "tiny.tif")] == [False, False]
    assert rows["broken.tif"]["views_flat"] is None
    image = json_lines((built / "results" / "flat.tif" / "image.jsonl").read_text())[0]
    assert image["flat"] is True and "carries no picture" in image["warnings"][0]


def test_page_is_self_contained_with_counts_groups_and_legend(built: Path) -> None:
    page = (built / "index.html").read_text()
    # no network: a Content-Security-Policy allows inline script and style and data: images only
    assert "default-src 'none'; img-src data:" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    # counts by format and state, each a link that filters the table
    counts = page.split('<table class="counts">', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<th>tiff</th>.*?<th>", counts)
    assert '<a href="#format=tiff&amp;state=flat">1</a>' in counts
    assert '<a href="#state=failed">1</a>' in counts and '<a href="#">5</a>' in counts
    # the group of scenes that share pixels, linking to the table filtered to it
    assert "Scenes that share pixels (1)" in page
    assert '<a href="#group=1">group 1</a>: <code>copy.ome.tif</code>' in page
    for column in ("iscc_code", "iscc_mixed", "file_iscc_code", "views", "state"):
        assert f"<dt>{column}</dt>" in page
    # rows embedded as JSON, failures and warnings first; the tiny view embedded at its own 6 x 6
    # size, for the browser to scale up pixel by pixel
    data = embedded(page)
    fields = data["fields"]
    rows = [dict(zip(fields, row, strict=True)) for row in data["rows"]]
    assert [(row["input"], row["state"]) for row in rows] == list(EXPECTED.items())
    assert [row["group"] for row in rows] == [None, None, 1, 1, None]
    (tiny,) = [row for row in rows if row["input"] == "tiny.tif"]
    from PIL import Image

    (uri,) = [uri for view, uri in tiny["thumbs"]]
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (6, 6)
    assert "image-rendering: pixelated" in page and "width: 64px; height: 64px" in page


def test_skipped_inputs_and_stale_results_are_listed() -> None:
    from bioiscc.report_page import render_page

    page = render_page(
        [],
        "bioiscc index: 0 inputs",
        skipped=[{"input": "notes/README.txt", "reason": "not matched by the include patterns"}],
        stale=[{"path": "results/gone.tif", "reason": "its input no longer exists"}],
    )
    assert "Skipped inputs (1)" in page and "<code>notes/README.txt</code>: not matched" in page
    assert "Stale results (1)" in page and "<code>results/gone.tif</code>" in page
    assert "Skipped inputs" not in render_page([], "bioiscc index: 0 inputs")
    # a row of another status (as an index may list skipped inputs) comes after failed ones, with its reason
    rows = [
        {"input": "a.tif", "scene": 0, "status": "ok", "iscc_code": "ISCC:K4A"},
        {"input": "b.txt", "scene": None, "status": "skipped", "error": "not an image"},
        {"input": "c.tif", "scene": None, "status": "failed", "error": "truncated"},
    ]
    data = embedded(render_page(rows, "bioiscc index: 3 inputs"))
    assert data["states"] == ["failed", "skipped", "views failed", "flat", "ok"]
    assert [(row[0], row[3], row[-1]) for row in data["rows"]] == [
        ("c.tif", "failed", "truncated"),
        ("b.txt", "skipped", "not an image"),
        ("a.tif", "ok", None),
    ]


# ---- in the browser ----


def test_page_in_browser_lists_failures_first_without_errors(built: Path) -> None:
    browser = chromium()
    dom = load(browser, built / "index.html")
    assert [(row["data-input"], row["data-state"]) for row in dom.rows] == list(EXPECTED.items())
    assert dom.body["data-rendered"] == dom.body["data-matching"] == "5"

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    shot = headless(
        browser, f"--screenshot={screenshot}", "--window-size=1400,900", (built / "index.html").as_uri()
    )
    assert shot.returncode == 0, shot.stderr
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 10_000
    print(f"screenshot of the report page: {screenshot}")


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("#state=flat", ["flat.tif"]),
        ("#q=COPY", ["copy.ome.tif"]),  # any case, any part of the input, codes or error
        ("#q=truncated", ["broken.tif"]),
        ("#format=ome-tiff", ["copy.ome.tif"]),
        ("#group=1", ["copy.ome.tif", "plain.tif"]),
        ("#sort=input&desc=1", sorted(EXPECTED, reverse=True)),
        ("#size=50&page=3", list(EXPECTED)),  # past the last page: the last page, here the first
    ],
)
def test_page_in_browser_filters_and_sorts(built: Path, fragment: str, expected: list[str]) -> None:
    assert inputs(load(chromium(), built / "index.html", fragment)) == expected


#: a page that loads index.html in a frame (same origin under --allow-file-access-from-files), works
#: its controls as a user would (types a filter, picks a state, clicks column heads and a group
#: link) and writes the rows shown after each step into its own DOM, for --dump-dom
HARNESS = """<!DOCTYPE html><html><body><iframe id="page" src="index.html" width="1400" height="900"></iframe>
<pre id="out"></pre><script>
var frame = document.getElementById("page"), out = [];
function later(step) { setTimeout(step, 400); }
frame.onload = function () {
  var d = frame.contentDocument, w = frame.contentWindow;
  function note(what) {
    var rows = Array.from(d.querySelectorAll("tbody tr[data-input]"))
      .map(function (r) { return r.dataset.input; });
    out.push(what + " " + rows.join(",") + " " + w.location.hash);
  }
  function set(id, value, event) {
    var e = d.getElementById(id);
    e.value = value;
    e.dispatchEvent(new w.Event(event));
  }
  note("start");
  set("q", "COPY", "input");
  later(function () {
    note("typed");
    set("q", "", "input");
    later(function () {
      set("state", "flat", "change"); note("state");
      set("state", "", "change");
      d.querySelector('th[data-key="input"]').click(); note("sorted");
      d.querySelector('th[data-key="input"]').click(); note("reversed");
      d.querySelector('.groups a[href="#group=1"]').click();
      later(function () {
        note("group");
        out.push("errors " + d.getElementById("errors").textContent);
        document.getElementById("out").textContent = out.join("\\n");
      });
    });
  });
};
</script></body></html>
"""


def test_page_in_browser_responds_to_the_controls(built: Path) -> None:
    harness = built / "harness.html"
    harness.write_text(HARNESS)
    result = headless(
        chromium(),
        "--allow-file-access-from-files",
        "--virtual-time-budget=20000",
        "--dump-dom",
        harness.as_uri(),
    )
    assert [line for line in result.stderr.splitlines() if ":CONSOLE" in line] == []
    found = re.search(r'<pre id="out">(.*?)</pre>', result.stdout, re.S)
    assert found is not None and found.group(1), result.stdout[-2000:]
    steps = dict(line.split(" ", 1) for line in html.unescape(found.group(1)).splitlines())
    assert steps == {
        "start": ",".join(EXPECTED) + " ",
        "typed": "copy.ome.tif #q=COPY",
        "state": "flat.tif #state=flat",
        "sorted": ",".join(sorted(EXPECTED)) + " #sort=input",
        "reversed": ",".join(sorted(EXPECTED, reverse=True)) + " #sort=input&desc=1",
        "group": "copy.ome.tif,plain.tif #group=1",
        "errors": "",
    }


def report_bench() -> ModuleType:
    name = "bench_report"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_page_in_browser_pages_through_many_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 scenes (the benchmark's synthetic rows): 100 rendered at a time, filtered in the browser."""
    from bioiscc import report_page
    from bioiscc.report_page import render_page

    monkeypatch.setattr(report_page, "THUMB_BUDGET", 300)  # the rows are what this is about

    browser = chromium()
    bench = report_bench()
    rows = bench.synthetic_rows(10_000, bench.write_pngs(tmp_path / "views"))
    started = time.perf_counter()
    text = render_page(rows, "bioiscc index: 10000 inputs", bench.identical_groups(rows, 50))
    written = time.perf_counter() - started
    page = tmp_path / "index.html"
    page.write_text(text, encoding="utf-8")
    size = page.stat().st_size
    print(f"10,000 scenes: page written in {written:.2f} s, {size / 1e6:.1f} MB")
    assert size < 10_000 * 400 + 300 * 5_500  # about 360 bytes a scene, and 300 thumbnails of noise

    dom = load(browser, page)
    assert dom.body["data-rendered"] == "100" and dom.body["data-matching"] == "10000"
    assert [row["data-state"] for row in dom.rows] == ["failed"] * 100  # 100 failed rows come first
    name = rows[2_345]["input"]
    dom = load(browser, page, f"#q={name}")
    assert inputs(dom) == [name]
    dom = load(browser, page, "#state=flat&page=2")
    assert dom.body["data-matching"] == "200" and len(dom.rows) == 100
