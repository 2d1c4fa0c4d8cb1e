"""OMERO images as a source: pixels read over the Blitz API (omero-py), decoded as big-endian.

    omero://HOST[:PORT]/image/ID      one scene
    omero://HOST[:PORT]/fileset/ID    one scene per image of the fileset, by series index, then image id
    omero://HOST[:PORT]/dataset/ID    not one input: each image is its own. `dataset_images(uri)` (or
                                      `python -m bioiscc.sources.omero images URI`) lists their URIs

Credentials come from the environment only: OMERO_SESSION_KEY, or OMERO_USER and OMERO_PASSWORD. A
URI with `user:password@` is refused. Credentials are handed to omero-py in-process; they are never
logged, never part of a record or an error message, never on any command line.

Pixels come from the raw pixels store, which sends big-endian bytes: they are decoded as such ('>u2'
for uint16, ...), so the canonical bytes equal the pixel values. A plane wider or higher than the
server's plane limit (`getMaxPlaneSize`) is fetched as tiles (`getTile`) and assembled row by row.
The store and the connection are always closed.

Failures give one line: the server cannot be reached, the login is refused, the image does not
exist (or is not visible to this user), the server denies access, or it does not answer in time
(BIOISCC_OMERO_TIMEOUT seconds, default 60). Transient connection failures are retried
(BIOISCC_OMERO_ATTEMPTS attempts in all, default 3) with exponential backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from ..errors import InputError, MissingPluginError, SceneError, one_line
from ..locations import OMERO_SCHEME, is_omero_uri, redact
from ..scene import SceneInfo, SceneReader, Source, make_dims

log = logging.getLogger("bioiscc.omero")

SCHEME = OMERO_SCHEME
DEFAULT_PORT = 4064
KINDS = ("image", "fileset", "dataset")
URI_FORM = "omero://HOST[:PORT]/image/ID, /fileset/ID or /dataset/ID"

#: OMERO pixel type name -> dtype of the raw pixels store's bytes (big-endian; "bit" is one byte 0/1)
PIXEL_TYPES: dict[str, str] = {
    "int8": "i1",
    "uint8": "u1",
    "int16": ">i2",
    "uint16": ">u2",
    "int32": ">i4",
    "uint32": ">u4",
    "float": ">f4",
    "double": ">f8",
    "bit": "?",
}

#: omero.pixeldata.max_plane_width/height when the server does not say (OMERO's own default)
DEFAULT_MAX_PLANE = (3192, 3192)
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ATTEMPTS = 3
BACKOFF_S = 1.0
CONNECT_TIMEOUT_CAP_S = 15.0

# Exception class names (over the MRO), so that classification needs no omero import.
TRANSIENT = frozenset(
    {
        "ConnectFailedException",  # includes ConnectionRefusedException: a restarting server
        "ConnectionLostException",
        "CloseConnectionException",
        "DatabaseBusyException",
        "TryAgain",
    }
)
TIMEOUTS = frozenset({"TimeoutException", "ConnectTimeoutException", "InvocationTimeoutException"})
LOGIN_REFUSED = frozenset({"PermissionDeniedException", "CannotCreateSessionException"})
#: omero.client raises this after its own connect-timeout retries are used up
CONNECT_TIMEOUT_MESSAGE = "Obtained null object prox"

T = TypeVar("T")
_sleep: Callable[[float], None] = time.sleep  # replaced in tests


# --------------------------------------------------------------------------------------------- URIs


@dataclass(frozen=True)
class OmeroURI:
    """A parsed omero:// URI; `netloc` keeps the host and port as the user wrote them."""

    netloc: str
    host: str
    port: int
    kind: str
    id: int

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def child(self, kind: str, oid: int) -> str:
        return f"{SCHEME}://{self.netloc}/{kind}/{oid}"

    def __str__(self) -> str:
        return self.child(self.kind, self.id)


def parse_uri(location: str) -> OmeroURI:
    """Parse omero://HOST[:PORT]/KIND/ID; refuse credentials, queries and anything else."""
    shown = redact(location)
    if not is_omero_uri(location):
        raise InputError(shown, f"not an OMERO URI ({URI_FORM})")
    if "@" in location:
        raise InputError(
            shown,
            "credentials do not belong in the URI; set OMERO_USER and OMERO_PASSWORD, or OMERO_SESSION_KEY",
        )
    parts = urlsplit(location)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise InputError(shown, f"invalid port in OMERO URI ({URI_FORM})") from exc
    match = re.fullmatch(r"/(image|fileset|dataset)/(\d+)/?", parts.path)
    if not parts.hostname or match is None or parts.query or parts.fragment:
        raise InputError(shown, f"not a valid OMERO URI; expected {URI_FORM}")
    return OmeroURI(parts.netloc, parts.hostname, port, match.group(1), int(match.group(2)))


# ------------------------------------------------------------------------- credentials, settings


@dataclass(frozen=True)
class Credentials:
    """From the environment only; no field appears in repr() (and so in no traceback or log)."""

    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    session_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, location: str) -> Credentials:
        key = os.environ.get("OMERO_SESSION_KEY") or None
        if key:
            return cls(session_key=key)
        user, password = os.environ.get("OMERO_USER"), os.environ.get("OMERO_PASSWORD")
        if user and password is not None:
            return cls(user=user, password=password)
        raise InputError(
            location, "no OMERO credentials: set OMERO_USER and OMERO_PASSWORD, or OMERO_SESSION_KEY"
        )

    def scrub(self, text: str) -> str:
        """Text with every credential value masked (defence in depth, for servers' messages)."""
        for secret in (self.password, self.session_key, self.user):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def refused(self) -> str:
        if self.session_key:
            return "OMERO session refused: the key in OMERO_SESSION_KEY is invalid or expired"
        return "OMERO login refused: check OMERO_USER and OMERO_PASSWORD"


@dataclass(frozen=True)
class Settings:
    timeout: float = DEFAULT_TIMEOUT_S
    attempts: int = DEFAULT_ATTEMPTS

    @classmethod
    def from_environment(cls, location: str) -> Settings:
        try:
            timeout = float(os.environ.get("BIOISCC_OMERO_TIMEOUT", DEFAULT_TIMEOUT_S))
            attempts = int(os.environ.get("BIOISCC_OMERO_ATTEMPTS", DEFAULT_ATTEMPTS))
        except ValueError as exc:
            raise InputError(
                location, "BIOISCC_OMERO_TIMEOUT and BIOISCC_OMERO_ATTEMPTS must be numbers"
            ) from exc
        if timeout <= 0 or attempts < 1:
            raise InputError(location, "BIOISCC_OMERO_TIMEOUT must be > 0 and BIOISCC_OMERO_ATTEMPTS >= 1")
        return cls(timeout=timeout, attempts=attempts)

    @property
    def connect_timeout(self) -> float:
        return min(self.timeout, CONNECT_TIMEOUT_CAP_S)


# ---------------------------------------------------------------------------------------- errors


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_transient(exc: BaseException) -> bool:
    return bool(_names(exc) & TRANSIENT)


def _server_message(exc: BaseException, credentials: Credentials) -> str:
    """The text of a server's exception, credentials masked (omero.ServerError carries `message`)."""
    message = getattr(exc, "message", None) or getattr(exc, "reason", None)
    if not isinstance(message, str) or not message:
        message = str(exc).replace("{", " ").replace("}", " ")  # Ice prints multi-line blocks
    return credentials.scrub(one_line(message))


def explain(exc: BaseException, uri: OmeroURI, credentials: Credentials, settings: Settings) -> str:
    """One line for a failure talking to OMERO; never any credential."""
    names = _names(exc)
    server = uri.server
    if "ConnectionRefusedException" in names:
        text = f"cannot reach the OMERO server {server}: connection refused"
    elif "DNSException" in names:
        text = f"cannot reach the OMERO server {server}: host not found"
    elif "ConnectionLostException" in names:
        text = f"lost the connection to the OMERO server {server}"
    elif names & {"SocketException", "ConnectFailedException", "CloseConnectionException"}:
        text = f"cannot reach the OMERO server {server}: {type(exc).__name__}"
    elif "ConnectTimeoutException" in names or CONNECT_TIMEOUT_MESSAGE in str(exc):
        text = f"the OMERO server {server} did not answer within {settings.connect_timeout:g} s (timeout)"
    elif names & TIMEOUTS:
        text = f"the OMERO server {server} did not answer within {settings.timeout:g} s (timeout)"
    elif names & LOGIN_REFUSED:
        text = credentials.refused()
    elif "SessionException" in names:
        text = f"the OMERO session ended ({type(exc).__name__}); log in again"
    elif "SecurityViolation" in names:
        text = f"permission denied by the OMERO server {server}: {_server_message(exc, credentials)}"
    elif "MissingPyramidException" in names:
        text = f"the OMERO server {server} is still building the pyramid of this image; try again later"
    else:
        text = f"OMERO error from {server}: {type(exc).__name__}: {_server_message(exc, credentials)}"
    return one_line(text)


def retrying(action: Callable[[], T], attempts: int, recover: Callable[[], None] | None = None) -> T:
    """Run `action`; after a transient failure, wait (1 s, 2 s, ...), `recover`, and try again."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            delay = BACKOFF_S * 2 ** (attempt - 1)
            log.info("transient OMERO failure (%s); retry %d in %.1f s", type(exc).__name__, attempt, delay)
            _sleep(delay)
            if recover is not None:
                recover()
    raise AssertionError("unreachable")  # pragma: no cover


class _LoginRefused(Exception):
    """BlitzGateway.connect() returned False without an error: the credentials were not accepted."""


# ------------------------------------------------------------------------------------ connection


def _gateway_class() -> Any:
    """omero-py's BlitzGateway (tests replace this function with their double)."""
    try:
        from omero.gateway import BlitzGateway
    except ImportError as exc:
        raise ModuleNotFoundError("omero-py") from exc
    return BlitzGateway


def omero_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("omero-py")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def _ice_config(settings: Settings) -> Iterator[str]:
    """A throw-away Ice config file with our timeouts (it holds no credentials)."""
    handle = tempfile.NamedTemporaryFile("w", prefix="bioiscc-ice-", suffix=".cfg", delete=False)
    try:
        with handle:
            handle.write(f"Ice.Override.ConnectTimeout={int(settings.connect_timeout * 1000)}\n")
            handle.write(f"Ice.Default.InvocationTimeout={int(settings.timeout * 1000)}\n")
        yield handle.name
    finally:
        os.unlink(handle.name)


class Connection:
    """One BlitzGateway session, opened with retries, reopened after a transient failure."""

    def __init__(self, uri: OmeroURI, credentials: Credentials, settings: Settings) -> None:
        self.uri = uri
        self.credentials = credentials
        self.settings = settings
        self.conn: Any = None

    def open(self) -> Any:
        if self.conn is None:
            self.conn = retrying(self._connect_once, self.settings.attempts)
        return self.conn

    def reopen(self) -> None:
        self.close()
        self.open()

    def _connect_once(self) -> Any:
        gateway = _gateway_class()
        creds = self.credentials
        with _ice_config(self.settings) as config:
            conn = gateway(
                username=creds.user,
                passwd=creds.password,
                host=self.uri.host,
                port=self.uri.port,
                secure=True,
                extra_config=[config],
                useragent="bioiscc",
            )
            try:
                ok = conn.connect(sUuid=creds.session_key) if creds.session_key else conn.connect()
                if not ok:
                    error = conn.getLastError()
                    raise error if isinstance(error, BaseException) else _LoginRefused()
                conn.SERVICE_OPTS.setOmeroGroup("-1")  # images of every group this user may read
            except BaseException:
                self._close(conn)
                raise
        log.debug("connected to OMERO %s", self.uri.server)
        return conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self._close(conn)

    def _close(self, conn: Any) -> None:
        """End our own session (hard); leave a session joined by key alive for its owner."""
        hard = not self.credentials.session_key
        _quietly(lambda: conn.close(hard=hard))

    def fail(self, exc: BaseException, location: str) -> InputError:
        """The InputError for a failure of the input as a whole."""
        if isinstance(exc, ModuleNotFoundError) and "omero-py" in str(exc):
            return MissingPluginError(location, "omero-py", "omero")
        if isinstance(exc, _LoginRefused):
            return InputError(location, self.credentials.refused())
        text = explain(exc, self.uri, self.credentials, self.settings)
        if is_transient(exc) and self.settings.attempts > 1:
            text += f" (gave up after {self.settings.attempts} attempts)"
        return InputError(location, text)


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as exc:  # closing must never hide the real outcome
        log.debug("closing an OMERO resource failed: %s", type(exc).__name__)


# -------------------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class ImageMeta:
    """What bioiscc needs of one OMERO image: ids, geometry, pixel type, change markers."""

    image_id: int
    name: str
    series: int = 0
    pixels_id: int | None = None
    pixels_type: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    sha1: str | None = None
    update_event: int | None = None
    error: str | None = None

    def fingerprint_entry(self) -> list[Any]:
        return [self.image_id, self.pixels_id, self.pixels_type, self.sizes, self.sha1, self.update_event]


def describe_image(image: Any) -> ImageMeta:
    """Read an omero.gateway ImageWrapper (with its pixels loaded) into an `ImageMeta`."""
    image_id = int(image.getId())
    name = str(image.getName() or f"Image:{image_id}")
    series = int(image.getSeries() or 0)
    pixels = image.getPrimaryPixels()
    if pixels is None:
        return ImageMeta(image_id, name, series, error="the image has no pixels on the server")
    pixels_type = str(pixels.getPixelsType().getValue())
    sizes = {axis: int(getattr(pixels, f"getSize{axis}")()) for axis in ("T", "C", "Z", "Y", "X")}
    details = pixels.getDetails()
    event = details.getUpdateEvent() if details is not None else None
    error = None if pixels_type in PIXEL_TYPES else f"unsupported OMERO pixel type {pixels_type!r}"
    return ImageMeta(
        image_id=image_id,
        name=name,
        series=series,
        pixels_id=int(pixels.getId()),
        pixels_type=pixels_type,
        sizes=sizes,
        sha1=pixels.getSha1() or None,
        update_event=int(event.getId()) if event is not None and event.getId() is not None else None,
        error=error,
    )


def scene_info(index: int, meta: ImageMeta) -> SceneInfo:
    if meta.error is not None or meta.pixels_type is None:
        return SceneInfo(index=index, name=meta.name, error=meta.error or "no pixels")
    dtype = np.dtype(PIXEL_TYPES[meta.pixels_type]).newbyteorder("=")
    return SceneInfo(index=index, name=meta.name, dims=make_dims(meta.sizes), dtype=str(dtype))


def _load_image(conn: Any, uri: OmeroURI, location: str, image_id: int) -> ImageMeta:
    image = conn.getObject("Image", image_id)
    if image is None:
        raise InputError(location, f"no image {image_id} on {uri.server} (or not visible to this user)")
    return describe_image(image)


def _load_fileset(conn: Any, uri: OmeroURI, location: str) -> list[ImageMeta]:
    fileset = conn.getObject("Fileset", uri.id)
    if fileset is None:
        raise InputError(location, f"no fileset {uri.id} on {uri.server} (or not visible to this user)")
    # copyImages() loads the images without their pixels: list them, then load each one.
    order = sorted((int(image.getSeries() or 0), int(image.getId())) for image in fileset.copyImages())
    if not order:
        raise InputError(location, f"fileset {uri.id} has no images")
    metas = []
    for series, image_id in order:
        image = conn.getObject("Image", image_id)
        if image is None:
            error = f"image {image_id} of the fileset is not visible to this user"
            metas.append(ImageMeta(image_id, f"Image:{image_id}", series, error=error))
        else:
            metas.append(describe_image(image))
    return metas


def _max_plane(conn: Any) -> tuple[int, int]:
    try:
        width, height = conn.getMaxPlaneSize()
        return max(1, int(width)), max(1, int(height))
    except Exception as exc:
        if is_transient(exc) or _names(exc) & TIMEOUTS:
            raise
        log.debug("server did not give its max plane size (%s); using OMERO's default", type(exc).__name__)
        return DEFAULT_MAX_PLANE


# ---------------------------------------------------------------------------------------- pixels


def decode(raw: Any, pixels_type: str, height: int, width: int) -> np.ndarray:
    """Bytes of the raw pixels store -> (height, width) array in big-endian dtype; bit as bool."""
    data = bytes(raw)
    count = height * width
    if pixels_type == "bit":
        packed = np.frombuffer(data, np.uint8)
        if packed.size == count:
            return (packed != 0).reshape(height, width)
        if packed.size == (count + 7) // 8:
            return np.unpackbits(packed, count=count).astype(bool).reshape(height, width)
        raise SceneError(f"server sent {packed.size} bytes for a {width}x{height} bit tile")
    dtype = np.dtype(PIXEL_TYPES[pixels_type])
    if len(data) != count * dtype.itemsize:
        raise SceneError(
            f"server sent {len(data)} bytes for a {width}x{height} {pixels_type} tile, "
            f"expected {count * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype).reshape(height, width)


def tile_grid(height: int, width: int, tile_h: int, tile_w: int) -> Iterator[tuple[int, int, int, int]]:
    """(x, y, w, h) of the tiles covering a plane, row by row, the last ones cut to the edge."""
    for y in range(0, height, tile_h):
        for x in range(0, width, tile_w):
            yield x, y, min(tile_w, width - x), min(tile_h, height - y)


def read_plane(
    store: Any, pixels_type: str, z: int, c: int, t: int, shape: tuple[int, int], max_plane: tuple[int, int]
) -> np.ndarray:
    """One plane from an open raw pixels store: whole, or as tiles within the server's plane limit."""
    height, width = shape
    max_w, max_h = max_plane
    if width <= max_w and height <= max_h:
        return decode(store.getPlane(z, c, t), pixels_type, height, width)
    tile_w, tile_h = (int(n) for n in store.getTileSize())
    tile_w, tile_h = max(1, min(tile_w, max_w, width)), max(1, min(tile_h, max_h, height))
    plane = np.empty((height, width), np.dtype(PIXEL_TYPES[pixels_type]))
    for x, y, w, h in tile_grid(height, width, tile_h, tile_w):
        plane[y : y + h, x : x + w] = decode(store.getTile(z, c, t, x, y, w, h), pixels_type, h, w)
    return plane


class OmeroScene:
    """`SceneReader` of one OMERO image: plane (t, c, z) from the raw pixels store, as (Y, X, 1)."""

    def __init__(self, source: OmeroSource, info: SceneInfo, meta: ImageMeta) -> None:
        self.info = info
        self.source = source
        self.meta = meta

    def read(self, t: int, c: int, z: int, extra: tuple[int, ...]) -> np.ndarray:
        return self.source.read_plane(self.meta, z, c, t)[:, :, np.newaxis]


# ---------------------------------------------------------------------------------------- source


class OmeroSource(Source):
    """An OMERO image or fileset; connects on opening, lists scenes from metadata only."""

    format = "omero"
    kind = "omero"

    def __init__(self, location: str) -> None:
        self.uri = parse_uri(location)
        self.location = location
        if self.uri.kind == "dataset":
            raise InputError(
                location,
                "a dataset is not one input: each of its images is; list them with "
                f"'python -m bioiscc.sources.omero images {location}'",
            )
        try:  # a missing omero-py first: setting credentials would not help
            _gateway_class()
        except ModuleNotFoundError as exc:
            raise MissingPluginError(location, "omero-py", "omero") from exc
        self.credentials = Credentials.from_environment(location)
        self.settings = Settings.from_environment(location)
        self.connection = Connection(self.uri, self.credentials, self.settings)
        self._store: Any = None
        self._store_pixels: int | None = None
        try:
            conn = self.connection.open()
            if self.uri.kind == "image":
                self.images = [_load_image(conn, self.uri, location, self.uri.id)]
            else:
                self.images = _load_fileset(conn, self.uri, location)
            self.max_plane = _max_plane(conn)
        except InputError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise self.connection.fail(exc, location) from None

    @property
    def reader_name(self) -> str:
        return f"omero-py {omero_version()}"

    def scenes(self) -> list[SceneInfo]:
        return [scene_info(index, meta) for index, meta in enumerate(self.images)]

    def open_scene(self, info: SceneInfo) -> SceneReader:
        self._close_store()
        return OmeroScene(self, info, self.images[info.index])

    def fingerprint(self) -> str:
        """Changes when any image's pixels change on the server: their update event or checksum."""
        payload = {
            "server": self.uri.server,
            "source": f"{self.uri.kind}/{self.uri.id}",
            "images": [meta.fingerprint_entry() for meta in self.images],
        }
        return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()

    def read_plane(self, meta: ImageMeta, z: int, c: int, t: int) -> np.ndarray:
        shape = (meta.sizes["Y"], meta.sizes["X"])
        pixels_type = str(meta.pixels_type)

        def attempt() -> np.ndarray:
            return read_plane(self._store_for(meta), pixels_type, z, c, t, shape, self.max_plane)

        def recover() -> None:
            self._close_store()
            self.connection.reopen()

        try:
            return retrying(attempt, self.settings.attempts, recover)
        except SceneError:
            raise
        except Exception as exc:
            text = explain(exc, self.uri, self.credentials, self.settings)
            raise SceneError(f"image {meta.image_id}, plane z={z} c={c} t={t}: {text}") from None

    def _store_for(self, meta: ImageMeta) -> Any:
        if self._store is not None and self._store_pixels == meta.pixels_id:
            return self._store
        self._close_store()
        conn = self.connection.open()
        store = conn.createRawPixelsStore()
        try:
            store.setPixelsId(meta.pixels_id, True, conn.SERVICE_OPTS)
        except BaseException:
            _quietly(store.close)
            raise
        self._store, self._store_pixels = store, meta.pixels_id
        return store

    def _close_store(self) -> None:
        store, self._store, self._store_pixels = self._store, None, None
        if store is not None:
            _quietly(store.close)

    def close(self) -> None:
        try:
            self._close_store()
        finally:
            self.connection.close()


def open_omero(location: str, source: str = "auto", reader: str = "native") -> OmeroSource:
    """`open_source` for omero:// URIs (only --source auto/omero and the native reader apply)."""
    if source not in ("auto", "omero") or reader != "native":
        raise InputError(redact(location), "an OMERO URI is read with --source auto and --reader native")
    return OmeroSource(location)


# -------------------------------------------------------------------------------------- datasets


def dataset_images(location: str) -> list[str]:
    """The image URIs of omero://HOST[:PORT]/dataset/ID, by image id (each image is one input)."""
    uri = parse_uri(location)
    if uri.kind != "dataset":
        raise InputError(location, "not a dataset URI (omero://HOST[:PORT]/dataset/ID)")
    connection = Connection(uri, Credentials.from_environment(location), Settings.from_environment(location))
    try:
        conn = connection.open()
        dataset = conn.getObject("Dataset", uri.id)
        if dataset is None:
            raise InputError(location, f"no dataset {uri.id} on {uri.server} (or not visible to this user)")
        ids = sorted(int(image.getId()) for image in dataset.listChildren())
    except InputError:
        raise
    except Exception as exc:
        raise connection.fail(exc, location) from None
    finally:
        connection.close()
    return [uri.child("image", image_id) for image_id in ids]


def expand(location: str) -> list[str]:
    """Inputs a location stands for: a dataset's images; any other location as it is."""
    if is_omero_uri(location) and parse_uri(location).kind == "dataset":
        return dataset_images(location)
    return [location]


def main(argv: list[str] | None = None) -> int:
    """`python -m bioiscc.sources.omero images URI...`: print each input's image URIs, one a line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] != "images":
        print(
            "usage: python -m bioiscc.sources.omero images omero://HOST[:PORT]/dataset/ID ...",
            file=sys.stderr,
        )
        return 2
    try:
        lines = [uri for location in args[1:] for uri in expand(location)]
    except InputError as exc:
        print(f"bioiscc: error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
