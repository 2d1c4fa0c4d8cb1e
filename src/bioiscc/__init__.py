"""bioiscc: ISCC content codes for microscopy data, computed from the pixels.

The public API (imported lazily, so that `bioiscc --version` stays fast):

- `walk(source)`: the scenes of a source and their geometry (a `bioiscc.walk` record);
- `hash_scenes(source, scenes=None, simprints=False, narrow=False)`: `bioiscc.scene` records;
- `biocode(source, simprints=False, raw=True)`: the iscc-bio style container;
- `iter_planes(source, scene=0)`: the planes of a scene in IMAGEWALK order;
- `open_source(source)`: the source layer itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .api import biocode, hash_manifest, hash_scenes, iter_planes, scenes, walk
    from .errors import BioisccError, InputError, MissingPluginError, SceneSelectionError
    from .scene import Plane, SceneInfo, Source
    from .sources import open_source

_LAZY = {
    "walk": "api",
    "hash_scenes": "api",
    "hash_manifest": "api",
    "biocode": "api",
    "iter_planes": "api",
    "scenes": "api",
    "open_source": "sources",
    "BioisccError": "errors",
    "InputError": "errors",
    "MissingPluginError": "errors",
    "SceneSelectionError": "errors",
    "Plane": "scene",
    "SceneInfo": "scene",
    "Source": "scene",
}

__all__ = [
    "BioisccError",
    "InputError",
    "MissingPluginError",
    "Plane",
    "SceneInfo",
    "SceneSelectionError",
    "Source",
    "__version__",
    "biocode",
    "hash_manifest",
    "hash_scenes",
    "iter_planes",
    "open_source",
    "scenes",
    "walk",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bioiscc' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
