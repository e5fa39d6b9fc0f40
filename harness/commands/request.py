"""``harness request``: the guide's client, done right."""

from __future__ import annotations

import argparse
import sys

from harness.client import Client, ConnectionClosed, ResponseTimeout
from harness.commands._parsing import port, seconds
from harness.errors import ProtocolError
from harness.message import Message

DESCRIPTION = """\
Send one request to an lpjson server and print the result.

ACTION "search" sends text/json {"action": "search", "value": VALUE}; any other
action sends the binary content ACTION + VALUE (as the guide's app-client.py does).
A text/json response prints its "result"; any other response prints its content's
Python repr. Exit status: 0 on an answer, 1 when the server answers with an error
message, refuses the connection, times out, closes early or breaks the protocol.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "request",
        help="send one request and print the result",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("port", metavar="PORT", type=port(1))
    parser.add_argument("action", metavar="ACTION", help='"search", or anything else for a binary request')
    parser.add_argument("value", metavar="VALUE")
    parser.add_argument(
        "--timeout",
        type=seconds(zero=False),
        default=5.0,
        help="seconds to wait for the connection and the answer (default 5)",
    )
    parser.add_argument("--show-header", action="store_true", help="print the response's JSON header first")
    parser.set_defaults(func=run)


def build_request(action: str, value: str) -> Message:
    """The request the guide's client sends for ``action`` and ``value``."""
    if action == "search":
        return Message.from_json({"action": action, "value": value})
    # Command-line bytes that are not UTF-8 (surrogate escapes in argv) go out as given.
    return Message.from_bytes((action + value).encode("utf-8", "surrogateescape"))


def _fail(message: str) -> int:
    print(f"harness request: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    try:
        request = build_request(args.action, args.value)
    except ValueError as exc:  # a search VALUE that is not text (non-UTF-8 bytes in argv)
        print(f"harness request: cannot send {args.value!r} as a search: {exc}", file=sys.stderr)
        return 2
    where = f"{args.host}:{args.port}"
    try:
        with Client(args.host, args.port, timeout=args.timeout) as client:
            response = client.request(request)
    except ConnectionRefusedError:
        return _fail(f"connection to {where} refused (is a server listening there?)")
    except ResponseTimeout as exc:
        return _fail(f"timed out: {exc}")
    except ConnectionClosed as exc:
        return _fail(str(exc))
    except ProtocolError as exc:
        return _fail(f"the response from {where} breaks the protocol: {exc}")
    except OSError as exc:
        return _fail(f"cannot reach {where}: {exc.strerror or exc}")
    if args.show_header:
        print(response.header)
    if not response.is_json:
        print(repr(response.content))
        return 0
    try:
        body = response.json()
    except ProtocolError as exc:
        return _fail(f"the response's text/json content is unreadable: {exc}")
    if isinstance(body, dict) and "error" in body:
        return _fail(f"the server answered with an error: {body.get('error')}: {body.get('detail', '')}")
    if isinstance(body, dict) and "result" in body:
        print(body["result"])
    else:
        print(body)
    return 0
