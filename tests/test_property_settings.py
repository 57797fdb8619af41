"""The property tests run under settings that no machine's speed can fail."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def test_the_suite_profile_has_no_deadline_and_tolerates_slow_generation() -> None:
    """A loaded 2-core box once ran an example in 546 ms against hypothesis' 200 ms default deadline."""
    current = settings()
    assert current.deadline is None
    assert HealthCheck.too_slow in current.suppress_health_check


def test_under_ci_the_profile_is_derandomised_and_keeps_no_example_database() -> None:
    """CI reruns the same examples every time, so a red run is reproducible from its log alone."""
    profile = settings.get_profile("capgap")
    if os.environ.get("CI"):
        assert profile.derandomize is True
        assert profile.database is None
    else:
        assert profile.derandomize is settings.get_profile("default").derandomize
