"""What a hostile server sends a client: the right answer, and every way to spoil it.

:func:`answer_for` computes the answer to the request a client sent, through the
search application (:data:`harness.apps.search_app`), so any request works; its
:attr:`Answer.marker` is the text a client prints when it shows that answer. The
other functions build the bytes of a spoiled answer: one per violation class of
:data:`harness.violations.VIOLATIONS`, each built *around the real answer*, so a
client that overlooks the violation prints the marker and is caught doing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.apps import search_app
from harness.frames import frame
from harness.message import JSON_CONTENT_TYPE, REQUIRED_KEYS, Message

__all__ = [
    "HUGE_LENGTH",
    "NOT_UTF8",
    "VIOLATING",
    "Answer",
    "answer_for",
    "binary_answer",
    "huge_length_answer",
    "marker_of",
]

#: The content-length the huge-length check declares (1 TiB): no client should wait for
#: it, and allocating it up front fails.
HUGE_LENGTH = 1 << 40
#: Bytes that are not UTF-8, put in binary content.
NOT_UTF8 = b"\xff\xfe\xc0\x80"
_ASCII_RUN = re.compile(r"[ -~]+")
_MIN_MARKER = 4


@dataclass(frozen=True)
class Answer:
    """The request a client sent and the response the search application gives it."""

    request: Message
    response: Message

    @property
    def wire(self) -> bytes:
        """The response's bytes, as the reference server writes them."""
        return self.response.encode()

    @property
    def header_end(self) -> int:
        """Offset of the first content byte in :attr:`wire` (2 + the JSON header's length)."""
        wire = self.wire
        return 2 + int.from_bytes(wire[:2], "big")

    @property
    def is_json(self) -> bool:
        return self.response.is_json

    @property
    def marker(self) -> str:
        """The text a client shows when it prints this answer (see :func:`marker_of`)."""
        return marker_of(self.response)


def marker_of(response: Message) -> str:
    """The longest run of printable ASCII in the answer's result (or binary content).

    A client prints an answer in its own way (the string, its ``repr``, the dict, with
    or without the emoji its terminal may not show), but it shows this run as it is.
    """
    if response.is_json:
        value = response.json()
        text = value.get("result") if isinstance(value, dict) else None
        if not isinstance(text, str):
            text = json.dumps(value, ensure_ascii=False)
    else:
        text = response.content.decode("latin-1")
    runs = sorted((run.strip() for run in _ASCII_RUN.findall(text)), key=len, reverse=True)
    return runs[0] if runs and len(runs[0]) >= _MIN_MARKER else text


def answer_for(request: Message) -> Answer:
    """The search application's answer to ``request``.

    Raises the :class:`~harness.errors.ContentError` the application raises for a
    ``text/json`` request whose content cannot be read (the client's own violation).
    """
    return Answer(request, search_app.respond(request))


# -- spoiled answers -----------------------------------------------------------------------


def _header_text(header: dict[str, Any]) -> str:
    ordered = {key: header[key] for key in REQUIRED_KEYS}
    ordered.update(header)
    return json.dumps(ordered, ensure_ascii=False)


def _reframed(answer: Answer, header_text: str | bytes, content: bytes | None = None) -> bytes:
    raw = header_text.encode() if isinstance(header_text, str) else header_text
    return frame(raw, answer.response.content if content is None else content)


def _zero_header_length(answer: Answer) -> bytes:
    # A client that skips an empty header and reads on finds the real answer after it.
    return b"\x00\x00" + answer.wire


def _header_not_utf8(answer: Answer) -> bytes:
    text = _header_text(answer.response.header)
    return _reframed(answer, text[:-1].encode() + b', "x-note": "caf\xe9"}')


def _header_not_json(answer: Answer) -> bytes:
    text = _header_text(answer.response.header)
    return _reframed(answer, text.replace(', "content-length"', ' "content-length"', 1))


def _non_finite_number(answer: Answer) -> bytes:
    return _reframed(answer, _header_text(answer.response.header)[:-1] + ', "x-priority": NaN}')


def _duplicate_key(answer: Answer) -> bytes:
    header = answer.response.header
    return _reframed(
        answer, _header_text(header)[:-1] + f', "content-type": {json.dumps(header["content-type"])}}}'
    )


def _header_not_object(answer: Answer) -> bytes:
    pairs: list[Any] = []
    for key, value in answer.response.header.items():
        pairs += [key, value]
    return _reframed(answer, json.dumps(pairs, ensure_ascii=False))


def _missing_header_key(answer: Answer) -> bytes:
    # byteorder, the key a client least needs: a client that never looks for it reads on.
    header = {key: value for key, value in answer.response.header.items() if key != "byteorder"}
    return _reframed(answer, json.dumps(header, ensure_ascii=False))


def _invalid_header_value(answer: Answer) -> bytes:
    header = dict(answer.response.header)
    text = _header_text(header).replace(
        f'"content-length": {header["content-length"]}', f'"content-length": "{header["content-length"]}"'
    )
    return _reframed(answer, text)


def _json_content(answer: Answer, header: dict[str, Any], content: bytes) -> bytes:
    header = {**header, "content-length": len(content)}
    return _reframed(answer, _header_text(header), content)


def _unsupported_encoding(answer: Answer) -> bytes:
    # UTF-7, a codec Python knows: a client that decodes with the peer's codec name shows the
    # answer (the content is ASCII JSON, which UTF-7 reads unchanged).
    content = json.dumps(answer.response.json(), ensure_ascii=True).encode()
    return _json_content(answer, {**answer.response.header, "content-encoding": "utf-7"}, content)


def _content_not_decodable(answer: Answer) -> bytes:
    result = answer.response.json()["result"]
    content = b'{"result": ' + json.dumps(result, ensure_ascii=False).encode()[:-1] + b'\xff"}'
    return _json_content(answer, answer.response.header, content)


def _content_not_json(answer: Answer) -> bytes:
    result = answer.response.json()["result"]
    content = b'{"result": ' + json.dumps(result, ensure_ascii=False).encode() + b', "rank": NaN}'
    return _json_content(answer, answer.response.header, content)


def _incomplete_message(answer: Answer) -> bytes:
    # Cut inside the JSON header (close-early cuts inside the content).
    return answer.wire[: answer.header_end - 8]


#: For each violation code, the answer spoiled that way (``None``: only for a ``text/json``
#: answer). ``content-too-large`` is the huge-length check (:func:`huge_length_answer`).
VIOLATING: dict[str, tuple[Callable[[Answer], bytes], bool]] = {
    "zero-header-length": (_zero_header_length, False),
    "header-not-utf8": (_header_not_utf8, False),
    "header-not-json": (_header_not_json, False),
    "non-finite-number": (_non_finite_number, False),
    "duplicate-key": (_duplicate_key, False),
    "header-not-object": (_header_not_object, False),
    "missing-header-key": (_missing_header_key, False),
    "invalid-header-value": (_invalid_header_value, False),
    "incomplete-message": (_incomplete_message, False),
    "unsupported-encoding": (_unsupported_encoding, True),
    "content-not-decodable": (_content_not_decodable, True),
    "content-not-json": (_content_not_json, True),
}


def huge_length_answer(answer: Answer) -> bytes:
    """The answer's header declaring :data:`HUGE_LENGTH` content bytes, then the real content."""
    header = {**answer.response.header, "content-length": HUGE_LENGTH}
    return _reframed(answer, _header_text(header))


def binary_answer(answer: Answer) -> bytes:
    """A binary answer whose content is not UTF-8: the real content, then :data:`NOT_UTF8`."""
    content = answer.response.content + NOT_UTF8
    header = {**answer.response.header, "content-length": len(content)}
    return _reframed(answer, _header_text(header), content)


def is_json_request(request: Message) -> bool:
    return request.header.get("content-type") == JSON_CONTENT_TYPE
