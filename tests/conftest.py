"""Shared test configuration: Hypothesis profiles and environment switches.

``HYPOTHESIS_PROFILE`` picks how hard the property tests search:

- ``dev`` (default): quick, for the edit-test loop;
- ``ci``: deterministic (derandomized), a moderate number of examples;
- ``thorough``: many examples, for a long run before a release.

``HARNESS_EXAMPLE_DB=redis://HOST:PORT/N`` shares failing examples (dev and thorough) through
Redis, beside the local ``.hypothesis/examples`` (harness/exampledb.py; docs/scale.md#shared-examples).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from harness.exampledb import example_database

_common = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# dev and thorough save and replay failures (shared through Redis with HARNESS_EXAMPLE_DB);
# ci is derandomized, which in Hypothesis means no example database at all.
_database = example_database()
settings.register_profile("dev", max_examples=40, database=_database, **_common)
settings.register_profile("ci", max_examples=150, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=3000, database=_database, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
