"""Checks of text encodings (C2): a request in each allow-listed codec answered correctly,
codec names outside the allow-list refused (including names Python itself accepts)."""

from __future__ import annotations

import base64
from collections.abc import Callable

from harness.message import Message
from harness.probe.checks.context import _BYTEORDER, CheckContext
from harness.probe.checks.violations import _MORPHEUS_CONTENT, _misbehaviour, _Offence

# -- encodings (C2) ---------------------------------------------------------------------

#: A request in each allow-listed encoding, and the value it searches (non-ASCII where it can be).
_ENCODED_SEARCHES: list[tuple[str, str, str]] = [
    ("utf-8", "utf-8", "\U0001f436"),
    ("utf-16", "utf-16", "\U0001f436"),
    ("utf-32", "utf-32", "ring"),
    ("ascii", "ascii", "morpheus"),
    ("latin-1", "latin-1", "caf\u00e9"),
    ("upper-case-name", "UTF-16", "morpheus"),
]

#: Codec names outside the allow-list, Python's own among them, and the content sent under each:
#: the search written in that codec where it is a text codec, so that a server that runs the
#: named codec answers it instead of refusing it.
_FOREIGN_CODECS: list[tuple[str, str, bytes]] = [
    ("utf-7", "utf-7", _MORPHEUS_CONTENT.decode().encode("utf-7")),
    ("cp500", "cp500", _MORPHEUS_CONTENT.decode().encode("cp500")),
    ("utf8-alias", "utf8", _MORPHEUS_CONTENT),
    ("base64", "base64", base64.b64encode(_MORPHEUS_CONTENT)),
    ("unknown", "x-probe-unknown", _MORPHEUS_CONTENT),
]


def _foreign_codec_check(encoding: str, content: bytes) -> Callable[[CheckContext], str]:
    request = Message.from_bytes(content, content_type="text/json", encoding=encoding, byteorder=_BYTEORDER)

    def run(ctx: CheckContext) -> str:
        offence = _Offence(
            request.encode(),
            f"text/json content in the encoding {encoding!r}",
            "unsupported-encoding",
            must_close=False,
            request=request,
        )
        return _misbehaviour(ctx, offence)

    return run
