"""Kitchen time that never steps: the wall time at start plus the monotonic seconds since.

The kitchen decides *when* from datetimes (a line fires at ``accepted_at + delay``, a course
``auto_fire_after_s`` after the one before) and stamps its records with the same datetimes
(screens age a ticket from its ``sent_at``). Fed the wall clock, a step of it (NTP
reaching a server on a box without a battery-backed clock, an operator's correction) would
move every pending wait by the step: +2 h fires every held course and delayed line at once, -2 h
holds them for two hours. :class:`SteadyClock` is what the order service feeds it instead: the
wall time read once, when the service starts, plus the monotonic seconds since. A wall step
changes no pending wait in real seconds, and the kitchen's records stay in order. The price:
until the next start, records are stamped with this steady time, which differs from the wall
clock by the steps since the start (the order service reports each one, with
:class:`gateway.clockwatch.StepDetector`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.clock import Clock

__all__ = ["SteadyClock"]


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
