"""The adaptive request timeout of a slow device (gateway.devices.pace)."""

from __future__ import annotations

import pytest

from gateway.devices.pace import Pace


def test_a_device_never_heard_keeps_the_profile_timeout() -> None:
    pace = Pace(0.5, 2.0)
    for _ in range(5):
        pace.timed_out()
        assert pace.timeout_s == 0.5


def test_the_timeout_is_twice_the_slowest_recent_answer_within_the_bounds() -> None:
    pace = Pace(0.5, 2.0)
    pace.answered(0.01)
    assert pace.timeout_s == 0.5  # never below the profile's
    pace.answered(0.4)
    assert pace.timeout_s == pytest.approx(0.8)
    pace.answered(1.5)
    assert pace.timeout_s == 2.0  # never above the cap
    assert pace.slowest_s == 1.5


def test_a_slow_device_that_timed_out_once_gets_longer_a_dead_one_goes_back() -> None:
    pace = Pace(0.5, 2.0)
    pace.answered(0.45)
    assert pace.timeout_s == pytest.approx(0.9)
    pace.timed_out()  # answered before: slow, not dead
    assert pace.timeout_s == pytest.approx(1.8)
    pace.answered(0.8)
    assert pace.timeout_s == pytest.approx(1.6)
    pace.timed_out()
    pace.timed_out()  # twice in a row: dead, back to the profile's timeout
    assert pace.timeout_s == 0.5
    assert pace.slowest_s is None


def test_old_answers_leave_the_window() -> None:
    pace = Pace(0.1, 5.0, window=3)
    for s in (1.0, 0.1, 0.1, 0.1):
        pace.answered(s)
    assert pace.timeout_s == pytest.approx(0.2)
