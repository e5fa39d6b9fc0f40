"""The list of lpjson checks in the order the probe runs them (:func:`lpjson_checks`), the
rules no check judges (:data:`UNCHECKED_RULES`), and lookup by name."""

from __future__ import annotations

import json
from collections.abc import Sequence

from harness.apps import App
from harness.message import Message
from harness.probe.checks.answers import binary, search
from harness.probe.checks.connections import (
    IDLE_MARGIN,
    _check_half_close,
    _check_huge_length,
    _check_interleaved,
    _check_many_connections,
    _check_many_large_requests,
    _check_never_reads,
    _check_never_reads_small_window,
    _check_slow_sender,
    idle_timeout_run,
)
from harness.probe.checks.context import _BYTEORDER, Check
from harness.probe.checks.encodings import _ENCODED_SEARCHES, _FOREIGN_CODECS, _foreign_codec_check
from harness.probe.checks.framing import (
    _answer_check,
    _check_one_byte,
    _check_random_splittings,
    _header_end,
    _pipeline,
    _split_at,
)
from harness.probe.checks.violations import (
    _ANSWER_OK,
    _BAD_VALUES,
    _VIOLATION_HINTS,
    _check_answer_before_error,
    _check_error_message_shape,
    _check_no_resync,
    _check_pipeline_after_bad_content,
    _header_value_check,
    _violation_check,
)
from harness.violations import VIOLATIONS

#: Rules of docs/PROTOCOL.md that no probe check judges by default, and why (tests hold this
#: list exact).
UNCHECKED_RULES: dict[str, str] = {
    "L2": "the idle timeout's length is the server's choice (the reference waits 30 s): a probe "
    "bounded to seconds cannot tell a server without one from a server with a long one; "
    "--idle-timeout SECONDS (the longest you accept) adds the idle-timeout check",
    "E1": "an encoder rule: a server's header need not equal the guide's byte for byte; answers are "
    "compared by header values",
    "E2": "an encoder rule: a server's JSON content need not equal the guide's byte for byte; answers "
    "are compared as decoded JSON values",
}


# -- the list ----------------------------------------------------------------------------

_SPLITS = ("split-prefix", "split-header", "split-content")


def _answer_rule(app_name: str, search_rule: str) -> str:
    """The rule an answer check tests: the search application's, or echo's A4."""
    return {"search": search_rule, "echo": "A4"}.get(app_name, "S1")


def lpjson_checks(app: App | str = "search", *, idle_timeout: float | None = None) -> list[Check]:
    """Every check of the lpjson protocol, in the order the probe runs them, for the application
    ``app`` (its name decides which rule the answer checks cite: A1-A3 for search, A4 for echo).

    With ``idle_timeout`` (seconds: the longest idle timeout the server may have), the
    ``idle-timeout`` check of L2 is added after ``slow-sender``.
    """
    app_name = app if isinstance(app, str) else app.name
    echo = app_name == "echo"

    def answers(rule: str) -> str:
        return _answer_rule(app_name, rule)

    answer_hint = (
        "answer every request with itself: the same header values and content"
        if echo
        else 'answer {"action": "search"} with {"result": ...} from the guide\'s table (docs/PROTOCOL.md#a1)'
    )
    basic = ("search-morpheus",)
    checks = [
        Check(
            "search-morpheus",
            "search 'morpheus' gets the application's answer",
            3,
            _answer_check(search("morpheus")),
            "answers",
            answers("A1"),
            hint=answer_hint,
        ),
        Check(
            "search-ring",
            "search 'ring' gets the application's answer",
            3,
            _answer_check(search("ring")),
            "answers",
            answers("A1"),
            hint=answer_hint,
            depends=basic,
        ),
        Check(
            "search-dog",
            "search '\U0001f436' (non-ASCII) gets the application's answer",
            3,
            _answer_check(search("\U0001f436")),
            "answers",
            answers("A1"),
            hint="decode the content as UTF-8 text and compare strings, not bytes with escapes",
            depends=basic,
        ),
        Check(
            "search-miss",
            "search 'needle' gets \"No match for 'needle'.\"" if not echo else "search 'needle' is echoed",
            3,
            _answer_check(search("needle")),
            "answers",
            answers("A1"),
            hint=answer_hint,
            depends=basic,
        ),
        Check(
            "search-no-value",
            'search without a "value" gets "No match for \'None\'."'
            if not echo
            else 'search without a "value" is echoed',
            3,
            _answer_check(Message.from_json({"action": "search"}, byteorder=_BYTEORDER)),
            "answers",
            answers("A1"),
            hint='a search without "value" has the value None: answer "No match for \'None\'." '
            "(docs/PROTOCOL.md#a1), never let a missing key raise"
            if not echo
            else answer_hint,
            depends=basic,
        ),
        Check(
            "binary",
            "a binary request gets its first 10 bytes back" if not echo else "a binary request is echoed",
            3,
            _answer_check(binary("binary\U0001f603".encode())),
            "answers",
            answers("A3"),
            hint="answer another content-type with b'First 10 bytes of request: ' + content[:10]"
            if not echo
            else answer_hint,
            depends=basic,
        ),
        Check(
            "invalid-action",
            "action 'fetch' gets the invalid-action answer" if not echo else "action 'fetch' is echoed",
            3,
            _answer_check(Message.from_json({"action": "fetch", "value": "morpheus"}, byteorder=_BYTEORDER)),
            "answers",
            answers("A2"),
            hint='answer an action other than search with {"result": "Error: invalid action \'<action>\'."}'
            if not echo
            else answer_hint,
            depends=basic,
        ),
        Check(
            "binary-not-utf8",
            "binary content that is not UTF-8 is answered, its bytes intact",
            3,
            _answer_check(binary(b"\xff\xfe\x00\x80\xc3(\xed\xa0\x80\xf8tail")),
            "answers",
            "C5",
            hint="pass binary content on as bytes: never decode it, it need not be text",
            depends=basic,
        ),
        Check(
            "empty-content",
            "a binary request with content-length 0 is answered",
            3,
            _answer_check(binary(b"")),
            "answers",
            "C1",
            hint="a content-length of 0 is a whole message: answer it without waiting for content",
            depends=basic,
        ),
        Check(
            "extension-header",
            "a request with extension header keys is answered" + (" (and they come back)" if echo else ""),
            3,
            _answer_check(search("ring", extra={"x-request-id": "probe-7", "x-route": {"via": ["a", "b"]}})),
            "answers",
            "H8",
            hint="accept header keys you do not know (only the four required keys are checked)"
            + ("; echo them back" if echo else ""),
            depends=basic,
        ),
        Check(
            "split-prefix",
            "a request split inside the 2-byte prefix",
            3,
            _split_at(lambda raw: 1, "inside the prefix"),
            "splitting",
            "F2",
            hint="read until 2 bytes are buffered before taking the header length: one recv() is not one "
            "message",
            depends=basic,
        ),
        Check(
            "split-header",
            "a request split inside the JSON header",
            3,
            _split_at(lambda raw: (2 + _header_end(raw)) // 2, "inside the header"),
            "splitting",
            "F2",
            hint="read until 2 + N bytes are buffered before parsing the JSON header: one recv() is not one "
            "message",
            depends=basic,
        ),
        Check(
            "split-content",
            "a request split inside the content",
            3,
            _split_at(lambda raw: (_header_end(raw) + len(raw)) // 2, "inside the content"),
            "splitting",
            "F2",
            hint="read until 2 + N + content-length bytes are buffered before taking the content: one recv() "
            "is not one message",
            depends=basic,
        ),
        Check(
            "split-one-byte",
            "a request sent one byte per send",
            5,
            _check_one_byte,
            "splitting",
            "F2",
            hint="append what each recv() returns to a buffer and parse only whole pieces: a read may "
            "return a single byte",
            depends=_SPLITS,
        ),
        Check(
            "split-random",
            "20 requests cut at seeded random positions",
            10,
            _check_random_splittings,
            "splitting",
            "F2",
            hint="append what each recv() returns to a buffer and parse only whole pieces, wherever the "
            "cuts fall",
            depends=_SPLITS,
        ),
        Check(
            "pipeline-2",
            "2 requests in one send, answered in order",
            4,
            _pipeline(2),
            "pipelining",
            "F3",
            hint="after a message, keep the bytes that follow in the buffer and parse them as the next "
            "message: a pipelined request must not be dropped",
            depends=basic,
            relaxed_by=frozenset({"one_request_per_connection"}),
        ),
        Check(
            "pipeline-100",
            "100 requests in one send, answered in order",
            8,
            _pipeline(100),
            "pipelining",
            "S1",
            hint="answer every request in the buffer, in order, and keep the connection open until the "
            "peer closes it",
            # 100 requests in one send reach the server in reads cut anywhere: splitting is a precondition.
            depends=("pipeline-2", *_SPLITS),
            relaxed_by=frozenset({"one_request_per_connection"}),
        ),
        Check(
            "concurrent-connections",
            "50 connections open at once, each answered",
            8,
            _check_many_connections,
            "concurrency",
            "S4",
            hint="serve connections concurrently (selectors, threads or asyncio): one client must not wait "
            "for another",
            depends=basic,
        ),
        Check(
            "concurrent-interleaved",
            "10 connections sending partial requests round robin",
            8,
            _check_interleaved,
            "concurrency",
            "S4",
            hint="keep one receive buffer per connection, never one per server",
            depends=(*_SPLITS, "concurrent-connections"),
        ),
        Check(
            "half-close",
            "a request followed by the client's FIN is still answered",
            5,
            _check_half_close,
            "connection",
            "S5",
            hint="on EOF (recv() returns b''), answer the complete requests before closing",
            depends=basic,
        ),
        Check(
            "slow-sender",
            "a request trickling in is answered; others are served meanwhile",
            8,
            _check_slow_sender,
            "connection",
            "S4",
            hint="never block in one connection's recv(): a slow sender must not hold up other clients",
            depends=(*_SPLITS, "concurrent-connections"),
            measures_memory=True,
        ),
        Check(
            "never-reads",
            "a client that never reads does not stop others being served",
            10,
            _check_never_reads,
            "connection",
            "L3",
            hint="stop reading a connection while much of its output is unsent (backpressure) instead of "
            "buffering answers without bound",
            depends=basic,
            measures_memory=True,
        ),
        Check(
            "never-reads-small-window",
            "a client with a 16 KiB receive buffer that never reads: others served, memory bounded",
            12,
            _check_never_reads_small_window,
            "limits",
            "L3",
            hint="stop reading a connection while much of its output is unsent (pause reading, or "
            "await drain()): answers to a peer that does not read must not pile up in memory",
            depends=("never-reads",),
            measures_memory=True,
        ),
        Check(
            "many-large-requests",
            "96 requests of 1000 KiB, a connection each, are answered; memory stays bounded",
            12,
            _check_many_large_requests,
            "limits",
            "L3",
            hint="drop a request's bytes once it is answered: nothing a peer sent may be kept for the "
            "life of the server",
            depends=("split-content",),
            measures_memory=True,
        ),
        Check(
            "huge-length",
            "content-length 2**40 is refused without waiting for the content",
            6,
            _check_huge_length,
            "limits",
            "L1",
            hint=_VIOLATION_HINTS["content-too-large"],
            depends=basic,
            measures_memory=True,
        ),
    ]
    for row in VIOLATIONS.values():
        what = row.example.description
        if row.is_content:
            verdict = "the application's answer" if echo else f"the error message {row.code}"
        else:
            verdict = "error message or close"
        relaxed = set()
        if row.code in _ANSWER_OK:
            relaxed.add(_ANSWER_OK[row.code])
        if row.is_content:
            relaxed.add("errors_may_close")
        deps = ("huge-length", "split-content") if row.code == "content-too-large" else ("split-content",)
        checks.append(
            Check(
                f"violation-{row.code}",
                f"{what}: {verdict}; others unaffected",
                8,
                _violation_check(row),
                "violations",
                row.rule,
                hint=_VIOLATION_HINTS[row.code],
                depends=deps,
                measures_memory=row.code == "content-too-large",
                relaxed_by=frozenset(relaxed),
            )
        )
    checks += [
        Check(
            "pipeline-after-bad-content",
            "bad text/json content, then a request, in one send: both answered",
            4,
            _check_pipeline_after_bad_content,
            "pipelining",
            "S3",
            hint="answer a request whose content cannot be read with an error message and carry on: the "
            "requests behind it are still in sync",
            depends=("pipeline-2", "violation-content-not-json"),
            relaxed_by=frozenset({"one_request_per_connection", "errors_may_close"}),
        ),
        Check(
            "answer-before-error",
            "a request, then a bad header, in one send: the request is answered, then close",
            4,
            _check_answer_before_error,
            "errors",
            "S2",
            hint="answer every complete request before the bad header, then send the error and close",
            depends=basic,
            relaxed_by=frozenset({"one_request_per_connection"}),
        ),
        Check(
            "no-resync",
            "a bad header, then a request, in one send: the request is never answered",
            4,
            _check_no_resync,
            "errors",
            "F5",
            hint="after a header error stop reading that stream and close it: nothing tells where the next "
            "message starts",
            depends=basic,
        ),
        Check(
            "error-message-shape",
            'an error message is text/json {"error": code, "detail": reason}',
            4,
            _check_error_message_shape,
            "errors",
            "S6",
            hint='send errors as text/json {"error": "<code>", "detail": "<reason>"} in utf-8',
            depends=("violation-content-not-json",),
            relaxed_by=frozenset({"errors_may_close"}),
        ),
    ]
    for suffix, encoding, value in _ENCODED_SEARCHES:
        checks.append(
            Check(
                f"encoding-{suffix}",
                f"a search for {value!r} in text/json {encoding} gets the application's answer",
                3,
                _answer_check(search(value, encoding=encoding)),
                "encodings",
                "C2",
                hint="decode text/json content with its content-encoding (utf-8, utf-16, utf-32, ascii, "
                "latin-1, any case) before parsing it",
                depends=basic,
            )
        )
    for suffix, encoding, content in _FOREIGN_CODECS:
        checks.append(
            Check(
                f"codec-{suffix}",
                f"text/json content in {encoding!r}, not on the allow-list: "
                + ("echoed" if echo else "error message unsupported-encoding"),
                6,
                _foreign_codec_check(encoding, content),
                "encodings",
                "C2",
                hint=_VIOLATION_HINTS["unsupported-encoding"]
                + " (never pass a peer's codec name to bytes.decode)",
                # A server without the allow-list (or without content error messages) fails the
                # canonical rot13 example first: these follow from it.
                depends=("split-content", "violation-unsupported-encoding"),
                relaxed_by=frozenset({"any_codec", "errors_may_close"}),
            )
        )
    for key, values in _BAD_VALUES.items():
        first = f"header-{key}-{values[0][0]}"
        for suffix, value in values:
            # The other bad values of a key follow from the first: one missing check of the key.
            deps = ("split-content",) if suffix == values[0][0] else ("split-content", first)
            checks.append(
                Check(
                    f"header-{key}-{suffix}",
                    f"{key} {json.dumps(value)}: error message invalid-header-value or close",
                    6,
                    _header_value_check(key, value),
                    "header-values",
                    "H7",
                    hint=_header_value_hint(key),
                    depends=deps,
                    relaxed_by=frozenset({"lax_header_values"}),
                )
            )
    if idle_timeout is not None:
        checks.insert(
            next(i for i, check in enumerate(checks) if check.name == "slow-sender") + 1,
            Check(
                "idle-timeout",
                f"a peer gone quiet mid-request is cut off within {idle_timeout:g} s",
                idle_timeout + IDLE_MARGIN + 5,
                idle_timeout_run(idle_timeout),
                "connection",
                "L2",
                hint="time every connection out: a peer that completes no request for the idle timeout is "
                "sent the idle-timeout error message and closed (asyncio.timeout around each read, or a "
                "deadline per connection in a selectors loop)",
                depends=("split-content",),
            ),
        )
    return checks


def _header_value_hint(key: str) -> str:
    if key == "byteorder":
        return "check that byteorder is the string 'little' or 'big'; refuse others (invalid-header-value)"
    if key == "content-length":
        return (
            "check type(content-length) is int (bool and float are not) and >= 0 before using it; refuse it "
            "(invalid-header-value)"
        )
    return f"check that {key} is a non-empty string; refuse anything else (invalid-header-value)"


#: Every check of the search application, in the order the probe runs them.
CHECKS: list[Check] = lpjson_checks()


def check_names(checks: Sequence[Check] | None = None) -> list[str]:
    return [check.name for check in (CHECKS if checks is None else checks)]


def find_check(name: str, checks: Sequence[Check] | None = None) -> Check:
    for check in CHECKS if checks is None else checks:
        if check.name == name:
            return check
    raise KeyError(name)
