"""Time, injected: pure cores take a clock instead of reading the system time.

``SystemClock`` is the real thing. ``ScaledClock`` runs kitchen time faster than real time so the
demo shows a dinner service in minutes. ``ManualClock`` is for tests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What a service needs to know about time."""

    def now(self) -> datetime:
        """Kitchen time, timezone-aware UTC."""
        ...

    def real_seconds(self, kitchen_seconds: float) -> float:
        """How many real seconds ``kitchen_seconds`` of kitchen time take (for sleeping)."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)

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
        elapsed = (time.monotonic() - self._t0) * self.speed
        return self._origin + timedelta(seconds=elapsed)

    def real_seconds(self, kitchen_seconds: float) -> float:
        """Scaled down by ``speed``."""
        return kitchen_seconds / self.speed


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` or at a fixed date."""
        self._now = start or datetime(2026, 1, 1, 18, 0, tzinfo=UTC)

    def now(self) -> datetime:
        """The current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)

    def real_seconds(self, kitchen_seconds: float) -> float:
        """Identity."""
        return kitchen_seconds
