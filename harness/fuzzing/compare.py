"""Comparing what the code under test did with what it should have done, strictly.

Equal is not enough for decoded JSON (``1 == 1.0 == True``), nor for errors
(the class, offset and reason must all agree); and a broken invariant must say
which error it saw. The decoder and the server invariants share these.
"""

from __future__ import annotations

import json
from typing import Any

from harness.errors import IncompleteMessage, ProtocolError
from harness.message import Message

__all__ = ["describe", "same", "same_error", "same_messages", "unexpected"]

_dumps_ordered = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_dumps_sorted = json.JSONEncoder(ensure_ascii=False, check_circular=False, sort_keys=True).encode


def same(a: Any, b: Any, ordered: bool = False) -> bool:
    """Equal and of the same types all the way down (``1 == 1.0 == True`` is not enough).

    The JSON text tells the types apart where ``==`` does not (``1``/``1.0``/``true``,
    ``0.0``/``-0.0``); with ``ordered``, object keys must also come in the same order.
    """
    if a != b:
        return False
    if type(a) is dict and type(b) is dict and _same_flat(a, b, ordered):
        return True
    dumps = _dumps_ordered if ordered else _dumps_sorted
    return bool(dumps(a) == dumps(b))


#: Types whose ``==`` already tells values apart (``1.0`` and ``-0.0`` are floats: not here).
_EXACT = frozenset((str, int, bool, type(None)))


def _same_flat(a: dict[Any, Any], b: dict[Any, Any], ordered: bool) -> bool:
    """True when equal dicts ``a`` and ``b`` (a header, most often) are the same without a doubt:
    string keys (in the same order, with ``ordered``), values of the same types from
    :data:`_EXACT`. False means "compare the JSON texts", not "different"."""
    if ordered and list(a) != list(b):
        return False
    for key, value in a.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind not in _EXACT or type(b[key]) is not kind:
            return False
    return True


def same_messages(a: list[Message], b: list[Message]) -> bool:
    return len(a) == len(b) and all(
        x.content == y.content and same(x.header, y.header) for x, y in zip(a, b, strict=True)
    )


def same_error(a: ProtocolError | None, b: ProtocolError | None) -> bool:
    """The same class, offset and reason (and, for an incomplete message, the same counts)."""
    if a is None or b is None:
        return a is b
    if (type(a), a.offset, a.reason) != (type(b), b.offset, b.reason):
        return False
    if isinstance(a, IncompleteMessage) and isinstance(b, IncompleteMessage):
        return (a.expected, a.received) == (b.expected, b.received)
    return True


def describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    offset = getattr(error, "offset", None)
    return f"{type(error).__name__}({str(getattr(error, 'reason', error))!r:.200}, offset={offset})"


def unexpected(where: str, exc: BaseException) -> AssertionError:
    """The failure for an exception other than ``ProtocolError`` out of the decoder."""
    return AssertionError(
        f"{where} raised {type(exc).__name__}: {exc!s:.300}; only ProtocolError may escape the decoder"
    )
