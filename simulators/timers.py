"""Things due at a monotonic time, run by one task: a heap and an event, never polling."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Timers"]

T = TypeVar("T")

#: uvloop busy-waits on sleeps under 1 ms (MEASURED.md): never wait less than this.
_MIN_WAIT_S = 0.002


class Timers(Generic[T]):
    """A schedule of items; ``run(fire)`` calls ``fire(item)`` for each once it is due.

    Items due at the same time fire in the order they were added.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        """How many items are waiting."""
        return len(self._heap)

    def at(self, due: float, item: T) -> None:
        """Fire ``item`` at ``time.monotonic()`` value ``due``."""
        heapq.heappush(self._heap, (due, next(self._seq), item))
        self._wake.set()

    def after(self, delay_s: float, item: T) -> None:
        """Fire ``item`` ``delay_s`` seconds from now."""
        self.at(time.monotonic() + delay_s, item)

    async def run(self, fire: Callable[[T], Awaitable[None]]) -> None:
        """Fire items as they fall due, until cancelled."""
        while True:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                await fire(heapq.heappop(self._heap)[2])
            self._wake.clear()
            delay = None
            if self._heap:
                delay = max(self._heap[0][0] - time.monotonic(), _MIN_WAIT_S)
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
