"""The requests the checks send and how an answer is judged: the expected answer comes from
the application (:class:`harness.apps.App`); answers are compared by header values and
decoded content (:func:`difference`), and a fresh connection must still be served."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness.apps import App, search_app
from harness.errors import ContentError
from harness.message import REQUIRED_KEYS, Message
from harness.probe.checks.context import _BYTEORDER, CheckContext, CheckFailed, Outcome
from harness.probe.profiles import STRICT
from harness.probe.wire import End, Reading

# -- requests and their expected answers ------------------------------------------


def search(value: str, *, encoding: str = "utf-8", extra: dict[str, Any] | None = None) -> Message:
    return Message.from_json(
        {"action": "search", "value": value}, byteorder=_BYTEORDER, encoding=encoding, extra_headers=extra
    )


def binary(content: bytes) -> Message:
    return Message.from_bytes(content, byteorder=_BYTEORDER)


def expected_answer(request: Message, app: App | None = None) -> Message:
    """The application's answer to ``request`` (the search application by default)."""
    return (app if app is not None else search_app)(request)


def describe_request(request: Message) -> str:
    if request.is_json:
        try:
            body = request.json()
        except ContentError:
            return f"text/json in {request.header['content-encoding']!r} ({request.content[:24]!r})"
        return f"{body.get('action')} {body.get('value')!r}" if isinstance(body, dict) else "text/json"
    return f"binary {request.content[:16]!r}"


def error_code(message: Message) -> str | None:
    """The ``"error"`` of an error message (docs/PROTOCOL.md#s6), None for an ordinary answer."""
    if not message.is_json:
        return None
    try:
        body = message.json()
    except Exception:  # a ContentError, or anything a broken answer raises
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


_UNREADABLE = object()


def difference(got: Message, want: Message) -> str | None:
    """Why ``got`` is not the answer ``want`` (None when it is).

    Every header value of ``want`` is compared except ``byteorder`` (informational:
    the sender's machine) and ``content-length`` (the content is compared);
    ``text/json`` contents are compared as decoded JSON values, other contents byte
    for byte.
    """
    for key in ("content-type", "content-encoding"):
        if got.header.get(key) != want.header[key]:
            return f"{key} {got.header.get(key)!r}, expected {want.header[key]!r}"
    for key, value in want.header.items():
        if key not in REQUIRED_KEYS and got.header.get(key) != value:
            return f"header {key!r} is {_short(got.header.get(key))}, expected {_short(value)}"
    wanted: Any = _UNREADABLE
    if want.is_json:
        try:
            wanted = want.json()
        except ContentError:  # an answer whose content is not readable (echo): compared as bytes
            wanted = _UNREADABLE
    if wanted is not _UNREADABLE:
        try:
            value = got.json()
        except Exception as exc:  # a ContentError, or anything a broken answer raises
            return f"content is not readable JSON ({exc})"
        if value != wanted:
            return f"content {_short(value)}, expected {_short(wanted)}"
        return None
    if got.content != want.content:
        return f"content {got.content[:60]!r}, expected {want.content[:60]!r}"
    return None


def _mismatch(got: Message, want: Outcome) -> str | None:
    """Why ``got`` is not the outcome ``want`` (an answer, or the error message of a content error)."""
    if isinstance(want, Message):
        return difference(got, want)
    code = error_code(got)
    if code == want.code:
        return None
    shown = f"the error message {code!r}" if code is not None else f"an answer ({_describe_answer(got)})"
    return f"{shown}, expected the error message {want.code!r} (docs/PROTOCOL.md#s3)"


def _describe_answer(message: Message) -> str:
    if message.is_json:
        try:
            return _short(message.json())
        except Exception:
            return "unreadable text/json"
    return repr(message.content[:40])


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def verify_answers(
    reading: Reading,
    requests: Sequence[Message],
    what: str,
    bound: float,
    ctx: CheckContext | None = None,
) -> str:
    """Raise :class:`CheckFailed` unless ``reading`` holds the answers to ``requests``, in order.

    ``what`` names the connection in the detail (nothing when empty). With ``ctx``, the
    answers are the application's and the profile's relaxations apply: a close after the
    first answer (one request per connection), a close instead of a content error's
    error message.
    """
    profile = ctx.profile if ctx is not None else STRICT
    what = f"{what}: " if what else ""
    for index, (got, request) in enumerate(zip(reading.messages, requests, strict=False)):
        accepted = ctx.outcomes(request) if ctx is not None else [expected_answer(request)]
        problems = [_mismatch(got, want) for want in accepted]
        if all(problem is not None for problem in problems):
            ordinal = f" #{index + 1}" if len(requests) > 1 else ""
            raise CheckFailed(
                f"{what}answer{ordinal} to {describe_request(request)}: {problems[0]}", wrong_answer=True
            )
    count = len(reading.messages)
    if count < len(requests):
        where = f"{count} of {len(requests)} answers"
        if reading.end is End.TIMEOUT:
            raise CheckFailed(f"{what}{where}, then silence for {bound:.1f}s (server hangs)", "unsafe")
        if reading.end is End.MALFORMED:
            raise CheckFailed(f"{what}{where}, then bytes that break the protocol: {reading.error}")
        closed = "closed the connection" if reading.end is End.EOF else "reset the connection"
        if ctx is not None and profile.one_request_per_connection and count >= 1:
            ctx.note("closes after one answer")
            return f"closes after one answer: {where}, then the server {closed}"
        if ctx is not None and profile.errors_may_close:
            pending = ctx.outcomes(requests[count])[0]
            if isinstance(pending, ContentError):
                ctx.note("closes on an error")
                return f"{where}, then the server {closed} at the {pending.code} request"
        raise CheckFailed(f"{what}{where}, then the server {closed}")
    return f"{len(requests)} answer(s) correct"


def exchange(
    ctx: CheckContext,
    requests: Sequence[Message],
    chunks: Sequence[bytes] | None = None,
    *,
    pause: float = 0.0,
    read_bound: float = 2.0,
    label: str = "",
    data: bytes | None = None,
) -> str:
    """Send ``requests`` (as ``chunks`` if given) on a fresh connection and check the answers."""
    conn = ctx.connect(label)
    if data is None:
        data = b"".join(r.encode() for r in requests)
    if chunks is None:
        chunks = [data]
    assert b"".join(chunks) == data, "chunks must cover the requests exactly"
    # A send that breaks (the server closed or reset) still leaves the answers it sent
    # before that to be read, so the verdict comes from reading either way.
    conn.send_chunks(chunks, pause)
    bound = ctx.bound(read_bound)
    reading = conn.read_messages(len(requests), bound)
    detail = verify_answers(reading, requests, label, bound, ctx)
    conn.close()
    return detail


def still_served(ctx: CheckContext, label: str, why: str) -> None:
    """A fresh connection gets an answer, or the check fails as unsafe (whether the answer is
    right is for the answer checks to say)."""
    request = search("morpheus")
    try:
        conn = ctx.connect(label)
        conn.send(request.encode())
        bound = ctx.bound(2.0)
        reading = conn.read_messages(1, bound)
        if not reading.messages:
            verify_answers(reading, [request], label, bound)
        conn.close()
    except CheckFailed as failure:
        raise CheckFailed(f"{why}: {failure.detail}", "unsafe") from None
