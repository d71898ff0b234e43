"""Capped, jittered exponential backoff for reconnect loops (STYLE.md 6)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, each jittered by up to -50 %.

    Half fixed, half random ("equal jitter"): gateways that lost the broker together spread out
    when it returns, yet none retries immediately in a tight loop.

    Example::

        backoff = Backoff(0.1, 5.0)
        while not try_connect():
            await asyncio.sleep(backoff.next())
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """Start at ``initial_s``; ``rand`` returns floats in [0, 1) (injectable for tests)."""
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self._initial = initial_s
        self._max = max_s
        self._rand = rand
        self._next = initial_s

    def next(self) -> float:
        """Return the next delay in seconds and double the one after, up to the cap."""
        delay = self._next
        self._next = min(2 * delay, self._max)
        return delay / 2 + self._rand() * delay / 2
