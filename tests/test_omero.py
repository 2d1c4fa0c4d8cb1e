"""OMERO as a source: the same codes as the same pixels on disk, clean one-line errors, no credentials.

No OMERO server runs here. `tests/omero_double.py` stands in for the part of omero-py bioiscc uses
and serves real pixels as big-endian bytes with a plane-size limit. With omero-py installed, the
double raises omero-py's own exception types and further tests drive the real omero.gateway
against closed or silent loopback ports. Live tests run against a real server when OMERO_HOST is set.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bioiscc
from bioiscc import api, records
from bioiscc.errors import InputError
from bioiscc.sources import omero as omero_source
from bioiscc.sources.omero import (
    Credentials,
    ImageMeta,
    OmeroSource,
    dataset_images,
    decode,
    describe_image,
    parse_uri,
    read_plane,
    redact,
    tile_grid,
)
from tests import omero_double
from tests.conftest import REPO, VECTORS, json_lines
from tests.omero_double import FakeServer, install

USER = "alice-omero-user"
SECRET = "pw-7f3a9c1e-never-shown"
SESSION = "0b9e2b94-session-key-never-shown"
HAVE_OMERO = omero_double.HAVE_OMERO
REQUIRE_OMERO = os.environ.get("BIOISCC_REQUIRE_OMERO") == "1"  # CI: omero-py must be there
needs_omero = pytest.mark.skipif(
    not HAVE_OMERO, reason="omero-py is not installed (pip install 'bioiscc[omero]')"
)

ALL_TYPES = {
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "float": np.float32,
    "double": np.float64,
    "bit": np.bool_,
}


# ---------------------------------------------------------------------------------------- helpers


def random_pixels(kind: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Pixels of one OMERO type over its whole range; floats include NaN payloads, inf and -0.0."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(ALL_TYPES[kind])
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.kind == "f":
        data = rng.standard_normal(shape).astype(dtype) * 1000
        flat = data.reshape(-1)
        bits = flat.view(np.uint32 if dtype.itemsize == 4 else np.uint64)
        flat[:4] = [np.inf, -np.inf, -0.0, 0.0]
        bits[4] = 0x7FC00001 if dtype.itemsize == 4 else 0x7FF8000000000001  # a NaN with a payload
        return data
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)


def write_ome_tiff(path: Path, pixels: np.ndarray) -> Path:
    import tifffile

    tifffile.imwrite(path, pixels, metadata={"axes": "TCZYX"})
    return path


def local_pixels(location: str | Path, scene: int = 0) -> np.ndarray:
    """A local scene as T, C, Z, Y, X (samples folded into C, as OMERO stores RGB), via iter_planes."""
    info = bioiscc.scenes(location)[scene]
    d = info.dims
    out = np.empty((d["T"], d["C"] * d["S"], d["Z"], d["Y"], d["X"]), np.dtype(info.dtype).newbyteorder("="))
    for plane in bioiscc.iter_planes(location, scene):
        out[plane.t, plane.c, plane.z] = plane.data
    return out


def code_of(location: str | Path) -> list[str]:
    return [r["iscc_code"] for r in api.hash_scenes(str(location))]


def run_double(
    tmp_path: Path, servers: list[FakeServer], *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """The CLI in a fresh process, its OMERO traffic going to pickled double servers."""
    spec = omero_double.save(tmp_path / "servers.pkl", *servers)
    stats = tmp_path / "double-stats.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OMERO_", "BIOISCC_OMERO"))}
    environment |= {"OMERO_DOUBLE_STATS": str(stats)} | (env or {})
    result = subprocess.run(
        [sys.executable, "-m", "tests.omero_double", str(spec), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
    )
    return result, json.loads(stats.read_text()) if stats.exists() else []


LOGIN = {"OMERO_USER": USER, "OMERO_PASSWORD": SECRET}


def assert_no_credentials(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and SESSION not in text and USER not in text


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A double server with one user, routed in-process; afterwards nothing may be left open."""
    fake = FakeServer(users={USER: SECRET}, sessions={SESSION})
    fake.sleeps = install(monkeypatch, fake)  # type: ignore[attr-defined]
    for name in ("OMERO_SESSION_KEY", "BIOISCC_OMERO_TIMEOUT", "BIOISCC_OMERO_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMERO_USER", USER)
    monkeypatch.setenv("OMERO_PASSWORD", SECRET)
    yield fake
    assert fake.open_handles() == [], "bioiscc left OMERO connections or stores open"


# -------------------------------------------------------------------------------------------- URIs


def test_uri_forms() -> None:
    uri = parse_uri("omero://omero.example.org/image/42")
    assert (uri.host, uri.port, uri.kind, uri.id) == ("omero.example.org", 4064, "image", 42)
    uri = parse_uri("OMERO://127.0.0.1:14064/fileset/7/")
    assert (uri.host, uri.port, uri.kind, uri.id, uri.server) == (
        "127.0.0.1",
        14064,
        "fileset",
        7,
        "127.0.0.1:14064",
    )
    assert parse_uri("omero://[::1]:4064/dataset/3").child("image", 9) == "omero://[::1]:4064/image/9"
    for bad in (
        "omero://host/image/abc",
        "omero://host/project/1",
        "omero://host/image/1?x=1",
        "omero:///image/1",
        "omero://host:port/image/1",
        "omero://host/image/1/extra",
    ):
        with pytest.raises(InputError, match="OMERO URI"):
            parse_uri(bad)


def test_uri_with_credentials_is_refused_without_echoing_them() -> None:
    for given in (f"omero://{USER}:{SECRET}@host/image/1", f"omero://{USER}:p@ss/{SECRET}@host/image/1"):
        with pytest.raises(InputError) as caught:
            parse_uri(given)
        assert "credentials do not belong in the URI" in str(caught.value)
        assert str(caught.value).startswith("omero://host/image/1:")
        assert_no_credentials(str(caught.value))
        assert redact(given) == "omero://host/image/1"


def test_credentials_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMERO_USER", USER)
    monkeypatch.setenv("OMERO_PASSWORD", SECRET)
    monkeypatch.delenv("OMERO_SESSION_KEY", raising=False)
    creds = Credentials.from_environment("omero://h/image/1")
    assert_no_credentials(repr(creds), str(creds))
    assert creds.scrub(f"Password check failed for '{USER}' with {SECRET}") == (
        "Password check failed for '***' with ***"
    )
    monkeypatch.setenv("OMERO_SESSION_KEY", SESSION)
    assert Credentials.from_environment("omero://h/image/1").session_key == SESSION


# ---------------------------------------------------------------------------------- pixel decoding


def test_decode_is_big_endian() -> None:
    """The IMAGEWALK table's planes, as the raw pixels store sends them."""
    cases = [
        ("uint8", "01020304", [[1, 2], [3, 4]]),
        ("uint16", "0100020003000400", [[256, 512], [768, 1024]]),
        ("int16", "ffff03e8", [[-1, 1000]]),
        ("uint32", "12345678", [[0x12345678]]),
        ("float", "3f80000040000000", [[1.0, 2.0]]),
        ("double", "3ff0000000000000", [[1.0]]),
        ("int8", "ff7f", [[-1, 127]]),
        ("int32", "fffffffe", [[-2]]),
    ]
    for kind, hexbytes, values in cases:
        want = np.array(values, ALL_TYPES[kind])
        got = decode(bytes.fromhex(hexbytes), kind, *want.shape)
        assert got.dtype.newbyteorder("=") == want.dtype and np.array_equal(got, want), kind
        assert bioiscc.imagewalk.canonical_bytes(got).hex() == hexbytes
    assert decode(bytes.fromhex("7fc0000080000000"), "float", 1, 2).tobytes().hex() == "7fc0000080000000"


def test_decode_bit_planes() -> None:
    want = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]], bool)
    assert np.array_equal(decode(want.astype(np.uint8).tobytes(), "bit", 3, 3), want)
    assert np.array_equal(decode(np.packbits(want).tobytes(), "bit", 3, 3), want)
    with pytest.raises(bioiscc.errors.SceneError):
        decode(b"\x00" * 4, "uint16", 2, 2)


class RecordingStore:
    """A store holding one plane, recording the tiles asked for."""

    def __init__(self, plane: np.ndarray, tile: tuple[int, int]) -> None:
        self.plane, self.tile, self.tiles = plane, tile, []  # type: ignore[var-annotated]

    def getPlane(self, z: int, c: int, t: int) -> bytes:
        raise AssertionError("a plane beyond the limit must be read as tiles")

    def getTileSize(self) -> list[int]:
        return list(self.tile)

    def getTile(self, z: int, c: int, t: int, x: int, y: int, w: int, h: int) -> bytes:
        self.tiles.append((x, y, w, h))
        return self.plane[y : y + h, x : x + w].astype(">u2").tobytes()


def test_tiles_assemble_in_order() -> None:
    plane = np.arange(37 * 50, dtype=np.uint16).reshape(37, 50)
    store = RecordingStore(plane, tile=(16, 8))
    got = read_plane(store, "uint16", 0, 0, 0, plane.shape, max_plane=(20, 20))
    assert np.array_equal(got, plane)
    # row by row, the last column and row cut to the edge, every pixel exactly once
    assert store.tiles[:4] == [(0, 0, 16, 8), (16, 0, 16, 8), (32, 0, 16, 8), (48, 0, 2, 8)]
    assert store.tiles[-1] == (48, 32, 2, 5)
    assert sum(w * h for _, _, w, h in store.tiles) == plane.size
    # a server tile size above the plane limit is cut down to the limit
    store = RecordingStore(plane, tile=(1024, 1024))
    assert np.array_equal(read_plane(store, "uint16", 0, 0, 0, plane.shape, max_plane=(20, 10)), plane)
    assert {(w, h) for _, _, w, h in store.tiles} <= {(20, 10), (10, 10), (20, 7), (10, 7)}
    assert list(tile_grid(3, 3, 5, 5)) == [(0, 0, 3, 3)]


# ------------------------------------------------------------------ same pixels, same codes


@pytest.mark.parametrize("kind", sorted(ALL_TYPES))
def test_every_pixel_type_gives_the_ome_tiff_code(kind: str, server: FakeServer, tmp_path: Path) -> None:
    pixels = random_pixels(kind, (2, 3, 2, 23, 19), seed=len(kind))
    tiff = write_ome_tiff(tmp_path / f"{kind}.ome.tif", pixels)
    image = server.add_image(pixels)
    uri = server.uri("image", image.id)
    assert image.pixels_type == kind
    (local,) = api.hash_scenes(str(tiff), simprints=True)
    (remote,) = api.hash_scenes(uri, simprints=True)
    for key in ("iscc_code", "units", "datahash", "dims", "dtype", "planes", "bytes", "simprints"):
        assert remote[key] == local[key], key
    assert remote["source"] == uri and remote["format"] == "omero"
    assert remote["reader"].startswith("omero-py ")
    records.validate(remote)


@pytest.mark.parametrize("kind", ["uint8", "int16", "float", "double", "bit"])
def test_tiled_reads_give_the_same_code(kind: str, server: FakeServer, tmp_path: Path) -> None:
    pixels = random_pixels(kind, (1, 2, 2, 45, 61), seed=3)
    tiff = write_ome_tiff(tmp_path / "tiled.ome.tif", pixels)
    server.max_plane, server.tile_size = (24, 16), (13, 9)
    image = server.add_image(pixels)
    assert code_of(server.uri("image", image.id)) == code_of(tiff)
    assert server.calls["getPlane"] == 0
    # 5 x 5 tiles of 13 x 9 (the last ones cut) per plane, 4 planes
    assert server.calls["getTile"] == 4 * 5 * 5


def test_small_planes_are_read_whole(server: FakeServer) -> None:
    image = server.add_image(random_pixels("uint16", (2, 1, 3, 8, 8)))
    api.hash_scenes(server.uri("image", image.id))
    assert (server.calls["getPlane"], server.calls["getTile"]) == (6, 0)
    # one store for the image, closed when done; one connection
    assert server.calls["store.close"] == 1 and len(server.stores) == 1 and len(server.gateways) == 1


def test_byte_order_matters(server: FakeServer, tmp_path: Path) -> None:
    """Decoding the store's bytes in native order (as iscc-bio 0.2.0 does) would hash other pixels."""
    pixels = random_pixels("uint16", (1, 1, 2, 16, 16))
    image = server.add_image(pixels)
    swapped = write_ome_tiff(tmp_path / "swapped.ome.tif", pixels.byteswap())
    right = write_ome_tiff(tmp_path / "right.ome.tif", pixels)
    assert code_of(server.uri("image", image.id)) == code_of(right) != code_of(swapped)


VECTOR_FILES = ["img5d_u16.ome.tif", "u8_2d.ome.tif", "f32_z3.ome.tif", "rgb.ome.tif", "rgb_t2c2.ome.tif"]


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_vectors_through_omero(name: str, server: FakeServer, vectors_dir: Path) -> None:
    """The spec's vectors, imported into the double as OMERO would store them (RGB as channels)."""
    expected = json.loads((VECTORS / "expected.json").read_text())[name]
    image = server.add_image(local_pixels(vectors_dir / name))
    (record,) = api.hash_scenes(server.uri("image", image.id))
    assert record["iscc_code"] == expected[0]["iscc_code"]
    assert record["datahash"] == expected[0]["datahash"]


def test_fileset_scenes_by_series_then_id(server: FakeServer, vectors_dir: Path) -> None:
    """multiscene.ome.tif imported as one fileset of two images; ids not in series order."""
    path = vectors_dir / "multiscene.ome.tif"
    expected = json.loads((VECTORS / "expected.json").read_text())["multiscene.ome.tif"]
    server.add_image(local_pixels(path, 1), image_id=50, series=1, fileset=9, name="multiscene.ome.tif [1]")
    server.add_image(local_pixels(path, 0), image_id=51, series=0, fileset=9, name="multiscene.ome.tif [0]")
    server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)), image_id=52, fileset=10)
    uri = server.uri("fileset", 9)
    walked = api.walk(uri)
    assert [s["name"] for s in walked["scenes"]] == ["multiscene.ome.tif [0]", "multiscene.ome.tif [1]"]
    assert walked["format"] == "omero" and walked["source_kind"] == "omero"
    got = api.hash_scenes(uri)
    assert [r["iscc_code"] for r in got] == [s["iscc_code"] for s in expected]
    assert [r["scene"]["index"] for r in got] == [0, 1]
    records.validate(walked)


@pytest.mark.samples
@pytest.mark.parametrize("name", ["nd2/example-zstack.nd2", "nd2/example-multichannel.nd2"])
def test_real_sample_pixels(name: str, server: FakeServer, samples: Path, tmp_path: Path) -> None:
    """Real microscope pixels: ND2 file == its pixels in an OME-TIFF == the same pixels in OMERO."""
    path = samples / name
    pixels = local_pixels(path)
    tiff = write_ome_tiff(tmp_path / "export.ome.tif", pixels)
    server.max_plane, server.tile_size = (100, 100), (64, 48)  # a 128 x 128 plane: tiles
    image = server.add_image(pixels)
    want = code_of(path)
    assert code_of(tiff) == want
    assert code_of(server.uri("image", image.id)) == want
    assert server.calls["getTile"] > 0 and server.calls["getPlane"] == 0


# ------------------------------------------------------------ walk, manifest, biocode, datasets


def test_fingerprint_follows_the_server(server: FakeServer, tmp_path: Path) -> None:
    image = server.add_image(random_pixels("uint16", (1, 1, 1, 8, 8)))
    uri = server.uri("image", image.id)
    manifest = api.walk(uri)
    assert manifest["fingerprint"] == api.walk(uri)["fingerprint"]
    assert api.hash_manifest(manifest)[0]["status"] == "ok"
    for change in ({"update_event": 101}, {"sha1": "0" * 40}):
        before = api.walk(uri)["fingerprint"]
        for key, value in change.items():
            setattr(image, key, value)
        assert api.walk(uri)["fingerprint"] != before
    with pytest.raises(InputError, match="changed since it was walked"):
        api.hash_manifest(manifest)


def test_biocode_has_no_raw_bytes_code(server: FakeServer) -> None:
    image = server.add_image(random_pixels("uint8", (1, 2, 1, 8, 8)))
    container = api.biocode(server.uri("image", image.id))
    records.validate(container)
    assert container["iscc_code"] is None and container["filesize"] is None and container["datahash"] is None
    assert container["status"] == "ok" and len(container["parts"]) == 1


def test_dataset_expands_to_its_images(server: FakeServer) -> None:
    for image_id in (31, 12, 20):
        server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)), image_id=image_id)
    server.datasets[5] = [31, 12, 20]
    assert dataset_images(server.uri("dataset", 5)) == [server.uri("image", i) for i in (12, 20, 31)]
    assert omero_source.expand("cells.czi") == ["cells.czi"]
    with pytest.raises(InputError, match="no dataset 6"):
        dataset_images(server.uri("dataset", 6))
    with pytest.raises(InputError, match="a dataset is not one input"):
        api.walk(server.uri("dataset", 5))


def test_dataset_expansion_command(tmp_path: Path) -> None:
    fake = FakeServer(users={USER: SECRET})
    fake.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)), image_id=8)
    fake.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)), image_id=3)
    fake.datasets[1] = [8, 3]
    result, _ = run_double(tmp_path, [fake], "images", fake.uri("dataset", 1), env=LOGIN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [fake.uri("image", 3), fake.uri("image", 8)]


def test_session_key_login(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMERO_USER")
    monkeypatch.delenv("OMERO_PASSWORD")
    monkeypatch.setenv("OMERO_SESSION_KEY", SESSION)
    image = server.add_image(random_pixels("int16", (1, 1, 1, 8, 8)))
    uri = server.uri("image", image.id)
    assert api.hash_scenes(uri)[0]["status"] == "ok"
    # the user's session outlives bioiscc: the next input joins it again
    assert SESSION in server.sessions
    assert api.walk(uri)["status"] == "ok"


def test_timeouts_reach_ice(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIOISCC_OMERO_TIMEOUT", "30")
    image = server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)))
    api.walk(server.uri("image", image.id))
    (config,) = server.ice_configs
    assert "Ice.Override.ConnectTimeout=15000" in config and "Ice.Default.InvocationTimeout=30000" in config
    assert_no_credentials(config)


# ------------------------------------------------------------------------------ retries, closing


def test_transient_connect_failures_are_retried_with_backoff(server: FakeServer) -> None:
    image = server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)))
    server.fail_connects = 2
    assert api.walk(server.uri("image", image.id))["status"] == "ok"
    assert server.sleeps == [1.0, 2.0]  # type: ignore[attr-defined]


def test_retries_are_bounded(server: FakeServer) -> None:
    image = server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)))
    server.fail_connects = 10
    with pytest.raises(InputError, match="gave up after 3 attempts"):
        api.walk(server.uri("image", image.id))
    assert server.calls["connect"] == 3 and server.sleeps == [1.0, 2.0]  # type: ignore[attr-defined]


def test_lost_connection_while_reading_reconnects(server: FakeServer, tmp_path: Path) -> None:
    pixels = random_pixels("uint32", (1, 2, 3, 10, 12))
    image = server.add_image(pixels)
    server.fail_reads = 2
    assert code_of(server.uri("image", image.id)) == code_of(write_ome_tiff(tmp_path / "a.ome.tif", pixels))
    assert server.calls["connect"] == 3 and len(server.stores) == 3


def test_everything_is_closed_after_a_failure(server: FakeServer) -> None:
    image = server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)), restricted=True)
    (record,) = api.hash_scenes(server.uri("image", image.id))
    assert record["status"] == "failed" and "permission denied" in record["error"]
    server.read_timeouts = True
    image.restricted = False
    (record,) = api.hash_scenes(server.uri("image", image.id))
    assert "did not answer" in record["error"]
    # the fixture checks that no gateway or store is left open


def test_images_of_other_groups_are_found(server: FakeServer) -> None:
    image = server.add_image(random_pixels("uint8", (1, 1, 1, 4, 4)), group=7)
    assert api.walk(server.uri("image", image.id))["status"] == "ok"


def test_no_subprocess_and_no_credentials_in_logs(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"bioiscc started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    caplog.set_level("DEBUG")
    image = server.add_image(random_pixels("uint16", (1, 1, 2, 8, 8)))
    uri = server.uri("image", image.id)
    outputs = [api.walk(uri), api.hash_scenes(uri, simprints=True), api.biocode(uri)]
    server.fail_reads = 1  # a retry, logged
    outputs.append(api.hash_scenes(uri))
    monkeypatch.setenv("OMERO_PASSWORD", "wrong-" + SECRET)
    with pytest.raises(InputError) as caught:
        api.walk(uri)
    assert "login refused" in str(caught.value)
    assert_no_credentials(json.dumps(outputs), caplog.text, str(caught.value))


# ------------------------------------------------------------------- errors, through the CLI


def base_server() -> FakeServer:
    fake = FakeServer(users={USER: SECRET}, sessions={SESSION})
    fake.add_image(random_pixels("uint16", (1, 1, 2, 8, 8)), image_id=1)
    fake.add_image(random_pixels("uint16", (1, 1, 2, 8, 8)), image_id=2, restricted=True)
    return fake


def unreachable(fake: FakeServer) -> None:
    fake.down = True


def unresolvable(fake: FakeServer) -> None:
    fake.unresolvable = True


def hangs(fake: FakeServer) -> None:
    fake.hangs = True


def flaky(fake: FakeServer) -> None:
    fake.fail_connects = 99


def read_timeouts(fake: FakeServer) -> None:
    fake.read_timeouts = True


def unchanged(fake: FakeServer) -> None:
    pass


ERROR_CASES: dict[str, tuple[Any, str, dict[str, str], str]] = {
    # name: (server change, URI path, environment, expected words)
    "unreachable": (
        unreachable,
        "image/1",
        LOGIN,
        "cannot reach the OMERO server 127.0.0.1:14064: connection refused",
    ),
    "host not found": (
        unresolvable,
        "image/1",
        LOGIN,
        "cannot reach the OMERO server 127.0.0.1:14064: host not found",
    ),
    "bad password": (
        unchanged,
        "image/1",
        {"OMERO_USER": USER, "OMERO_PASSWORD": "x" + SECRET},
        "login refused",
    ),
    "bad session key": (unchanged, "image/1", {"OMERO_SESSION_KEY": "y" + SESSION}, "session refused"),
    "no credentials": (unchanged, "image/1", {}, "no OMERO credentials"),
    "missing image": (unchanged, "image/404", LOGIN, "no image 404 on 127.0.0.1:14064"),
    "missing fileset": (unchanged, "fileset/404", LOGIN, "no fileset 404 on 127.0.0.1:14064"),
    "connect timeout": (hangs, "image/1", LOGIN, "did not answer within 15 s (timeout)"),
    "transient, exhausted": (flaky, "image/1", LOGIN, "gave up after 3 attempts"),
    "dataset": (unchanged, "dataset/1", LOGIN, "a dataset is not one input"),
}
PIXEL_ERROR_CASES: dict[str, tuple[Any, str, dict[str, str], str]] = {
    "no permission": (unchanged, "image/2", LOGIN, "permission denied by the OMERO server"),
    "read timeout": (read_timeouts, "image/1", LOGIN, "did not answer within 60 s (timeout)"),
}


def check_failure(result: subprocess.CompletedProcess[str], uri: str, words: str, out: Path) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"bioiscc: error: {uri}: "), lines[0]
    assert words in lines[0], lines[0]
    assert result.stdout == "" and not out.exists()
    assert_no_credentials(result.stderr)


def run_case(tmp_path: Path, case: tuple[Any, str, dict[str, str], str], *args: str) -> None:
    change, path, env, words = case
    fake = base_server()
    change(fake)
    uri = f"omero://{fake.address}/{path}"
    out = tmp_path / "out.json"
    result, stats = run_double(tmp_path, [fake], "bioiscc", *args, uri, "-o", str(out), env=env)
    check_failure(result, uri, words, out)
    assert all(not s["open"] for s in stats), stats


@pytest.mark.parametrize("command", ["walk", "hash", "biocode"])
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_connection_errors(case: str, command: str, tmp_path: Path) -> None:
    run_case(tmp_path, ERROR_CASES[case], command)


@pytest.mark.parametrize("command", ["hash", "biocode"])
@pytest.mark.parametrize("case", sorted(PIXEL_ERROR_CASES))
def test_pixel_errors(case: str, command: str, tmp_path: Path) -> None:
    run_case(tmp_path, PIXEL_ERROR_CASES[case], command)


def test_credentials_in_uri_are_refused(tmp_path: Path) -> None:
    fake = base_server()
    out = tmp_path / "out.json"
    given = f"omero://{USER}:{SECRET}@{fake.address}/image/1"
    for command in ("walk", "hash", "biocode"):
        result, _ = run_double(tmp_path, [fake], "bioiscc", command, given, "-o", str(out), env=LOGIN)
        check_failure(result, fake.uri("image", 1), "credentials do not belong in the URI", out)
        recorded, _ = run_double(tmp_path, [fake], "bioiscc", command, given, "--record-errors", env=LOGIN)
        assert recorded.returncode == 0
        assert_no_credentials(recorded.stdout, recorded.stderr)


def test_hash_record_errors_redacts_credentials_in_uri(tmp_path: Path) -> None:
    fake = base_server()
    given = f"omero://{USER}:{SECRET}@{fake.address}/image/1"
    recorded, _ = run_double(tmp_path, [fake], "bioiscc", "hash", given, "--record-errors", env=LOGIN)
    assert recorded.returncode == 0
    assert_no_credentials(recorded.stdout, recorded.stderr)


def test_record_errors_writes_a_failed_record(tmp_path: Path) -> None:
    fake = base_server()
    out = tmp_path / "walk.json"
    env = {"OMERO_USER": USER, "OMERO_PASSWORD": "x" + SECRET}
    result, _ = run_double(
        tmp_path, [fake], "bioiscc", "walk", fake.uri("image", 1), "--record-errors", "-o", str(out), env=env
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    records.validate(record)
    assert record["status"] == "failed" and "login refused" in record["error"]
    assert_no_credentials(out.read_text(), result.stderr)


def test_cli_success_shows_no_credentials(tmp_path: Path) -> None:
    fake = base_server()
    fake.fail_reads = 1
    uri = fake.uri("image", 1)
    env = LOGIN | {"BIOISCC_DEBUG": "1"}
    for command, options in (("walk", []), ("hash", ["--simprints"]), ("biocode", [])):
        out = tmp_path / f"{command}.json"
        result, stats = run_double(
            tmp_path, [fake], "bioiscc", command, uri, *options, "-o", str(out), env=env
        )
        assert result.returncode == 0, result.stderr
        assert_no_credentials(out.read_text(), result.stderr)
        assert all(not s["open"] for s in stats)
    got = json_lines((tmp_path / "hash.json").read_text())
    assert got[0]["source"] == uri and got[0]["status"] == "ok"


@pytest.mark.parametrize("login", [True, False])
def test_missing_omero_py_names_the_extra(login: bool) -> None:
    """With or without credentials set: a missing omero-py is said first."""
    script = "import sys; sys.modules['omero.gateway'] = None\nfrom bioiscc.cli import main\nmain()\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")} | (LOGIN if login else {})
    result = subprocess.run(
        [sys.executable, "-c", script, "hash", "omero://127.0.0.1:1/image/1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "omero-py" in result.stderr and "'omero' extra as docs/omero.md says" in result.stderr


# ------------------------------------------------------------------------- the real omero-py


@pytest.mark.skipif(not REQUIRE_OMERO, reason="BIOISCC_REQUIRE_OMERO is not 1")
def test_omero_py_is_installed_where_required() -> None:
    assert HAVE_OMERO, "BIOISCC_REQUIRE_OMERO=1 but omero-py (or zeroc-ice) cannot be imported"


@needs_omero
def test_the_real_gateway_is_used() -> None:
    import omero.gateway

    assert omero_source._gateway_class() is omero.gateway.BlitzGateway
    assert omero_source.omero_version()[0].isdigit()


@needs_omero
def test_double_matches_the_real_api() -> None:
    """The double's methods exist in omero-py, and bioiscc reads real omero-py wrappers alike."""
    import inspect

    import omero.gateway

    real = omero.gateway.BlitzGateway
    for name in ("connect", "getLastError", "getObject", "getMaxPlaneSize", "createRawPixelsStore", "close"):
        assert hasattr(real, name), name
        mine = list(inspect.signature(getattr(omero_double.FakeGateway, name)).parameters)
        theirs = list(inspect.signature(getattr(real, name)).parameters)
        assert mine == theirs, name
    assert list(inspect.signature(omero_double.FakeGateway).parameters) == list(
        inspect.signature(real).parameters
    )
    assert isinstance(omero_double.refused(), omero_double.Ice.SyscallException)
    assert isinstance(omero_double.security_violation("x"), omero.SecurityViolation)
    assert isinstance(omero_double.login_refused("u"), omero_double.Glacier2.PermissionDeniedException)


@needs_omero
def test_describe_image_reads_real_omero_wrappers() -> None:
    import omero.model
    from omero.gateway import ImageWrapper
    from omero.rtypes import rint, rstring

    image = omero.model.ImageI(5, True)
    image.setName(rstring("cells.czi [2]"))
    image.setSeries(rint(2))
    pixels = omero.model.PixelsI(7, True)
    pixels_type = omero.model.PixelsTypeI()
    pixels_type.setValue(rstring("uint16"))
    pixels.setPixelsType(pixels_type)
    for axis, size in dict(X=4, Y=3, Z=2, C=1, T=5).items():
        getattr(pixels, f"setSize{axis}")(rint(size))
    pixels.setSha1(rstring("ab12"))
    pixels.getDetails().setUpdateEvent(omero.model.EventI(99, False))  # unloaded, as queries return it
    image.addPixels(pixels)
    want = ImageMeta(5, "cells.czi [2]", 2, 7, "uint16", {"T": 5, "C": 1, "Z": 2, "Y": 3, "X": 4}, "ab12", 99)
    assert describe_image(ImageWrapper(None, image)) == want
    # the double's wrapper gives the same
    pixels = np.zeros((5, 1, 2, 3, 4), np.uint16)
    fake = FakeServer().add_image(pixels, 5, series=2, sha1="ab12", name="cells.czi [2]", update_event=99)
    mirrored = describe_image(omero_double.FakeImageWrapper(fake))
    assert mirrored == ImageMeta(**{**want.__dict__, "pixels_id": fake.pixels_id})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@needs_omero
def test_real_omero_refused_connection(tmp_path: Path) -> None:
    uri = f"omero://127.0.0.1:{closed_port()}/image/1"
    out = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")} | LOGIN
    env |= {"BIOISCC_OMERO_ATTEMPTS": "2", "BIOISCC_DEBUG": "1"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bioiscc", "hash", uri, "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    check_failure(result, uri, "connection refused (gave up after 2 attempts)", out)
    assert time.monotonic() - start < 30


@needs_omero
def test_real_omero_logs_no_credentials(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OMERO_USER", USER)
    monkeypatch.setenv("OMERO_PASSWORD", SECRET)
    monkeypatch.setenv("BIOISCC_OMERO_ATTEMPTS", "2")
    monkeypatch.delenv("OMERO_SESSION_KEY", raising=False)
    monkeypatch.setattr(omero_source, "_sleep", lambda seconds: None)
    caplog.set_level("DEBUG")
    with pytest.raises(InputError, match="connection refused") as caught:
        OmeroSource(f"omero://127.0.0.1:{closed_port()}/image/1")
    assert_no_credentials(caplog.text, str(caught.value))


@needs_omero
@pytest.mark.slow
def test_real_omero_timeout(tmp_path: Path) -> None:
    """A loopback port that accepts no connection: omero.client's connect timeouts, one line."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        with socket.create_connection(silent.getsockname()):  # fill the backlog
            uri = f"omero://127.0.0.1:{silent.getsockname()[1]}/image/1"
            out = tmp_path / "out.json"
            env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")} | LOGIN
            env |= {"BIOISCC_OMERO_TIMEOUT": "1"}
            result = subprocess.run(
                [sys.executable, "-m", "bioiscc", "walk", uri, "-o", str(out)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
    check_failure(result, uri, "did not answer within 1 s (timeout)", out)


# ------------------------------------------------------------------------------------ live server

LIVE = pytest.mark.skipif(
    not os.environ.get("OMERO_HOST"), reason="OMERO_HOST is not set (live tests need an OMERO server)"
)


def live_uri(kind: str, variable: str) -> str:
    oid = os.environ.get(variable)
    if not oid:
        pytest.skip(f"{variable} is not set")
    port = os.environ.get("OMERO_PORT")
    return f"omero://{os.environ['OMERO_HOST']}{':' + port if port else ''}/{kind}/{oid}"


@LIVE
@needs_omero
def test_live_image() -> None:
    uri = live_uri("image", "OMERO_IMAGE_ID")
    walked = api.walk(uri)
    assert walked["status"] == "ok" and len(walked["scenes"]) == 1
    (record,) = api.hash_scenes(uri)
    assert record["status"] == "ok", record["error"]
    local = os.environ.get("OMERO_IMAGE_FILE")
    if local:  # the file this image was imported from: the same pixels, the same code
        scene = int(os.environ.get("OMERO_IMAGE_SCENE", "0"))
        assert record["iscc_code"] == api.hash_scenes(local, scenes=[scene])[0]["iscc_code"]


@LIVE
@needs_omero
def test_live_fileset() -> None:
    uri = live_uri("fileset", "OMERO_FILESET_ID")
    results = api.hash_scenes(uri)
    assert results and all(r["status"] == "ok" for r in results)


@LIVE
@needs_omero
def test_live_dataset() -> None:
    uris = dataset_images(live_uri("dataset", "OMERO_DATASET_ID"))
    assert uris and all(parse_uri(u).kind == "image" for u in uris)
