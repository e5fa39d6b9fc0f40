"""The search application of docs/PROTOCOL.md#a1, as a pure function.

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
    "PAIR_ENCODED_APPS",
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

    See :data:`ENCODED_APPS`; the tests check that the bytes are the same as the
    slow way's for any request.
    """
    return _encode_search(request.header, request.content)


def _encode_search(header: dict[str, Any], content: bytes) -> bytes:
    """:func:`encode_search_response` of the request ``(header, content)``.

    The server's hot path (see :data:`PAIR_ENCODED_APPS`): :func:`_search_content`
    and :func:`search_answer` inlined, the response's 2-byte prefix and header
    looked up by content length. ``header`` is only read.
    """
    if header["content-type"] != JSON_CONTENT_TYPE:
        body = BINARY_RESPONSE_PREFIX + content[:10]
        return (_BINARY_PREFIXES.get(len(body)) or _prefix(_BINARY_PREFIXES, len(body))) + body
    value: Any = None
    if header["content-encoding"] == "utf-8":
        # _read_flat_utf8, inlined (its docstring says why it agrees with the strict reader).
        try:
            value = _fast_decode(content)
        except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError):
            value = None
        else:
            if content.count(b":") != len(value):
                value = None
    if value is None:  # the fast reader returns only dicts: None means "not decided"
        value = Message._trusted(header, content).json()
    if type(value) is dict:
        action, query = value.get("action"), value.get("value")
    else:
        action = query = None
    if action == "search" and type(query) is str:
        answer = SEARCH_ANSWERS.get(query)
        if answer is None:
            answer = f"No match for '{query}'."
    else:
        answer = search_answer(action, query)
    body = b'{"result": ' + _encode_str(answer) + b"}"
    return (_JSON_PREFIXES.get(len(body)) or _prefix(_JSON_PREFIXES, len(body))) + body


def _prefix(prefixes: dict[int, bytes], length: int) -> bytes:
    """The 2-byte header length and the header of a response with ``length`` content bytes."""
    start = _JSON_HEADER_START if prefixes is _JSON_PREFIXES else _BINARY_HEADER_START
    header = start + b"%d}" % length
    prefix = len(header).to_bytes(2, "big") + header
    if len(prefixes) < _PREFIXES_REMEMBERED:
        prefixes[length] = prefix
    return prefix


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
#: Response prefixes (2-byte length + header) by content length, for the lengths seen so far.
_JSON_PREFIXES: dict[int, bytes] = {}
_BINARY_PREFIXES: dict[int, bytes] = {}
_PREFIXES_REMEMBERED = 1024
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
#: The same, from the request's header and content (the header must not be modified):
#: ``PAIR_ENCODED_APPS[app](m.header, m.content) == app(m).encode()``.
PAIR_ENCODED_APPS: dict[App, Callable[[dict[str, Any], bytes], bytes]] = {search_app: _encode_search}


def error_message(code: str, detail: str) -> Message:
    """The reference server's error message: ``{"error": code, "detail": detail}`` as text/json."""
    return Message.from_json({"error": code, "detail": detail}, byteorder=sys.byteorder)


def error_response(error: ProtocolError) -> Message:
    """The error message docs/PROTOCOL.md#s6 prescribes for ``error``: its code and its reason."""
    return error_message(error.code, error.reason)
