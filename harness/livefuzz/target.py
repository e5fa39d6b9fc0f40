"""Where the fuzzer sends: an address, a command it starts and supervises, or the embedded
reference server. Shared by ``harness fuzz server`` and ``harness replay``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from harness.apps import App
from harness.supervise import DEFAULT_RSS_LIMIT, ServerUnderTest

__all__ = ["Target", "parse_target", "running"]


@dataclass(frozen=True)
class Target:
    """``host``/``port`` of a running server, or a ``command`` to start (``{host}``, ``{port}``
    placeholders), or neither: the embedded reference server."""

    host: str | None = None
    port: int | None = None
    command: tuple[str, ...] | None = None

    def __str__(self) -> str:
        if self.command is not None:
            return " ".join(self.command)
        if self.host is not None:
            return f"{self.host}:{self.port}"
        return "the embedded reference server"


def parse_target(words: Sequence[str], command: Sequence[str] | None) -> Target | str:
    """``HOST PORT`` (``words``), ``-- CMD ...`` (``command``: the words after ``--``, None
    without one) or nothing; a usage error as a string."""
    if command is not None:
        if words:
            return "give HOST PORT or -- CMD ..., not both"
        if not command:
            return "give the server's command after --"
        return Target(command=tuple(command))
    if not words:
        return Target()
    if len(words) != 2:
        return "give HOST PORT, or -- CMD ... (the server's command, with {host} and {port})"
    host, port_text = words
    try:
        port = int(port_text)
    except ValueError:
        return f"PORT must be a number, not {port_text!r}"
    if not 0 < port < 65536:
        return f"PORT must be 1-65535, not {port}"
    return Target(host=host, port=port)


@contextlib.contextmanager
def running(
    target: Target, app: App, *, rss_limit: int | None = None, start_timeout: float = 10.0
) -> Iterator[tuple[str, int, ServerUnderTest | None]]:
    """The address to fuzz (and the supervised process, for a command), for the duration.

    A command's server is started with :class:`ServerUnderTest` (raises
    :class:`~harness.supervise.ServerStartError` when it never accepts connections).
    """
    if target.command is not None:
        with ServerUnderTest(
            list(target.command), start_timeout=start_timeout, rss_limit=rss_limit or DEFAULT_RSS_LIMIT
        ) as server:
            yield server.host, server.port, server
        return
    if target.host is not None and target.port is not None:
        yield target.host, target.port, None
        return
    from harness.server import ReferenceServer

    with ReferenceServer("127.0.0.1", 0, app=app) as reference:
        host, port = reference.address
        yield host, port, None
