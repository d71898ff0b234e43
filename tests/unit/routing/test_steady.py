"""Steady kitchen time and the wall-step detector, on a ManualClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock
from gateway.routing.steady import SteadyClock, StepDetector

T0 = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)


def test_steady_time_follows_monotonic_seconds_not_wall_steps() -> None:
    clock = ManualClock(T0)
    steady = SteadyClock(clock)
    clock.advance(10)
    clock.step_wall(7200)
    clock.advance(5)
    assert steady.now() == T0 + timedelta(seconds=15)
    assert clock.now() == T0 + timedelta(seconds=7215)
    assert steady.wall_offset() == 7200
    steady.anchor()  # a new start takes the wall time again
    assert steady.now() == clock.now()
    assert steady.monotonic() == clock.monotonic()


def test_a_step_is_reported_once_and_slewing_never() -> None:
    clock = ManualClock(T0)
    steps = StepDetector(SteadyClock(clock), tolerance_s=2.0)
    for _ in range(10_000):  # 2000 s of ticks, the wall slewed 0.5 ms/s (NTP's maximum)
        clock.advance(0.2)
        clock.step_wall(0.2 * 0.0005)
        assert steps.check() is None
    clock.step_wall(-7200)
    clock.advance(0.2)
    assert steps.check() == pytest.approx(-7200)
    assert steps.check() is None  # the same offset: no new step
    assert steps.offset_s == pytest.approx(1.0 - 7200)  # the slewed second, then the step
