"""The server-connection invariants: what :func:`check_server_connection` holds every input to.

The server fuzzer (``fuzz/fuzz_server.py``) calls :func:`check_server_input`
on each input: a :class:`~harness.connection.ServerConnection` running the
search application, fed the input's chunks in process, no sockets. What it
must answer is what the decoder reads in the same bytes, each request
answered by the application's own :meth:`~harness.apps.App.respond`.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.apps import App, search_app
from harness.connection import DEFAULT_MAX_PENDING_OUTPUT, ServerConnection
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH
from harness.errors import ContentError, ProtocolError
from harness.frames import Frame, FrameReader
from harness.fuzzing.compare import describe, same_error
from harness.fuzzing.input import (
    FLAG_ALTERNATE,
    FLAG_SMALL_LIMITS,
    SMALL_MAX_PENDING_OUTPUT,
    FuzzInput,
    split,
)
from harness.fuzzing.outcome import DecodeOutcome, decode_outcome
from harness.message import MAX_HEADER_LENGTH, Message, error_response

__all__ = ["check_server_connection", "check_server_input"]

#: Any frame the server writes is read (the server's own content limit applies to requests).
_OUTPUT_LIMIT = 1 << 30


def _expected_response(app: App, request: Message) -> bytes:
    try:
        return app.respond(request).encode()
    except ContentError as error:
        return error_response(error).encode()
    except Exception as exc:  # the server would answer internal-error: the application is broken
        raise AssertionError(
            f"the application raised {type(exc).__name__}: {exc!s:.200} on {request!r:.300}"
        ) from exc


def check_server_connection(
    chunks: list[bytes],
    *,
    eof: bool = True,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    max_pending_output: int | None = None,
) -> None:
    """Feed ``chunks`` to a :class:`~harness.connection.ServerConnection`; check its invariants.

    - no call raises;
    - everything it emits reads as whole frames, and is exactly the search
      application's response to each request the decoder finds in the input, in order
      (an error message for bad content), then the error message of the protocol
      error that ended the stream, if any;
    - it ends closed (with EOF, or on an error) or open and waiting (no EOF, no error);
    - no call returns more than ``max_pending_output`` bytes plus one response, the
      backlog drains in a bounded number of calls, and what it buffers afterwards is
      only the unfinished message at the end of the input.
    """
    limit = DEFAULT_MAX_PENDING_OUTPUT if max_pending_output is None else max_pending_output
    data = b"".join(chunks)
    reference = decode_outcome(data, max_content_length)
    if reference.at_close and not eof:
        reference = DecodeOutcome(reference.messages, None, reference.offset)
    conn = ServerConnection(search_app, max_content_length=max_content_length, max_pending_output=limit)

    output: list[bytes] = []
    out_reader = FrameReader(_OUTPUT_LIMIT)
    responses: list[Frame] = []

    def take(out: bytes, what: str) -> None:
        if not isinstance(out, bytes):
            raise AssertionError(f"{what} returned {type(out).__name__}, not bytes")
        try:
            emitted = out_reader.feed(out)
        except ProtocolError as error:
            raise AssertionError(
                f"{what}: the server emitted bytes that do not decode: {describe(error)}"
            ) from None
        if out_reader.buffered:
            raise AssertionError(f"{what} returned part of a message ({out_reader.buffered} bytes left over)")
        # The bound: the call stops answering once it has ``limit`` bytes, so all but its last
        # response fit under it; the error message that closes a connection may follow.
        starts = [f.offset for f in emitted]
        sizes = [stop - start for start, stop in zip(starts, [*starts[1:], out_reader.offset], strict=False)]
        if conn.error is not None and sizes:
            sizes.pop()
        if len(sizes) > 1 and sum(sizes[:-1]) >= limit:
            raise AssertionError(
                f"{what} returned {len(out)} bytes in {len(emitted)} message(s): "
                f"over the output bound {limit}"
            )
        responses.extend(emitted)
        output.append(out)

    def call(what: str, fn: Callable[[], bytes]) -> None:
        try:
            out = fn()
        except Exception as exc:
            raise AssertionError(
                f"{what} raised {type(exc).__name__}: {exc!s:.300} after {len(responses)} response(s)"
            ) from exc
        take(out, what)
        drains = 0
        while conn.backlog:
            drains += 1
            if drains > len(reference.messages) + 1:
                raise AssertionError(f"{what}: the backlog did not drain after {drains} calls")
            try:
                out = conn.answer_backlog()
            except Exception as exc:
                raise AssertionError(f"answer_backlog() raised {type(exc).__name__}: {exc!s:.300}") from exc
            if not out and conn.backlog:
                raise AssertionError(f"{what}: a backlog call answered nothing")
            take(out, "answer_backlog()")

    for i, chunk in enumerate(chunks):
        call(f"receive_data(chunk {i} of {len(chunks)})", lambda c=chunk: conn.receive_data(c))  # type: ignore[misc]
        if conn.closed:
            break
    if eof and not conn.closed:
        call("receive_eof()", conn.receive_eof)

    # -- what it must have said -------------------------------------------------
    expected = [_expected_response(search_app, r) for r in reference.messages]
    if reference.error is not None:
        expected.append(error_response(reference.error).encode())
    got, want = b"".join(output), b"".join(expected)
    if got != want:
        differ = next(
            (i for i, (x, y) in enumerate(zip(got, want, strict=False)) if x != y), min(len(got), len(want))
        )
        raise AssertionError(
            f"the server answered {len(responses)} message(s) ({len(got)} bytes); the input holds "
            f"{reference.summary()}, which calls for {len(expected)} response(s) ({len(want)} bytes); "
            f"they differ from byte {differ}: {got[differ : differ + 80]!r} vs {want[differ : differ + 80]!r}"
        )
    if not same_error(conn.error, reference.error):
        raise AssertionError(
            f"the connection's error is {describe(conn.error)}, expected {describe(reference.error)}"
        )

    # -- how it must have ended ---------------------------------------------------
    if reference.error is not None or eof:
        if not conn.closed:
            raise AssertionError(
                f"the connection is still open after {describe(reference.error)} (eof={eof})"
            )
        after = conn.receive_data(b"more bytes")
        if after:
            raise AssertionError(f"a closed connection answered {len(after)} more byte(s)")
    else:
        if conn.closed:
            raise AssertionError("the connection closed without EOF or error")
        left = len(data) - reference.offset
        if conn.buffered != left:
            raise AssertionError(
                f"the connection buffers {conn.buffered} byte(s); the input leaves {left} unfinished"
            )
        if left > 2 + MAX_HEADER_LENGTH + max_content_length:
            raise AssertionError(f"{left} bytes of one unfinished message were buffered")
    if conn.backlog:
        raise AssertionError("the connection ended with a backlog")


def check_server_input(data: bytes) -> None:
    """The server fuzzer's target: decode ``data`` as a :class:`FuzzInput` and check it."""
    fuzz = FuzzInput.decode(data)
    small = bool(fuzz.flags & FLAG_SMALL_LIMITS)
    check_server_connection(
        split(fuzz.payload, fuzz.cuts),
        eof=not fuzz.flags & FLAG_ALTERNATE,
        max_content_length=fuzz.max_content_length,
        max_pending_output=SMALL_MAX_PENDING_OUTPUT if small else None,
    )
