"""Shared test configuration: Hypothesis profiles and environment switches.

``HYPOTHESIS_PROFILE`` picks how hard the property tests search:

- ``dev`` (default): quick, for the edit-test loop;
- ``ci``: deterministic (derandomized), a moderate number of examples;
- ``thorough``: many examples, for a long run before a release.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("ci", max_examples=150, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=3000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
