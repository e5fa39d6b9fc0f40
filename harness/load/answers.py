"""What a response frame says: a good answer, or an error, and the name each failure is counted under.

An *answer* is any well-formed lpjson message coming back; one whose content is a
``text/json`` object with an ``error`` key (the error message of
docs/PROTOCOL.md#s6) is an error response, and a ``text/json`` content that is not
strict JSON is a bad response. Both are counted as errors, by kind.
"""

from __future__ import annotations

from typing import Any

from harness.errors import ProtocolError
from harness.message import JSON_CONTENT_TYPE, Message

__all__ = ["Verdicts", "error_code", "error_kind", "judge"]

#: Verdicts remembered per run (bounded memory against a server whose answers never repeat).
_CACHE_LIMIT = 4096
#: Larger contents are judged every time rather than remembered.
_CACHED_CONTENT_MAX = 16384


def judge(header: dict[str, Any], content: bytes) -> str | None:
    """``None`` for a good answer, else the kind of error the frame ``(header, content)`` is.

    ``header`` is a checked frame header (:class:`harness.frames.Frame`); it is only read.
    """
    if header["content-type"] != JSON_CONTENT_TYPE:
        return None
    try:
        value = Message(header.copy(), content).json()
    except ProtocolError:
        return "bad-response-content"
    if isinstance(value, dict) and "error" in value:
        return f"error-response:{value['error']}"
    return None


def error_code(header: dict[str, Any], content: bytes) -> str | None:
    """The ``error`` code if the frame ``(header, content)`` is an error message, else ``None``."""
    if header["content-type"] != JSON_CONTENT_TYPE:
        return None
    try:
        value = Message(header.copy(), content).json()
    except ProtocolError:
        return None
    if isinstance(value, dict) and "error" in value:
        return str(value["error"])
    return None


class Verdicts:
    """:func:`judge`, remembered per (content-encoding, content) for small ``text/json`` contents.

    Only a ``text/json`` content needs reading, and only its encoding and bytes
    decide what it says: a server repeats a handful of answers, each is read once.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, bytes], str | None] = {}

    def __call__(self, header: dict[str, Any], content: bytes) -> str | None:
        if header["content-type"] != JSON_CONTENT_TYPE:
            return None
        if len(content) > _CACHED_CONTENT_MAX:
            return judge(header, content)
        key = (header["content-encoding"], content)
        try:
            return self._known[key]
        except KeyError:
            pass
        verdict = judge(header, content)
        if len(self._known) < _CACHE_LIMIT:
            self._known[key] = verdict
        return verdict


def error_kind(exc: BaseException) -> str:
    """The name a connection failure is counted under."""
    if isinstance(exc, ConnectionRefusedError):
        return "connect-refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ProtocolError):
        return f"bad-response:{exc.code}"
    if isinstance(exc, OSError):
        return f"os-error:{exc.errno}"
    return type(exc).__name__
