"""The search application of PROTOCOL.md, as a pure function.

:func:`search_app` maps one request :class:`~harness.message.Message` to its
response, with no I/O and no state, so the asyncio server, the fuzzers and the
tests all run the very same application. :func:`error_response` builds the
error message the reference server sends on a protocol error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec

from harness.errors import ProtocolError
from harness.message import JSON_CONTENT_TYPE, Message

__all__ = [
    "BINARY_RESPONSE_PREFIX",
    "BINARY_RESPONSE_TYPE",
    "ENCODED_APPS",
    "INTERNAL_ERROR",
    "SEARCH_ANSWERS",
    "App",
    "encode_search_response",
    "error_message",
    "error_response",
    "search_answer",
    "search_app",
]

#: An application: one request in, one response out.
App = Callable[[Message], Message]

#: The answers of the guide's search application.
SEARCH_ANSWERS: dict[str, str] = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
BINARY_RESPONSE_TYPE = "binary/custom-server-binary-type"
BINARY_RESPONSE_PREFIX = b"First 10 bytes of request: "
#: The error code sent when the application itself fails on a request.
INTERNAL_ERROR = "internal-error"


def search_answer(action: Any, value: Any) -> str:
    """The ``result`` string for a ``text/json`` request holding ``action`` and ``value``.

    Non-string values are shown the way the guide's server shows them
    (Python's ``str``), so a request the guide answers gets the guide's answer.
    """
    if action == "search":
        answer = SEARCH_ANSWERS.get(value) if type(value) is str else None
        return answer if answer is not None else f"No match for '{value}'."
    return f"Error: invalid action '{action}'."


def search_app(request: Message) -> Message:
    """Answer one request of the search application.

    A ``text/json`` request is read strictly (as :meth:`Message.json` reads
    it, so unreadable content raises a :class:`~harness.errors.ContentError`);
    its ``action`` and ``value`` are looked up as in the guide. A JSON value
    that is not an object has neither, like an object without the keys.
    Any other content-type is a binary request, answered with its first 10
    bytes.
    """
    is_json, content = _search_content(request)
    # The headers are valid by construction: skip the constructor's checks.
    if is_json:
        return Message._trusted(
            {
                "byteorder": _BYTEORDER,
                "content-type": JSON_CONTENT_TYPE,
                "content-encoding": "utf-8",
                "content-length": len(content),
            },
            content,
        )
    return Message._trusted(
        {
            "byteorder": _BYTEORDER,
            "content-type": BINARY_RESPONSE_TYPE,
            "content-encoding": "binary",
            "content-length": len(content),
        },
        content,
    )


def encode_search_response(request: Message) -> bytes:
    """``search_app(request).encode()``, without building the response :class:`Message`.

    The server's hot path (see :data:`ENCODED_APPS`); the tests check that the
    bytes are the same as the slow way's for any request.
    """
    is_json, content = _search_content(request)
    header = (_JSON_HEADER_START if is_json else _BINARY_HEADER_START) + b"%d}" % len(content)
    return len(header).to_bytes(2, "big") + header + content


def _search_content(request: Message) -> tuple[bool, bytes]:
    """Whether the response is text/json, and its content."""
    header = request.header
    if header["content-type"] == JSON_CONTENT_TYPE:
        body = _read_flat_utf8(request.content) if header["content-encoding"] == "utf-8" else None
        if body is None:
            body = request.json()
        if type(body) is dict:
            action, value = body.get("action"), body.get("value")
        else:
            action = value = None
        return True, b'{"result": ' + _encode_str(search_answer(action, value)) + b"}"
    return False, BINARY_RESPONSE_PREFIX + request.content[:10]


_BYTEORDER = sys.byteorder
_JSON_HEADER_START = (
    f'{{"byteorder": "{_BYTEORDER}", "content-type": "{JSON_CONTENT_TYPE}", '
    f'"content-encoding": "utf-8", "content-length": '
).encode()
_BINARY_HEADER_START = (
    f'{{"byteorder": "{_BYTEORDER}", "content-type": "{BINARY_RESPONSE_TYPE}", '
    f'"content-encoding": "binary", "content-length": '
).encode()
#: ``json.dumps(text, ensure_ascii=False).encode()``, faster (tests check that they agree).
_encode_str: Callable[[str], bytes] = msgspec.json.encode
_fast_decode = msgspec.json.Decoder(dict[str, str]).decode


def _read_flat_utf8(content: bytes) -> dict[str, str] | None:
    """The content as an object of strings when a fast reader provably agrees with the strict one.

    msgspec rejects everything the strict reader rejects for a flat object of
    strings (invalid UTF-8, a BOM, lone surrogates, bad syntax) except
    duplicate keys, which show up as more ``:`` than keys (a ``:`` inside a
    string also does; then the strict reader decides). ``None`` means "ask
    the strict reader", which also produces the right error.
    """
    try:
        body = _fast_decode(content)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return body if content.count(b":") == len(body) else None


#: Applications with a faster way to produce their encoded response:
#: ``ENCODED_APPS[app](request) == app(request).encode()``.
ENCODED_APPS: dict[App, Callable[[Message], bytes]] = {search_app: encode_search_response}


def error_message(code: str, detail: str) -> Message:
    """The reference server's error message: ``{"error": code, "detail": detail}`` as text/json."""
    return Message.from_json({"error": code, "detail": detail}, byteorder=sys.byteorder)


def error_response(error: ProtocolError) -> Message:
    """The error message PROTOCOL.md prescribes for ``error``: its code and its reason."""
    return error_message(error.code, error.reason)
