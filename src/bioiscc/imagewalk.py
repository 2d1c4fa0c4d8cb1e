"""IMAGEWALK: the order of planes and their canonical bytes (spec: shared/spec/IMAGEWALK.md).

    for z in Z:  for c in C*S:  for t in T:  for e in extras:  emit plane(t, c, z, e)

Each plane is written row-major, every pixel big-endian in its own type, nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from .scene import Plane, SceneInfo, SceneReader

IMAGEWALK_VERSION = "1"

#: Above this many bytes, samples of interleaved planes are re-read rather than cached across T.
SAMPLE_CACHE_BYTES = 512 * 1024 * 1024


def plane_order(info: SceneInfo) -> Iterator[tuple[int, int, int, tuple[int, ...]]]:
    """Yield (z, c_effective, t, extra) in walk order; c_effective = c * S + s."""
    d = info.dims
    extras = list(itertools.product(*(range(n) for n in info.extra_dims.values())))
    for z in range(d["Z"]):
        for c in range(d["C"] * d["S"]):
            for t in range(d["T"]):
                for e in extras:
                    yield z, c, t, e


def iter_planes(reader: SceneReader) -> Iterator[Plane]:
    """The planes of one scene in IMAGEWALK order, each a 2D (Y, X) array in its native dtype.

    A stored plane of interleaved samples (Y, X, S) is read once and its samples handed out in
    turn; since T and extras walk inside the samples, those planes are kept until the channel is
    done, unless they would exceed SAMPLE_CACHE_BYTES (then they are read again).
    """
    info = reader.info
    d = info.dims
    samples = d["S"]
    extras = list(itertools.product(*(range(n) for n in info.extra_dims.values())))
    inner = [(t, e) for t in range(d["T"]) for e in extras]
    keep = samples > 1 and len(inner) * info.plane_bytes * samples <= SAMPLE_CACHE_BYTES
    for z in range(d["Z"]):
        for c in range(d["C"]):
            cache: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
            for s in range(samples):
                for t, e in inner:
                    stored = cache.get((t, e))
                    if stored is None:
                        stored = _checked(reader.read(t, c, z, e), info)
                        if keep:
                            cache[(t, e)] = stored
                    yield Plane(z=z, c=c * samples + s, t=t, extra=e, data=stored[:, :, s])


def _checked(stored: np.ndarray, info: SceneInfo) -> np.ndarray:
    """Guard against a reader that returns something other than the plane it announced."""
    want = (info.dims["Y"], info.dims["X"], info.dims["S"])
    if stored.shape != want:
        raise ValueError(f"reader returned a plane of shape {stored.shape}, expected {want}")
    if stored.dtype.newbyteorder("=") != np.dtype(info.dtype).newbyteorder("="):
        raise ValueError(f"reader returned dtype {stored.dtype}, expected {info.dtype}")
    return stored


def canonical_dtype(dtype: np.dtype) -> np.dtype:
    """The big-endian twin of a pixel type; bool is one byte 00/01 (numpy's own layout)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b" or dtype.itemsize == 1:
        return dtype
    if dtype.kind not in "uifc":
        raise TypeError(f"pixel type {dtype} has no canonical bytes in IMAGEWALK")
    return dtype.newbyteorder(">")


def canonical_bytes(plane: np.ndarray) -> bytes:
    """Row-major, big-endian bytes of a 2D plane, bit-exact (NaN payloads and -0.0 kept)."""
    if plane.ndim != 2:
        raise ValueError(f"a plane is 2D, got shape {plane.shape}")
    target = canonical_dtype(plane.dtype)
    if plane.dtype == target:
        return np.ascontiguousarray(plane).tobytes()
    # byteswap() moves bytes and never converts values, so float bit patterns survive.
    swapped = np.ascontiguousarray(plane).byteswap()
    return swapped.view(target).tobytes()
