"""Profiles: which reading of the protocol the probe judges a server by.

``strict`` is docs/PROTOCOL.md as written. ``guide`` is the protocol as the
guide's ``app-server.py`` implements it: one request per connection, then close;
JSON read by ``json.loads`` (NaN and repeated keys accepted); the content read
with whatever codec the peer names; header values used as far as they can be;
an error answered by closing the connection. A profile only relaxes what a
peer's data does not depend on: what makes a server unsafe (no length limit,
hangs, crashes, stops serving others, memory) fails under every profile.

Each relaxation is a flag of :class:`Profile`; a check lists the flags that
change its verdict (:attr:`harness.probe.checks.Check.relaxed_by`), which is
what ``harness probe --list`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["GUIDE", "PROFILES", "RELAXATIONS", "STRICT", "Profile", "get_profile"]

#: What each relaxation flag of :class:`Profile` accepts, in one line.
RELAXATIONS: dict[str, str] = {
    "one_request_per_connection": "a close after the first answer is accepted (closes after one answer)",
    "lax_json": "NaN, Infinity and repeated keys may be read as json.loads reads them",
    "any_codec": "a text/json content-encoding outside the allow-list may be decoded with it",
    "lax_header_values": "a header value the server can still use may be accepted and answered",
    "errors_may_close": "an error may be answered by closing the connection, without an error message",
}


@dataclass(frozen=True)
class Profile:
    """A reading of the protocol: ``name`` and the relaxations it allows (all off: the spec)."""

    name: str
    summary: str
    one_request_per_connection: bool = False
    lax_json: bool = False
    any_codec: bool = False
    lax_header_values: bool = False
    errors_may_close: bool = False
    #: The server may print a Python traceback for an error it answers by closing (the
    #: guide's app-server prints one for every error): a supervised probe does not fail a
    #: check for a traceback alone. Not a relaxation of a verdict on the wire: a crash, a
    #: hang or memory growth still fails.
    prints_tracebacks: bool = False

    def relaxes(self, flag: str) -> bool:
        """Whether this profile allows the relaxation ``flag`` (a key of :data:`RELAXATIONS`)."""
        if flag not in RELAXATIONS:
            raise ValueError(f"no relaxation {flag!r} (known: {', '.join(RELAXATIONS)})")
        return bool(getattr(self, flag))

    @property
    def relaxations(self) -> list[str]:
        return [f.name for f in fields(self) if f.name in RELAXATIONS and getattr(self, f.name)]


STRICT = Profile("strict", "docs/PROTOCOL.md as written (the default)")
GUIDE = Profile(
    "guide",
    "the protocol as the guide's app-server.py implements it: one request per connection, "
    "lax JSON, any codec, errors answered by a close",
    one_request_per_connection=True,
    lax_json=True,
    any_codec=True,
    lax_header_values=True,
    errors_may_close=True,
    prints_tracebacks=True,
)

#: Every profile, by the name ``--profile`` takes.
PROFILES: dict[str, Profile] = {p.name: p for p in (STRICT, GUIDE)}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` names the ones there are."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"no profile {name!r} (choose from {', '.join(PROFILES)})") from None
