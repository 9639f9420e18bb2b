"""Hypothesis settings shared by property tests that drive the app through its test client."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Each example is a request against the real database inside the test's transaction: no deadline
# (a slow example is not a failure), no example database (nothing kept between runs), and the
# function-scoped client and session serve every example on purpose. Give max_examples per test:
# ``@settings(THROUGH_THE_APP, max_examples=80)``.
THROUGH_THE_APP = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
