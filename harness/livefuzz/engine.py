"""The search: Hypothesis generates programs, the runner runs them, a failure is shrunk.

:func:`fuzz` drives ``@given(programs(app))`` with a budget (seconds and/or cases),
a seed and an example database, and returns a :class:`FuzzReport`. The first
failure is shrunk by Hypothesis to the smallest program that still fails (fewest
steps, connections, messages, cuts and bytes); every program's verdict is
remembered by its JSON, so a program that failed once fails again during
shrinking and in Hypothesis' final replay without being re-run (a flaky server
cannot confuse the shrinker). Shrinking has its own time bound
(``shrink_time``): past it the smallest failure found so far is the answer.

Feedback (``feedback=True``): each case reports ``hypothesis.target()`` the
number of behaviours it showed that no case showed before (error codes owed and
answered, how connections ended, answer shapes), which steers generation toward
programs that do something new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from harness.livefuzz.program import Step, programs, to_json
from harness.livefuzz.runner import CaseResult, Runner

__all__ = ["Finding", "FuzzReport", "FuzzStats", "fuzz"]

log = logging.getLogger(__name__)

#: Bumped when the program strategy changes so much that stored examples mean other programs.
DATABASE_FORMAT = 1


@dataclass
class FuzzStats:
    """Counters of a run so far (what the status line shows)."""

    started: float = field(default_factory=time.monotonic)
    cases: int = 0
    connections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    failures: int = 0
    shrinking: bool = False
    behaviours: int = 0

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Finding:
    """The shrunk failing program and what its run found."""

    program: list[Step]
    result: CaseResult
    first_found_after: float  # seconds into the run when the first failure showed
    first_found_case: int


@dataclass
class FuzzReport:
    stats: FuzzStats
    finding: Finding | None
    seed: int
    #: Why the run ended: "failure", "time" (the --max-time budget) or "examples".
    ended: str


class LiveFailure(Exception):
    """A program failed (raised inside the Hypothesis test so that it shrinks it)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _BudgetSpent(BaseException):
    """The time budget ran out with nothing found (a BaseException: Hypothesis lets it through
    without treating it as a failure)."""


def fuzz(
    runner: Runner,
    *,
    max_time: float | None = 60.0,
    max_examples: int | None = None,
    seed: int = 0,
    database: Path | None = None,
    feedback: bool = True,
    max_steps: int = 8,
    shrink_time: float | None = None,
    progress: Callable[[FuzzStats], None] | None = None,
) -> FuzzReport:
    """Fuzz the server behind ``runner`` until a failure (shrunk) or the budget runs out."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings, target
    from hypothesis import seed as hypothesis_seed

    from harness.exampledb import example_database

    stats = FuzzStats()
    deadline = None if max_time is None else stats.started + max_time
    shrink_bound = shrink_time if shrink_time is not None else max(30.0, max_time or 30.0)
    verdicts: dict[str, tuple[list[Step], CaseResult]] = {}
    seen: set[str] = set()
    first: list[tuple[float, int]] = []
    shrink_deadline: list[float] = []

    def case(program: list[Step]) -> None:
        key = json.dumps(to_json(program), sort_keys=True)
        known = verdicts.get(key)
        if known is not None:
            _fail(key, known[1])
        now = time.monotonic()
        if not verdicts and deadline is not None and now > deadline:
            raise _BudgetSpent
        if shrink_deadline and now > shrink_deadline[0]:
            return  # shrinking took long enough: the smallest failure so far is the answer
        result = runner.run(program)
        stats.cases += 1
        stats.connections += result.connections + 1  # and the fresh connection
        stats.bytes_sent += result.bytes_sent
        stats.bytes_received += result.bytes_received
        new = result.features - seen
        seen.update(result.features)
        stats.behaviours = len(seen)
        if feedback:
            target(float(len(new)), label="new behaviours")
        if progress is not None:
            progress(stats)
        if result.failure is not None:
            stats.failures += 1
            if not first:
                first.append((stats.seconds, stats.cases))
                shrink_deadline.append(time.monotonic() + shrink_bound)
                stats.shrinking = True
            verdicts[key] = (list(program), result)
            _fail(key, result)

    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
    if feedback:
        phases.insert(3, Phase.target)
    configured = settings(
        max_examples=max_examples if max_examples is not None else 10**9,
        deadline=None,
        # The local directory, shared through Redis when HARNESS_EXAMPLE_DB says so.
        database=example_database(local=database) if database is not None else None,
        suppress_health_check=list(HealthCheck),
        phases=phases,
        verbosity=Verbosity.debug if log.isEnabledFor(logging.DEBUG) else Verbosity.quiet,
        print_blob=False,
        report_multiple_bugs=False,
    )
    # The seed goes on first: hypothesis.seed() turns the database off, the settings put it back.
    test = configured(hypothesis_seed(seed)(given(programs(runner.app, max_steps=max_steps))(case)))  # type: ignore[no-untyped-call]
    # One database key per application and profile (and format of programs): failures found
    # against one are kept apart from the others', and survive edits of this module.
    key = f"harness.livefuzz/{DATABASE_FORMAT}/{runner.app.name}/{runner.profile.name}/{max_steps}"
    test._hypothesis_internal_database_key = hashlib.sha256(key.encode()).digest()
    ended = "examples"
    failing_key: str | None = None
    try:
        test()
    except _BudgetSpent:
        ended = "time"
    except LiveFailure as failure:
        failing_key = failure.key
    except BaseExceptionGroup as group:  # several distinct failures: report the first
        found = [e for e in _leaves(group) if isinstance(e, LiveFailure)]
        if not found:
            raise
        failing_key = found[0].key
    finding = None
    if failing_key is not None:
        program, result = verdicts[failing_key]
        at, number = first[0] if first else (stats.seconds, stats.cases)
        finding = Finding(program, result, at, number)
        ended = "failure"
    stats.shrinking = False
    return FuzzReport(stats, finding, seed, ended)


def _fail(key: str, result: CaseResult) -> NoReturn:
    # One place that raises: Hypothesis tells failures apart by where they were raised.
    raise LiveFailure(key, result.failure or "")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
