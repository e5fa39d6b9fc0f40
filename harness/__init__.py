"""harness: a test and fuzzing harness for the length-prefixed JSON (lpjson) protocol.

The codec here is sans-IO, in two layers: :class:`FrameReader` turns bytes into
raw frames (checked header, content, offset) and :func:`frame` writes one;
:class:`Decoder` wraps frames in :class:`Message` objects, and
:meth:`Message.encode` turns them back into bytes. Everything else in harness
(server, client, fuzzers, captures, probe) drives this one codec. The rules it
implements are docs/PROTOCOL.md.
"""

from typing import TYPE_CHECKING, Any

from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder, DecoderState
from harness.errors import (
    ERROR_CLASSES,
    ContentError,
    ContentNotDecodable,
    ContentNotJSON,
    ContentTooLarge,
    DuplicateKey,
    HeaderError,
    HeaderNotJSON,
    HeaderNotObject,
    HeaderNotUTF8,
    IncompleteMessage,
    InvalidHeaderValue,
    MissingHeaderKey,
    NonFiniteNumber,
    ProtocolError,
    UnsupportedEncoding,
    ZeroHeaderLength,
)
from harness.frames import Frame, FrameReader, frame
from harness.message import REQUIRED_KEYS, TEXT_ENCODINGS, Message, error_message, error_response

if TYPE_CHECKING:
    from harness.apps import search_app
    from harness.client import Client
    from harness.connection import ServerConnection
    from harness.server import ReferenceServer

# The I/O side (asyncio, sockets) is imported on first use, so that the codec alone
# (a fuzzer, a user's own server) does not pay for it.
_LAZY = {
    "App": "harness.apps",
    "EchoApp": "harness.apps",
    "SearchApp": "harness.apps",
    "echo_app": "harness.apps",
    "search_app": "harness.apps",
    "Client": "harness.client",
    "ServerConnection": "harness.connection",
    "ReferenceServer": "harness.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_CONTENT_LENGTH",
    "ERROR_CLASSES",
    "REQUIRED_KEYS",
    "TEXT_ENCODINGS",
    "App",
    "Client",
    "ContentError",
    "ContentNotDecodable",
    "ContentNotJSON",
    "ContentTooLarge",
    "Decoder",
    "DecoderState",
    "DuplicateKey",
    "EchoApp",
    "Frame",
    "FrameReader",
    "HeaderError",
    "HeaderNotJSON",
    "HeaderNotObject",
    "HeaderNotUTF8",
    "IncompleteMessage",
    "InvalidHeaderValue",
    "Message",
    "MissingHeaderKey",
    "NonFiniteNumber",
    "ProtocolError",
    "ReferenceServer",
    "SearchApp",
    "ServerConnection",
    "UnsupportedEncoding",
    "ZeroHeaderLength",
    "decode_all",
    "echo_app",
    "encode",
    "error_message",
    "error_response",
    "frame",
    "search_app",
]


def encode(message: Message) -> bytes:
    """The bytes of ``message`` on the wire (same as ``message.encode()``)."""
    return message.encode()


def decode_all(data: bytes, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> list[Message]:
    """Decode a complete stream: every message in ``data``, or the first violation raised."""
    decoder = Decoder(max_content_length)
    messages = decoder.feed(data)
    try:
        decoder.close()
    except ProtocolError as error:
        error.messages = messages
        raise
    return messages
