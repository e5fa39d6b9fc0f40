"""The probe: check a live lpjson server, check by check, with a capture of every failure.

:func:`checks_for` lists the checks of a protocol for an application (``CHECKS``: lpjson,
search), :func:`select_checks` picks them by name globs, :func:`run_checks` runs them
against a :class:`Target` (dependencies first; a failure a failed dependency explains is
reported as its consequence) and :func:`run_check` runs one;
each check is bounded in time and uses its own fresh connections, recorded
chunk by chunk (:mod:`harness.probe.wire`) so that a failure can be written
as a capture (:func:`write_captures`). ``harness probe`` is the command line.
"""

from harness.probe.catalog import checks_for, select_checks
from harness.probe.checks import CHECKS, Check, CheckContext, CheckFailed, check_names, find_check
from harness.probe.profiles import PROFILES, Profile, get_profile
from harness.probe.report import format_table, rerun_command, to_json, write_captures
from harness.probe.runner import CheckObserver, CheckResult, ProbeResult, Target, run_check, run_checks

__all__ = [
    "CHECKS",
    "PROFILES",
    "Check",
    "CheckContext",
    "CheckFailed",
    "CheckObserver",
    "CheckResult",
    "ProbeResult",
    "Profile",
    "Target",
    "check_names",
    "checks_for",
    "find_check",
    "format_table",
    "get_profile",
    "rerun_command",
    "run_check",
    "run_checks",
    "select_checks",
    "to_json",
    "write_captures",
]
