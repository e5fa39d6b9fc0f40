"""The search application of docs/PROTOCOL.md#applications (rules A1 to A3).

A ``text/json`` request ``{"action": "search", "value": query}`` is answered
with ``{"result": answer}`` from the guide's table; another action gets the
invalid-action result; a request of any other content-type is answered with
its first 10 bytes as ``binary/custom-server-binary-type``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec

from harness.apps.base import App
from harness.frames import frame
from harness.message import JSON_CONTENT_TYPE, Message
from harness.strictjson import UNDECIDED, fast_loads

__all__ = [
    "BINARY_RESPONSE_PREFIX",
    "BINARY_RESPONSE_TYPE",
    "SEARCH_ANSWERS",
    "SearchApp",
    "search_answer",
    "search_app",
]

#: The answers of the guide's search application.
SEARCH_ANSWERS: dict[str, str] = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
BINARY_RESPONSE_TYPE = "binary/custom-server-binary-type"
BINARY_RESPONSE_PREFIX = b"First 10 bytes of request: "


def search_answer(action: Any, value: Any) -> str:
    """The ``result`` string for a ``text/json`` request holding ``action`` and ``value``.

    Non-string values are shown the way the guide's server shows them
    (Python's ``str``), so a request the guide answers gets the guide's answer.
    """
    if action == "search":
        answer = SEARCH_ANSWERS.get(value) if type(value) is str else None
        return answer if answer is not None else f"No match for '{value}'."
    return f"Error: invalid action '{action}'."


class SearchApp(App):
    """The guide's search application.

    A ``text/json`` request is read strictly (as :meth:`Message.json` reads
    it, so unreadable content raises a :class:`~harness.errors.ContentError`);
    its ``action`` and ``value`` are looked up as in the guide. A JSON value
    that is not an object has neither, like an object without the keys. Any
    other content-type is a binary request, answered with its first 10 bytes.
    """

    name = "search"

    def respond(self, request: Message) -> Message:
        header = request.header
        if header["content-type"] == JSON_CONTENT_TYPE:
            content = _json_result(header, request.content)
            content_type, encoding = JSON_CONTENT_TYPE, "utf-8"
        else:
            content = BINARY_RESPONSE_PREFIX + request.content[:10]
            content_type, encoding = BINARY_RESPONSE_TYPE, "binary"
        # The header is valid by construction: skip the constructor's checks.
        return Message._trusted(
            {
                "byteorder": _BYTEORDER,
                "content-type": content_type,
                "content-encoding": encoding,
                "content-length": len(content),
            },
            content,
        )

    def encode_response(self, header: dict[str, Any], content: bytes) -> bytes:
        """``respond(request).encode()`` without building either message (the server's hot path).

        The response's 2-byte prefix and header are looked up by content length.
        """
        if header["content-type"] != JSON_CONTENT_TYPE:
            body = BINARY_RESPONSE_PREFIX + content[:10]
            return (_BINARY_PREFIXES.get(len(body)) or _prefix(_BINARY_PREFIXES, len(body))) + body
        body = _json_result(header, content)
        return (_JSON_PREFIXES.get(len(body)) or _prefix(_JSON_PREFIXES, len(body))) + body


def _json_result(header: dict[str, Any], content: bytes) -> bytes:
    """The content of the answer to the ``text/json`` request ``(header, content)``."""
    value: Any = UNDECIDED
    if header["content-encoding"] == "utf-8":
        value = fast_loads(content)
    if value is UNDECIDED:
        value = Message._trusted(header, content).json()
    if type(value) is dict:
        action, query = value.get("action"), value.get("value")
        if action == "search" and type(query) is str:
            answer = SEARCH_ANSWERS.get(query)
            if answer is None:
                answer = f"No match for '{query}'."
        else:
            answer = search_answer(action, query)
    else:
        answer = search_answer(None, None)
    return b'{"result": ' + _encode_str(answer) + b"}"


def _prefix(prefixes: dict[int, bytes], length: int) -> bytes:
    """The 2-byte header length and the header of a response with ``length`` content bytes."""
    start = _JSON_HEADER_START if prefixes is _JSON_PREFIXES else _BINARY_HEADER_START
    prefix = frame(start + b"%d}" % length)
    if len(prefixes) < _PREFIXES_REMEMBERED:
        prefixes[length] = prefix
    return prefix


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

search_app = SearchApp()
