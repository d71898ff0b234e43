"""Request deadlines of one connection on one timer: ``asyncio.timeout``'s rules, at less cost.

A Modbus connection carries one request at a time, each with its own timeout. Under uvloop,
``asyncio.timeout`` costs a timer per request (a libuv timer made, started, stopped and closed)
plus the context manager's coroutines: about 4 us, the largest single cost of a request in our
own code once decoding was compiled (bench/polling, flat out). :class:`Deadlines` keeps one
timer per connection instead and moves it only when it must:

* a request whose deadline is at or after the armed timer leaves it alone; when the timer fires
  early for it (it was armed for an earlier request), it is re-armed for the request's deadline;
* when a request ends, the timer is disarmed on the next loop iteration unless another request
  has started by then: back-to-back requests share one timer, and an idle connection keeps none
  (so a connection polled once a second does not wake the loop at a stale deadline).

What happens on expiry is ``asyncio.timeout``'s (Python 3.11): the request's task is cancelled;
when the request then ends with ``CancelledError`` and no other cancellation was requested
meanwhile (``Task.uncancel()`` back to the count at the start), it timed out. A cancellation
the library drops (Python 3.11's ``wait_for`` returning an answer that raced it) is withdrawn
the same way, so only a cancellation from someone else is left for the caller to restore.
"""

from __future__ import annotations

import asyncio

__all__ = ["Deadlines"]

# uvloop's timers have a resolution of 1 ms and may fire up to that much early: a timer that
# fires within this of the deadline counts as on time rather than being re-armed in a spin.
_SLACK_S = 0.001


class Deadlines:
    """The deadline of the one request in flight on a connection.

    Calls come in pairs from the task making the request: :meth:`start` just before it awaits
    the answer, :meth:`stop` as soon as that await ends, however it ends.
    """

    __slots__ = (
        "_armed_at",
        "_cancelling",
        "_deadline",
        "_disarming",
        "_expired",
        "_handle",
        "_loop",
        "_task",
    )

    def __init__(self) -> None:
        """No request in flight, no timer."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._task: asyncio.Task[object] | None = None
        self._deadline = 0.0
        self._cancelling = 0
        self._expired = False
        self._disarming = False

    def start(self, task: asyncio.Task[object], timeout_s: float) -> None:
        """A request of ``task`` begins; cancel ``task`` if it is still going in ``timeout_s``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a timer of another (closed) loop means nothing here
            self._loop, self._handle = loop, None
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._deadline = deadline = loop.time() + timeout_s
        handle = self._handle
        if handle is None or self._armed_at > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(deadline, self._fire)
            self._armed_at = deadline

    def stop(self, cancelled: bool) -> bool:
        """The request ended (``cancelled``: with ``CancelledError``).

        Returns:
            True when the deadline is why it was cancelled, i.e. it timed out; the caller then
            raises its timeout instead of the ``CancelledError``.
        """
        task, self._task = self._task, None
        if self._handle is not None and not self._disarming and self._loop is not None:
            self._disarming = True
            self._loop.call_soon(self._disarm)
        if not self._expired or task is None:
            return False
        self._expired = False
        return task.uncancel() <= self._cancelling and cancelled

    def _fire(self) -> None:
        self._handle = None
        task, loop = self._task, self._loop
        if task is None or loop is None:
            return  # nothing in flight (the disarm had not run yet)
        if self._deadline - loop.time() > _SLACK_S:
            # Armed for an earlier request with an earlier deadline: wait for this one's.
            self._handle = loop.call_at(self._deadline, self._fire)
            self._armed_at = self._deadline
            return
        self._expired = True
        task.cancel()

    def _disarm(self) -> None:
        self._disarming = False
        if self._task is None and self._handle is not None:
            self._handle.cancel()
            self._handle = None
