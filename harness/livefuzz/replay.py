"""Replay files: a shrunk failure as JSON, its capture, and the command that replays it.

The schema (version 1) is documented in docs/live-fuzzing.md#replay-files::

    {"version": 1, "tool": "harness fuzz server", "app": "search", "profile": "strict",
     "exact": false, "timeout": 2.0, "failure": "...", "step": 2,
     "target": {"host": "127.0.0.1", "port": 65432, "command": ["python", "srv.py", "{host}", "{port}"]},
     "steps": [{"step": "send", "conn": 0, "data": "<base64>", "cuts": [3], "pause": 0.0,
                "label": "..."}, {"step": "read", "conn": 0}]}
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.livefuzz.program import Step, from_json, to_json
from harness.probe.wire import Transcript

__all__ = ["SCHEMA_VERSION", "ReplayFile", "load", "replay_command", "write", "write_capture"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ReplayFile:
    steps: list[Step]
    app: str = "search"
    profile: str = "strict"
    exact: bool = False
    timeout: float = 2.0
    failure: str = ""
    step: int | None = None
    host: str | None = None
    port: int | None = None
    command: tuple[str, ...] | None = None
    #: The run's --rss-limit in MiB (the memory bound a supervised replay holds the server to).
    rss_limit: float = 64.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "tool": "harness fuzz server",
            "app": self.app,
            "profile": self.profile,
            "exact": self.exact,
            "timeout": self.timeout,
            "rss_limit": self.rss_limit,
            "failure": self.failure,
            "step": self.step,
            "target": {
                "host": self.host,
                "port": self.port,
                "command": list(self.command) if self.command is not None else None,
            },
            "steps": to_json(self.steps),
        }


def load(path: Path) -> ReplayFile:
    """Read a replay file; ``ValueError`` says in one line what is wrong with it."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON replay file ({exc})") from None
    if not isinstance(obj, dict) or "steps" not in obj:
        raise ValueError(f"{path} is not a replay file (no steps)")
    version = obj.get("version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema version {version!r}; this harness reads version {SCHEMA_VERSION}"
        )
    target = obj.get("target") or {}
    command = target.get("command")
    if command is not None and (
        not isinstance(command, list) or not all(isinstance(a, str) for a in command)
    ):
        raise ValueError(f"{path}: target.command must be a list of strings")
    step = obj.get("step")
    try:
        rss_limit = float(obj.get("rss_limit", 64.0))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: rss_limit must be a number of MiB") from None
    if not 0 < rss_limit < 1 << 30:
        raise ValueError(f"{path}: rss_limit must be a positive number of MiB")
    return ReplayFile(
        steps=from_json(obj["steps"]),
        app=str(obj.get("app", "search")),
        profile=str(obj.get("profile", "strict")),
        exact=bool(obj.get("exact", False)),
        timeout=float(obj.get("timeout", 2.0)),
        failure=str(obj.get("failure", "")),
        step=step if type(step) is int else None,
        host=target.get("host"),
        port=target.get("port"),
        command=tuple(command) if command is not None else None,
        rss_limit=rss_limit,
    )


def file_stem(steps: Sequence[Step]) -> str:
    """A name that is the same for the same shrunk program."""
    digest = hashlib.sha256(json.dumps(to_json(steps), sort_keys=True).encode()).hexdigest()
    return f"failure-{digest[:12]}"


def write(replay: ReplayFile, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{file_stem(replay.steps)}.json"
    path.write_text(json.dumps(replay.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_capture(
    transcripts: Sequence[Transcript], path: Path, server_port: int, ipv6: bool = False
) -> Path:
    """The exchange as a pcapng capture, every chunk one ``send()`` as it happened (needs scapy)."""
    from harness.capture.writer import write_sessions
    from harness.probe.report import transcript_session

    path.parent.mkdir(parents=True, exist_ok=True)
    write_sessions(path, [transcript_session(t, "live fuzz", server_port, ipv6) for t in transcripts])
    return path


def replay_command(path: Path, replay: ReplayFile) -> str:
    """The command line that replays ``path`` against the same target."""
    words = ["harness", "replay", str(path)]
    if replay.command is not None:
        words += ["--", *replay.command]
    elif replay.host is not None and replay.port is not None:
        words += [replay.host, str(replay.port)]
    return shlex.join(words)
