"""The probe's named checks of the lpjson protocol, one module per kind of check.

Each check talks to the target over fresh, recorded connections
(:class:`~harness.probe.wire.Recorder`), and either returns a one-line detail
(pass) or raises :class:`CheckFailed` saying what went wrong and how bad it is:

- ``spec``: the server deviates from docs/PROTOCOL.md (a wrong answer, a request
  dropped, a connection closed too early);
- ``unsafe``: the server hangs (silence until the time bound), dies (a fresh
  connection is refused or unanswered) or stops serving others.

Every check names the rule of docs/PROTOCOL.md it tests (``rule``, an id of
:data:`harness.spec.RULES`), a one-line ``hint`` that says what to fix, and the
checks it ``depends`` on: a failure that follows from a dependency's failure is
reported as a consequence of it (:mod:`harness.probe.runner`). Expected answers
always come from the application (:class:`harness.apps.App`, the search
application by default): a request the application cannot read is expected to
get the error message of its :class:`~harness.errors.ContentError`. The
violation checks send the canonical example of each row of
:data:`harness.violations.VIOLATIONS`, one check per error code, each judged by
the row's rule. How a profile (:mod:`harness.probe.profiles`) relaxes a verdict
is written where the verdict is made, and listed in ``Check.relaxed_by``.

Where things are: :mod:`.context` (:class:`Check`, :class:`CheckContext`,
:class:`CheckFailed`), :mod:`.answers` (requests, expected answers, how an answer is
judged), :mod:`.framing` (answers, splitting, pipelining), :mod:`.connections`
(concurrency, connection life, limits), :mod:`.violations` (protocol errors, header
values, what comes before and after an error), :mod:`.encodings` (C2), and
:mod:`.lpjson`, the list in run order. A new check goes in the module of its kind and
into that list.
"""

from __future__ import annotations

from harness.probe.checks.answers import (
    binary,
    describe_request,
    difference,
    error_code,
    expected_answer,
    search,
    still_served,
    verify_answers,
)
from harness.probe.checks.context import QUICK_WAIT, Check, CheckContext, CheckFailed, Outcome, Severity
from harness.probe.checks.framing import random_splittings
from harness.probe.checks.lpjson import CHECKS, UNCHECKED_RULES, check_names, find_check, lpjson_checks

__all__ = [
    "CHECKS",
    "QUICK_WAIT",
    "UNCHECKED_RULES",
    "Check",
    "CheckContext",
    "CheckFailed",
    "Outcome",
    "Severity",
    "binary",
    "check_names",
    "describe_request",
    "difference",
    "error_code",
    "expected_answer",
    "find_check",
    "lpjson_checks",
    "random_splittings",
    "search",
    "still_served",
    "verify_answers",
]
