"""The search: Hypothesis generates programs, the runner runs them, a failure is shrunk.

:func:`fuzz` drives ``@given(programs(app))`` with a budget (seconds and/or cases),
a seed and an example database, and returns a :class:`FuzzReport`. The first
failure is shrunk by Hypothesis to the smallest program that still fails (fewest
steps, connections, messages, cuts and bytes); every program's verdict is
remembered by its JSON, so a program that failed once fails again during
shrinking and in Hypothesis' final replay without being re-run (a flaky server
cannot confuse the shrinker). Shrinking has its own time bound
(``shrink_time``): past it the smallest failure found so far is the answer.

After Hypothesis, a last pass (:func:`harness.livefuzz.program.simpler`) tries one edit
at a time on its answer (a step out, one item of a pipeline out, a send in one piece),
keeping any edit that still fails, within the same bound.

Reproducible: with the same ``seed`` and a server that answers the same bytes the same way,
the run generates the same programs in the same order (:attr:`FuzzStats.digest` is a
hash of them). What feeds generation is the seed, the case budget, the example
database's stored *failures* (tried first) and the verdicts; the settings are built from
Hypothesis' built-in defaults, not from whatever profile the environment loaded (the
``ci`` profile derandomizes, others change the example count); targets' best cases
(Hypothesis' "pareto front") are not stored, so a run that found nothing leaves nothing
that changes the next; and the behaviours fed back are the judged ones, not timing
(a reset and a FIN count the same).

The first cases are the canonical ones (:func:`harness.livefuzz.program.canonical_programs`:
each row of the violation table, each usable bad header value), run as Hypothesis' explicit
examples; sentinels (:mod:`harness.livefuzz.sentinels`) are ticked between cases and end the
run when one fails.

Feedback (``feedback=True``): each case reports ``hypothesis.target()`` the
number of behaviours it showed that no case showed before (error codes owed and
answered, how connections ended, answer shapes), which steers generation toward
programs that do something new.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from harness.livefuzz.program import Step, canonical_programs, programs, simpler, to_json
from harness.livefuzz.runner import CaseResult, Runner
from harness.livefuzz.sentinels import Sentinels

__all__ = ["Finding", "FuzzReport", "FuzzStats", "fuzz"]

log = logging.getLogger(__name__)

#: Seconds the last shrinking pass may take past Hypothesis' own shrinking bound.
_POST_SHRINK_TIME = 10.0

#: Cases per Hypothesis run (see :func:`fuzz`).
ROUND_EXAMPLES = 300

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
    #: Hash of every program run so far, in order: two runs with equal digests ran the same cases.
    hasher: Any = field(default_factory=hashlib.sha256, repr=False)

    @property
    def digest(self) -> str:
        return str(self.hasher.hexdigest()[:16])

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
    #: Found by a sentinel (harness.livefuzz.sentinels), after ``first_found_case`` cases: not shrunk.
    sentinel: bool = False


@dataclass
class FuzzReport:
    stats: FuzzStats
    finding: Finding | None
    seed: int
    #: Why the run ended: "failure", "time" (the --max-time budget) or "examples".
    ended: str
    #: What the sentinels judged, or why not (see harness.livefuzz.sentinels).
    notes: list[str] = field(default_factory=list)


class LiveFailure(Exception):
    """A program failed (raised inside the Hypothesis test so that it shrinks it)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _SentinelFailed(BaseException):
    """A sentinel failed (a BaseException: it ends the Hypothesis run without shrinking)."""

    def __init__(self, program: list[Step], result: CaseResult) -> None:
        super().__init__(result.failure)
        self.program = program
        self.result = result


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
    round_examples: int | None = ROUND_EXAMPLES,
    sentinels: Sentinels | None = None,
    canonical: bool = True,
) -> FuzzReport:
    """Fuzz the server behind ``runner`` until a failure (shrunk) or the budget runs out.

    The search runs in rounds of ``round_examples`` cases (None: one round), each a
    Hypothesis run with its own seed derived from ``seed``: Hypothesis spends up to half of
    a round optimising its targets, and in a single endless round that half never ends
    (after 200 cases it would only mutate the best few cases).

    ``canonical``: the first round starts with one case per canonical example
    (:func:`~harness.livefuzz.program.canonical_programs`), unless the example database holds
    a failure (that is tried first). ``sentinels`` (started here, closed at the end) are
    ticked between cases while nothing has failed; their failure ends the run unshrunk."""
    from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings, target
    from hypothesis import seed as hypothesis_seed
    from hypothesis.database import InMemoryExampleDatabase

    from harness.exampledb import example_database

    stats = FuzzStats()
    deadline = None if max_time is None else stats.started + max_time
    shrink_bound = shrink_time if shrink_time is not None else max(30.0, max_time or 30.0)
    verdicts: dict[str, tuple[list[Step], CaseResult]] = {}
    seen: set[str] = set()
    passed: set[str] = set()
    first: list[tuple[float, int]] = []
    shrink_deadline: list[float] = []
    canonical_keys: set[str] = set()

    def case(program: list[Step]) -> None:
        key = json.dumps(to_json(program), sort_keys=True)
        stats.hasher.update(key.encode() + b"\n")
        known = verdicts.get(key)
        if known is not None:
            _fail(key, known[1])
        if sentinels is not None and not verdicts:
            found = sentinels.tick()
            if found is not None:
                raise _SentinelFailed(*found)
        now = time.monotonic()
        if not verdicts and deadline is not None and now > deadline:
            raise _BudgetSpent
        if shrink_deadline and now > shrink_deadline[0]:
            raise _ShrinkSpent  # shrinking took long enough: the smallest failure so far is the answer
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
        if result.failure is None:
            passed.add(key)
        if key in canonical_keys:
            if result.failure is None:
                store.delete(canonical_key, key.encode())
            else:
                store.save(canonical_key, key.encode())
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
    # Hypothesis' built-in defaults as the parent, not the profile loaded in this process: a
    # test suite's or CI's profile (derandomize, max_examples, backend...) must not change the run.
    # The local directory, shared through Redis when HARNESS_EXAMPLE_DB says so; always a
    # database (in memory without one), so that generation does not depend on whether there
    # is one; only failures are kept in it (see _failures_only).
    store = _failures_only(
        example_database(local=database) if database is not None else InMemoryExampleDatabase()
    )
    # One database key per application and profile (and format of programs): failures found
    # against one are kept apart from the others', and survive edits of this module.
    db_key = f"harness.livefuzz/{DATABASE_FORMAT}/{runner.app.name}/{runner.profile.name}/{max_steps}"
    strategy = programs(runner.app, max_steps=max_steps)
    database_key = hashlib.sha256(db_key.encode()).digest()
    # Canonical cases first, unless a stored failure is there to be tried first. Hypothesis does
    # not store a failing explicit example: a failing canonical case is kept under a key of
    # its own, and goes first next time (fixed, it is deleted when it passes).
    canonical_key = database_key + b".canonical"
    explicit = canonical and max_steps >= 3 and not any(True for _ in store.fetch(database_key))
    first_cases: list[list[Step]] = []
    if explicit:
        first_cases = canonical_programs()
        stored = set(store.fetch(canonical_key))
        first_cases.sort(key=lambda p: json.dumps(to_json(p), sort_keys=True).encode() not in stored)
        canonical_keys.update(json.dumps(to_json(p), sort_keys=True) for p in first_cases)
    left = max_examples
    if left is not None and first_cases:
        # the case budget counts them: --max-examples N runs N cases in all
        first_cases = first_cases[:left]
        left -= len(first_cases)
    ended = "examples"
    failing_key: str | None = None
    sentinel_found: _SentinelFailed | None = None
    if sentinels is not None:
        sentinels.start()
    try:
        for number in itertools.count():
            size = (
                round_examples
                if left is None
                else left
                if round_examples is None
                else min(left, round_examples)
            )
            only_first = size == 0  # the case budget holds the canonical cases only
            if only_first and not (first_cases and number == 0):
                break
            configured = settings(
                parent=settings.get_profile("default"),
                derandomize=False,
                max_examples=max(1, size) if size is not None else 10**9,
                deadline=None,
                database=store,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit] if only_first else phases,
                verbosity=Verbosity.debug if log.isEnabledFor(logging.DEBUG) else Verbosity.quiet,
                print_blob=False,
                report_multiple_bugs=False,
            )
            # The seed goes on first: hypothesis.seed() turns the database off, the settings put it back.
            test_function = given(strategy)(case)  # type: ignore[no-untyped-call]
            if explicit and number == 0:
                for program in reversed(first_cases):  # example() stacks: reversed, run in order
                    test_function = example(program)(test_function)
            test = configured(hypothesis_seed(_round_seed(seed, number))(test_function))
            test._hypothesis_internal_database_key = database_key
            try:
                test()
            except _BudgetSpent:
                ended = "time"
            except _SentinelFailed as spotted:
                sentinel_found = spotted
            except _ShrinkSpent:
                failing_key = min(verdicts, key=lambda k: _size(verdicts[k][0]))
            except LiveFailure as failure:
                failing_key = failure.key
            except BaseExceptionGroup as group:  # several distinct failures: report the first
                found = [e for e in _leaves(group) if isinstance(e, LiveFailure)]
                if not found:
                    raise
                failing_key = found[0].key
            else:
                if size is None:
                    break
                if left is not None:
                    left -= size
                    if left <= 0:
                        break
                continue
            break
    finally:
        if sentinels is not None:
            sentinels.close()
    finding = None
    if sentinel_found is not None:
        # a whole-run property, or a program of one step: nothing to shrink
        finding = Finding(sentinel_found.program, sentinel_found.result, stats.seconds, stats.cases, True)
        ended = "failure"
    elif failing_key is not None:
        program, result = verdicts[failing_key]
        program, result = _shrink_more(program, result, runner, verdicts, passed, stats, shrink_deadline)
        at, number = first[0] if first else (stats.seconds, stats.cases)
        finding = Finding(program, result, at, number)
        ended = "failure"
    stats.shrinking = False
    notes = sentinels.notes(stats.seconds) if sentinels is not None and finding is None else []
    return FuzzReport(stats, finding, seed, ended, notes)


def _shrink_more(
    program: list[Step],
    result: CaseResult,
    runner: Runner,
    verdicts: dict[str, tuple[list[Step], CaseResult]],
    passed: set[str],
    stats: FuzzStats,
    shrink_deadline: list[float],
) -> tuple[list[Step], CaseResult]:
    """One edit at a time on Hypothesis' answer, keeping every edit that still fails (verdicts
    remembered both ways), until none does or the shrink bound is reached."""
    # its own bound, so that it still runs when Hypothesis used all of the shrink bound
    end = max(shrink_deadline[0] if shrink_deadline else 0.0, time.monotonic() + _POST_SHRINK_TIME)
    progress = True
    while progress:
        progress = False
        for candidate in simpler(program):
            if time.monotonic() > end:
                return program, result
            key = json.dumps(to_json(candidate), sort_keys=True)
            if key in passed:
                continue
            known = verdicts.get(key)
            if known is None:
                outcome = runner.run(candidate)
                stats.cases += 1
                if outcome.failure is None:
                    passed.add(key)
                    continue
                stats.failures += 1
                known = verdicts[key] = (candidate, outcome)
            program, result = known
            progress = True
            break
    return program, result


def _failures_only(inner: Any) -> Any:
    """``inner``, an example database, keeping failures only: Hypothesis also stores the best
    case of each target (its "pareto front") and replays those at the start of the next run,
    so a run that found nothing would change the next run of the same seed. (The class is
    made here: hypothesis is an optional extra, imported only when fuzzing.)"""
    from hypothesis.database import ExampleDatabase

    def kept(key: bytes) -> bool:
        return not key.endswith(b".pareto")

    class FailuresOnly(ExampleDatabase):
        def __repr__(self) -> str:
            return f"FailuresOnly({inner!r})"

        def save(self, key: bytes, value: bytes) -> None:
            if kept(key):
                inner.save(key, value)

        def fetch(self, key: bytes) -> Any:
            return inner.fetch(key) if kept(key) else iter(())

        def delete(self, key: bytes, value: bytes) -> None:
            inner.delete(key, value)

        def move(self, src: bytes, dest: bytes, value: bytes) -> None:
            if kept(dest):
                inner.move(src, dest, value)
            else:
                inner.delete(src, value)

    return FailuresOnly()


class _ShrinkSpent(BaseException):
    """The shrink bound is reached: stop Hypothesis (each of its attempts costs generating a
    program even when it is not run); the smallest failure so far is the answer."""


def _round_seed(seed: int, number: int) -> int:
    if number == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}/{number}".encode()).digest()[:8], "big")


def _size(program: list[Step]) -> tuple[int, int]:
    return len(program), len(json.dumps(to_json(program)))


def _fail(key: str, result: CaseResult) -> NoReturn:
    # One place that raises: Hypothesis tells failures apart by where they were raised.
    raise LiveFailure(key, result.failure or "")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
