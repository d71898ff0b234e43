"""Time, injected: services take a clock instead of reading the system time (STYLE.md 12, 20).

A clock has two readings that are kept apart on purpose:

* ``monotonic()``: seconds that never step. Everything that decides *when* (a fire time, a
  timeout, a backoff, a resend, "silent for 40 s") counts these, and waits with ``sleep()``.
* ``now()``: the wall clock, timezone-aware UTC. It only stamps records and is shown to people.
  On a box without a battery-backed clock it can be stepped by hours when NTP first answers;
  nothing may wait on it.

``SystemClock`` is the real thing. ``ScaledClock`` runs kitchen time ``speed`` times faster than
real time so the demo shows a dinner service in minutes (both readings and the sleeps scale).
``ManualClock`` is virtual time for tests: it moves only when told to, sleeps end when it is
advanced past them (no real waiting), and its wall reading can be stepped independently of its
monotonic one, as NTP or an operator would.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock"]

_SETTLE_ROUNDS = 20  # loop iterations given to woken tasks before virtual time moves on
# Sleeps of 0.2 s added up in floats drift by ulps; a sleep due within this of a target is due.
_EPS_S = 1e-9


class Clock(Protocol):
    """What a service needs to know about time."""

    def now(self) -> datetime:
        """The wall clock (kitchen time), timezone-aware UTC: for stamps and display only."""
        ...

    def monotonic(self) -> float:
        """Seconds that never step (their origin is arbitrary): for every wait and deadline."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's monotonic time (return at once when <= 0)."""
        ...

    def real_seconds(self, kitchen_seconds: float) -> float:
        """How many real seconds ``kitchen_seconds`` of this clock's time take."""
        ...


class SystemClock:
    """The system's clocks: ``time.monotonic`` and ``datetime.now(UTC)``."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``, the clock asyncio's own loop uses."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(seconds, 0.0))

    def real_seconds(self, kitchen_seconds: float) -> float:
        """Kitchen time is real time."""
        return kitchen_seconds


class ScaledClock:
    """Kitchen time that runs ``speed`` times faster than real time, from the moment it is made."""

    def __init__(self, speed: float) -> None:
        """Start now; ``speed`` must be positive."""
        if speed <= 0:
            msg = "speed must be positive"
            raise ValueError(msg)
        self.speed = speed
        self._origin = datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        """Scaled time since creation, added to the creation time."""
        return self._origin + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        """Scaled seconds since creation."""
        return (time.monotonic() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of kitchen time: ``seconds / speed`` real seconds."""
        await asyncio.sleep(max(seconds, 0.0) / self.speed)

    def real_seconds(self, kitchen_seconds: float) -> float:
        """Scaled down by ``speed``."""
        return kitchen_seconds / self.speed


class ManualClock:
    """Virtual time for tests: it moves only when told to, and sleeping costs no real time.

    ``advance(s)`` moves both readings and ends every sleep due by then, at once (for code
    that is driven by hand). ``await run(s)`` moves time from one due sleep to the next and lets
    the woken tasks run in between, so a loop that sleeps again after each wake-up is woken at
    every one of its deadlines, in order. ``step_wall(s)`` moves only the wall reading, as an
    NTP step or an operator's correction does.

    Attributes:
        sleeps: how many sleeps were started (a test can check that a loop does not spin).
    """

    def __init__(self, start: datetime | None = None, *, monotonic: float = 1000.0) -> None:
        """Start at wall time ``start`` (or a fixed date) and monotonic time ``monotonic``."""
        self._wall0 = start or datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
        self._mono0 = self._mono = monotonic
        self._wall_offset = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.sleeps = 0

    def now(self) -> datetime:
        """The virtual wall time."""
        return self._wall0 + timedelta(seconds=self._mono - self._mono0 + self._wall_offset)

    def monotonic(self) -> float:
        """The virtual monotonic time."""
        return self._mono

    def real_seconds(self, kitchen_seconds: float) -> float:
        """Identity."""
        return kitchen_seconds

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``; no real time passes."""
        self.sleeps += 1
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._order), fut))
        await fut  # cancelled: the future is cancelled too, and skipped when due

    @property
    def next_wake(self) -> float | None:
        """The monotonic time of the earliest pending sleep, if any."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` and end every sleep due by then."""
        if seconds < 0:
            raise ValueError("monotonic time never goes back")
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target + _EPS_S:
            due, _, fut = heapq.heappop(self._sleepers)
            self._mono = max(self._mono, min(due, target))
            if not fut.done():
                fut.set_result(None)
        self._mono = target

    async def run(self, seconds: float) -> None:
        """Advance by ``seconds``, stopping at each due sleep to let what it wakes run."""
        if seconds < 0:
            raise ValueError("monotonic time never goes back")
        target = self._mono + seconds
        await self._settle()
        while (wake := self.next_wake) is not None and wake <= target + _EPS_S:
            self.advance(max(wake - self._mono, 0.0))
            await self._settle()
        self._mono = target
        await self._settle()

    def step_wall(self, seconds: float) -> None:
        """Step the wall reading by ``seconds`` (either way); monotonic time does not move."""
        self._wall_offset += seconds

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    @staticmethod
    async def _settle() -> None:
        # Woken tasks run in the next loop iterations; a few rounds let chains of wake-ups
        # (a task that wakes another through an Event) finish before time moves on.
        for _ in range(_SETTLE_ROUNDS):
            await asyncio.sleep(0)
