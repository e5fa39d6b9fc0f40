"""Protocol errors, bad content, resets and application failures, each affecting one connection only."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import connect, expected_response, read_messages, reset, search, wait_for

from harness import Message, ReferenceServer
from harness import strategies as lst
from harness.apps import App, search_app
from harness.errors import ContentError
from harness.strategies import VIOLATION_KINDS, Malformed

#: A malformed input is answered (error message or close, docs/PROTOCOL.md#s2) within this.
ANSWER_WITHIN = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(idle_timeout=10.0) as srv:
        yield srv


@pytest.mark.parametrize("kind", sorted(VIOLATION_KINDS))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=8)
@given(data=st.data())
def test_server_violation_gets_the_error_message_then_close_and_bystanders_carry_on(
    server: ReferenceServer, kind: str, data: st.DataObject
) -> None:
    malformed: Malformed = data.draw(lst.malformed_messages(kind))
    before = data.draw(st.lists(lst.search_requests(), max_size=2))
    bystander_request = data.draw(lst.search_requests())
    cut = data.draw(st.integers(1, len(bystander_request.encode()) - 1))

    with connect(server.address) as bystander, connect(server.address) as offender:
        # The bystander is mid-request when the offender breaks the protocol.
        bystander.sendall(bystander_request.encode()[:cut])
        started = time.monotonic()
        offender.sendall(b"".join(m.encode() for m in before) + malformed.data)
        if kind == "incomplete-message":
            offender.shutdown(socket.SHUT_WR)  # the violation is the EOF mid-message
        reading = read_messages(offender, None, timeout=ANSWER_WITHIN)
        assert time.monotonic() - started < ANSWER_WITHIN
        assert reading.closed and reading.error is None
        *answers, error = reading.messages
        assert [m.encode() for m in answers] == [expected_response(m) for m in before]
        assert error.json()["error"] == malformed.error.code, error.json()
        assert error.json()["detail"]

        bystander.sendall(bystander_request.encode()[cut:])
        assert [m.encode() for m in read_messages(bystander, 1).messages] == [
            expected_response(bystander_request)
        ]

    with connect(server.address) as fresh:
        fresh.sendall(search("ring").encode())
        assert read_messages(fresh, 1).messages == [search_app(search("ring"))]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
@given(lst.bad_content_messages())
def test_server_bad_content_gets_an_error_message_and_the_connection_stays_open(
    server: ReferenceServer, case: tuple[Message, type[ContentError]]
) -> None:
    bad, error = case
    with connect(server.address) as sock:
        sock.sendall(bad.encode() + search("morpheus").encode())
        first, second = read_messages(sock, 2).messages
        assert first.json()["error"] == error.code
        assert second.encode() == expected_response(search("morpheus"))


def test_server_protocol_error_after_a_large_unread_tail_still_delivers_the_error(
    server: ReferenceServer,
) -> None:
    # The server stops reading at the violation; closing with unread input would send an RST
    # that can destroy the error message. The server half-closes and drains instead.
    with connect(server.address) as sock:
        sock.sendall(search("ring").encode() + b"\x00\x00" + b"x" * 500_000)
        reading = read_messages(sock, None)
    assert reading.closed and not reading.reset
    assert [m.json().get("error") for m in reading.messages] == [None, "zero-header-length"]


@pytest.mark.parametrize("cut", [1, 2, 50, 120])
def test_server_reset_mid_message_is_logged_and_harms_no_one(
    server: ReferenceServer, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    request = search("morpheus").encode()
    with caplog.at_level(logging.INFO, logger="harness.server"), connect(server.address) as bystander:
        bystander.sendall(request[:10])
        victim = connect(server.address)
        victim.sendall(request + request[:cut])
        assert read_messages(victim, 1).messages == [search_app(search("morpheus"))]
        port = victim.getsockname()[1]
        reset(victim)
        wait_for(
            lambda: any(
                f":{port} " in r.getMessage() and r.getMessage().startswith("failed") for r in caplog.records
            )
        )
        bystander.sendall(request[10:])
        assert read_messages(bystander, 1).messages == [search_app(search("morpheus"))]
    (line,) = [
        r.getMessage() for r in caplog.records if f":{port} " in r.getMessage() and "failed" in r.getMessage()
    ]
    assert "ConnectionResetError" in line and f"{cut} bytes of an unfinished message lost" in line


def test_server_logs_one_info_line_per_connection_opened_and_closed(
    server: ReferenceServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="harness"):
        with connect(server.address) as sock:
            port = sock.getsockname()[1]
            sock.sendall(search("ring").encode() * 3)
            read_messages(sock, 3)
            sock.shutdown(socket.SHUT_WR)
            read_messages(sock, None)
        wait_for(
            lambda: any(
                f":{port} " in r.getMessage() and r.getMessage().startswith("closed") for r in caplog.records
            )
        )
    mine = [r for r in caplog.records if f":{port}" in r.getMessage()]
    info = [r.getMessage() for r in mine if r.levelno == logging.INFO]
    assert len(info) == 2
    assert info[0].startswith(f"opened 127.0.0.1:{port}")
    assert info[1].startswith(f"closed 127.0.0.1:{port} after 3 requests")
    debug = [r.getMessage() for r in mine if r.levelno == logging.DEBUG and "request" in r.getMessage()]
    assert len(debug) == 3


def test_server_survives_an_application_that_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Flaky(App):
        name = "flaky"

        def respond(self, request: Message) -> Message:
            if request.content.startswith(b"crash"):
                raise ZeroDivisionError("division by zero")
            return search_app(request)

    with caplog.at_level(logging.ERROR), ReferenceServer(app=Flaky()) as srv, connect(srv.address) as sock:
        sock.sendall(Message.from_bytes(b"crash!").encode() + search("ring").encode())
        first, second = read_messages(sock, 2).messages
        assert first.json() == {
            "error": "internal-error",
            "detail": "the application failed: ZeroDivisionError",
        }
        assert second == search_app(search("ring"))
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
