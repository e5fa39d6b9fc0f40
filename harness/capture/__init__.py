"""Captures: lpjson sessions as pcapng files, and the Wireshark dissector that reads them.

Four modules, one job each:

- :mod:`harness.capture.writer`: whole TCP sessions (handshake, MSS-sized segments,
  ACKs, FINs, retransmissions, reordering, IPv4 or IPv6) written as deterministic
  pcapng files: :class:`Session`, :class:`Send`, :class:`Close`,
  :func:`write_sessions`, :func:`write_session`. scapy builds the packets.
- :mod:`harness.capture.samples`: the sample captures committed in ``pcaps/``, whose
  server side is the reference server's connection fed the client's sends
  (:func:`~harness.capture.samples.samples`, :func:`write_samples`, :func:`conversation`).
- :mod:`harness.capture.dissector`: the lpjson Wireshark dissector ``lpjson.lua``
  (:func:`dissector_path`) and installing it into Wireshark's personal plugins
  folder (:func:`install`, :func:`personal_plugins_dir`); why a tshark does not load it
  (:func:`not_loaded`).
- :mod:`harness.capture.tshark`: tshark run with the dissector, read back as one
  record per lpjson tree item (:func:`dissect`), and tshark's own TCP reassembly
  (:func:`follow_raw`).

The writer and the samples need scapy (the ``pcap`` extra); the dissector and the
tshark reader need nothing beyond the standard library. Every name below is imported
on first use, so ``import harness.capture`` loads none of them, and asking for a
writer or samples name without scapy raises :class:`harness._extras.MissingExtra`,
whose message names the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.capture.dissector import (
        DISSECTOR_NAME,
        dissector_path,
        install,
        not_loaded,
        personal_plugins_dir,
    )
    from harness.capture.samples import Sample, conversation, write_samples
    from harness.capture.tshark import Dissected, TsharkError, TsharkRun, dissect, find_tshark, follow_raw
    from harness.capture.writer import (
        CLIENT,
        DEFAULT_SERVER_PORT,
        SERVER,
        CapturedPacket,
        Close,
        Direction,
        Send,
        Session,
        pcapng_bytes,
        session_packets,
        write_session,
        write_sessions,
        write_sessions_at,
    )

__all__ = [
    "CLIENT",
    "DEFAULT_SERVER_PORT",
    "DISSECTOR_NAME",
    "SERVER",
    "CapturedPacket",
    "Close",
    "Direction",
    "Dissected",
    "Sample",
    "Send",
    "Session",
    "TsharkError",
    "TsharkRun",
    "conversation",
    "dissect",
    "dissector_path",
    "find_tshark",
    "follow_raw",
    "install",
    "not_loaded",
    "pcapng_bytes",
    "personal_plugins_dir",
    "session_packets",
    "write_samples",
    "write_session",
    "write_sessions",
    "write_sessions_at",
]

#: The public names of each module of this package. (The sample list itself, ``samples()``,
#: is not re-exported: its name is the submodule's, which the import system sets on this
#: package once ``harness.capture.samples`` is imported.)
_NAMES: dict[str, tuple[str, ...]] = {
    "writer": (
        "CLIENT",
        "DEFAULT_SERVER_PORT",
        "SERVER",
        "CapturedPacket",
        "Close",
        "Direction",
        "Send",
        "Session",
        "pcapng_bytes",
        "session_packets",
        "write_session",
        "write_sessions",
        "write_sessions_at",
    ),
    "samples": ("Sample", "conversation", "write_samples"),
    "dissector": ("DISSECTOR_NAME", "dissector_path", "install", "not_loaded", "personal_plugins_dir"),
    "tshark": ("Dissected", "TsharkError", "TsharkRun", "dissect", "find_tshark", "follow_raw"),
}
_SOURCES = {name: module for module, names in _NAMES.items() for name in names}


# Outside type checking only: to mypy the names are the imports above, so a misspelt one
# is an error at the caller rather than an attribute typed ``object``.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _SOURCES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # the next access is a plain attribute
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
