"""Programs: what a live fuzzing case does, step by step, as data.

A program is a list of small frozen steps (open a connection, send bytes with
cut points and a pause, half-close, close, stay idle, read the answers). The
runner (:mod:`harness.livefuzz.runner`) interprets it against a live server; the
same list is what Hypothesis generates and shrinks, what a failure prints as
numbered steps, and what a replay file stores as JSON.

Connections are named by their ordinal in the program (0, 1, ...) and opened on
first use, so every sub-list of a program is a valid program: Hypothesis shrinks
by deleting steps without ever producing one that means nothing.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.apps import App
from harness.errors import ContentError
from harness.frames import frame
from harness.message import TEXT_ENCODINGS, Message

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_IDLE",
    "MAX_PAUSE",
    "AwaitClose",
    "Close",
    "Flood",
    "HalfClose",
    "Idle",
    "LargeRequests",
    "Open",
    "Read",
    "Send",
    "Step",
    "describe",
    "from_json",
    "pipeline_label",
    "programs",
    "simpler",
    "to_json",
]

#: Connections a program may use at once (ordinals 0 .. MAX_CONNECTIONS - 1).
MAX_CONNECTIONS = 4
#: Longest pause between two chunks of a send, and longest idle step, in seconds: short, so
#: that a case takes milliseconds and stays well below any server's idle timeout.
MAX_PAUSE = 0.02
MAX_IDLE = 0.1


@dataclass(frozen=True)
class Open:
    """Open connection ``conn`` (without sending anything)."""

    conn: int


@dataclass(frozen=True)
class Send:
    """Send ``data`` on ``conn``: one ``send()`` per chunk between the ``cuts`` (offsets into
    ``data``), ``pause`` seconds apart. ``label`` says what the bytes are, for people.

    ``parts`` describes a pipeline: the byte count and label of each item, in order
    (empty for a single item), so that a shrinker can take one item out
    (:meth:`without_part`)."""

    conn: int
    data: bytes
    cuts: tuple[int, ...] = ()
    pause: float = 0.0
    label: str = ""
    parts: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if self.parts and sum(n for n, _ in self.parts) != len(self.data):
            raise ValueError(
                f"the parts' sizes add up to {sum(n for n, _ in self.parts)}, not {len(self.data)}"
            )

    def chunks(self) -> list[bytes]:
        edges = [0, *sorted(c for c in self.cuts if 0 < c < len(self.data)), len(self.data)]
        return [self.data[a:b] for a, b in itertools.pairwise(edges) if b > a]

    def without_part(self, index: int) -> Send:
        """This send with item ``index`` of its pipeline taken out (cuts inside it dropped,
        later cuts moved with the bytes)."""
        start = sum(n for n, _ in self.parts[:index])
        size = self.parts[index][0]
        end = start + size
        parts = self.parts[:index] + self.parts[index + 1 :]
        cuts = tuple(c if c <= start else c - size for c in self.cuts if not start < c < end)
        data = self.data[:start] + self.data[end:]
        if len(parts) == 1:
            return Send(self.conn, data, cuts, self.pause, parts[0][1])
        return Send(self.conn, data, cuts, self.pause, pipeline_label([label for _, label in parts]), parts)


def pipeline_label(labels: Sequence[str]) -> str:
    """The label of a send that carries ``labels``' items back to back."""
    return labels[0] if len(labels) == 1 else f"{len(labels)} pipelined: " + "; ".join(labels)


@dataclass(frozen=True)
class HalfClose:
    """Shut down the sending side of ``conn`` (FIN); its answers are still read."""

    conn: int


@dataclass(frozen=True)
class Close:
    """Close ``conn`` at once, answers unread."""

    conn: int


@dataclass(frozen=True)
class Idle:
    """Do nothing for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Read:
    """Read the answers owed on ``conn`` so far and check them (every open connection is also
    read at the end of the program)."""

    conn: int


# -- the sentinels' steps (never generated: see harness.livefuzz.sentinels) ------------------


@dataclass(frozen=True)
class AwaitClose:
    """Send nothing more on ``conn`` and wait up to ``seconds`` for the server to close it (its
    idle timeout, docs/PROTOCOL.md#l2); the error message ``idle-timeout`` may come first."""

    conn: int
    seconds: float


@dataclass(frozen=True)
class Flood:
    """A client that never reads: connection ``conn`` (opened with a ``rcvbuf``-byte receive
    buffer) sends search requests back to back and reads nothing, until the server stops
    reading it (no progress for a second: backpressure), closes it, ``size`` bytes are
    sent or ``seconds`` have passed; then it is aborted. A server without backpressure
    holds what it was sent: the memory bound sees it (docs/PROTOCOL.md#l3)."""

    conn: int
    size: int
    seconds: float
    rcvbuf: int


@dataclass(frozen=True)
class LargeRequests:
    """``count`` binary requests of ``size`` bytes of content, each on a fresh connection of
    its own, each answer read and judged: a server that keeps what it was sent grows by all
    of it, which the memory bound sees (docs/PROTOCOL.md#l3)."""

    count: int
    size: int


Step = Open | Send | HalfClose | Close | Idle | Read | AwaitClose | Flood | LargeRequests

_KINDS: dict[str, type[Step]] = {
    "open": Open,
    "send": Send,
    "half-close": HalfClose,
    "close": Close,
    "idle": Idle,
    "read": Read,
    "await-close": AwaitClose,
    "flood": Flood,
    "large-requests": LargeRequests,
}
_KIND_OF: dict[type[Step], str] = {cls: kind for kind, cls in _KINDS.items()}


# -- JSON -----------------------------------------------------------------------------


def step_to_json(step: Step) -> dict[str, Any]:
    """One step as a JSON object (see docs/live-fuzzing.md#replay-files)."""
    out: dict[str, Any] = {"step": _KIND_OF[type(step)]}
    if isinstance(step, Idle):
        out["seconds"] = step.seconds
        return out
    if isinstance(step, LargeRequests):
        out["count"] = step.count
        out["bytes"] = step.size
        return out
    out["conn"] = step.conn
    if isinstance(step, AwaitClose):
        out["seconds"] = step.seconds
    if isinstance(step, Flood):
        out["bytes"] = step.size
        out["seconds"] = step.seconds
        out["rcvbuf"] = step.rcvbuf
    if isinstance(step, Send):
        out["data"] = base64.b64encode(step.data).decode("ascii")
        out["cuts"] = list(step.cuts)
        out["pause"] = step.pause
        out["label"] = step.label
        if step.parts:
            out["parts"] = [[size, label] for size, label in step.parts]
    return out


def step_from_json(obj: Any) -> Step:
    """The step of :func:`step_to_json`; ``ValueError`` says what is wrong with ``obj``."""
    if not isinstance(obj, dict) or obj.get("step") not in _KINDS:
        raise ValueError(f"not a step: {json.dumps(obj)[:80]} (steps: {', '.join(_KINDS)})")
    kind = obj["step"]
    try:
        if kind == "idle":
            seconds = float(obj["seconds"])
            if not 0 <= seconds <= 60:
                raise ValueError("idle seconds must be in 0..60")
            return Idle(seconds)
        if kind == "large-requests":
            return LargeRequests(_integer(obj, "count", 1, 10_000), _integer(obj, "bytes", 0, 1 << 30))
        conn = obj["conn"]
        if type(conn) is not int or not 0 <= conn < 1024:
            raise ValueError(f"conn must be an integer in 0..1023, not {conn!r}")
        if kind == "await-close":
            return AwaitClose(conn, _seconds(obj, 3600))
        if kind == "flood":
            return Flood(
                conn,
                _integer(obj, "bytes", 0, 1 << 34),
                _seconds(obj, 600),
                _integer(obj, "rcvbuf", 0, 1 << 30),
            )
        if kind == "send":
            cuts = obj.get("cuts", [])
            if not isinstance(cuts, list) or not all(type(c) is int for c in cuts):
                raise ValueError("cuts must be a list of integers")
            pause = float(obj.get("pause", 0.0))
            if not 0 <= pause <= 10:
                raise ValueError("pause must be in 0..10 seconds")
            parts = obj.get("parts", [])
            if not isinstance(parts, list) or not all(
                isinstance(p, list) and len(p) == 2 and type(p[0]) is int and p[0] >= 0 for p in parts
            ):
                raise ValueError("parts must be a list of [byte count, label] pairs")
            return Send(
                conn,
                base64.b64decode(obj["data"], validate=True),
                tuple(cuts),
                pause,
                str(obj.get("label", "")),
                tuple((size, str(label)) for size, label in parts),
            )
        return _KINDS[kind](conn)  # type: ignore[call-arg]
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, KeyError):
            raise ValueError(f"{kind} step without {exc.args[0]!r}") from None
        raise ValueError(f"bad {kind} step: {exc}") from None


def _integer(obj: dict[str, Any], key: str, low: int, high: int) -> int:
    value = obj[key]
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{key} must be an integer in {low}..{high}, not {value!r}")
    return value


def _seconds(obj: dict[str, Any], high: float) -> float:
    value = float(obj["seconds"])
    if not 0 <= value <= high:
        raise ValueError(f"seconds must be in 0..{high:g}")
    return value


def to_json(program: Sequence[Step]) -> list[dict[str, Any]]:
    return [step_to_json(step) for step in program]


def from_json(steps: Any) -> list[Step]:
    if not isinstance(steps, list):
        raise ValueError("steps must be a list")
    return [step_from_json(step) for step in steps]


# -- for people -----------------------------------------------------------------------


def _preview(data: bytes, limit: int = 60) -> str:
    text = repr(data[:limit])
    return text + (f" ... ({len(data)} bytes)" if len(data) > limit else "")


def describe(step: Step) -> str:
    """One line for ``step``, as a failure report numbers them."""
    if isinstance(step, Idle):
        return f"stay idle {step.seconds * 1000:.0f} ms"
    if isinstance(step, LargeRequests):
        return (
            f"{step.count} binary requests of {step.size >> 10} KiB, each on a fresh connection, "
            f"each answer read ({step.count * step.size / (1 << 20):.0f} MiB in all)"
        )
    name = f"connection {step.conn}"
    if isinstance(step, AwaitClose):
        return (
            f"send nothing more on {name}: the server must close it within {step.seconds:g} s (idle timeout)"
        )
    if isinstance(step, Flood):
        return (
            f"on {name} (receive buffer {step.rcvbuf >> 10} KiB), send requests and never read, "
            f"up to {step.size >> 20} MiB or {step.seconds:g} s, until the server stops reading; then abort"
        )
    if isinstance(step, Open):
        return f"open {name}"
    if isinstance(step, HalfClose):
        return f"half-close {name} (FIN; keep reading)"
    if isinstance(step, Close):
        return f"close {name}"
    if isinstance(step, Read):
        return f"read the answers on {name}"
    chunks = step.chunks()
    how = f"{len(step.data)} bytes"
    if len(chunks) > 1:
        sizes = "+".join(str(len(c)) for c in chunks[:8]) + ("+..." if len(chunks) > 8 else "")
        how += f" in {len(chunks)} sends ({sizes})"
        if step.pause:
            how += f" {step.pause * 1000:.0f} ms apart"
    label = f": {step.label}" if step.label else ""
    return f"send on {name}, {how}{label}\n      {_preview(step.data)}"


def describe_message(message: Message) -> str:
    """A short label for a request."""
    encoding = message.header["content-encoding"]
    if message.is_json:
        try:
            value = message.json()
        except ContentError:
            return f"text/json in {encoding!r}, unreadable ({message.content[:24]!r})"
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 50 else shown[:47] + "..."
        extra = sorted(k for k in message.header if k not in _REQUIRED)
        ext = f", extension headers {extra}" if extra else ""
        return f"text/json {encoding} {shown}{ext}"
    return f"{message.header['content-type']} ({encoding}), {len(message.content)} bytes"


_REQUIRED = ("byteorder", "content-type", "content-encoding", "content-length")
_SEARCH = json.dumps({"action": "search", "value": "morpheus"}).encode()
#: Header values a lax server can still use, for each required key (docs/PROTOCOL.md#h7).
_BAD_VALUES: dict[str, list[Any]] = {
    "byteorder": ["LITTLE", "Big", "middle", "", 7, None, True],
    "content-type": [7, None, ["text/json"], ""],
    "content-encoding": ["UTF-8", 8, None, ["utf-8"], ""],
    "content-length": [float(len(_SEARCH)), str(len(_SEARCH)), -1, None, [len(_SEARCH)]],
}


def _bad_value_request(key: str, value: Any) -> tuple[bytes, str]:
    """A search for "morpheus" whose header sets ``key`` to ``value``, and its description."""
    header: dict[str, Any] = {
        "byteorder": "little",
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": len(_SEARCH),
    }
    header[key] = value
    if key == "content-encoding" and value == "UTF-8":
        description = "content-encoding 'UTF-8' (the allow-list is lower case)"
    else:
        description = f"the header sets {key} to {json.dumps(value)}"
    return frame(json.dumps(header).encode(), _SEARCH), description


# -- generation -----------------------------------------------------------------------

#: Codec names Python accepts beyond the spec's allow-list (docs/PROTOCOL.md#c2).
FOREIGN_CODECS = ("utf8", "UTF-8", "Latin-1", "cp1252", "utf_16", "u8", "iso-8859-1", "base64", "rot13")


def programs(app: App, *, max_steps: int = 8) -> Any:
    """A Hypothesis strategy of programs for a server running ``app``.

    The items a send carries are drawn from :mod:`harness.strategies` (valid
    requests in every shape: each text encoding, binary content of any bytes,
    extension headers, empty and large contents, varied header layouts), the
    violation table (:mod:`harness.violations`) and requests aimed at the
    application (a search without a value, values of every JSON type). Several
    items in one send are a pipeline.
    """
    from hypothesis import strategies as st

    from harness import strategies as lst

    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)

    @st.composite
    def app_request(draw: st.DrawFn) -> tuple[bytes, str]:
        body: dict[str, Any] = {"action": draw(st.sampled_from(["search", "search", "find"]) | text)}
        if draw(st.integers(0, 3)):
            body["value"] = draw(st.sampled_from(["morpheus", "ring", "🐶", "é"]) | lst.json_values(3))
        encoding = draw(st.sampled_from(sorted(TEXT_ENCODINGS)))
        try:
            message = Message.from_json(body, encoding=encoding)
        except (ValueError, UnicodeError):
            message = Message.from_json(body)
        return draw(lst.wire_messages(message))[1], describe_message(message)

    @st.composite
    def valid_request(draw: st.DrawFn) -> tuple[bytes, str]:
        message, data = draw(lst.wire_messages(draw(lst.messages(max_content_size=200_000))))
        return data, describe_message(message)

    @st.composite
    def binary_request(draw: st.DrawFn) -> tuple[bytes, str]:
        # Binary content of any bytes, most of them not UTF-8 (docs/PROTOCOL.md#c5).
        content = draw(st.binary(min_size=1, max_size=64))
        kind = draw(
            st.sampled_from(["binary/custom-client-binary-type", "image/png", "application/octet-stream"])
        )
        message = Message.from_bytes(content, content_type=kind, encoding="binary")
        return draw(lst.wire_messages(message))[1], describe_message(message)

    @st.composite
    def foreign_codec(draw: st.DrawFn) -> tuple[bytes, str]:
        codec = draw(st.sampled_from(FOREIGN_CODECS))
        value = draw(st.sampled_from(["morpheus", "ring", "🐶", "é"]) | text)
        raw = json.dumps({"action": "search", "value": value}, ensure_ascii=False)
        try:
            content = raw.encode(codec)
        except (LookupError, UnicodeError):
            content = raw.encode("utf-8")
        message = Message.from_bytes(content, content_type="text/json", encoding=codec)
        return message.encode(), f"text/json in the codec {codec!r} (not on the allow-list)"

    @st.composite
    def violation(draw: st.DrawFn) -> tuple[bytes, str]:
        bad = draw(lst.malformed_messages())
        return bad.data, f"violation {bad.kind}: {bad.description}"

    @st.composite
    def bad_header_value(draw: st.DrawFn) -> tuple[bytes, str]:
        # A whole, sensible request with one header value a lax server can still use
        # (docs/PROTOCOL.md#h7): 41.0 or "41" as the length, "LITTLE" as the byte order...
        key = draw(st.sampled_from(_REQUIRED))
        value = draw(st.sampled_from(_BAD_VALUES[key]))
        data, description = _bad_value_request(key, value)
        return data, f"header value: {description}"

    @st.composite
    def bad_content(draw: st.DrawFn) -> tuple[bytes, str]:
        message, error = draw(lst.bad_content_messages())
        return message.encode(), f"bad content ({error.code}): {describe_message(message)}"

    item = st.one_of(
        app_request(),
        binary_request(),
        valid_request(),
        violation(),
        bad_header_value(),
        bad_content(),
        foreign_codec(),
    )

    @st.composite
    def send(draw: st.DrawFn) -> Send:
        conn = draw(st.integers(0, MAX_CONNECTIONS - 1))
        items = draw(st.lists(item, min_size=1, max_size=4))
        data = b"".join(data for data, _ in items)
        label = pipeline_label([i[1] for i in items])
        parts = tuple((len(d), text) for d, text in items) if len(items) > 1 else ()
        cuts: tuple[int, ...] = ()
        pause = 0.0
        if draw(st.integers(0, 2)) == 0 and len(data) > 1:
            if len(data) <= 64 and draw(st.booleans()):
                cuts = tuple(range(1, len(data)))  # one byte at a time
            else:
                cuts = tuple(
                    sorted(set(draw(st.lists(st.integers(1, len(data) - 1), min_size=1, max_size=6))))
                )
            pause = draw(st.sampled_from([0.0, 0.0, 0.001, 0.005, MAX_PAUSE]))
        return Send(conn, data, cuts, pause, label, parts)

    conn = st.integers(0, MAX_CONNECTIONS - 1)
    # Sends are most of a program; idling is rare and short (it costs wall-clock time).
    sends = send()
    step = st.one_of(
        sends,
        sends,
        sends,
        st.builds(Read, conn),
        st.builds(Read, conn),
        st.builds(HalfClose, conn),
        st.builds(Close, conn),
        st.builds(Open, conn),
        st.builds(Idle, st.sampled_from([0.005, 0.02, MAX_IDLE])),
    )
    return st.lists(step, min_size=1, max_size=max_steps)


# -- shrinking beyond Hypothesis ---------------------------------------------------------


def simpler(program: Sequence[Step]) -> list[list[Step]]:
    """Programs one edit simpler than ``program``, the biggest cuts first: without one step,
    without one item of a pipelined send, a send in one piece, without a pause.

    Hypothesis' shrinker works on the choices a program was drawn from; an item in the
    middle of a pipeline is often out of its reach (the cut points drawn after it depend
    on the send's length), so the engine tries these edits on its answer."""
    steps = list(program)
    out: list[list[Step]] = []
    if len(steps) > 1:
        out.extend(steps[:i] + steps[i + 1 :] for i in range(len(steps)))
    for i, step in enumerate(steps):
        if isinstance(step, Send) and len(step.parts) > 1:
            out.extend([*steps[:i], step.without_part(k), *steps[i + 1 :]] for k in range(len(step.parts)))
    for i, step in enumerate(steps):
        if isinstance(step, Send) and step.cuts:
            out.append(
                [*steps[:i], Send(step.conn, step.data, (), 0.0, step.label, step.parts), *steps[i + 1 :]]
            )
        elif isinstance(step, Send) and step.pause:
            out.append(
                [
                    *steps[:i],
                    Send(step.conn, step.data, step.cuts, 0.0, step.label, step.parts),
                    *steps[i + 1 :],
                ]
            )
    return out


# -- canonical cases: every row of the violation table, tried first ---------------------------


def canonical_programs() -> list[list[Step]]:
    """One short program per canonical example: each row of the violation table
    (:data:`harness.violations.VIOLATIONS`, its own example) and each header value a lax server
    can still use. A row is one item among many in generated programs (duplicate keys, say,
    are one violation in seventy items), so a server that mishandles one row was found late
    or not at all; these run first, a few dozen cases (a second or two)."""
    from harness.violations import VIOLATIONS

    out: list[list[Step]] = []
    for kind, row in VIOLATIONS.items():
        label = f"violation {kind}: {row.example.description}"
        send = Send(0, row.example.data, label=label)
        # the stream must end for an incomplete message to be owed its error
        out.append([send, HalfClose(0), Read(0)] if kind == "incomplete-message" else [send, Read(0)])
    for data, label in _bad_header_values():
        out.append([Send(0, data, label=f"header value: {label}"), Read(0)])
    return out


def _bad_header_values() -> list[tuple[bytes, str]]:
    """Every request with one bad header value (docs/PROTOCOL.md#h7)."""
    return [_bad_value_request(key, value) for key in _REQUIRED for value in _BAD_VALUES[key]]
