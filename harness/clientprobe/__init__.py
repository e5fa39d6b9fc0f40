"""Probing an lpjson *client*: harness plays a hostile server and judges the client.

``harness probe-client -- CMD ARGS...`` runs the client once per check
(:data:`~harness.clientprobe.checks.CHECKS`) against a
:class:`~harness.clientprobe.hostile.HostileServer` that answers its request split,
dripped, coalesced, spoiled by each violation class, with a huge declared length,
cut short, reset, or never; ``harness serve --chaos KIND`` serves one of those
misbehaviours for manual work (:func:`~harness.clientprobe.chaos.serve_chaos`).
See docs/probe-client.md.
"""

from __future__ import annotations

from harness.clientprobe.checks import CHECKS, ClientCheck, Expect, get_check, select_checks
from harness.clientprobe.hostile import HostileServer
from harness.clientprobe.responses import Answer, answer_for
from harness.clientprobe.runner import (
    ClientCheckResult,
    ClientProbeResult,
    ClientRun,
    rerun_command,
    run_check,
    run_checks,
)

__all__ = [
    "CHECKS",
    "Answer",
    "ClientCheck",
    "ClientCheckResult",
    "ClientProbeResult",
    "ClientRun",
    "Expect",
    "HostileServer",
    "answer_for",
    "get_check",
    "rerun_command",
    "run_check",
    "run_checks",
    "select_checks",
]
