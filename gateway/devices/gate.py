"""A lock with priorities: who waits with the better priority goes next.

A Modbus TCP connection carries one request at a time (MEASURED.md). Its requests pass a
:class:`PriorityGate`, so a write waiting for the connection goes before every poll waiting for
it (Home Assistant #117684: writes waited 20-50 s behind polls), and within a priority the first
to come goes first. Polls cannot starve writes; writes are rate-limited by the write guard, so
they cannot starve polls either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from enum import IntEnum

__all__ = ["Priority", "PriorityGate"]


class Priority(IntEnum):
    """Who goes first when several requests wait for the connection (lower first)."""

    WRITE = 0
    POLL = 1


class PriorityGate:
    """One holder at a time; on release the gate is handed to the best waiter."""

    def __init__(self) -> None:
        """An open gate."""
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = tuple(deque() for _ in Priority)

    @property
    def waiting(self) -> int:
        """How many wait for the gate."""
        return sum(len(q) for q in self._waiting)

    def try_acquire(self) -> bool:
        """Take the gate if it is open, without waiting; True when taken (release it then).

        The same as an :meth:`acquire` that finds the gate open, minus a coroutine: the cheap
        path of a request on a connection nobody else is using.
        """
        if self._busy:
            return False
        self._busy = True
        return True

    async def acquire(self, priority: Priority) -> None:
        """Wait until the gate is ours; every ``acquire`` needs one :meth:`release`."""
        if not self._busy:
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting[priority]
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the gate was handed to us as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
            raise

    def release(self) -> None:
        """Hand the gate to the best waiter, or open it."""
        for queue in self._waiting:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # ownership passes straight on: _busy stays True
                    return
        self._busy = False
