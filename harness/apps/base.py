"""The application interface: one request in, one response out.

An application never sees a socket or a byte stream: the server's connection
(:class:`~harness.connection.ServerConnection`) decodes each request, asks the
application for the response and writes it back, in order. To serve a new
application, subclass :class:`App` in a module of this package, implement
:meth:`App.respond` and add it to :data:`harness.apps.APPS`; the server, the
probe and the fuzzers pick it up by name.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from harness.message import Message

__all__ = ["App"]


class App(abc.ABC):
    """An lpjson application: :meth:`respond` maps one request to its response.

    ``respond`` must be a pure function of the request (no I/O, no state that
    changes the answers), so that the server, the fuzzers and the tests can
    all run it and a probe can say what a live server must answer. It may
    raise a :class:`~harness.errors.ContentError` for content it cannot read:
    the connection answers that request with an error message and carries on
    (docs/PROTOCOL.md#s3).

    :meth:`encode_response` is the optional fast path the server uses: the
    bytes of ``respond(request).encode()`` from the request's header and
    content, without building either message. The default does it the slow
    way; an application overrides it only with something that gives the same
    bytes (and a test that says so).
    """

    #: The name ``harness serve --app`` and ``harness probe --app`` know it by.
    name: ClassVar[str]

    @abc.abstractmethod
    def respond(self, request: Message) -> Message:
        """The response to ``request``."""

    def encode_response(self, header: dict[str, Any], content: bytes) -> bytes:
        """``respond(Message(header, content)).encode()``; ``header`` is only read."""
        return self.respond(Message._trusted(header.copy(), content)).encode()

    def __call__(self, request: Message) -> Message:
        return self.respond(request)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
