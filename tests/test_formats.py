"""Formats by content and through bioio plugins, and `bioiscc formats`.

- TIFF-based files (an Aperio-style SVS here, written with tifffile: a tiled pyramid, a thumbnail,
  a label and a macro image) are read as TIFFs whatever their name, and walked as tifffile's
  series in its order: the codes equal those of `--source tiff` and of an independent whole-series
  read with tifffile hashed by `tests.test_samples.reference_code`.
- A file named as a TIFF without a TIFF header is refused with a clear error.
- A file no native reader claims is read by the installed bioio plugin that claims and accepts it
  (bioio-imageio for PNG and GIF here); its codes equal an independent Pillow read, and the records
  name the plugin and its version. The plugins of natively read formats are never asked.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

import bioiscc
from bioiscc import records
from bioiscc.sources import detect, open_source
from bioiscc.sources.plugins import NOT_FALLBACK, _fallback_candidates, claiming
from tests.conftest import json_lines, run_cli
from tests.test_samples import reference_code, tiff_reference

tifffile = pytest.importorskip("tifffile")

APERIO = "Aperio Image Library v12.0.15 \r\n"
SVS_SERIES = ["Baseline", "Thumbnail", "Label", "Macro"]


def write_svs(path: Path, bigtiff: bool = False, byteorder: str = "<") -> None:
    """An Aperio-like slide: tiled level 0, thumbnail, tiled level 1, label (reduced), macro."""
    rng = np.random.default_rng(14)

    def rgb(height: int, width: int) -> np.ndarray:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)

    pages = [
        (
            rgb(192, 256),
            {"tile": (64, 64), "compression": "zlib"},
            "256x192 [0,0 256x192] (64x64) J2K|MPP = 0.5",
        ),
        (rgb(48, 64), {}, "256x192 -> 64x48 - |AppMag = 20"),
        (rgb(96, 128), {"tile": (64, 64), "compression": "zlib"}, "256x192 [0,0 256x192] (64x64) -> 128x96"),
        (rgb(40, 50), {"subfiletype": 1}, "label 50x40"),
        (rgb(40, 90), {"subfiletype": 9, "compression": "jpeg"}, "macro 90x40"),
    ]
    with tifffile.TiffWriter(path, bigtiff=bigtiff, byteorder=byteorder) as tif:
        for data, options, description in pages:
            tif.write(data, photometric="rgb", description=APERIO + description, metadata=None, **options)


@pytest.fixture(scope="module")
def svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("svs") / "slide.svs"
    write_svs(path)
    return path


def codes(records_: list[dict]) -> list[str]:
    assert all(r["status"] == "ok" for r in records_), [r["error"] for r in records_]
    return [r["iscc_code"] for r in records_]


def test_svs_is_walked_as_tifffiles_series(svs: Path) -> None:
    with tifffile.TiffFile(svs) as tif:
        assert tif.is_svs and [s.name for s in tif.series] == SVS_SERIES
        level0 = tif.series[0].levels[0].shape
    manifest = bioiscc.walk(svs)
    records.validate(manifest)
    assert (manifest["format"], manifest["source_kind"]) == ("svs", "tiff")
    assert manifest["reader"] == f"tifffile {tifffile.__version__}"
    assert [s["name"] for s in manifest["scenes"]] == SVS_SERIES
    baseline = manifest["scenes"][0]["dims"]
    assert (baseline["Y"], baseline["X"], baseline["S"]) == level0  # level 0 of the pyramid only
    got = codes(bioiscc.hash_scenes(svs))
    assert got == codes(bioiscc.hash_scenes(svs, source="tiff")) == tiff_reference(svs)
    assert len(set(got)) == 4
    assert codes(bioiscc.hash_manifest(manifest)) == got


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("SLIDE.SVS", b"II*\x00"),
        ("slide", b"II*\x00"),  # no suffix
        ("slide.qptiff", b"II*\x00"),
        ("slide.bif", b"II*\x00"),  # also claimed by bioio-imageio: the TIFF header decides
        ("slide.data", b"II*\x00"),  # a suffix no reader claims
        ("slide.tf8", b"II+\x00"),  # BigTIFF
        ("slide.btf", b"MM\x00+"),  # big-endian BigTIFF
        ("slide.tif", b"MM\x00*"),  # big-endian classic TIFF
    ],
)
def test_tiff_family_by_header_whatever_the_name(svs: Path, tmp_path: Path, name: str, header: bytes) -> None:
    path = tmp_path / name
    if header == b"II*\x00":
        path.write_bytes(svs.read_bytes())
    else:
        write_svs(
            path, bigtiff=header[2:] in (b"+\x00", b"\x00+"), byteorder=">" if header[:2] == b"MM" else "<"
        )
    assert path.read_bytes()[:4] == header
    assert detect(path) == "tiff"
    with open_source(path) as source:
        assert source.kind == "tiff" and source.format == "svs"
        assert [s.name for s in source.scenes()] == SVS_SERIES
    assert codes(bioiscc.hash_scenes(path)) == tiff_reference(path) == tiff_reference(svs)


def test_cli_hashes_an_svs_without_source(svs: Path) -> None:
    out = run_cli("hash", str(svs), check=True)
    got = json_lines(out.stdout)
    assert [r["scene"]["name"] for r in got] == SVS_SERIES
    assert [r["iscc_code"] for r in got] == tiff_reference(svs)
    assert all(r["format"] == "svs" for r in got)


@pytest.mark.parametrize("name", ["fake.tif", "FAKE.TIFF", "fake.ome.tif", "fake.svs"])
def test_file_named_tiff_without_tiff_header_is_refused(tmp_path: Path, name: str) -> None:
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path, format="PNG")  # a PNG named .tif
    with pytest.raises(
        bioiscc.InputError, match="not a readable TIFF: named .* but the file has no TIFF header"
    ):
        bioiscc.walk(path)
    result = run_cli("walk", str(path)) if name == "fake.tif" else None
    if result is not None:
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            f"bioiscc: error: {path}: not a readable TIFF: named '.tif' but the file has no TIFF header"
        ]


# --- bioio plugins ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imageio_plugin() -> str:
    pytest.importorskip("bioio_imageio", reason="bioio-imageio is not installed (test extra)")
    return f"bioio_imageio {version('bioio-imageio')}"


def test_png_through_bioio_imageio(tmp_path: Path, imageio_plugin: str) -> None:
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(rgb)
    gray16 = tmp_path / "gray16.PNG"
    Image.fromarray(rng.integers(0, 65536, (25, 35), dtype=np.uint16)).save(gray16)
    for path, axes in ((rgb, "YXS"), (gray16, "YX")):
        with Image.open(path) as image:
            independent = reference_code(np.asarray(image), axes)
        manifest = bioiscc.walk(path)
        records.validate(manifest)
        assert (manifest["format"], manifest["reader"], manifest["source_kind"]) == (
            "png",
            imageio_plugin,
            "bioio",
        )
        (record,) = bioiscc.hash_scenes(path)
        records.validate(record)
        assert (record["reader"], record["format"]) == (imageio_plugin, "png")
        assert record["iscc_code"] == independent
        assert codes(bioiscc.hash_manifest(manifest)) == [independent]
        assert codes(bioiscc.hash_scenes(path, source="bioio")) == [independent]
    assert bioiscc.walk(gray16)["scenes"][0]["dtype"] == "uint16"


def test_animated_gif_frames_are_t(tmp_path: Path, imageio_plugin: str) -> None:
    from PIL import Image, ImageSequence

    rng = np.random.default_rng(8)
    frames = [
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).quantize(16) for _ in range(3)
    ]
    path = tmp_path / "movie.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as image:
        stack = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
    (record,) = bioiscc.hash_scenes(path)
    assert (record["dims"]["T"], record["dims"]["S"], record["planes"]) == (3, 3, 9)
    assert record["iscc_code"] == reference_code(stack, "TYXS")


def test_cli_hash_png(tmp_path: Path, imageio_plugin: str) -> None:
    from PIL import Image

    path = tmp_path / "cells.png"
    pixels = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    Image.fromarray(pixels).save(path)
    (record,) = json_lines(run_cli("hash", str(path), check=True).stdout)
    assert record["reader"] == imageio_plugin
    assert record["iscc_code"] == reference_code(pixels, "YX")


def test_plugin_errors_are_one_clear_line(tmp_path: Path, imageio_plugin: str) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(bioiscc.InputError, match="no installed bioio plugin reads this file .*bioio-imageio"):
        bioiscc.walk(broken)
    unclaimed = tmp_path / "notes.xyz"
    unclaimed.write_text("hello")
    with pytest.raises(bioiscc.InputError) as raised:
        bioiscc.walk(unclaimed)
    assert str(raised.value).startswith(f"{unclaimed}: unsupported format '.xyz'")
    assert "bioiscc formats" in raised.value.cause and "\n" not in raised.value.cause


def test_natively_read_formats_never_go_to_a_plugin(tmp_path: Path, imageio_plugin: str) -> None:
    names = {candidate.plugin.name for candidate in _fallback_candidates()}
    assert "bioio-imageio" in names and not names & set(NOT_FALLBACK)
    # bioio-imageio claims .dv and .bif; the native DV reader and the TIFF header come first
    assert [p.name for _, p in claiming("x.dv", _fallback_candidates())] == ["bioio-imageio"]
    fake_dv = tmp_path / "fake.dv"
    fake_dv.write_bytes(b"\0" * 64)
    assert detect(fake_dv) == "bioio"
    with pytest.raises(bioiscc.InputError) as raised:
        bioiscc.walk(fake_dv)
    assert "plugin" not in raised.value.cause and "imageio" not in raised.value.cause


def test_claiming_prefers_the_longest_suffix(imageio_plugin: str) -> None:
    # imageio claims both ".if" and ".gif": a GIF is claimed by ".gif" (its format name)
    assert [(s, p.name) for s, p in claiming("a.GIF", _fallback_candidates())] == [(".gif", "bioio-imageio")]
    assert claiming("a.unknownsuffix", _fallback_candidates()) == []


# --- bioiscc formats --------------------------------------------------------------------------


def test_formats_json_lists_native_readers_and_plugins(imageio_plugin: str) -> None:
    listing = json.loads(run_cli("formats", "--json", check=True).stdout)
    tiff = listing["native"][0]
    assert tiff["library"] == "tifffile" and tiff["version"] == tifffile.__version__
    assert {".svs", ".ndpi", ".tif"} <= set(tiff["suffixes"]) and "49492a00" in tiff["magic"]
    plugins = {row["name"]: row for row in listing["plugins"]}
    imageio = plugins["bioio-imageio"]
    assert (imageio["version"], imageio["fallback"], imageio["use"]) == (
        version("bioio-imageio"),
        True,
        "fallback",
    )
    assert ".png" in imageio["suffixes"]
    for name in set(plugins) & set(NOT_FALLBACK):
        assert plugins[name]["fallback"] is False, name
    from click.testing import CliRunner

    from bioiscc.cli import main

    result = CliRunner().invoke(main, ["formats"])  # in this process: the plugins are imported once
    assert result.exit_code == 0, result.output
    table = result.output
    assert "Native readers" in table and f"library: tifffile {tifffile.__version__}" in table
    assert f"  bioio-imageio {version('bioio-imageio')}: fallback" in table.splitlines()
    assert max(len(line) for line in table.splitlines()) <= 79  # an 80-column terminal


# --- the workflow --------------------------------------------------------------------------------


@pytest.mark.workflow
@pytest.mark.slow
def test_workflow_reads_whole_slides_and_plugin_formats(
    tmp_path: Path, svs: Path, imageio_plugin: str
) -> None:
    """An SVS (default include), a PNG (added to include) and a PNG named .tif, in one real run."""
    pytest.importorskip("snakemake")
    from PIL import Image

    from tests.test_workflow import index_rows, snakemake

    data = tmp_path / "data"
    data.mkdir()
    (data / "slide.svs").write_bytes(svs.read_bytes())
    pixels = np.arange(20 * 24, dtype=np.uint8).reshape(20, 24)
    Image.fromarray(pixels).save(data / "cells.png")
    Image.fromarray(pixels).save(data / "renamed.tif", format="PNG")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(
        "input_dir: data\nviews: {enabled: false}\ninclude: ['*.svs', '*.png', '*.tif']\n"
    )
    output = snakemake(tmp_path)
    rows = {(row["input"], row["scene"]): row for row in index_rows(tmp_path)}
    assert [rows["slide.svs", k]["iscc_code"] for k in range(4)] == tiff_reference(svs)
    assert [rows["slide.svs", k]["name"] for k in range(4)] == SVS_SERIES
    assert rows["cells.png", 0]["iscc_code"] == reference_code(pixels, "YX")
    (renamed,) = [row for row in rows.values() if row["input"] == "renamed.tif"]
    assert renamed["status"] == "failed" and "no TIFF header" in renamed["error"]
    assert "3 inputs, 5 scenes: 5 done, 0 failed; 1 input failed as a whole; failed: renamed.tif" in output
    walk = json.loads((tmp_path / "results" / "cells.png" / "walk.json").read_text())
    assert (walk["format"], walk["reader"]) == ("png", imageio_plugin)
