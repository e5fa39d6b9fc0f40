"""The rules of docs/PROTOCOL.md, one row each, for everything that cites the spec.

Every rule has a short id (``F2``) and an anchor in ``docs/PROTOCOL.md``
(``docs/PROTOCOL.md#f2``); the probe's checks, error messages, help texts and
the dissector name rules through :func:`cite` so that a user can open the
sentence the tool is judging by. A test holds this table and the document
against each other: every id here has its anchor there, and every anchor
there has its row here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RULES", "SPEC_PATH", "Rule", "cite", "rule"]

#: The spec's path in the repository (and in a source distribution).
SPEC_PATH = "docs/PROTOCOL.md"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the spec: ``id`` (``"F2"``), the section it sits in, one line of text."""

    id: str
    section: str
    text: str

    @property
    def anchor(self) -> str:
        return self.id.lower()

    @property
    def ref(self) -> str:
        """``docs/PROTOCOL.md#f2``: where the rule is written."""
        return f"{SPEC_PATH}#{self.anchor}"


def _rules(section: str, *rows: tuple[str, str]) -> list[Rule]:
    return [Rule(id, section, text) for id, text in rows]


#: Every rule of docs/PROTOCOL.md, by id, in the document's order.
RULES: dict[str, Rule] = {
    r.id: r
    for r in [
        *_rules(
            "Framing",
            ("F1", "a message starts with a 2-byte big-endian header length N, 1 <= N <= 65535"),
            (
                "F2",
                "a message may arrive split at any byte: buffer until 2 + N + content-length bytes are in",
            ),
            ("F3", "messages follow back to back: one read may hold several messages and part of the next"),
            ("F4", "a stream that ends inside a message is an incomplete message"),
            ("F5", "nothing resynchronises a length-prefixed stream: after a framing or header error, close"),
        ),
        *_rules(
            "Header rules",
            ("H1", "the JSON header is strict UTF-8: no BOM, no lone surrogate escapes"),
            ("H2", "the JSON header is one strict JSON text (RFC 8259), nested at most 200 levels"),
            ("H3", "the JSON header holds no NaN, Infinity or number that overflows"),
            ("H4", "no JSON object in the header repeats a key"),
            ("H5", "the JSON header is an object"),
            ("H6", "the header holds byteorder, content-type, content-encoding and content-length"),
            (
                "H7",
                "the required values: byteorder is 'little' or 'big'; content-type and content-encoding "
                "are non-empty strings; content-length is an integer >= 0",
            ),
            ("H8", "other header keys are extension headers, allowed and carried through"),
        ),
        *_rules(
            "Content rules",
            ("C1", "the content is exactly content-length bytes"),
            (
                "C2",
                "text/json content is read through its content-encoding only when that is on the "
                "allow-list (utf-8, utf-16, utf-32, ascii, latin-1)",
            ),
            ("C3", "text/json content is valid text in its content-encoding"),
            ("C4", "text/json content is one strict JSON value (the header's rules)"),
            ("C5", "any other content-type is opaque bytes, which need not be text"),
        ),
        *_rules(
            "Limits",
            (
                "L1",
                "a content-length over the receiver's limit (default 1 MiB) is refused as soon as the "
                "header is read, before any content is buffered",
            ),
            ("L2", "a peer that goes quiet, before or inside a message, is cut off by an idle timeout"),
            (
                "L3",
                "what a server holds is bounded: the output a peer does not read, and the number of "
                "open connections",
            ),
        ),
        *_rules(
            "Connections and errors",
            (
                "S1",
                "every request on a connection is answered, in order; the connection stays open "
                "until the peer closes it or goes idle",
            ),
            (
                "S2",
                "after a framing or header error the server answers the requests before it, sends "
                "the error message and closes that connection",
            ),
            (
                "S3",
                "after a content error the server answers that request with an error message and "
                "keeps the connection open",
            ),
            ("S4", "one connection's errors, slowness or size never affect another's"),
            ("S5", "a peer that shuts down its sending side still gets every answer"),
            ("S6", 'an error message is text/json {"error": code, "detail": reason}'),
        ),
        *_rules(
            "Applications",
            ("A1", "search: a search request is answered with its result from the table"),
            ("A2", "search: a text/json request whose action is not search gets the invalid-action result"),
            ("A3", "search: a request of any other content-type is answered with its first 10 bytes"),
            ("A4", "echo: every request is answered with itself, header and content unchanged"),
        ),
        *_rules(
            "Encoding rules",
            (
                "E1",
                "the header is written as json.dumps(ensure_ascii=False), required keys in the guide's "
                "order, extension keys after",
            ),
            ("E2", "text/json content is written as json.dumps(ensure_ascii=False) in its encoding"),
        ),
        *_rules(
            "Byte echo",
            (
                "X1",
                "an echo server keeps serving: a connection that ends, closed, half-closed or reset, "
                "never ends the server",
            ),
            (
                "X2",
                "every byte received on a connection is sent back on it, unchanged and in order, however "
                "the bytes were split",
            ),
            (
                "X3",
                "an echo is sent whole: a send that takes part of the bytes is continued until all are sent",
            ),
            (
                "X4",
                "each connection gets exactly its own bytes back, and one connection's slowness or silence "
                "never delays another",
            ),
            (
                "X5",
                "a client that shuts down its sending side gets every byte echoed, then the server closes "
                "the connection",
            ),
            (
                "X6",
                "what an echo server holds for a client that does not read is bounded: it stops reading "
                "that client, or closes it",
            ),
        ),
    ]
}


def rule(rule_id: str) -> Rule:
    """The rule ``rule_id`` (``"F2"``); ``KeyError`` names the ids there are."""
    try:
        return RULES[rule_id]
    except KeyError:
        raise KeyError(f"no rule {rule_id!r} in {SPEC_PATH} (rules: {', '.join(RULES)})") from None


def cite(rule_id: str) -> str:
    """``"F2 (docs/PROTOCOL.md#f2)"``: how tools name a rule in their output."""
    return f"{rule_id} ({rule(rule_id).ref})"
