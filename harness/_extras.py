"""Optional dependencies: which extra brings each one, and the one line that says so.

``pip install lpjson-harness`` installs only msgspec: the codec, ``harness probe``,
``harness serve`` and ``harness request`` need nothing else. The capture writer and
samples (``harness.capture.writer`` and ``harness.capture.samples``: scapy), the
Hypothesis strategies, the atheris fuzzers and uvloop are extras of the distribution
(pyproject.toml's ``optional-dependencies``); the rest of ``harness.capture`` (the
dissector and the tshark reader) needs none. Code that needs one either checks first
with :func:`require` (a command option, before any work is done) or wraps its imports
in :func:`importing` (a module); both raise :class:`MissingExtra`, which
``harness.cli.main`` prints as one line, exit status 2, no traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

__all__ = ["DISTRIBUTION", "EXTRA_OF", "MissingExtra", "importing", "installed", "require"]

#: The name on the package index (``harness`` there is an unrelated project).
DISTRIBUTION = "lpjson-harness"

#: The extra that installs each optional top-level module (tests/test_install.py checks
#: these against pyproject.toml).
EXTRA_OF = {
    "scapy": "pcap",  # harness.capture.writer, harness.capture.samples
    "hypothesis": "test",
    "atheris": "fuzz",
    "uvloop": "speed",
    "redis": "redis",  # harness.exampledb: HARNESS_EXAMPLE_DB=redis://...
    "locust": "locust",  # the locustfile (harness locust path)
}


class MissingExtra(ImportError):
    """``feature`` needs ``module``, which is not installed; the message names the extra."""

    def __init__(self, feature: str, module: str) -> None:
        self.feature = feature
        self.extra = EXTRA_OF[module]
        super().__init__(f"{feature} needs {module}: pip install '{DISTRIBUTION}[{self.extra}]'", name=module)


def installed(module: str) -> bool:
    """Whether the top-level ``module`` can be imported (found, not imported)."""
    return importlib.util.find_spec(module) is not None


def require(feature: str, module: str) -> None:
    """Raise :class:`MissingExtra` unless ``module`` is installed."""
    if not installed(module):
        raise MissingExtra(feature, module)


@contextlib.contextmanager
def importing(feature: str, module: str) -> Iterator[None]:
    """Turn a failed import of ``module`` in the block into :class:`MissingExtra`.

    Only ``module`` itself missing counts: a module that ``module`` imports and that is
    missing is a broken installation, and its own error goes through unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != module:
            raise
        raise MissingExtra(feature, module) from None
