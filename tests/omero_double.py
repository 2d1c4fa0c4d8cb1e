"""A test double of the part of omero-py that bioiscc uses, serving real pixels as an OMERO server does.

What it covers: `BlitzGateway(...)` with the real constructor's keywords, `connect()` /
`connect(sUuid=...)` with its real outcomes (True; False with `getLastError()`; or a raised
`Ice.SyscallException`), `getLastError`, `SERVICE_OPTS.setOmeroGroup`, `getObject("Image" |
"Fileset" | "Dataset", id)` (None when absent or not visible), `getMaxPlaneSize`,
`createRawPixelsStore` and the store's `setPixelsId`, `getPlane`, `getTile`, `getTileSize`,
`close`, and the wrappers' accessors (`getId`, `getName`, `getSeries`, `getPrimaryPixels`,
`getPixelsType().getValue()`, `getSizeX..T`, `getSha1`, `getDetails().getUpdateEvent()`,
`copyImages`, `listChildren`).

How it behaves like the server:
- the raw pixels store sends BIG-ENDIAN bytes ("bit": one byte 0/1 per pixel);
- a whole plane wider or higher than the plane limit is refused (ApiUsageException), so a reader
  must fetch such planes as tiles;
- a fileset's `copyImages()` and a dataset's `listChildren()` return images without their pixels
  (as the real queries do): asking them for pixels raises UnloadedCollectionException;
- images of other groups are invisible unless the group context is -1 (all groups);
- every exception is omero-py's real type (Ice, Glacier2, omero) where omero-py is installed, and a
  stand-in of the same name and hierarchy otherwise.

Use `install(monkeypatch, server)` in-process, or run the CLI against pickled servers in a fresh
process: `python -m tests.omero_double SERVERS.pkl bioiscc ARGS...` (or `... images URI...`).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import pickle
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------ exceptions

try:
    import Glacier2
    import Ice
    import omero
    import omero.gateway  # noqa: F401  (defines omero.SecurityViolation & co.)

    HAVE_OMERO = True
except ImportError:  # stand-ins with the same names and hierarchy
    HAVE_OMERO = False


if not HAVE_OMERO:

    class _Namespace:
        pass

    class LocalException(Exception):
        def __init__(self, **fields: Any) -> None:
            super().__init__(" ".join(f"{k} = {v}" for k, v in fields.items()))
            self.__dict__.update(fields)

    class SyscallException(LocalException): ...

    class SocketException(SyscallException): ...

    class ConnectFailedException(SocketException): ...

    class ConnectionRefusedException(ConnectFailedException): ...

    class ConnectionLostException(SocketException): ...

    class DNSException(LocalException): ...

    class TimeoutException(LocalException): ...

    class InvocationTimeoutException(TimeoutException): ...

    class UserException(Exception): ...

    class PermissionDeniedException(UserException):
        def __init__(self, reason: str = "") -> None:
            super().__init__(reason)
            self.reason = reason

    class ServerError(UserException):
        def __init__(self, serverStackTrace: Any = None, serverExceptionClass: Any = None, message: str = ""):
            super().__init__(message)
            self.message = message

    class SecurityViolation(ServerError): ...

    class ApiUsageException(ServerError): ...

    class ValidationException(ApiUsageException): ...

    class ClientError(Exception): ...

    class UnloadedCollectionException(ClientError): ...

    Ice = _Namespace()  # type: ignore[assignment]
    Glacier2 = _Namespace()  # type: ignore[assignment]
    omero = _Namespace()  # type: ignore[assignment]
    for _name, _cls in list(locals().items()):
        if isinstance(_cls, type) and issubclass(_cls, Exception):
            target = Glacier2 if _name == "PermissionDeniedException" else Ice
            if issubclass(_cls, (ServerError, ClientError)):
                target = omero
            setattr(target, _name, _cls)


def refused() -> Exception:
    return Ice.ConnectionRefusedException(error=111)


def connection_lost() -> Exception:
    return Ice.ConnectionLostException(error=104)


def host_not_found(host: str) -> Exception:
    return Ice.DNSException(error=-2, host=host)


def invocation_timeout() -> Exception:
    return Ice.InvocationTimeoutException()


def login_refused(user: str | None) -> Exception:
    return Glacier2.PermissionDeniedException(reason=f"Password check failed for '{user}'")


def security_violation(message: str) -> Exception:
    return omero.SecurityViolation(None, None, message)


def api_usage(message: str) -> Exception:
    return omero.ApiUsageException(None, None, message)


def validation(message: str) -> Exception:
    return omero.ValidationException(None, None, message)


def client_error(message: str) -> Exception:
    return omero.ClientError(message)


def unloaded_collection() -> Exception:
    return omero.UnloadedCollectionException("Error updating collection:pixelsSeq")


# --------------------------------------------------------------------------------------- server

#: numpy dtype -> OMERO pixel type name
OMERO_TYPES = {
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "float32": "float",
    "float64": "double",
    "bool": "bit",
}


@dataclass
class FakeImage:
    id: int
    name: str
    pixels: np.ndarray  # T, C, Z, Y, X in its native dtype (bool for "bit")
    series: int = 0
    fileset: int | None = None
    group: int = 3
    restricted: bool = False  # the server's binary access policy denies reading the pixels
    update_event: int = 100
    sha1: str = ""

    @property
    def pixels_id(self) -> int:
        return self.id + 10_000

    @property
    def pixels_type(self) -> str:
        return OMERO_TYPES[str(self.pixels.dtype)]

    def plane(self, z: int, c: int, t: int) -> np.ndarray:
        return self.pixels[t, c, z]


@dataclass
class FakeServer:
    """Images, users, sessions, a plane limit, failure modes, and a record of what was asked."""

    host: str = "127.0.0.1"
    port: int = 14064
    users: dict[str, str] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    images: dict[int, FakeImage] = field(default_factory=dict)
    datasets: dict[int, list[int]] = field(default_factory=dict)
    max_plane: tuple[int, int] = (3192, 3192)
    tile_size: tuple[int, int] = (256, 256)
    # failure modes
    down: bool = False  # nothing listens: connection refused
    unresolvable: bool = False  # DNS fails
    hangs: bool = False  # accepts, never answers: omero.client gives up after its connect timeouts
    fail_connects: int = 0  # the next N connects lose the connection (transient)
    fail_reads: int = 0  # the next N pixel reads lose the connection (transient)
    read_timeouts: bool = False  # every pixel read times out
    # what happened
    calls: Counter[str] = field(default_factory=Counter)
    gateways: list[FakeGateway] = field(default_factory=list)
    stores: list[FakeStore] = field(default_factory=list)
    ice_configs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def uri(self, kind: str, oid: int) -> str:
        return f"omero://{self.address}/{kind}/{oid}"

    def add_image(self, pixels: np.ndarray, image_id: int | None = None, **kwargs: Any) -> FakeImage:
        """Serve `pixels` (T, C, Z, Y, X) as an image; returns it (its id picks the URI)."""
        if pixels.ndim != 5:
            raise ValueError("pixels are T, C, Z, Y, X")
        image_id = image_id if image_id is not None else max(self.images, default=0) + 1
        kwargs.setdefault("name", f"image {image_id}")
        kwargs.setdefault("sha1", hashlib.sha1(np.ascontiguousarray(pixels).tobytes()).hexdigest())
        image = FakeImage(id=image_id, pixels=np.ascontiguousarray(pixels), **kwargs)
        self.images[image_id] = image
        return image

    def open_handles(self) -> list[str]:
        """Gateways and stores not closed (there should be none once bioiscc is done)."""
        return [f"gateway {i}" for i, g in enumerate(self.gateways) if g.open] + [
            f"store {i}" for i, s in enumerate(self.stores) if not s.closed
        ]

    def stats(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "open": self.open_handles(), "ice_configs": self.ice_configs}


#: servers by "host:port"; what the double's BlitzGateway can reach
REGISTRY: dict[str, FakeServer] = {}


# ------------------------------------------------------------------------------------- wrappers


class FakeServiceOpts(dict[str, str]):
    def setOmeroGroup(self, value: Any = None) -> None:
        if value is None:
            self.pop("omero.group", None)
        else:
            self["omero.group"] = str(value)

    def getOmeroGroup(self) -> str | None:
        return self.get("omero.group")


class _Value:
    def __init__(self, value: Any) -> None:
        self._value = value

    def getValue(self) -> Any:
        return self._value

    def getId(self) -> Any:
        return self._value


class _Details:
    def __init__(self, event: int) -> None:
        self._event = event

    def getUpdateEvent(self) -> _Value:
        return _Value(self._event)


class FakePixelsWrapper:
    def __init__(self, image: FakeImage) -> None:
        self._image = image

    def getId(self) -> int:
        return self._image.pixels_id

    def getPixelsType(self) -> _Value:
        return _Value(self._image.pixels_type)

    def _size(self, axis: int) -> int:
        return int(self._image.pixels.shape[axis])

    def getSizeT(self) -> int:
        return self._size(0)

    def getSizeC(self) -> int:
        return self._size(1)

    def getSizeZ(self) -> int:
        return self._size(2)

    def getSizeY(self) -> int:
        return self._size(3)

    def getSizeX(self) -> int:
        return self._size(4)

    def getSha1(self) -> str:
        return self._image.sha1

    def getDetails(self) -> _Details:
        return _Details(self._image.update_event)


class FakeImageWrapper:
    def __init__(self, image: FakeImage, pixels_loaded: bool = True) -> None:
        self._image = image
        self._pixels_loaded = pixels_loaded

    def getId(self) -> int:
        return self._image.id

    def getName(self) -> str:
        return self._image.name

    def getSeries(self) -> int:
        return self._image.series

    def getPrimaryPixels(self) -> FakePixelsWrapper:
        if not self._pixels_loaded:
            raise unloaded_collection()
        return FakePixelsWrapper(self._image)


class FakeContainerWrapper:
    """A Fileset (`copyImages`) or a Dataset (`listChildren`): images without their pixels."""

    def __init__(self, oid: int, images: list[FakeImage]) -> None:
        self._id = oid
        # the server returns them in no particular order: newest first here
        self._images = sorted(images, key=lambda image: -image.id)

    def getId(self) -> int:
        return self._id

    def copyImages(self) -> list[FakeImageWrapper]:
        return [FakeImageWrapper(image, pixels_loaded=False) for image in self._images]

    def listChildren(self) -> list[FakeImageWrapper]:
        return self.copyImages()


# ------------------------------------------------------------------------------------- services


class FakeStore:
    """The raw pixels store: big-endian bytes, whole planes only within the plane limit."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.image: FakeImage | None = None
        self.closed = False

    def setPixelsId(self, pixels_id: int, bypass: bool, ctx: Any = None) -> None:
        self._alive()
        image = next((i for i in self.server.images.values() if i.pixels_id == pixels_id), None)
        if image is None:
            raise validation(f"Cannot read pixels id={pixels_id}")
        if image.restricted:
            raise security_violation(f"Binary access to pixels id={pixels_id} is restricted")
        self.image = image

    def getTileSize(self) -> list[int]:
        self._loaded()
        return list(self.server.tile_size)

    def getPlane(self, z: int, c: int, t: int) -> bytes:
        image = self._read("getPlane")
        height, width = image.pixels.shape[3:]
        max_w, max_h = self.server.max_plane
        if width > max_w or height > max_h:
            raise api_usage(f"Plane of {width}x{height} exceeds the maximum plane size {max_w}x{max_h}")
        return _big_endian(image.plane(z, c, t))

    def getTile(self, z: int, c: int, t: int, x: int, y: int, w: int, h: int) -> bytes:
        image = self._read("getTile")
        height, width = image.pixels.shape[3:]
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise api_usage(f"Tile {x},{y} {w}x{h} outside the {width}x{height} plane")
        max_w, max_h = self.server.max_plane
        if w > max_w or h > max_h:
            raise api_usage(f"Tile of {w}x{h} exceeds the maximum plane size {max_w}x{max_h}")
        return _big_endian(image.plane(z, c, t)[y : y + h, x : x + w])

    def close(self) -> None:
        self.closed = True
        self.server.calls["store.close"] += 1

    def _alive(self) -> None:
        if self.closed:
            raise client_error("the raw pixels store is closed")

    def _loaded(self) -> FakeImage:
        self._alive()
        if self.image is None:
            raise api_usage("This RawPixelsStore has not been properly initialized.")
        return self.image

    def _read(self, call: str) -> FakeImage:
        image = self._loaded()
        self.server.calls[call] += 1
        if self.server.read_timeouts:
            raise invocation_timeout()
        if self.server.fail_reads > 0:
            self.server.fail_reads -= 1
            self.closed = True  # a lost connection takes the stateful service with it
            raise connection_lost()
        return image


def _big_endian(plane: np.ndarray) -> bytes:
    if plane.dtype == np.bool_:
        return plane.astype(np.uint8).tobytes()
    return np.ascontiguousarray(plane).astype(plane.dtype.newbyteorder(">")).tobytes()


class FakeGateway:
    """omero.gateway.BlitzGateway, with the real constructor's keywords."""

    def __init__(
        self,
        username: str | None = None,
        passwd: str | None = None,
        client_obj: Any = None,
        group: Any = None,
        clone: bool = False,
        try_super: bool = False,
        host: str | None = None,
        port: int | None = None,
        extra_config: Any = None,
        secure: bool | None = None,
        anonymous: bool = True,
        useragent: str | None = None,
        userip: str | None = None,
    ) -> None:
        self._user = username
        self._password = passwd
        self.host, self.port = host, port
        self.secure = secure
        self.server = REGISTRY.get(f"{host}:{port}")
        self.SERVICE_OPTS = FakeServiceOpts()
        self._connected = False
        self._joined: str | None = None
        self._last_error: BaseException | None = None
        self.open = False
        if self.server is not None:
            self.server.gateways.append(self)
            for path in extra_config or []:
                self.server.ice_configs.append(Path(path).read_text())

    # connecting: the outcomes of the real connect()
    def connect(self, sUuid: str | None = None) -> bool:
        server = self.server
        if server is None or server.down:
            raise refused()  # Ice.SyscallException: connect() re-raises it
        server.calls["connect"] += 1
        if server.unresolvable:
            self._last_error = host_not_found(str(self.host))
            return False
        if server.hangs:
            self._last_error = client_error("Obtained null object prox")
            return False
        if server.fail_connects > 0:
            server.fail_connects -= 1
            raise connection_lost()
        if sUuid is not None:
            if sUuid not in server.sessions:
                return False  # a failed join sets no error
            self._joined = sUuid
        elif self._user is None or server.users.get(self._user) != self._password:
            self._last_error = login_refused(self._user)
            return False
        self._connected = self.open = True
        return True

    def getLastError(self) -> BaseException | None:
        return self._last_error

    def isConnected(self) -> bool:
        return self._connected

    def close(self, hard: bool = True) -> None:
        """hard=True kills the session on the server, a joined one too (as killSession does)."""
        self._connected = self.open = False
        if self.server is not None:
            self.server.calls["gateway.close"] += 1
            if hard and self._joined is not None:
                self.server.sessions.discard(self._joined)

    # services
    def getObject(
        self, obj_type: str, oid: Any = None, params: Any = None, attributes: Any = None, opts: Any = None
    ) -> FakeImageWrapper | FakeContainerWrapper | None:
        server = self._session()
        server.calls[f"getObject.{obj_type}"] += 1
        visible = [image for image in server.images.values() if self._visible(image)]
        if obj_type == "Image":
            image = next((i for i in visible if i.id == int(oid)), None)
            return FakeImageWrapper(image) if image is not None else None
        if obj_type == "Fileset":
            members = [i for i in visible if i.fileset == int(oid)]
            return FakeContainerWrapper(int(oid), members) if members else None
        if obj_type == "Dataset":
            if int(oid) not in server.datasets:
                return None
            ids = server.datasets[int(oid)]
            return FakeContainerWrapper(int(oid), [i for i in visible if i.id in ids])
        raise api_usage(f"the double does not serve {obj_type} objects")

    def getMaxPlaneSize(self) -> tuple[int, int]:
        return self._session().max_plane

    def createRawPixelsStore(self) -> FakeStore:
        server = self._session()
        store = FakeStore(server)
        server.stores.append(store)
        return store

    def _session(self) -> FakeServer:
        if not self._connected or self.server is None:
            raise client_error("No session available")
        return self.server

    def _visible(self, image: FakeImage) -> bool:
        return self.SERVICE_OPTS.getOmeroGroup() == "-1" or image.group == 0


# ---------------------------------------------------------------------------------- installing


def install(monkeypatch: Any, *servers: FakeServer) -> list[float]:
    """Route bioiscc's OMERO source to the double; returns the list the backoff sleeps go to."""
    import bioiscc.sources.omero as source

    sleeps: list[float] = []
    monkeypatch.setattr(source, "_gateway_class", lambda: FakeGateway)
    monkeypatch.setattr(source, "_sleep", sleeps.append)
    monkeypatch.setattr(sys.modules[__name__], "REGISTRY", {s.address: s for s in servers})
    return sleeps


def save(path: Path, *servers: FakeServer) -> Path:
    path.write_bytes(pickle.dumps(list(servers)))
    return path


def _run(argv: list[str]) -> int:
    """python -m tests.omero_double SERVERS.pkl (bioiscc ARGS... | images URI...)"""
    import bioiscc.sources.omero as source

    servers: list[FakeServer] = pickle.loads(Path(argv[0]).read_bytes())
    REGISTRY.update({s.address: s for s in servers})
    source._gateway_class = lambda: FakeGateway
    source._sleep = lambda seconds: None
    stats = os.environ.get("OMERO_DOUBLE_STATS")
    if stats:
        atexit.register(lambda: Path(stats).write_text(json.dumps([s.stats() for s in servers])))
    if argv[1] == "images":
        return source.main(argv[1:])
    from bioiscc.cli import main

    main(argv[2:], prog_name="bioiscc")
    return 0


if __name__ == "__main__":
    # run the importable module's copy, so that pickled servers and the gateway share one REGISTRY
    from tests.omero_double import _run as run

    sys.exit(run(sys.argv[1:]))
