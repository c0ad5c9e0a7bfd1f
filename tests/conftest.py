"""Shared test settings: a hypothesis profile sized for 2-core CI machines, and Triton's
interpreter, set before anything imports triton: pytest loads the conftest files of the
folders named on the command line before any test module, and one that imports fastngd
(``tests/reproduce/conftest.py``) imports triton before the Triton test modules could set
it."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile("dev", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
