"""Hypothesis profiles for the fuzz tests: ``ci`` (fixed seed, short; ``make test``) and ``long`` (``make fuzz``).

``VNODE_FUZZ_PROFILE`` picks one; ``ci`` is the default. Deadlines are off: the machine is shared
and a slow example is not a failure (a hang is: each call has its own timeout in the tests).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "ci", derandomize=True, max_examples=100, deadline=None, database=None, suppress_health_check=_SLOW_OK
)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("VNODE_FUZZ_PROFILE", "ci"))
