"""What a record may say about where its pixels came from: the location without credentials.

Kept free of heavy imports: the CLI and the record builders use it on every output.
"""

from __future__ import annotations

OMERO_SCHEME = "omero"


def is_omero_uri(location: str) -> bool:
    return location[: len(OMERO_SCHEME) + 3].lower() == f"{OMERO_SCHEME}://"


def redact(location: str) -> str:
    """The URI without any `user[:password]@` part (up to the last '@': a password may hold one)."""
    if not is_omero_uri(location) or "@" not in location:
        return location
    return location[: len(OMERO_SCHEME) + 3] + location.rsplit("@", 1)[1]
