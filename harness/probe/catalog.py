"""Which checks a probe runs: by protocol and application, then by name.

:func:`checks_for` lists the checks of a protocol (``lpjson``, the default; ``echo``,
the guide's byte-echo servers) for an application; :func:`select_checks` keeps
those whose names match ``--check`` globs and drop those matching ``--skip``.
A profile does not change the list, only verdicts: ``check.relaxations(profile)``
says what a profile accepts in a check beyond the spec.

A protocol's checks live in a module of their own that exposes ``CHECKS`` (a list
of :class:`~harness.probe.checks.Check`) or, when they depend on the application,
a function ``checks(app)`` returning one; :data:`PROTOCOLS` maps a protocol's name
to that module, imported only when the protocol is asked for.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Sequence

from harness.apps import App, get_app
from harness.probe.checks import Check, lpjson_checks

__all__ = ["MAX_IDLE_TIMEOUT", "PROTOCOLS", "checks_for", "select_checks"]

#: The longest ``idle_timeout`` (seconds) a probe accepts to wait out.
MAX_IDLE_TIMEOUT = 3600.0

#: Every protocol the probe knows, by the name ``--protocol`` takes: the module holding its checks.
PROTOCOLS: dict[str, str] = {
    "lpjson": "harness.probe.checks",
    "echo": "harness.probe.echo",
}


def checks_for(
    protocol: str = "lpjson", app: App | str = "search", *, idle_timeout: float | None = None
) -> list[Check]:
    """The checks of ``protocol`` for the application ``app`` (a name of :data:`harness.apps.APPS`
    or an :class:`~harness.apps.App`), in the order the probe runs them; ``idle_timeout``
    (lpjson only) adds the check of L2 for a server whose idle timeout is at most that long.

    ``ValueError`` for an unknown protocol or application, or a protocol whose module is
    not installed.
    """
    if isinstance(app, str):
        app = get_app(app)
    if idle_timeout is not None and not 0 < idle_timeout <= MAX_IDLE_TIMEOUT:
        raise ValueError(
            f"the idle timeout must be > 0 and at most {MAX_IDLE_TIMEOUT:g} seconds, not {idle_timeout:g}"
        )
    if protocol == "lpjson":
        return lpjson_checks(app, idle_timeout=idle_timeout)
    if idle_timeout is not None:
        raise ValueError(f"an idle timeout is checked for the lpjson protocol only, not {protocol!r}")
    try:
        module_name = PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"no protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ValueError(f"the checks of protocol {protocol!r} are not available ({module_name})") from None
    factory = getattr(module, "checks", None)
    found = factory(app) if callable(factory) else getattr(module, "CHECKS", None)
    if not isinstance(found, list) or not all(isinstance(c, Check) for c in found):
        raise ValueError(f"{module_name} defines neither CHECKS nor checks(app) returning a list of Check")
    return list(found)


def select_checks(
    checks: Sequence[Check], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Check]:
    """The ``checks`` whose names match a glob of ``include`` (all when empty) and none of
    ``exclude`` (:func:`fnmatch.fnmatchcase` globs: ``split-*``, ``violation-*-key``).

    ``ValueError`` names the ``include`` globs that match no check (a typo would otherwise
    run nothing and pass); an ``exclude`` glob that matches nothing is harmless.
    """
    names = [check.name for check in checks]
    unmatched = [glob for glob in include if not any(fnmatch.fnmatchcase(name, glob) for name in names)]
    if unmatched:
        raise ValueError(f"unknown check(s): {', '.join(unmatched)} (see harness probe --list)")
    chosen = [
        check
        for check in checks
        if (not include or any(fnmatch.fnmatchcase(check.name, glob) for glob in include))
        and not any(fnmatch.fnmatchcase(check.name, glob) for glob in exclude)
    ]
    return chosen
