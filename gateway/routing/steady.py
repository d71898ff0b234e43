"""Kitchen time that never steps, and the detector that notices when the wall clock did.

The kitchen decides *when* from datetimes (a line fires at ``accepted_at + delay``, a course
``auto_fire_after_s`` after the one before, a ticket turns late ``late_after_s`` after it was
sent) and stamps its records with the same datetimes. Fed the wall clock, a step of it (NTP
reaching a server on a box without a battery-backed clock, an operator's correction) would
move every pending wait by the step: +2 h fires every held course and delayed line at once, -2 h
holds them for two hours. :class:`SteadyClock` is what the order service feeds it instead: the
wall time read once, when the service starts, plus the monotonic seconds since. A wall step
changes no pending wait in real seconds, and the kitchen's records stay in order. The price:
until the next start, records are stamped with this steady time, which differs from the wall
clock by the steps since the start (:class:`StepDetector` reports each one).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.clock import Clock

__all__ = ["SteadyClock", "StepDetector"]


class SteadyClock:
    """A :class:`~gateway.clock.Clock` whose ``now()`` moves only with its monotonic time.

    ``now()`` is the wall time at the last :meth:`anchor` plus the monotonic seconds since;
    ``monotonic()`` and ``sleep()`` are the underlying clock's.
    """

    def __init__(self, clock: Clock) -> None:
        """Follow ``clock``, anchored at its readings now."""
        self._clock = clock
        self._wall0 = clock.now()
        self._mono0 = clock.monotonic()

    def anchor(self) -> None:
        """Take the wall time again, as the origin of steady time from now on (at a start)."""
        self._wall0 = self._clock.now()
        self._mono0 = self._clock.monotonic()

    def now(self) -> datetime:
        """The wall time at the anchor plus the monotonic seconds since (timezone-aware UTC)."""
        return self._wall0 + timedelta(seconds=self._clock.monotonic() - self._mono0)

    def monotonic(self) -> float:
        """The underlying clock's monotonic reading."""
        return self._clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        """The underlying clock's sleep."""
        await self._clock.sleep(seconds)

    def real_seconds(self, kitchen_seconds: float) -> float:
        """As the underlying clock."""
        return self._clock.real_seconds(kitchen_seconds)

    def wall_offset(self) -> float:
        """Wall time minus steady time, in seconds: the sum of the wall's steps since the anchor."""
        return (self._clock.now() - self.now()).total_seconds()


class StepDetector:
    """Notices a step of the wall clock: its offset from steady time jumping between checks.

    Compared check to check (the order service checks on every tick), so NTP's slewing, at
    most 0.5 ms per second, never adds up to a step, while a step is seen on the next tick.

    Attributes:
        offset_s: wall minus steady time at the last check, in seconds.
    """

    def __init__(self, steady: SteadyClock, tolerance_s: float) -> None:
        """Report jumps of more than ``tolerance_s`` seconds, either way."""
        self._steady = steady
        self._tolerance_s = tolerance_s
        self.offset_s = steady.wall_offset()

    def reset(self) -> None:
        """Take the current offset as the reference (after the steady clock is anchored)."""
        self.offset_s = self._steady.wall_offset()

    def check(self) -> float | None:
        """The step (seconds, + forward) since the last check, if larger than the tolerance."""
        offset = self._steady.wall_offset()
        step = offset - self.offset_s
        self.offset_s = offset
        return step if abs(step) > self._tolerance_s else None
