"""Small, bounded statistics for simulator results and the demo's live view (pure, no I/O)."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["LatencyWindow", "RateMeter", "percentile"]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by the nearest-rank method, or None for no values.

    Nearest rank always returns an observed value, so "p99 = 12 ms" means some order really took
    12 ms; interpolating between samples would report latencies nobody saw.
    """
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class LatencyWindow:
    """The last ``maxlen`` latency samples, in seconds, with percentiles over them.

    Bounded so a demo left running all night does not grow; ``count`` still counts every sample.
    """

    def __init__(self, maxlen: int = 2000) -> None:
        """Keep at most ``maxlen`` samples."""
        self._samples: deque[float] = deque(maxlen=maxlen)
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one sample."""
        self._samples.append(seconds)
        self.count += 1

    @property
    def samples(self) -> Sequence[float]:
        """The samples kept, oldest first."""
        return tuple(self._samples)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile of the kept samples (None when there are none)."""
        return percentile(self._samples, q)


class RateMeter:
    """Events per minute over a sliding window of ``window_s`` seconds of monotonic time."""

    def __init__(
        self, window_s: float = 60.0, max_events: int = 100_000, started_at: float | None = None
    ) -> None:
        """Count events in the last ``window_s``; keep at most ``max_events`` timestamps.

        ``started_at`` is when counting began (default: the first event), so a quiet start
        is not mistaken for a burst.
        """
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)
        self._first = started_at

    def mark(self, now: float, count: int = 1) -> None:
        """Record ``count`` events at monotonic time ``now``."""
        if count <= 0:
            return
        if self._first is None:
            self._first = now
        self._times.extend([now] * count)

    def per_minute(self, now: float) -> float:
        """Events per minute over the window ending at ``now``.

        Before a whole window has passed the rate is taken over the time since the first event,
        so the figure is right from the start instead of climbing for a minute.
        """
        cutoff = now - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
        if self._first is None or not self._times:
            return 0.0
        span = min(self.window_s, max(now - self._first, 1.0))
        return len(self._times) * 60.0 / span
