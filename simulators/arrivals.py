"""When orders arrive: a dinner-service curve, a fixed rate, or a burst (pure, seeded, no I/O).

A restaurant does 40-50 % of a night's covers in about 90 minutes (``DOMAIN.md``). The
:class:`DinnerCurve` models that as a base rate plus a Gaussian peak; :func:`arrival_times`
turns any :data:`Schedule` into the offsets (in real seconds from the start) at which orders are
sent, drawing a non-homogeneous Poisson process by thinning (Lewis and Shedler, 1979) from a
``random.Random`` the caller seeds, so a test run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator

__all__ = ["Burst", "DinnerCurve", "DinnerService", "FixedRate", "Schedule", "arrival_times"]


@dataclass(frozen=True, slots=True)
class DinnerCurve:
    """Order rate over one service night: ``base + (peak - base) * gauss(t - peak_at, spread)``.

    Times are kitchen seconds since the doors opened; rates are orders per minute. The defaults
    put ~47 % of the night's orders in the 90 minutes around the peak. The curve repeats every
    ``length_s`` so a demo left running goes through night after night.

    Attributes:
        peak_per_min: rate at the top of the rush.
        base_per_min: rate outside the rush; ``None`` means 35 % of the peak.
        peak_at_s: when the rush is at its top (default 2 h after opening).
        spread_s: standard deviation of the rush (default 40 min).
        length_s: length of the night (default 5 h).
    """

    peak_per_min: float
    base_per_min: float | None = None
    peak_at_s: float = 2 * 3600.0
    spread_s: float = 40 * 60.0
    length_s: float = 5 * 3600.0

    def __post_init__(self) -> None:
        """Reject curves that cannot be sampled."""
        if self.peak_per_min <= 0 or self.spread_s <= 0 or self.length_s <= 0:
            raise ValueError("peak_per_min, spread_s and length_s must be positive")
        if not 0 <= self.base <= self.peak_per_min:
            raise ValueError("base_per_min must be between 0 and peak_per_min")

    @property
    def base(self) -> float:
        """The base rate in orders per minute."""
        return 0.35 * self.peak_per_min if self.base_per_min is None else self.base_per_min

    def per_min(self, t_s: float) -> float:
        """Orders per minute at kitchen time ``t_s`` (seconds since opening, wrapping nightly)."""
        t = t_s % self.length_s
        z = (t - self.peak_at_s) / self.spread_s
        return self.base + (self.peak_per_min - self.base) * math.exp(-0.5 * z * z)

    def expected(self, start_s: float, end_s: float, step_s: float = 10.0) -> float:
        """Expected number of orders between two kitchen times (midpoint rule)."""
        n = max(1, math.ceil((end_s - start_s) / step_s))
        h = (end_s - start_s) / n
        return sum(self.per_min(start_s + (k + 0.5) * h) for k in range(n)) * h / 60.0

    def peak_share(self, window_s: float = 90 * 60.0) -> float:
        """Share of the night's orders that arrive in the ``window_s`` centred on the peak."""
        half = window_s / 2
        rush = self.expected(self.peak_at_s - half, self.peak_at_s + half)
        return rush / self.expected(0.0, self.length_s)


@dataclass(frozen=True, slots=True)
class DinnerService:
    """Orders follow a :class:`DinnerCurve`, as a Poisson process.

    Attributes:
        curve: the night's shape; its rates are orders per *real* minute, its times kitchen time.
        speed: kitchen seconds per real second (the demo's ``--speed``).
        start_at_s: kitchen time into the night at which the simulation starts.
        count: stop after this many orders (``None``: never).
    """

    curve: DinnerCurve
    speed: float = 1.0
    start_at_s: float = 0.0
    count: int | None = None


@dataclass(frozen=True, slots=True)
class FixedRate:
    """Orders evenly spaced at ``per_s`` a second (no randomness), ``count`` of them or forever."""

    per_s: float
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` orders as fast as the client allows (benchmarks and tests)."""

    count: int


Schedule = DinnerService | FixedRate | Burst


def arrival_times(schedule: Schedule, rng: random.Random) -> Iterator[float]:
    """Yield send times in real seconds from the start, non-decreasing.

    Args:
        schedule: how orders arrive.
        rng: the only source of randomness (seed it for reproducible runs).

    Yields:
        Offsets from the start in real seconds; a :class:`Burst` yields ``0.0`` each time.
    """
    if isinstance(schedule, Burst):
        yield from (0.0 for _ in range(schedule.count))
    elif isinstance(schedule, FixedRate):
        if schedule.per_s <= 0:
            raise ValueError("FixedRate.per_s must be positive")
        n = 0
        while schedule.count is None or n < schedule.count:
            yield n / schedule.per_s
            n += 1
    else:
        yield from _thinned(schedule, rng)


def _thinned(schedule: DinnerService, rng: random.Random) -> Iterator[float]:
    if schedule.speed <= 0:
        raise ValueError("DinnerService.speed must be positive")
    curve = schedule.curve
    max_per_s = curve.peak_per_min / 60.0
    t, n = 0.0, 0
    while schedule.count is None or n < schedule.count:
        # Candidates at the peak rate; each kept with probability rate(t) / peak.
        t += rng.expovariate(max_per_s)
        kitchen_t = schedule.start_at_s + t * schedule.speed
        if rng.random() * curve.peak_per_min < curve.per_min(kitchen_t):
            n += 1
            yield t
