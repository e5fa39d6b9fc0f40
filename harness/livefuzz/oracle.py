"""The differential oracle: what the server must answer on one connection, and whether it
must close.

The reference :class:`~harness.connection.ServerConnection` (running the chosen
application) is fed exactly the bytes the fuzzer sends on a connection, and its
EOF when the fuzzer half-closes; its output is what the server under test must
answer, in order, and its state says whether the server must close
(docs/PROTOCOL.md#connections-and-errors). Answers are compared as documented:
header values and decoded content, not byte layout (error messages by their
code, since their detail is free text), unless ``exact`` asks for the bytes.

A profile (:mod:`harness.probe.profiles`) relaxes the verdict the way the probe
does: from the first answer whose error code the profile accepts otherwise
(``lax_json``, ``any_codec``, ``lax_header_values``) the connection is no longer
judged; a close is accepted after the first answer (``one_request_per_connection``)
or in place of an error message (``errors_may_close``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from harness.apps import App
from harness.connection import ServerConnection
from harness.frames import Frame, FrameReader
from harness.message import Message
from harness.probe.checks import difference, error_code
from harness.probe.profiles import Profile

__all__ = ["ConnectionOracle", "Expected", "compare"]

#: The error codes each profile flag accepts some other handling of.
_RELAXED_CODES: dict[str, frozenset[str]] = {
    "lax_json": frozenset({"non-finite-number", "duplicate-key", "content-not-json"}),
    "any_codec": frozenset({"unsupported-encoding", "content-not-decodable"}),
    "lax_header_values": frozenset({"invalid-header-value"}),
}

#: Answers are read with a generous limit: an echo of the largest request must fit.
MAX_ANSWER_CONTENT = 4 << 20


@dataclass(frozen=True)
class Expected:
    """One answer the server owes: the message and its exact bytes."""

    message: Message
    raw: bytes

    @property
    def code(self) -> str | None:
        return error_code(self.message)


def compare(got: Message, got_raw: bytes, want: Expected, *, exact: bool = False) -> str | None:
    """Why the answer ``got`` is not ``want`` (None when it is)."""
    if exact:
        if got_raw != want.raw:
            return f"the bytes {got_raw[:80]!r} differ from the expected {want.raw[:80]!r}"
        return None
    code = want.code
    if code is not None:
        got_code = error_code(got)
        if got_code == code:
            return None
        shown = f"the error message {got_code!r}" if got_code is not None else "an ordinary answer"
        return f"{shown}, expected the error message {code!r}"
    if error_code(got) is not None:
        return f"the error message {error_code(got)!r}, expected an answer"
    return difference(got, want.message)


def frames_with_raw(frames: list[Frame], stream: bytes, end: int) -> list[bytes]:
    """The bytes of each frame of ``stream`` (frames read from it, in order; ``end``: where
    the last one ends)."""
    offsets = [f.offset for f in frames] + [end]
    return [stream[a:b] for a, b in itertools.pairwise(offsets)]


class ConnectionOracle:
    """The reference's view of one connection: the answers owed and whether it must close."""

    def __init__(self, app: App, profile: Profile) -> None:
        self.profile = profile
        self._model = ServerConnection(app, name="oracle")
        self._reader = FrameReader(MAX_ANSWER_CONTENT)
        self._out = bytearray()
        self.expected: list[Expected] = []
        #: From this answer on, nothing is judged (a profile accepts other behaviour).
        self.unjudged_from: int | None = None
        #: From this answer on, a close by the server is accepted.
        self.close_from: int | None = 1 if profile.one_request_per_connection else None
        self.eof = False

    @property
    def must_close(self) -> bool:
        """The reference has closed: the server must close once its answers are sent."""
        return self._model.closed

    @property
    def error(self) -> str | None:
        """The code of the protocol error that closed the reference's connection, if any."""
        return self._model.error.code if self._model.error is not None else None

    @property
    def judged(self) -> int:
        """How many of the expected answers are judged."""
        return len(self.expected) if self.unjudged_from is None else self.unjudged_from

    def close_accepted(self, answered: int) -> bool:
        """Whether a close after ``answered`` answers is accepted by the profile."""
        return self.close_from is not None and answered >= self.close_from

    def receive(self, data: bytes) -> None:
        """The fuzzer sent ``data`` on this connection."""
        if self.eof or self._model.closed:
            return
        self._take(self._model.receive_data(data))

    def receive_eof(self) -> None:
        """The fuzzer half-closed this connection."""
        if self.eof:
            return
        self.eof = True
        self._take(self._model.receive_eof())

    def _take(self, out: bytes) -> None:
        while self._model.backlog:
            more = self._model.answer_backlog()
            if not more:
                break
            out += more
        if not out:
            return
        self._out += out
        frames = self._reader.feed(out)
        raws = frames_with_raw(frames, bytes(self._out), len(self._out))
        for frame, raw in zip(frames, raws, strict=True):
            expected = Expected(Message.from_frame(frame), raw)
            index = len(self.expected)
            self.expected.append(expected)
            code = expected.code
            if code is None:
                continue
            for flag, codes in _RELAXED_CODES.items():
                if code in codes and self.profile.relaxes(flag) and self.unjudged_from is None:
                    self.unjudged_from = index
            if self.profile.errors_may_close and (self.close_from is None or self.close_from > index):
                self.close_from = index
