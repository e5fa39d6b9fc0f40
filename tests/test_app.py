"""The search application (docs/PROTOCOL.md#a1, the wire vectors, content errors) and the error message."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness import Decoder, Message, decode_all
from harness import strategies as lst
from harness.apps import APPS, App, EchoApp, SearchApp, echo_app, get_app, search_answer, search_app
from harness.connection import INTERNAL_ERROR, ServerConnection
from harness.errors import (
    ContentError,
    ContentNotDecodable,
    ContentNotJSON,
    ContentTooLarge,
    IncompleteMessage,
    UnsupportedEncoding,
)
from harness.message import error_message, error_response
from harness.vectors import GUIDE_EXCHANGES

# docs/PROTOCOL.md#wire-vectors, captured from the guide's own client and server (little-endian).
WIRE_VECTORS = list(GUIDE_EXCHANGES.values())


def native(vector: bytes) -> bytes:
    """A vector as this machine's server writes it (the byteorder key is the sender's)."""
    if sys.byteorder == "little":
        return vector
    # Same length either way ("little"/"big" differ by 3 bytes): rebuild through the codec.
    (message,) = decode_all(vector)
    header = dict(message.header, byteorder=sys.byteorder)
    return Message(header, message.content).encode()


@pytest.mark.parametrize(
    ("request_bytes", "response_bytes"), WIRE_VECTORS, ids=["morpheus", "needle", "binary"]
)
def test_app_answers_the_wire_vectors_byte_for_byte(request_bytes: bytes, response_bytes: bytes) -> None:
    (request,) = decode_all(request_bytes)
    assert search_app(request).encode() == native(response_bytes)


@pytest.mark.parametrize(
    ("query", "result"),
    [
        ("morpheus", "Follow the white rabbit. 🐰"),
        ("ring", "In the caves beneath the Misty Mountains. 💍"),
        ("🐶", "🐾 Playing ball! 🏐"),
        ("needle", "No match for 'needle'."),
        ("", "No match for ''."),
        ("Morpheus", "No match for 'Morpheus'."),
    ],
)
def test_app_search_table(query: str, result: str) -> None:
    response = search_app(Message.from_json({"action": "search", "value": query}))
    assert response.header == {
        "byteorder": sys.byteorder,
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": len(response.content),
    }
    assert response.json() == {"result": result}


@pytest.mark.parametrize(
    ("body", "result"),
    [
        ({"action": "fetch", "value": "x"}, "Error: invalid action 'fetch'."),
        ({"value": "morpheus"}, "Error: invalid action 'None'."),
        ({"action": "search"}, "No match for 'None'."),
        ({"action": "search", "value": 5}, "No match for '5'."),
        ({"action": "search", "value": ["morpheus"]}, "No match for '['morpheus']'."),
        (
            {"action": "search", "value": "ring", "x-extra": [1, {"a": None}]},
            "In the caves beneath the Misty Mountains. 💍",
        ),
        (["search", "morpheus"], "Error: invalid action 'None'."),
        ("morpheus", "Error: invalid action 'None'."),
        (None, "Error: invalid action 'None'."),
    ],
)
def test_app_other_actions_and_shapes_answer_like_the_guide(body: Any, result: str) -> None:
    assert search_app(Message.from_json(body)).json() == {"result": result}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1", "ascii", "UTF-8"])
def test_app_reads_every_allowed_text_encoding(encoding: str) -> None:
    value = "morpheus"
    content = json.dumps({"action": "search", "value": value}).encode(encoding)
    request = Message.from_bytes(content, content_type="text/json", encoding=encoding)
    response = search_app(request)
    assert response.content_encoding == "utf-8"
    assert response.json() == {"result": "Follow the white rabbit. 🐰"}


@given(
    lst.binary_contents(max_size=64, large=2000),
    st.sampled_from(["binary/custom-client-binary-type", "image/png", "x"]),
)
def test_app_binary_requests_get_their_first_ten_bytes(content: bytes, content_type: str) -> None:
    response = search_app(Message.from_bytes(content, content_type=content_type))
    assert response.content == b"First 10 bytes of request: " + content[:10]
    assert response.header["content-type"] == "binary/custom-server-binary-type"
    assert response.header["content-encoding"] == "binary"


@given(lst.bad_content_messages())
def test_app_bad_text_json_content_raises_the_content_error(case: tuple[Message, type[ContentError]]) -> None:
    message, error = case
    with pytest.raises(error):
        search_app(message)


def _reference_app(request: Message) -> Message:
    """The application spelled out the slow, obvious way: the oracle for the fast path."""
    body = request.json()
    action, value = (body.get("action"), body.get("value")) if isinstance(body, dict) else (None, None)
    content = json.dumps({"result": search_answer(action, value)}, ensure_ascii=False).encode("utf-8")
    return Message.from_bytes(content, content_type="text/json", encoding="utf-8", byteorder=sys.byteorder)


def _outcome(app: Any, request: Message) -> tuple[str, Any]:
    try:
        response = app(request)
        return "ok", response if isinstance(response, bytes) else response.encode()
    except ContentError as error:
        return type(error).__name__, error.reason


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_objects = st.dictionaries(_text, _text | st.integers() | st.none() | st.booleans(), max_size=4)


@st.composite
def _json_contents(draw: st.DrawFn) -> bytes:
    """Contents close to what the fast path accepts, and mutations just outside it."""
    body = draw(_objects)
    if draw(st.booleans()):
        body.update(action="search", value=draw(st.sampled_from(["morpheus", "ring", "🐶"]) | _text))
    text = json.dumps(
        body, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from([(", ", ": "), (",", ":")]))
    )
    raw = text.encode("utf-8")
    mutation = draw(
        st.sampled_from(["none", "none", "duplicate", "surrogate", "bom", "insert", "truncate", "nan"])
    )
    if mutation == "duplicate" and body:
        key = draw(st.sampled_from(sorted(body)))
        raw = raw[:-1] + (", " if body else "").encode() + json.dumps(key).encode() + b': "x"}'
    elif mutation == "surrogate":
        raw = raw[:-1] + (b", " if body else b"") + b'"s": "\\ud800"}'
    elif mutation == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mutation == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=3)) + raw[at:]
    elif mutation == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mutation == "nan":
        raw = raw[:-1] + (b", " if body else b"") + b'"n": NaN}'
    return raw


def _json_request(content: bytes) -> Message:
    return Message.from_bytes(content, content_type="text/json", encoding="utf-8")


@given(_json_contents() | st.binary(max_size=40))
@example(b'{"action": "search", "value": "a", "action": "fetch"}')  # a duplicate key
@example(b'{"action": "search", "value": "x:y"}')
@example(b'{"action": "search", "value": "\\ud83d\\udc36"}')
@example(b'{"action": "search", "value": "\\udc36"}')
@example(b'{"action": "search", "value": 1e400}')
@example(b'{"action": "search", "value": "\x7f"}')
def test_app_fast_path_agrees_with_the_strict_reader(content: bytes) -> None:
    request = Message.from_bytes(content, content_type="text/json", encoding="utf-8")
    assert _outcome(search_app, request) == _outcome(_reference_app, request)


@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_app_result_text_is_encoded_like_the_guide(text: str) -> None:
    request = Message.from_json({"action": "search", "value": text})
    assert search_app(request).encode() == _reference_app(request).encode()


def test_error_response_is_the_protocol_md_error_message() -> None:
    error = ContentTooLarge("content-length 5000000 exceeds the limit of 1048576 bytes", offset=0)
    message = error_response(error)
    assert message.is_json and message.content_encoding == "utf-8"
    assert message.json() == {"error": "content-too-large", "detail": error.reason}
    (decoded,) = Decoder().feed(message.encode())
    assert decoded == message


@pytest.mark.parametrize(
    "error",
    [
        IncompleteMessage("stream ended", 0, 10, 3),
        UnsupportedEncoding("content-encoding 'rot13' is not allowed"),
        ContentNotDecodable("bad"),
        ContentNotJSON("nope"),
    ],
)
def test_error_response_carries_the_code_of_each_error_class(error: ContentError | IncompleteMessage) -> None:
    assert error_response(error).json() == {"error": error.code, "detail": error.reason}


def test_error_message_for_internal_errors() -> None:
    assert error_message(INTERNAL_ERROR, "boom").json() == {"error": "internal-error", "detail": "boom"}


@given(lst.messages(max_content_size=3000) | lst.search_requests() | _json_contents().map(_json_request))
def test_app_encoded_fast_path_is_byte_identical_to_encoding_the_message(request: Message) -> None:
    def fast(request: Message) -> bytes:
        header = dict(request.header)
        out = search_app.encode_response(request.header, request.content)
        assert request.header == header  # the header is only read
        return out

    assert _outcome(fast, request) == _outcome(search_app, request)


# -- the application interface and the echo application --------------------------------


def test_apps_are_found_by_name_and_an_unknown_name_is_one_clear_error() -> None:
    assert {"search": search_app, "echo": echo_app} == APPS
    assert get_app("echo") is echo_app and isinstance(get_app("search"), SearchApp)
    with pytest.raises(ValueError, match="no application 'grep' \\(choose from search, echo\\)"):
        get_app("grep")


def test_app_interface_needs_respond_and_defaults_encode_response_to_the_slow_way() -> None:
    with pytest.raises(TypeError):
        App()  # type: ignore[abstract]

    class Upper(App):
        name = "upper"

        def respond(self, request: Message) -> Message:
            return Message.from_bytes(request.content.upper())

    upper = Upper()
    request = Message.from_bytes(b"abc", extra_headers={"x": 1})
    assert upper(request) == upper.respond(request)
    assert upper.encode_response(request.header, request.content) == Message.from_bytes(b"ABC").encode()
    # Served as is by the sans-IO connection.
    assert ServerConnection(upper).receive_data(request.encode()) == Message.from_bytes(b"ABC").encode()


@given(lst.messages(max_content_size=3000) | lst.search_requests())
def test_app_echo_answers_every_request_with_itself(request: Message) -> None:
    assert echo_app(request) == request
    assert echo_app(request).header is not request.header
    wire = request.encode()
    assert echo_app.encode_response(request.header, request.content) == wire
    assert ServerConnection(EchoApp()).receive_data(wire + wire) == wire + wire


def test_app_echo_does_not_read_the_content() -> None:
    # Content a search server would refuse (S3) is simply echoed.
    bad = Message.from_bytes(b"\xff{", content_type="text/json", encoding="rot13")
    assert ServerConnection(echo_app).receive_data(bad.encode()) == bad.encode()
