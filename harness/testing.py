"""Conformance checks for your own lpjson codec: one call in pytest.

::

    from harness.testing import check_decoder, check_encoder

    def test_my_decoder():
        check_decoder(MyDecoder)

    def test_my_encoder():
        check_encoder(my_encode)

**The decoder adapter.** ``factory()`` returns a fresh decoder with two methods:

- ``feed(data: bytes)`` returns the messages that ``data`` completes, in order (a list,
  empty when none), each a ``(header, content)`` pair or an object with ``.header`` and
  ``.content``. ``header`` is the JSON header as a dict; ``content`` is the content bytes,
  or, if your decoder reads ``text/json`` content, the decoded JSON value;
- ``close()`` says the stream ended: it must raise if the stream ended inside a message.

Any exception out of ``feed()`` or ``close()`` counts as an error detected. When ``feed()``
raises, the messages the same call completed are read from the exception's ``messages``
attribute if it has one (harness's own errors do), and otherwise not checked. Mapping
your exceptions to harness's error codes is optional: pass ``error_code=`` (a function of
the exception returning a code of docs/PROTOCOL.md#error-codes, or ``None``), or give the
factory an ``error_code`` attribute (a static method of your decoder class); when there
is one, codes are compared.

**What check_decoder checks** (each a Hypothesis property, with harness's reference decoder
as the oracle on the same bytes and the same chunks):

- ``split``: valid streams, headers written in any valid JSON style, give the same
  messages fed whole or cut anywhere, each returned by the ``feed()`` call that completes
  it (docs/PROTOCOL.md#f2, #f3);
- ``round-trip``: messages written by harness's encoder decode to the same header and
  content (docs/PROTOCOL.md#e1);
- ``violation:CODE``, one per row of :data:`harness.violations.VIOLATIONS`: every framing,
  header and content violation, after valid messages and cut anywhere, is an error
  (the right code where mapped), raised neither before the offending piece is whole nor
  (for ``content-too-large``) after; a stream cut short (``incomplete-message``) is reported
  by ``close()``. Content errors may be raised or the content passed on as bytes, but
  never decoded to a value;
- ``content-limit``: the header of a message over ``max_content_length``, fed alone, is
  refused at once (docs/PROTOCOL.md#l1).

It runs with the active Hypothesis profile, or ``settings=``, except that the deadline,
the ``too_slow``/``data_too_large`` health checks and ``report_multiple_bugs`` are off
(speed is not what it checks). Every property runs; the failures are raised together as
one :class:`DecoderCheckFailure`, each with the shrunk bytes, the cut points, the expected
and actual results, a file under ``.harness/`` and the ``harness pcap from-bytes`` command
that turns it into a capture.

**The encoder adapter.** ``check_encoder(encode)`` takes ``encode(header: dict, content:
bytes) -> bytes``: the header holds the required keys and extension keys, the content is
the content bytes as they go on the wire. It must write the wire vectors of
docs/PROTOCOL.md#wire-vectors byte for byte, write every generated message as the guide
does (docs/PROTOCOL.md#e1: ``json.dumps(ensure_ascii=False)``, required keys first in the
guide's order whatever order the dict has, extension keys after), and its output must
decode with harness's decoder to the same message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from harness._extras import importing
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder
from harness.errors import ContentError, ContentTooLarge, ProtocolError
from harness.frames import frame
from harness.fuzzing.compare import same
from harness.message import REQUIRED_KEYS, Message
from harness.spec import cite
from harness.vectors import GUIDE_EXCHANGES
from harness.violations import VIOLATIONS, Violation

with importing("harness.testing", "hypothesis"):
    from hypothesis import HealthCheck, given
    from hypothesis import settings as Settings
    from hypothesis import strategies as st

    from harness import strategies as lst
    from harness.exampledb import ENV_VAR as EXAMPLE_DB_ENV
    from harness.exampledb import example_database

__all__ = [
    "CheckFailure",
    "DecoderCheckFailure",
    "Failure",
    "check_decoder",
    "check_encoder",
    "compare_decoder",
]

log = logging.getLogger(__name__)

#: Where failing inputs are written, relative to the working directory.
FAILURE_DIR = Path(".harness")

ErrorCode: TypeAlias = Callable[[BaseException], "str | None"]


class DecoderLike(Protocol):
    """What ``factory()`` returns (see the module docstring)."""

    def feed(self, data: bytes) -> Iterable[Any]: ...

    def close(self) -> None: ...


DecoderFactory: TypeAlias = Callable[[], DecoderLike]
Encoder: TypeAlias = Callable[[dict[str, Any], bytes], bytes]


# -- failures -------------------------------------------------------------------------------------


@dataclass
class Failure:
    """One property that does not hold: the input, where it was cut, what was expected and seen."""

    check: str
    rule: str
    problem: str
    data: bytes
    cuts: list[int] = field(default_factory=list)
    expected: str = ""
    actual: str = ""
    code: str | None = None
    path: Path | None = None

    @property
    def command(self) -> str:
        """The ``harness pcap from-bytes`` command that turns the input into a capture."""
        if self.path is None:
            return ""
        cuts = sorted({c for c in self.cuts if 0 < c < len(self.data)})
        parts = ["harness", "pcap", "from-bytes", str(self.path)]
        if len(self.data) > 2 and cuts == list(range(1, len(self.data))):
            parts += ["--chunk", "1"]
        elif cuts:
            parts += ["--cuts", ",".join(map(str, cuts))]
        parts += ["--out", str(self.path.with_suffix(".pcapng"))]
        return shlex.join(parts)

    def save(self, directory: Path = FAILURE_DIR) -> None:
        """Write the input to ``directory`` (named by its hash), for the capture command."""
        digest = hashlib.sha256(self.data).hexdigest()[:12]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.check.replace(':', '-')}-{digest}.bin"
        path.write_bytes(self.data)
        self.path = path

    def _cuts_text(self) -> str:
        if not self.cuts:
            return "nowhere (fed whole)"
        if len(self.data) > 2 and self.cuts == list(range(1, len(self.data))):
            return "every byte (fed one byte at a time)"
        if len(self.cuts) > 24:
            return f"{self.cuts[:24]} and {len(self.cuts) - 24} more (all in the command below)"
        return str(self.cuts)

    def __str__(self) -> str:
        shown = self.data if len(self.data) <= 600 else self.data[:600] + b"..."
        lines = [
            f"[{self.check}] {cite(self.rule)}: {self.problem}",
            f"  bytes ({len(self.data)}): {shown!r}",
            f"  cut at: {self._cuts_text()}",
        ]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.actual:
            lines.append(f"  actual:   {self.actual}")
        if self.path is not None:
            lines.append(f"  saved as {self.path}; capture: {self.command}")
        return "\n".join(lines)


class CheckFailure(AssertionError):
    """The codec under test broke one or more properties; ``failures`` lists them."""

    def __init__(self, what: str, failures: list[Failure], skipped: Sequence[str] = ()) -> None:
        self.failures = failures
        self.skipped = list(skipped)
        names = ", ".join(f.check for f in failures)
        body = "\n\n".join(str(f) for f in failures)
        note = (
            f"\n\nNot run until these pass (they feed valid messages first): {', '.join(skipped)}"
            if skipped
            else ""
        )
        super().__init__(f"{what} failed {len(failures)} check(s) ({names}):\n\n{body}{note}")


class DecoderCheckFailure(CheckFailure):
    """Raised by :func:`check_decoder`."""


class EncoderCheckFailure(CheckFailure):
    """Raised by :func:`check_encoder`."""


class _Found(Exception):
    """A failure found inside a Hypothesis example (carries it out of the test)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


# -- running a decoder ----------------------------------------------------------------------------


@dataclass
class _Run:
    """What a decoder made of a stream fed in chunks.

    ``outputs[i]`` holds the messages chunk ``i`` completed; ``at`` is the index of the chunk
    whose ``feed()`` raised, ``len(chunks)`` when ``close()`` raised, ``None`` when nothing did.
    """

    outputs: list[list[tuple[Any, Any]]]
    error: BaseException | None = None
    at: int | None = None
    raised_messages: list[tuple[Any, Any]] | None = None

    def messages(self) -> list[tuple[Any, Any]]:
        out = [m for chunk in self.outputs for m in chunk]
        return out + (self.raised_messages or [])


def _pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, tuple | list) and len(item) == 2:
        return item[0], item[1]
    if hasattr(item, "header") and hasattr(item, "content"):
        return item.header, item.content
    raise TypeError(
        f"feed() returned {item!r:.100} among its messages: each must be a (header, content) pair "
        f"or an object with .header and .content"
    )


def _pairs(result: Any) -> list[tuple[Any, Any]]:
    if result is None or isinstance(result, bytes | str | dict):
        raise TypeError(
            f"feed() returned {result!r:.100}: it must return the messages the data completes "
            f"(a list, empty when none)"
        )
    return [_pair(item) for item in result]


def _run_user(factory: DecoderFactory, chunks: Sequence[bytes]) -> _Run:
    decoder = factory()
    run = _Run([])
    for i, chunk in enumerate(chunks):
        try:
            result = decoder.feed(chunk)
        except Exception as exc:
            run.error, run.at = exc, i
            attached = getattr(exc, "messages", None)
            if isinstance(attached, list):
                try:
                    run.raised_messages = [_pair(m) for m in attached]
                except TypeError:
                    run.raised_messages = None
            return run
        run.outputs.append(_pairs(result))
    try:
        decoder.close()
    except Exception as exc:
        run.error, run.at = exc, len(chunks)
    return run


def _run_reference(chunks: Sequence[bytes], max_content_length: int) -> _Run:
    decoder = Decoder(max_content_length)
    run = _Run([])
    for i, chunk in enumerate(chunks):
        try:
            messages = decoder.feed(chunk)
        except ProtocolError as error:
            run.error, run.at = error, i
            run.raised_messages = [(m.header, m) for m in error.messages]
            return run
        run.outputs.append([(m.header, m) for m in messages])
    try:
        decoder.close()
    except ProtocolError as error:
        run.error, run.at = error, len(chunks)
    return run


# -- comparing ------------------------------------------------------------------------------------


def _short(value: Any, width: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _describe_messages(messages: Sequence[tuple[Any, Any]]) -> str:
    if not messages:
        return "no message"
    shown = []
    for header, content in messages[:3]:
        body = content.content if isinstance(content, Message) else content
        shown.append(f"({_short(header, 120)}, {_short(body, 60)})")
    more = f" and {len(messages) - 3} more" if len(messages) > 3 else ""
    return f"{len(messages)} message(s): " + ", ".join(shown) + more


def _where(at: int | None, chunks: Sequence[bytes]) -> str:
    if at is None:
        return ""
    if at >= len(chunks):
        return "at close()"
    return f"while feeding chunk {at} of {len(chunks)}"


def _describe_run(run: _Run, chunks: Sequence[bytes], code: str | None = None) -> str:
    text = _describe_messages(run.messages())
    if run.error is None:
        return f"{text}, then a clean end of stream"
    error = run.error
    name = f"{type(error).__name__}: {str(error)[:160]}"
    if code:
        name += f" (code {code})"
    return f"{text}, then {name} {_where(run.at, chunks)}"


def _content_problem(index: int, got: Any, reference: Message) -> tuple[str, str, str | None] | None:
    """Why the decoder's content differs from the reference message's: (problem, rule, code) or None."""
    if isinstance(got, bytes | bytearray | memoryview):
        if bytes(got) != reference.content:
            return (
                f"message {index}: content {_short(bytes(got), 80)} "
                f"instead of {_short(reference.content, 80)}",
                "C1",
                None,
            )
        return None
    # The decoder read the content as JSON.
    if not reference.is_json:
        return (
            f"message {index}: a {reference.content_type!r} message's content must be passed on as bytes "
            f"(docs/PROTOCOL.md#c5), not {_short(got, 80)}",
            "C5",
            None,
        )
    try:
        want = reference.json()
    except ContentError as error:
        row = VIOLATIONS[error.code]
        return (
            f"message {index}: decoded content the spec refuses: {error.code}, {row.summary} "
            f"({str(error)[:120]})",
            row.rule,
            error.code,
        )
    if not same(got, want):
        return f"message {index}: content read as {_short(got, 80)}, not {_short(want, 80)}", "C4", None
    return None


def _message_problem(
    index: int, got: tuple[Any, Any], want: tuple[Any, Any]
) -> tuple[str, str, str | None] | None:
    header, content = got
    want_header, reference = want
    if not isinstance(header, dict) or not same(header, want_header):
        return f"message {index}: header {_short(header)} instead of {_short(want_header)}", "H8", None
    return _content_problem(index, content, reference)


def _compare_lists(
    got: Sequence[tuple[Any, Any]], want: Sequence[tuple[Any, Any]], first: int
) -> tuple[str, str, str | None] | None:
    if len(got) != len(want):
        return (
            f"returned {len(got)} message(s) where {len(want)} were complete "
            f"(every complete message, in order, from the call that completes it)",
            "F3" if len(got) < len(want) else "F2",
            None,
        )
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        problem = _message_problem(first + i, g, w)
        if problem is not None:
            return problem
    return None


def _content_error(messages: Sequence[tuple[Any, Any]]) -> ContentError | None:
    """The first content error among ``messages`` of the reference (``Message.json()`` raising)."""
    for _header, message in messages:
        if message.is_json:
            try:
                message.json()
            except ContentError as error:
                return error
    return None


def _first_problem(
    user: _Run,
    ref: _Run,
    chunks: Sequence[bytes],
    error_code: ErrorCode | None,
) -> tuple[str, str, str | None] | None:
    """Why ``user`` differs from the reference ``ref``: (problem, rule, violation code) or ``None``."""
    n = len(chunks)
    user_at = n + 1 if user.at is None else user.at
    ref_at = n + 1 if ref.at is None else ref.at
    ref_error = ref.error
    row = VIOLATIONS[ref_error.code] if isinstance(ref_error, ProtocolError) else None
    # Chunks both decoders fed without an error: the same messages, chunk by chunk.
    index = 0
    for i in range(min(user_at, ref_at, n)):
        problem = _compare_lists(user.outputs[i], ref.outputs[i], index)
        if problem is not None:
            return (f"{problem[0]} (chunk {i})", problem[1], problem[2])
        index += len(ref.outputs[i])
    if user_at < min(ref_at, n):
        # A chunk the reference decodes: raising on it is fine when it completes a message whose
        # content the spec refuses (docs/PROTOCOL.md#c5: content is checked when it is read).
        content_error = _content_error(ref.outputs[user_at])
        if content_error is not None:
            if error_code is not None and user.error is not None:
                got_code = error_code(user.error)
                if got_code is not None and got_code != content_error.code:
                    return (
                        f"raised {type(user.error).__name__} mapped to {got_code!r}, but the violation "
                        f"is {content_error.code}",
                        VIOLATIONS[content_error.code].rule,
                        content_error.code,
                    )
            return None
    if ref_error is None:
        if user.error is not None:
            return (
                f"refused a valid stream: {type(user.error).__name__}: {str(user.error)[:200]} "
                f"{_where(user.at, chunks)}",
                "F2",
                None,
            )
        return None
    assert row is not None and isinstance(ref_error, ProtocolError)
    if user.error is None:
        if row.at_end_of_stream:
            return (
                f"close() reported nothing for a stream that ends inside a message ({row.summary})",
                row.rule,
                row.code,
            )
        return f"accepted a stream the spec refuses: {row.code}, {row.summary}", row.rule, row.code
    if user_at < ref_at:
        if ref_at == n:
            return (
                f"raised {type(user.error).__name__} {_where(user.at, chunks)} on bytes that only end "
                f"inside a message (which only close() may report)",
                "F4",
                row.code,
            )
        return (
            f"raised {type(user.error).__name__} {_where(user.at, chunks)}, before the offending piece "
            f"was whole ({row.code}: a piece is judged only when all its bytes are in)",
            "F2",
            row.code,
        )
    before = ref.raised_messages or []
    if user_at == ref_at:
        if user.raised_messages is not None and ref_at < n:
            problem = _compare_lists(user.raised_messages, before, index)
            if problem is not None:
                return (f"{problem[0]} (in the chunk that raised)", problem[1], problem[2])
    else:
        # Detected late: no message may come out past the violation.
        if ref_at < n:
            problem = _compare_lists(user.outputs[ref_at], before, index)
            if problem is not None:
                return (f"{problem[0]} (the chunk holding the violation)", problem[1], problem[2])
            for i in range(ref_at + 1, min(user_at, n)):
                if user.outputs[i]:
                    return (f"returned messages from bytes after a {row.code} violation", "F5", row.code)
        if isinstance(ref_error, ContentTooLarge):
            return (
                f"waited for the content of a message over the limit: {str(ref_error)[:120]}; the "
                f"error must come when the header's last byte arrives, not "
                f"{_where(user.at, chunks)}",
                "L1",
                row.code,
            )
    if error_code is not None:
        got_code = error_code(user.error)
        if got_code is not None and got_code != row.code:
            return (
                f"raised {type(user.error).__name__} mapped to {got_code!r}, but the violation is "
                f"{row.code} ({row.summary})",
                row.rule,
                row.code,
            )
    return None


def compare_decoder(
    factory: DecoderFactory,
    data: bytes,
    chunks: Sequence[bytes] | None = None,
    *,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    error_code: ErrorCode | None = None,
    check: str = "compare",
) -> Failure | None:
    """Feed ``data`` (in ``chunks``, default whole) to a fresh decoder and to harness's;
    return the :class:`Failure` that says how they differ, or ``None``.

    The differential oracle of :func:`check_decoder` and ``harness fuzz decoder``.
    """
    if chunks is None:
        chunks = [data]
    if b"".join(chunks) != data:
        raise ValueError("compare_decoder: the chunks do not add up to the data")
    ref = _run_reference(chunks, max_content_length)
    try:
        user = _run_user(factory, chunks)
    except TypeError as exc:  # feed() returned something that is not a list of messages
        return Failure(check, "F3", str(exc), data, _cuts(chunks))
    problem = _first_problem(user, ref, chunks, error_code)
    if problem is None:
        return None
    text, rule, code = problem
    user_code = error_code(user.error) if error_code is not None and user.error is not None else None
    return Failure(
        check,
        rule,
        text,
        data,
        _cuts(chunks),
        expected=_describe_run(ref, chunks, ref.error.code if isinstance(ref.error, ProtocolError) else None),
        actual=_describe_run(user, chunks, user_code),
        code=code,
    )


def _cuts(chunks: Sequence[bytes]) -> list[int]:
    cuts: list[int] = []
    pos = 0
    for chunk in chunks[:-1]:
        pos += len(chunk)
        cuts.append(pos)
    return cuts


# -- the properties --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Case:
    data: bytes
    chunks: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"_Case(data={self.data!r}, cuts={_cuts(self.chunks)})"


def _chunked(data_strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[_Case]:
    @st.composite
    def build(draw: st.DrawFn) -> _Case:
        data = draw(data_strategy)
        chunks = draw(lst.chunkings(data)) if draw(st.booleans()) else [data]
        return _Case(data, tuple(chunks))

    return build()


def _settings(settings: Settings | None) -> Settings:
    parent = settings if settings is not None else Settings()
    shared: dict[str, Any] = {}
    if os.environ.get(EXAMPLE_DB_ENV) and not parent.derandomize:
        # HARNESS_EXAMPLE_DB: failing examples shared through Redis with the team
        # (harness.exampledb); a derandomized run keeps none, as Hypothesis requires.
        shared["database"] = example_database()
    return Settings(
        parent,
        **shared,
        deadline=None,
        report_multiple_bugs=False,
        suppress_health_check=[
            *parent.suppress_health_check,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


def _run_property(
    name: str,
    strategy: st.SearchStrategy[_Case],
    judge: Callable[[_Case], Failure | None],
    examples: Sequence[_Case],
    settings: Settings,
) -> Failure | None:
    """Explicit examples first (each is already minimal), then Hypothesis; the shrunk failure."""
    for case in examples:
        failure = judge(case)
        if failure is not None:
            return failure

    @settings
    @given(case=strategy)
    def property_holds(case: _Case) -> None:
        failure = judge(case)
        if failure is not None:
            raise _Found(failure)

    property_holds.__qualname__ = f"check_decoder[{name}]"
    try:
        property_holds()
    except _Found as found:
        return found.failure
    return None


def _whole_and_bytewise(data: bytes) -> list[_Case]:
    return [_Case(data, (data,)), _Case(data, tuple(data[i : i + 1] for i in range(len(data))) or (b"",))]


#: Content encodings Python can decode but the allow-list refuses (docs/PROTOCOL.md#c2).
_FOREIGN_CODECS = ["utf-7", "utf8", "UTF_8", "utf-8-sig", "cp1252", "idna"]


def _explicit_examples(row: Violation, max_content_length: int) -> list[_Case]:
    cases: list[_Case] = []
    if row.code == "content-too-large":
        if max_content_length == DEFAULT_MAX_CONTENT_LENGTH:
            cases += _whole_and_bytewise(row.example.data)
    elif row.code == "unsupported-encoding":
        for name in _FOREIGN_CODECS:
            message = Message.from_bytes(
                b'{"action": "search", "value": "x"}', content_type="text/json", encoding=name
            )
            cases.append(_Case(message.encode(), (message.encode(),)))
    else:
        cases += _whole_and_bytewise(row.example.data)
    return cases


def _violation_data(row: Violation, max_content_length: int) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        return row.generate(draw, max_content_length=max_content_length).data

    return build()


def _over_limit_headers(max_content_length: int) -> st.SearchStrategy[bytes]:
    """The prefix and header of a message over the limit, and none of its content."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        length = draw(st.integers(max_content_length + 1, max(max_content_length + 1, 2**40)))
        header = {
            "byteorder": draw(st.sampled_from(["little", "big"])),
            "content-type": draw(st.sampled_from(["text/json", "binary/custom-client-binary-type"])),
            "content-encoding": draw(st.sampled_from(["utf-8", "binary"])),
            "content-length": length,
        }
        return frame(json.dumps(header, ensure_ascii=False).encode())

    return build()


def check_decoder(
    factory: DecoderFactory,
    *,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    error_code: ErrorCode | None = None,
    settings: Settings | None = None,
) -> None:
    """Run the framing properties of docs/PROTOCOL.md against the decoders ``factory()`` makes.

    ``max_content_length`` is your decoder's content limit (docs/PROTOCOL.md#l1). Raises
    :class:`DecoderCheckFailure` listing every property that failed (see the module docstring).
    """
    if not callable(factory):
        raise TypeError(f"check_decoder: factory must be callable (a class or function), not {factory!r:.80}")
    if max_content_length < 0:
        raise ValueError("check_decoder: max_content_length must be >= 0")
    if error_code is None:
        mapped = getattr(factory, "error_code", None)
        error_code = mapped if callable(mapped) else None
    active = _settings(settings)
    cap = max(0, min(max_content_length, 2048))
    small = lst.messages(max_content_size=cap)

    def judge(check: str) -> Callable[[_Case], Failure | None]:
        def run(case: _Case) -> Failure | None:
            return compare_decoder(
                factory,
                case.data,
                case.chunks,
                max_content_length=max_content_length,
                error_code=error_code,
                check=check,
            )

        return run

    # (name, strategy, explicit examples): framing valid streams first; the violation checks
    # feed valid messages before each violation, so they mean something only once those pass.
    vectors = b"".join(v for pair in GUIDE_EXCHANGES.values() for v in pair)
    streams = lst.streams(max_size=4, message_strategy=small).map(lambda s: s.data)
    encoded = st.lists(small, max_size=3).map(lambda ms: b"".join(m.encode() for m in ms))
    basics: list[tuple[str, st.SearchStrategy[bytes], list[_Case]]] = [
        ("split", streams, _whole_and_bytewise(vectors)),
        ("round-trip", encoded, []),
    ]
    prefix = st.lists(small, max_size=2).map(lambda ms: b"".join(m.encode() for m in ms))
    others: list[tuple[str, st.SearchStrategy[bytes], list[_Case]]] = [
        (
            f"violation:{row.code}",
            st.tuples(prefix, _violation_data(row, max_content_length)).map(lambda t: t[0] + t[1]),
            _explicit_examples(row, max_content_length),
        )
        for row in VIOLATIONS.values()
    ]
    others.append(("content-limit", _over_limit_headers(max_content_length), []))

    failures: list[Failure] = []
    skipped: list[str] = []
    for group in (basics, others):
        if failures:
            skipped = [name for name, _, _ in group]
            break
        for name, strategy, examples in group:
            started = time.monotonic()
            failure = _run_property(name, _chunked(strategy), judge(name), examples, active)
            log.debug(
                "check_decoder %s: %s in %.1f s",
                name,
                "failed" if failure else "held",
                time.monotonic() - started,
            )
            if failure is not None:
                failures.append(failure)

    for failure in failures:
        try:
            failure.save()
        except OSError as exc:  # a read-only directory: the failure still says everything else
            log.warning("cannot save the failing input under %s: %s", FAILURE_DIR, exc)
    if failures:
        raise DecoderCheckFailure("the decoder", failures, skipped)


# -- the encoder ------------------------------------------------------------------------------------


def _shuffled_header(header: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``header`` with its required keys moved to random places; extension keys keep their order."""
    extensions = [(k, v) for k, v in header.items() if k not in REQUIRED_KEYS]
    required = [(k, header[k]) for k in REQUIRED_KEYS]
    rng.shuffle(required)
    items = list(extensions)
    for item in required:
        items.insert(rng.randrange(len(items) + 1), item)
    return dict(items)


def _encoder_failure(
    check: str, rule: str, problem: str, header: dict[str, Any], content: bytes, expected: bytes, actual: Any
) -> Failure:
    return Failure(
        check,
        rule,
        problem,
        actual if isinstance(actual, bytes) else expected,
        expected=f"{expected!r:.400}",
        actual=f"{actual!r:.400}",
    )


def _judge_encoder(
    encode: Encoder, check: str, header: dict[str, Any], content: bytes, exact: bool
) -> Failure | None:
    want = Message(dict(header), content)
    expected = want.encode()
    try:
        got: Any = encode(header, content)
    except Exception as exc:
        return _encoder_failure(
            check,
            "E1",
            f"encode() raised {type(exc).__name__}: {str(exc)[:200]} for header {_short(header)}",
            header,
            content,
            expected,
            f"{type(exc).__name__}: {exc}",
        )
    if not isinstance(got, bytes | bytearray):
        return _encoder_failure(
            check, "E1", f"encode() returned {type(got).__name__}, not bytes", header, content, expected, got
        )
    got = bytes(got)
    limit = max(len(content), DEFAULT_MAX_CONTENT_LENGTH)
    try:
        decoder = Decoder(limit)
        decoded = decoder.feed(got)
        decoder.close()
    except ProtocolError as error:
        return _encoder_failure(
            check,
            VIOLATIONS[error.code].rule,
            f"harness's decoder refuses the encoder's bytes: {error}",
            header,
            content,
            expected,
            got,
        )
    if len(decoded) != 1 or not same(decoded[0].header, want.header) or decoded[0].content != content:
        seen = _describe_messages([(m.header, m.content) for m in decoded])
        return _encoder_failure(
            check,
            "C1",
            f"the encoder's bytes decode to {seen}, not the message given",
            header,
            content,
            expected,
            got,
        )
    if exact and got != expected:
        return _encoder_failure(
            check,
            "E1",
            "not the guide's bytes: the header must be "
            "json.dumps(ensure_ascii=False), required keys first in the guide's order, "
            "extension keys after",
            header,
            content,
            expected,
            got,
        )
    return None


def check_encoder(encode: Encoder, *, settings: Settings | None = None) -> None:
    """Hold ``encode(header: dict, content: bytes) -> bytes`` to the guide's bytes.

    The wire vectors (docs/PROTOCOL.md#wire-vectors) byte for byte; generated messages (every
    content type and encoding, extension headers, non-ASCII text, the header's keys handed over
    in any order) byte-exact with docs/PROTOCOL.md#e1 and decoding with harness's decoder to
    the same header and content. Raises :class:`EncoderCheckFailure` listing what failed.
    """
    if not callable(encode):
        raise TypeError(f"check_encoder: encode must be callable, not {encode!r:.80}")
    active = _settings(settings)
    failures: list[Failure] = []
    for name, exchange in GUIDE_EXCHANGES.items():
        for side, wire in zip(("request", "response"), exchange, strict=True):
            (message,) = Decoder().feed(wire)
            failure = _judge_encoder(
                encode, f"vector:{side}-{name}", dict(message.header), message.content, exact=True
            )
            if failure is not None:
                failures.append(failure)
    explicit = [
        (
            {
                "byteorder": "big",
                "content-type": "text/json",
                "content-encoding": "utf-8",
                "content-length": 0,
                "x-name": "caf\u00e9 \U0001f436",
            },
            b"",
        ),
        (
            {
                "content-length": 2,
                "x-id": 7,
                "content-encoding": "utf-8",
                "byteorder": "little",
                "content-type": "text/json",
            },
            b"{}",
        ),
    ]

    @st.composite
    def cases(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
        message = draw(lst.messages(max_content_size=4096))
        rng = random.Random(draw(st.integers(0, 2**32 - 1)))
        return _shuffled_header(message.header, rng), message.content

    def judge(case: tuple[dict[str, Any], bytes]) -> Failure | None:
        header, content = case
        try:
            Message(dict(header), content).encode()
        except ValueError:  # a header JSON or the prefix cannot carry: nothing to compare
            return None
        return _judge_encoder(encode, "messages", header, content, exact=True)

    found: Failure | None = None
    for case in explicit:
        found = judge(case)
        if found is not None:
            break
    if found is None:

        @active
        @given(case=cases())
        def encodes_like_the_guide(case: tuple[dict[str, Any], bytes]) -> None:
            failure = judge(case)
            if failure is not None:
                raise _Found(failure)

        try:
            encodes_like_the_guide()
        except _Found as exc:
            found = exc.failure
    if found is not None:
        failures.append(found)
    if failures:
        raise EncoderCheckFailure("the encoder", failures)
