"""The echo application (docs/PROTOCOL.md#a4): every request is answered with itself."""

from __future__ import annotations

from typing import Any

from harness.apps.base import App
from harness.message import Message

__all__ = ["EchoApp", "echo_app"]


class EchoApp(App):
    """Answers every request with a message equal to it: the same header (extension keys
    included) and content, whatever the content-type, written by the guide's encoder."""

    name = "echo"

    def respond(self, request: Message) -> Message:
        return Message._trusted(dict(request.header), request.content)

    def encode_response(self, header: dict[str, Any], content: bytes) -> bytes:
        return Message._trusted(header, content).encode()


echo_app = EchoApp()
