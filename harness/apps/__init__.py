"""The applications the reference server can run, by name.

Each application is an :class:`App` (one request in, one response out) in a
module of its own; :data:`APPS` maps the names ``--app`` accepts to them.
"""

from __future__ import annotations

from harness.apps.base import App
from harness.apps.echo import EchoApp, echo_app
from harness.apps.search import SEARCH_ANSWERS, SearchApp, search_answer, search_app

__all__ = [
    "APPS",
    "SEARCH_ANSWERS",
    "App",
    "EchoApp",
    "SearchApp",
    "echo_app",
    "get_app",
    "search_answer",
    "search_app",
]

#: Every application, by the name ``--app`` takes.
APPS: dict[str, App] = {app.name: app for app in (search_app, echo_app)}


def get_app(name: str) -> App:
    """The application called ``name``; ``ValueError`` names the ones there are."""
    try:
        return APPS[name]
    except KeyError:
        raise ValueError(f"no application {name!r} (choose from {', '.join(APPS)})") from None
