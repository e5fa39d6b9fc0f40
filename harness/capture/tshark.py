"""Run tshark with the lpjson dissector and read back what it dissected.

:func:`dissect` runs ``tshark -r CAPTURE -X lua_script:lpjson.lua -T json`` once
(with ``HOME`` and ``WIRESHARK_CONFIG_DIR`` in a temporary directory, so that an
installed copy of the dissector or personal preferences cannot interfere) and
returns one :class:`Dissected` record per lpjson tree item, plus every Lua
error it saw (on stderr, where load errors go, and as ``_ws.lua.error`` in
packets, where runtime errors go). :func:`follow_raw` asks tshark for its own
reassembly of TCP streams (``-z follow,tcp,raw``), an oracle independent of
the dissector.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.capture.dissector import dissector_path, not_loaded

__all__ = [
    "CHECK_PREFS",
    "Dissected",
    "TsharkError",
    "TsharkRun",
    "dissect",
    "find_tshark",
    "follow_raw",
    "tshark_env",
]

log = logging.getLogger(__name__)

#: Preferences for checking captures: verify checksums, reassemble out-of-order segments.
CHECK_PREFS: dict[str, str] = {
    "tcp.check_checksum": "TRUE",
    "ip.check_checksum": "TRUE",
    "tcp.reassemble_out_of_order": "TRUE",
}


class TsharkError(RuntimeError):
    """tshark is missing, failed, or printed something unreadable."""


def find_tshark() -> str | None:
    """The tshark executable on PATH (or in ``$TSHARK``), or ``None``."""
    return os.environ.get("TSHARK") or shutil.which("tshark")


@dataclass(frozen=True)
class Dissected:
    """One lpjson tree item: a message, a violation, or bytes the dissector did not parse.

    ``kind`` is ``"message"`` (a framed message; ``violation`` may then name a
    content error), ``"violation"`` (a framing or header violation, or the
    stream ending inside a message), ``"after-error"`` (bytes after a
    violation), ``"truncated"`` (a message cut short by missing segments) or
    ``"gap"`` (bytes after a gap in the TCP stream, not parsed).
    ``sender`` is ``"ADDRESS:PORT"`` of the frame's source.
    """

    frame: int
    stream: int
    sender: str
    kind: str
    fields: dict[str, Any]
    experts: list[str]

    @property
    def violation(self) -> str | None:
        value = self.fields.get("lpjson.violation")
        return value if isinstance(value, str) else None

    def text(self, name: str) -> str | None:
        value = self.fields.get(f"lpjson.{name}")
        return value if isinstance(value, str) else None

    def number(self, name: str) -> int | None:
        value = self.text(name)
        return None if value is None else int(value)

    @property
    def content(self) -> bytes | None:
        value = self.text("content")
        return None if value is None else bytes.fromhex(value.replace(":", ""))


@dataclass
class TsharkRun:
    """What one tshark run dissected."""

    records: list[Dissected]
    lua_errors: list[str]
    malformed: list[str]
    stderr: str
    frames: int
    #: Frames whose IP or TCP checksum tshark verified as bad (only with checksum checks on).
    bad_checksums: list[int] = field(default_factory=list)


def tshark_env(home: str) -> dict[str, str]:
    """The environment for tshark with ``home`` as its home and configuration directory."""
    env = dict(os.environ)
    env["HOME"] = home
    env["WIRESHARK_CONFIG_DIR"] = home
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def _run(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="harness-tshark-") as home:
        log.debug("running %s", " ".join(args))
        try:
            return subprocess.run(
                list(args), capture_output=True, timeout=timeout, env=tshark_env(home), check=False
            )
        except FileNotFoundError as exc:
            raise TsharkError(f"tshark not found: {exc}") from None
        except subprocess.TimeoutExpired:
            raise TsharkError(f"tshark did not finish within {timeout} s: {' '.join(args)}") from None


def _walk(node: Any, key: str) -> Iterable[Any]:
    """Every value stored under ``key`` anywhere in a tshark JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield from v if isinstance(v, list) else [v]
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _lpjson_fields(item: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """The lpjson fields of a tree item and of its lpjson subtrees (the header's fields sit
    under the header item, as ``lpjson.header_tree``), flattened."""
    for key, value in item.items():
        if not key.startswith("lpjson."):
            continue
        if key.endswith("_tree") and isinstance(value, dict):
            _lpjson_fields(value, into)
        else:
            into[key] = value
    return into


def _record(frame: int, stream: int, sender: str, item: dict[str, Any]) -> Dissected:
    fields = _lpjson_fields(item, {})
    experts = [
        k
        for e in _as_list(item.get("_ws.expert"))
        if isinstance(e, dict)
        for k in e
        if not k.startswith("_ws.")
    ]
    if "lpjson.unparsed" in fields:
        kind = "after-error"
    elif "lpjson.gap" in fields:
        kind = "gap"
    elif "lpjson.content" in fields:
        kind = "message"
    elif "lpjson.violation" in fields:
        kind = "violation"
    else:
        kind = "truncated"
    return Dissected(frame, stream, sender, kind, fields, experts)


def dissect(
    capture: str | Path,
    *,
    prefs: Mapping[str, str] = CHECK_PREFS,
    script: str | Path | None = None,
    two_pass: bool = False,
    tshark: str | None = None,
    timeout: float = 300.0,
) -> TsharkRun:
    """Dissect ``capture`` with the lpjson dissector in one tshark run."""
    exe = tshark or find_tshark()
    if exe is None:
        raise TsharkError("tshark is not installed (apt-get install tshark)")
    args = [exe, "-n", "-r", str(capture), "-X", f"lua_script:{script or dissector_path()}"]
    for name, value in prefs.items():
        args += ["-o", f"{name}:{value}"]
    if two_pass:
        args.append("-2")
    args += ["-T", "json", "--no-duplicate-keys"]
    proc = _run(args, timeout)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise TsharkError(f"tshark exited with {proc.returncode}: {stderr.strip()}")
    try:
        packets = json.loads(proc.stdout) if proc.stdout.strip() else []
    except json.JSONDecodeError as exc:
        raise TsharkError(f"tshark printed invalid JSON: {exc}") from None
    lua_errors = [line for line in stderr.splitlines() if "lua" in line.lower()]
    malformed: list[str] = []
    records: list[Dissected] = []
    bad_checksums: list[int] = []
    for packet in packets:
        layers = packet["_source"]["layers"]
        frame = int(_as_list(layers["frame"])[0]["frame.number"])
        lua_errors += [f"frame {frame}: {e}" for e in _walk(layers, "_ws.lua.error")]
        malformed += [f"frame {frame}: {e}" for e in _walk(layers, "_ws.malformed.expert")]
        statuses = [*_walk(layers, "ip.checksum.status"), *_walk(layers, "tcp.checksum.status")]
        if "0" in statuses:  # PROTO_CHECKSUM_E_BAD
            bad_checksums.append(frame)
        tcp = _as_list(layers.get("tcp"))
        if not tcp:
            continue
        tcp_layer = tcp[-1]
        ip = _as_list(layers.get("ip") or layers.get("ipv6"))
        src = ""
        if ip:
            src = ip[-1].get("ip.src") or ip[-1].get("ipv6.src") or ""
        sender = f"{src}:{tcp_layer['tcp.srcport']}"
        stream = int(tcp_layer["tcp.stream"])
        for item in _as_list(layers.get("lpjson")):
            if isinstance(item, dict):
                records.append(_record(frame, stream, sender, item))
    if not records and not lua_errors:
        why = not_loaded(exe, str(script or dissector_path()))
        if why is not None:  # tshark skips a Lua script it will not run without a word
            raise TsharkError(why)
    return TsharkRun(records, lua_errors, malformed, stderr, len(packets), bad_checksums)


def follow_raw(
    capture: str | Path, streams: Iterable[int], *, tshark: str | None = None, timeout: float = 300.0
) -> dict[int, tuple[bytes, bytes]]:
    """tshark's own reassembly of TCP ``streams``: stream -> (first sender's bytes, the peer's bytes).

    The first sender is the node that sent the stream's first packet (the client of a
    capture that starts at the SYN).
    """
    exe = tshark or find_tshark()
    if exe is None:
        raise TsharkError("tshark is not installed (apt-get install tshark)")
    wanted = list(streams)
    args = [exe, "-n", "-r", str(capture), "-q", "-o", "tcp.reassemble_out_of_order:TRUE"]
    for stream in wanted:
        args += ["-z", f"follow,tcp,raw,{stream}"]
    proc = _run(args, timeout)
    if proc.returncode != 0:
        raise TsharkError(f"tshark exited with {proc.returncode}: {proc.stderr.decode('utf-8', 'replace')}")
    # Each block: a line of '=', "Follow: tcp,raw", "Filter: tcp.stream eq N", "Node 0: ...",
    # "Node 1: ...", then hex lines (the second node's indented with a tab), then '='.
    result: dict[int, tuple[bytes, bytes]] = {}
    current: int | None = None
    parts: tuple[list[bytes], list[bytes]] = ([], [])
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("Filter: tcp.stream eq "):
            current = int(line.rsplit(" ", 1)[1])
            parts = ([], [])
            result[current] = (b"", b"")
        elif line.startswith("====="):
            if current is not None:
                result[current] = (b"".join(parts[0]), b"".join(parts[1]))
            current = None
        elif current is not None and line.strip() and not line.startswith(("Node ", "Follow:")):
            side = 1 if line.startswith("\t") else 0
            parts[side].append(bytes.fromhex(line.strip()))
    missing = [s for s in wanted if s not in result]
    if missing:
        raise TsharkError(f"tshark printed no follow output for streams {missing}")
    return result
