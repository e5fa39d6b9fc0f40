"""The probe: check a live lpjson server, check by check, with a capture of every failure.

:func:`run_checks` runs the named :data:`CHECKS` against a :class:`Target`;
each check is bounded in time and uses its own fresh connections, recorded
chunk by chunk (:mod:`harness.probe.wire`) so that a failure can be written
as a capture (:func:`write_captures`). ``harness probe`` is the command line.
"""

from harness.probe.checks import CHECKS, Check, CheckContext, CheckFailed, check_names, find_check
from harness.probe.report import format_table, rerun_command, to_json, write_captures
from harness.probe.runner import CheckResult, ProbeResult, Target, run_check, run_checks

__all__ = [
    "CHECKS",
    "Check",
    "CheckContext",
    "CheckFailed",
    "CheckResult",
    "ProbeResult",
    "Target",
    "check_names",
    "find_check",
    "format_table",
    "rerun_command",
    "run_check",
    "run_checks",
    "to_json",
    "write_captures",
]
