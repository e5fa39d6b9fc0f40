"""Checks of protocol errors: each row of :data:`harness.violations.VIOLATIONS` sent by an
offender beside a bystander, every invalid header value (H7), and what a server owes
before and after an error (F5, S2, S3, S6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import ContentError
from harness.frames import frame
from harness.message import Message
from harness.probe.checks.answers import (
    _describe_answer,
    _short,
    error_code,
    exchange,
    search,
    still_served,
    verify_answers,
)
from harness.probe.checks.context import _BYTEORDER, CheckContext, CheckFailed
from harness.probe.checks.framing import _header_end
from harness.probe.profiles import Profile
from harness.probe.wire import End, Reading, WireConnection
from harness.violations import VIOLATIONS, Violation

# -- violations ------------------------------------------------------------------------


def _outcome(reading: Reading) -> str:
    said = ""
    if reading.messages:
        first = reading.messages[0]
        code = error_code(first)
        if code is not None:
            said = f"error message {code!r}"
        else:
            said = f"a {first.header.get('content-type')} message"
    if reading.end is End.COMPLETE:  # not waited on: the connection may stay open
        return said
    closed = {
        End.EOF: "close",
        End.RESET: "reset",
        End.TIMEOUT: "connection left open",
        End.MALFORMED: f"malformed bytes ({reading.error})",
    }[reading.end]
    return f"{said}, then {closed}" if said else closed


@dataclass(frozen=True)
class _Offence:
    """What a misbehaving client sends, and what the server may answer to it.

    ``code``: the violation, named in an error message if the server sends one.
    ``request``: for a well-framed message whose content is bad (a content error), the
    message itself, so that its expected outcomes come from the application.
    ``answer_ok``: a profile flag under which the server may also read it as a request and
    answer it (the guide's lax reader).
    """

    data: bytes
    what: str
    code: str
    half_close: bool = False
    must_close: bool = True
    request: Message | None = None
    answer_ok: str | None = None


def _judge_offender(ctx: CheckContext, offender: WireConnection, offence: _Offence) -> Reading:
    """The offender's verdict (raises :class:`CheckFailed`); returns what it read."""
    what = offence.what
    bound = ctx.bound(2.0)
    reading = offender.read_messages(1, bound)
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"{what}: no error message and no close for {bound:.1f}s (server hangs)", "unsafe")
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"{what}: the server answered with bytes that break the protocol: {reading.error}")
    if offence.request is not None:  # a content error: judged like an answer (S3)
        if reading.messages:
            verify_answers(reading, [offence.request], "", bound, ctx)
            return reading
        want = ctx.outcomes(offence.request)[0]
        closed = "closed" if reading.end is End.EOF else "reset"
        if isinstance(want, ContentError):
            if ctx.profile.errors_may_close:
                ctx.note("closes on an error")
                return reading
            raise CheckFailed(
                f"{what}: the server {closed} the connection instead of answering with the error message "
                f"{want.code!r} (docs/PROTOCOL.md#s3: the stream is still in sync, the connection stays open)"
            )
        raise CheckFailed(f"{what}: the server {closed} the connection instead of answering it")
    if reading.messages:
        first = reading.messages[0]
        code = error_code(first)
        if code is None:
            if offence.answer_ok is not None and ctx.profile.relaxes(offence.answer_ok):
                ctx.note("reads it as a request")
                return reading
            raise CheckFailed(
                f"{what}: answered it as a request ({_describe_answer(first)}); expected the error "
                f"message {offence.code!r} or a close"
            )
        if code != offence.code:
            raise CheckFailed(f"{what}: the error message names {code!r}, expected {offence.code!r}")
    if reading.end is End.COMPLETE and offence.must_close and error_code(reading.messages[0]) is not None:
        rest = offender.read_until_close(ctx.bound(1.0))
        reading = Reading(reading.frames + rest.frames, rest.end, rest.error)
        if rest.end in (End.TIMEOUT, End.COMPLETE):
            raise CheckFailed(
                f"{what}: {_outcome(reading)}; after a protocol error the connection is closed "
                "(docs/PROTOCOL.md#s2)"
            )
    return reading


def _misbehaviour(ctx: CheckContext, offence: _Offence) -> str:
    """Send the offence on one connection while a bystander is mid-request on another.

    The offender must get what :func:`_judge_offender` accepts (never silence); the
    bystander then completes its request and a fresh connection is answered.
    """
    bystander_request = search("\U0001f436")
    raw = bystander_request.encode()
    bystander = ctx.connect("bystander")
    # Cut inside the content: the bystander tests isolation between connections, not splitting.
    cut = (_header_end(raw) + len(raw)) // 2
    bystander.send(raw[:cut])
    offender = ctx.connect("offender")
    offender.send(offence.data)
    if offence.half_close:
        offender.shutdown_write()
    reading = _judge_offender(ctx, offender, offence)
    try:
        bystander.send(raw[cut:])
        bystander_bound = ctx.bound(2.0)
        verify_answers(
            bystander.read_messages(1, bystander_bound),
            [bystander_request],
            "bystander",
            bystander_bound,
            ctx,
        )
    except CheckFailed as failure:
        if failure.wrong_answer:
            raise CheckFailed(
                f"{offence.what}: then a bystander: {failure.detail}", wrong_answer=True
            ) from None
        detail = f"{offence.what}: then a bystander mid-request was hurt: {failure.detail}"
        try:
            still_served(ctx, "a fresh connection", "and")
        except CheckFailed as fresh:
            detail += f"; {fresh.detail}"
        raise CheckFailed(detail, "unsafe") from None
    still_served(ctx, "a fresh connection", f"{offence.what}: then")
    return f"{_outcome(reading)}; others unaffected"


#: The morpheus request the guide's client sends, used as the body of crafted headers.
_MORPHEUS_CONTENT = b'{"action": "search", "value": "morpheus"}'
_MORPHEUS_HEADER = (
    '{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 41'
)

#: What a lax JSON reader (json.loads) takes for a valid request: the guide profile sends these
#: instead of the canonical examples, which a lax reader legitimately reads otherwise (a repeated
#: content-length: the last wins, and the server waits for that many bytes).
_LAX_JSON_EXAMPLES: dict[str, tuple[bytes, str]] = {
    "non-finite-number": (
        frame((_MORPHEUS_HEADER + ', "x-priority": NaN}').encode(), _MORPHEUS_CONTENT),
        "a search whose JSON header holds NaN in an extension key",
    ),
    "duplicate-key": (
        frame((_MORPHEUS_HEADER + ', "x-trace": 1, "x-trace": 2}').encode(), _MORPHEUS_CONTENT),
        "a search whose JSON header repeats an extension key",
    ),
}

#: The profile flag under which each violation may be read as a request and answered.
_ANSWER_OK = {
    "non-finite-number": "lax_json",
    "duplicate-key": "lax_json",
    "invalid-header-value": "lax_header_values",
}

#: One line per error code: what to fix when its check fails.
_VIOLATION_HINTS: dict[str, str] = {
    "zero-header-length": "refuse a header length of 0 (zero-header-length) and close: an empty header "
    "is not a JSON object",
    "header-not-utf8": "decode the JSON header as strict UTF-8 and refuse it (header-not-utf8, then "
    "close) when that fails, instead of crashing",
    "header-not-json": "catch the JSON error on the header, refuse it (header-not-json) and close that "
    "connection only",
    "non-finite-number": "read the header with a parse_constant that raises: NaN and Infinity are not "
    "JSON (non-finite-number)",
    "duplicate-key": "read the header with an object_pairs_hook that refuses repeated keys "
    "(duplicate-key): readers disagree on which one wins",
    "header-not-object": "check that the parsed header is a dict before looking keys up (header-not-object)",
    "missing-header-key": "check that byteorder, content-type, content-encoding and content-length are "
    "all there (missing-header-key), then close",
    "invalid-header-value": "check each required value's type and range (content-length: an int, not a "
    "bool, >= 0) and refuse a bad one (invalid-header-value)",
    "content-too-large": "compare content-length with a limit as soon as the header is parsed and refuse "
    "it (content-too-large) without waiting for the content",
    "incomplete-message": "on EOF inside a message, send incomplete-message (or close): never wait for "
    "bytes after the peer's FIN",
    "unsupported-encoding": "decode text/json only with utf-8, utf-16, utf-32, ascii or latin-1; answer "
    "any other name with the error message unsupported-encoding",
    "content-not-decodable": "catch UnicodeDecodeError on the content and answer content-not-decodable; "
    "keep the connection open",
    "content-not-json": "catch the JSON error on the content and answer content-not-json; keep the "
    "connection open",
}


def _violation_offence(row: Violation, profile: Profile) -> _Offence:
    data, what = row.example.data, row.example.description
    if profile.lax_json and row.code in _LAX_JSON_EXAMPLES:
        data, what = _LAX_JSON_EXAMPLES[row.code]
    return _Offence(
        data,
        what,
        row.code,
        half_close=row.at_end_of_stream,
        must_close=row.closes_connection,
        request=row.example.message if row.is_content else None,
        answer_ok=_ANSWER_OK.get(row.code),
    )


def _violation_check(row: Violation) -> Callable[[CheckContext], str]:
    """Send the row's canonical example: a stream error must end in an error message naming it or
    a close (S2); a content error gets the application's outcome, an error message (S3)."""

    def run(ctx: CheckContext) -> str:
        return _misbehaviour(ctx, _violation_offence(row, ctx.profile))

    return run


# -- header values (H7) -----------------------------------------------------------------


#: Every kind of invalid value of each required key: (check name suffix, value).
_BAD_VALUES: dict[str, list[tuple[str, Any]]] = {
    "byteorder": [("middle", "middle"), ("upper-case", "LITTLE"), ("number", 1), ("null", None)],
    "content-type": [("empty", ""), ("number", 7), ("null", None)],
    "content-encoding": [("empty", ""), ("number", 0), ("list", ["utf-8"])],
    "content-length": [
        ("negative", -1),
        ("float", 41.0),
        ("bool", True),
        ("string", "41"),
        ("null", None),
    ],
}


def header_value_offence(key: str, value: Any) -> _Offence:
    """A search request whose header sets ``key`` to the invalid ``value`` (the content follows
    whole, so that a lax reader has a request to answer)."""
    header: dict[str, Any] = {
        "byteorder": _BYTEORDER,
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": len(_MORPHEUS_CONTENT),
    }
    header[key] = value
    raw = json.dumps(header, ensure_ascii=False).encode()
    return _Offence(
        frame(raw, _MORPHEUS_CONTENT),
        f"the JSON header sets {key} to {json.dumps(value)}",
        "invalid-header-value",
        answer_ok="lax_header_values",
    )


def _header_value_check(key: str, value: Any) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        return _misbehaviour(ctx, header_value_offence(key, value))

    return run


# -- errors: what comes before and after one (F5, S2, S3, S6) ---------------------------


def _check_no_resync(ctx: CheckContext) -> str:
    bad = VIOLATIONS["header-not-json"].example.data
    behind = search("morpheus")
    conn = ctx.connect("bad header, then a request")
    conn.send(bad + behind.encode())
    bound = ctx.bound(2.0)
    reading = conn.read_until_close(bound)
    if reading.end is End.TIMEOUT and not reading.messages:
        raise CheckFailed(
            f"a bad header then a request: no error message and no close for {bound:.1f}s", "unsafe"
        )
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"a bad header then a request: bytes that break the protocol: {reading.error}")
    answers = [m for m in reading.messages if error_code(m) is None]
    if answers:
        raise CheckFailed(
            "a bad header then a request: the request behind the bad header was answered "
            f"({_describe_answer(answers[0])}); after a header error nothing resynchronises the stream"
        )
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"a bad header then a request: {_outcome(reading)}; the connection must close")
    return f"{_outcome(reading)}; the request behind the bad header was not read as one"


def _check_answer_before_error(ctx: CheckContext) -> str:
    first = search("ring")
    bad = VIOLATIONS["header-not-object"].example.data
    what = "a request then a bad header"
    conn = ctx.connect("a request, then a bad header")
    conn.send(first.encode() + bad)
    bound = ctx.bound(3.0)
    reading = conn.read_until_close(bound)
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"{what}: bytes that break the protocol: {reading.error}")
    if not reading.messages:
        if reading.end is End.TIMEOUT:
            raise CheckFailed(f"{what}: silence for {bound:.1f}s (server hangs)", "unsafe")
        raise CheckFailed(
            f"{what}: the server closed without answering the request before the bad header "
            "(docs/PROTOCOL.md#s2: what came before is answered)"
        )
    verify_answers(Reading(reading.frames[:1], End.COMPLETE), [first], what, bound, ctx)
    rest = reading.messages[1:]
    if rest:
        code = error_code(rest[0])
        if code is None:
            raise CheckFailed(
                f"{what}: the bad header was answered as a request ({_describe_answer(rest[0])})"
            )
        if code != "header-not-object":
            raise CheckFailed(f"{what}: the error message names {code!r}, expected 'header-not-object'")
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"{what}: {_outcome(reading)}; after a header error the connection is closed")
    then = f"error message {error_code(rest[0])!r}, then close" if rest else "close"
    return f"the request before the bad header answered; then {then}"


def _check_pipeline_after_bad_content(ctx: CheckContext) -> str:
    row = VIOLATIONS["content-not-json"]
    assert row.example.message is not None
    requests = [row.example.message, search("ring")]
    detail = exchange(ctx, requests, label="bad content, then a request")
    if ctx.notes:
        return detail
    return "the bad content answered with its error message, the request behind it answered"


def _check_error_message_shape(ctx: CheckContext) -> str:
    row = VIOLATIONS["content-not-json"]
    request = row.example.message
    assert request is not None
    conn = ctx.connect("bad content")
    conn.send(request.encode())
    bound = ctx.bound(2.0)
    reading = conn.read_messages(1, bound)
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"bad content: no answer for {bound:.1f}s (server hangs)", "unsafe")
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"bad content: bytes that break the protocol: {reading.error}")
    if not reading.messages:
        if ctx.profile.errors_may_close:
            ctx.note("closes on an error")
            return "no error message: the server closes on an error (accepted by this profile)"
        raise CheckFailed("bad content: the server closed the connection without an error message")
    want = ctx.outcomes(request)[0]
    if isinstance(want, Message):  # an application that does not read the content (echo)
        verify_answers(reading, [request], "bad content", bound, ctx)
        return "answered as the application answers it (it does not read the content)"
    message = reading.messages[0]
    problems = []
    if message.header.get("content-type") != "text/json":
        problems.append(f"content-type {message.header.get('content-type')!r}")
    try:
        body = message.json()
    except Exception as exc:
        body = None
        problems.append(f"content not readable JSON ({exc})")
    if body is not None:
        if not isinstance(body, dict):
            problems.append(f"content {_short(body)} is not an object")
        else:
            if not isinstance(body.get("error"), str):
                problems.append('no string "error"')
            elif body["error"] != want.code:
                problems.append(f'"error" {body["error"]!r}, expected {want.code!r}')
            if not isinstance(body.get("detail"), str) or not body["detail"]:
                problems.append('no non-empty string "detail"')
    if problems:
        raise CheckFailed(
            'the error message is not text/json {"error": code, "detail": reason}: ' + "; ".join(problems)
        )
    return f"text/json {_short(body)}"
