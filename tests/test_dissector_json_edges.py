"""The dissector's strict JSON reader against the codec, on the edge cases of strict JSON.

Wireshark 4.0's Lua has no JSON library, so lpjson.lua carries its own reader; it
must give every header the codec's verdict (harness.strictjson's check order:
UTF-8, BOM, depth, syntax, non-finite, duplicate keys, lone surrogates; then
object, required keys, values, limit), and read text/json content as
Message.json() does. One session per case, one capture, one tshark run.
"""

from __future__ import annotations

from pathlib import Path

from dissector_helpers import assert_clean, check_sessions, require_tshark

from harness.capture.tshark import dissect
from harness.capture.writer import Session, write_sessions
from harness.frames import frame

GOOD = b'"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 0'


HEADERS: list[bytes] = [
    b"{" + GOOD + b"}",
    b" \t\r\n{" + GOOD + b"} \n",
    b"\x0b{" + GOOD + b"}",  # vertical tab is not JSON whitespace
    b"\xc2\xa0{" + GOOD + b"}",  # nor is U+00A0
    b"\xef\xbb\xbf{" + GOOD + b"}",  # BOM
    b"{" + GOOD + b', "x": "\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
    b"{" + GOOD + b', "x": "\xc0\xaf"}',  # overlong
    b"{" + GOOD + b', "x": "\xf4\x90\x80\x80"}',  # past U+10FFFF
    b"{" + GOOD + b', "x": "\xe2\x82"}',  # truncated sequence
    b"{" + GOOD + b', "x": "\\ud800"}',  # lone high surrogate escape
    b"{" + GOOD + b', "x": "\\udc00\\ud800"}',  # reversed pair
    b"{" + GOOD + b', "x": "\\ud83d\\ude00"}',  # a proper pair
    b"{" + GOOD + b', "x": "\\\\ud800"}',  # an escaped backslash, not an escape
    b"{" + GOOD + b', "\\ud800": 1}',  # lone surrogate in a key
    b"{" + GOOD + b', "x": "a\tb"}',  # raw control character in a string
    b"{" + GOOD + b', "x": "\\x41"}',  # invalid escape
    b"{" + GOOD + b', "x": "\\u00e"}',  # short \u escape
    b"{" + GOOD + b', "x": "\\u00E9\\/\\b\\f\\n\\r\\t\\"\\\\"}',  # every escape
    b"{" + GOOD + b", }",  # trailing comma
    b"{" + GOOD + b', "x": [1, 2, ]}',
    b"{" + GOOD + b', "x": 01}',
    b"{" + GOOD + b', "x": 1.}',
    b"{" + GOOD + b', "x": .5}',
    b"{" + GOOD + b', "x": -}',
    b"{" + GOOD + b', "x": 1e}',
    b"{" + GOOD + b', "x": +1}',
    b"{" + GOOD + b', "x": 1E+2, "y": -0.0e-0, "z": 12345678901234567890123}',
    b"{" + GOOD + b', "x": 1e400}',
    b"{" + GOOD + b', "x": -1e400}',
    b"{" + GOOD + b', "x": 1.7976931348623157e308}',
    b"{" + GOOD + b', "x": 1.7976931348623159e308}',  # rounds to infinity
    b"{" + GOOD + b', "x": NaN}',
    b"{" + GOOD + b', "x": -Infinity}',
    b"{" + GOOD + b', "x": -NaN}',
    b"{" + GOOD + b', "x": nan}',
    b"{" + GOOD + b', "x": ' + b"9" * 4300 + b"}",
    b"{" + GOOD + b', "x": ' + b"9" * 4301 + b"}",
    b"{" + GOOD + b', "x": -' + b"9" * 4301 + b"}",
    b"{" + GOOD + b', "x": 1.' + b"9" * 5000 + b"}",
    b"{" + GOOD + b', "x": NaN, "x": 1}',  # non-finite before duplicate
    b"{" + GOOD + b', "x": {"a": 1, "a": 2}}',  # duplicate in a nested object
    b"{" + GOOD + b', "a": 1, "\\u0061": 2}',  # the same key, escaped
    b"{" + GOOD + b', "x": "\\ud800", "x": 1}',  # duplicate before lone surrogate
    b"{" + GOOD + b', "x": ' + b"[" * 199 + b"]" * 199 + b"}",  # depth 200: allowed
    b"{" + GOOD + b', "x": ' + b"[" * 200 + b"]" * 200 + b"}",  # depth 201
    b"{" + GOOD + b', "x": "' + b"[" * 300 + b'"}',  # brackets inside a string
    b"{" + GOOD + b', "x": ' + b"[" * 250 + b"}",  # too deep and not JSON: depth wins
    b'{"x": "' + b"[" * 250 + b"}",  # unterminated string full of brackets
    b"{" + GOOD + b', "x": true, "y": false, "z": null}',
    b"{" + GOOD + b', "x": tru}',
    b"{" + GOOD + b"} {}",
    b"[]",
    b'"a string"',
    b"12",
    b"null",
    b"false",
    b"true",
    b"-1.5e3",
    b"{}",
    b'{"byteorder": "little"}',
    b'{"byteorder": "middle", "content-type": "t", "content-encoding": "e", "content-length": 0}',
    b'{"byteorder": "big", "content-type": "", "content-encoding": "e", "content-length": 0}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": 7, "content-length": 0}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": -0}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": -1}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 0.0}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 0e0}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": true}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 1048577}',
    b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 1'
    + b"0" * 30
    + b"}",
    b'{"content-length": "x", "byteorder": 1}',  # missing keys are reported before bad values
]

JSON = b'"content-type": "text/json", "byteorder": "little", "content-length": '
CONTENTS: list[tuple[str, bytes]] = [
    ("utf-8", b'{"a": 1}'),
    ("UTF-8", b'"\xef\xbb\xbfx"'),
    ("utf-8", b"\xef\xbb\xbf{}"),  # BOM in content
    ("ascii", b'{"a": "\xc3\xa9"}'),
    ("latin-1", b'{"\xe9": 1}'),
    ("utf-16", "[1]".encode("utf-16-le")),
    ("utf-16", b"[\x00"),  # odd length
    ("utf-16", b"\x00\xd8\x00\x00"),  # lone surrogate
    ("utf-32", "{}".encode("utf-32")),
    ("utf-32", b"\x00\x00\x11\x00"),  # past U+10FFFF
    ("utf-8", b"[NaN]"),
    ("utf-8", b'{"a": 1, "a": 1}'),
    ("utf-8", b'"\\udfff"'),
    ("utf-8", b"  "),
    ("koi8-r", b"{}"),
    ("binary", b"{}"),
]


def _sessions() -> list[Session]:
    sessions = [Session.exchange([frame(h)], comment=f"header {n}") for n, h in enumerate(HEADERS)]
    sessions += [Session.exchange([b"\x00"], comment="a stream of one byte")]
    for n, (encoding, content) in enumerate(CONTENTS):
        header = (
            b"{" + JSON + str(len(content)).encode() + b', "content-encoding": "' + encoding.encode() + b'"}'
        )
        sessions.append(Session.exchange([frame(header, content)], comment=f"content {n}"))
    return sessions


def test_dissector_json_reader_gives_the_codecs_verdict_on_edge_cases(tmp_path: Path) -> None:
    require_tshark()
    sessions = _sessions()
    capture = tmp_path / "edges.pcapng"
    write_sessions(capture, sessions)
    run = dissect(capture)
    assert_clean(run)
    problems = check_sessions(run, sessions)
    assert not problems, "\n".join(problems)
