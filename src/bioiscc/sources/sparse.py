"""Sparse Zarr arrays: chunks the store does not hold are the fill value, made without asking zarr.

A chunk a Zarr store does not hold is the array's fill value (the format says so), and zarr finds
that out by trying to read it: about 0.1 ms per missing chunk, so an array that declares millions
of small chunks and stores few took minutes before a byte was hashed. `sparse_view` lists what the
store holds once (time proportional to what is stored) and, when chunks are missing, answers the
reads that fall on missing chunks only with the fill value. The canonical bytes are the same; the
hash still reads every byte of the scene, which the scene limit (`BIOISCC_MAX_SCENE_GB`) bounds.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def sparse_view(array: Any) -> Any:
    """`array` itself when its store holds every chunk (or is not a local folder), else a
    `SparseArray` over it."""
    root = getattr(getattr(array, "store", None), "root", None)
    if root is None:
        return array
    blocks = getattr(array, "shards", None) or array.chunks
    keys = stored_chunk_keys(Path(root) / array.path)
    declared = math.prod(math.ceil(n / b) for n, b in zip(array.shape, blocks, strict=True))
    if keys is None or len(keys) >= declared:
        return array
    return SparseArray(array, tuple(blocks), keys)


def stored_chunk_keys(folder: Path) -> set[str] | None:
    """The files under an array's folder, as chunk keys ("c/0/1/2", "0.1.2", "0/1/2")."""
    try:
        found = set()
        for where, _, files in os.walk(folder):
            relative = os.path.relpath(where, folder)
            for name in files:
                if not name.startswith(".") and name != "zarr.json":
                    found.add(name if relative == "." else f"{relative}/{name}".replace(os.sep, "/"))
        return found
    except OSError:
        return None


class SparseArray:
    """A read-only view of a zarr array whose missing chunks are made from the fill value.

    Reads (`array[selection]` with integers and slices) that touch a stored chunk go to zarr.
    """

    def __init__(self, array: Any, blocks: Sequence[int], stored: set[str]) -> None:
        self.array = array
        self.blocks = tuple(blocks)
        self.stored = stored
        self.fill_value = array.fill_value

    def __getattr__(self, name: str) -> Any:  # shape, dtype, chunks, shards, ...
        return getattr(self.array, name)

    def __getitem__(self, selection: Any) -> Any:
        selection = selection if isinstance(selection, tuple) else (selection,)
        ranges = self._block_ranges(selection)
        if ranges is None or any(self._is_stored(key) for key in itertools.product(*ranges)):
            return self.array[selection]
        shape = tuple(
            len(range(*s.indices(n)))
            for s, n in zip(selection, self.array.shape, strict=False)
            if isinstance(s, slice)
        ) + tuple(self.array.shape[len(selection) :])
        return np.full(shape, self.fill_value, dtype=self.array.dtype)

    def _block_ranges(self, selection: tuple[Any, ...]) -> list[range] | None:
        """The block indices a selection of integers and slices touches, per axis (None: other)."""
        ranges = []
        for axis, n in enumerate(self.array.shape):
            part = selection[axis] if axis < len(selection) else slice(None)
            size = self.blocks[axis]
            if isinstance(part, (int, np.integer)):
                index = int(part) % n
                ranges.append(range(index // size, index // size + 1))
            elif isinstance(part, slice) and part.step in (None, 1):
                start, stop, _ = part.indices(n)
                ranges.append(range(start // size, max(start, stop - 1) // size + 1))
            else:
                return None
        return ranges

    def _is_stored(self, block: tuple[int, ...]) -> bool:
        return str(self.array.metadata.encode_chunk_key(block)) in self.stored
