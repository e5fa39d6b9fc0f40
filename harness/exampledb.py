"""One Hypothesis example database for a team: the local directory, and Redis when asked.

``HARNESS_EXAMPLE_DB=redis://HOST:PORT/N`` (any URL ``redis.Redis.from_url`` reads:
``redis://``, ``rediss://``, ``unix://``) makes every user of :func:`example_database`
(the property tests' Hypothesis profiles in tests/conftest.py, and any Hypothesis test
that passes ``database=example_database()``) share failing examples through Redis
(Hypothesis's ``RedisExampleDatabase``), multiplexed with the local directory database
(``.hypothesis/examples``, Hypothesis's default), so that:

- a failure found on one machine is saved to both; another machine, or a clean
  checkout, replays it first from Redis;
- offline, or with Redis down, the local directory still replays what this machine
  saw: Redis errors are logged once (WARNING) and the Redis side then acts as empty
  until it answers again.

Without the variable (or with it empty) the database is the local directory alone,
which is what Hypothesis does by default. Any other value is a one-line
:class:`ValueError`; a ``redis://`` URL without the ``redis`` package is
:class:`harness._extras.MissingExtra` (the ``redis`` extra).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness._extras import importing

with importing("the example database (harness.exampledb)", "hypothesis"):
    from hypothesis.database import (
        DirectoryBasedExampleDatabase,
        ExampleDatabase,
        MultiplexedDatabase,
    )

__all__ = ["ENV_VAR", "KEY_PREFIX", "TolerantDatabase", "example_database"]

log = logging.getLogger(__name__)

#: The environment variable that names the shared database.
ENV_VAR = "HARNESS_EXAMPLE_DB"
#: Keys in Redis start with this, so that one Redis serves harness beside other projects.
KEY_PREFIX = b"harness-example:"
#: URL schemes that mean Redis.
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Seconds to wait for Redis to accept or answer before counting it as down.
_REDIS_TIMEOUT = 2.0


class TolerantDatabase(ExampleDatabase):
    """``inner``, where the errors in ``errors`` mean "nothing there" instead of failing the test.

    The first error is logged as a warning (with the database's repr), later ones at
    DEBUG: a test run with Redis down says so once and goes on with the local database.
    """

    def __init__(self, inner: ExampleDatabase, errors: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.inner = inner
        self.errors = errors
        self._warned = False

    def __repr__(self) -> str:
        return f"TolerantDatabase({self.inner!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TolerantDatabase) and self.inner == other.inner

    def __hash__(self) -> int:
        return hash(("TolerantDatabase", self.inner))

    def _failed(self, what: str, exc: BaseException) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "example database %r: %s failed (%s); going on without it", self.inner, what, exc)

    def save(self, key: bytes, value: bytes) -> None:
        try:
            self.inner.save(key, value)
        except self.errors as exc:
            self._failed("save", exc)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        try:
            # read it all here: the inner fetch may be a generator that fails half way
            return list(self.inner.fetch(key))
        except self.errors as exc:
            self._failed("fetch", exc)
            return []

    def delete(self, key: bytes, value: bytes) -> None:
        try:
            self.inner.delete(key, value)
        except self.errors as exc:
            self._failed("delete", exc)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        try:
            self.inner.move(src, dest, value)
        except self.errors as exc:
            self._failed("move", exc)


def redis_database(url: str) -> ExampleDatabase:
    """Hypothesis's ``RedisExampleDatabase`` on ``url``, tolerant of Redis being down."""
    with importing(f"{ENV_VAR}={url}", "redis"):
        import redis
    from hypothesis.extra.redis import RedisExampleDatabase

    client: Any = redis.Redis.from_url(
        url, socket_connect_timeout=_REDIS_TIMEOUT, socket_timeout=_REDIS_TIMEOUT
    )
    inner = RedisExampleDatabase(client, expire_after=timedelta(days=30), key_prefix=KEY_PREFIX)
    return TolerantDatabase(inner, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError))


def example_database(
    env: Mapping[str, str] = os.environ, *, local: str | os.PathLike[str] | None = None
) -> ExampleDatabase:
    """The example database ``env`` asks for (see the module docstring).

    ``local`` is the directory database's path (default: Hypothesis's own,
    ``$HYPOTHESIS_STORAGE_DIRECTORY/examples``, else ``.hypothesis/examples`` under the
    current directory).
    """
    if local is None:
        local = Path(env.get("HYPOTHESIS_STORAGE_DIRECTORY") or ".hypothesis") / "examples"
    directory = DirectoryBasedExampleDatabase(os.fspath(local))
    url = env.get(ENV_VAR, "").strip()
    if not url:
        return directory
    if not url.startswith(_REDIS_SCHEMES):
        raise ValueError(f"{ENV_VAR}={url!r}: expected a redis:// URL, e.g. redis://127.0.0.1:6379/0")
    return MultiplexedDatabase(directory, redis_database(url))
