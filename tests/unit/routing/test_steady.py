"""Steady kitchen time, on a ManualClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.clock import ManualClock
from gateway.routing.steady import SteadyClock

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
