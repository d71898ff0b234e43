"""How a service starts, says it is ready, and stops (STYLE.md 1, 2): one way for all of them.

A :class:`Service` is an async context manager. Entering calls :meth:`Service.start`, which opens
what the service needs and starts its background loops with :meth:`Service.spawn`; entering
returns only once the service can be used (or raises, with everything it started stopped
again). Leaving cancels the loops, waits for them, then calls :meth:`Service.stop`.

The loops are named tasks (``{service}:{loop}``) in the service's own TaskGroup, which is
entered from the task that entered the service: for the gateway that is :class:`Supervisor`'s,
so every long-running task of the process lives under the one root the supervisor owns. A loop
that fails cancels that root (asyncio's TaskGroup cancels its parent); the service then leaves
with :class:`~gateway.errors.ServiceFailed` naming itself and carrying the loop's error: the
same exception type whichever service failed, never an ``ExceptionGroup`` for the caller to
pick apart.

:class:`Supervisor` enters services in order and leaves them in reverse. Whatever goes wrong,
in a start or in a loop, it leaves every service the same way and raises one
``ServiceFailed``; the command line turns that into one line and exit code 1.

Example::

    class Ticker(Service):
        name = "ticker"

        async def start(self) -> None:
            self.spawn(self._tick(), "tick")

        async def _tick(self) -> None:
            while True:
                await asyncio.sleep(1)

    async with Supervisor() as sup:
        await sup.enter(Ticker())
        await stop.wait()
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager, AbstractContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Self, TypeVar

from gateway.errors import ServiceFailed

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType

__all__ = ["Service", "Supervisor", "first_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def first_error(exc: BaseException) -> BaseException:
    """The first leaf of a (nested) exception group; ``exc`` itself when it is not a group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class Service:
    """Base of every long-running part: ``start`` to get ready, ``stop`` to let go.

    Subclasses set ``name`` and override :meth:`start` and :meth:`stop` (both default to doing
    nothing). Background loops are started with :meth:`spawn` from ``start`` (or later, while
    entered); they are cancelled before ``stop`` runs, so ``stop`` may close what they used.
    """

    name: str = "service"

    _tg: asyncio.TaskGroup | None = None
    _tasks: list[asyncio.Task[Any]]

    async def start(self) -> None:
        """Open what the service needs and spawn its loops; return when it can be used."""

    async def stop(self) -> None:
        """Release what ``start`` opened (the loops have ended already)."""

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coro`` as the named task ``{self.name}:{name}`` for as long as the service runs.

        Raises:
            RuntimeError: the service is not entered.
        """
        if self._tg is None:
            coro.close()
            raise RuntimeError(f"{self.name}: spawn() before start or after stop")
        task = self._tg.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.append(task)
        return task

    @property
    def running(self) -> bool:
        """Whether the service is entered (started and not yet stopped)."""
        return self._tg is not None

    async def __aenter__(self) -> Self:
        """Start; on failure everything started is stopped again and the error raised as is."""
        self._tasks = []
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        try:
            await self.start()
        except BaseException as exc:
            await self._leave(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Cancel the loops, wait for them, then stop.

        Raises:
            ServiceFailed: a loop had failed (it names this service and carries the error).
        """
        await self._leave(et, e, tb)

    async def _leave(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        tg, self._tg = self._tg, None
        failure: BaseException | None = None
        try:
            for task in self._tasks:
                task.cancel()
            if tg is not None:
                # Only a cancellation is passed on: anything else the body raised reaches the
                # caller as itself after stop(), not wrapped in the TaskGroup's group.
                cancel = et is not None and issubclass(et, asyncio.CancelledError)
                try:
                    await tg.__aexit__(*(et, e, tb) if cancel else (None, None, None))
                except BaseExceptionGroup as group:
                    failure = first_error(group)
                    if isinstance(failure, asyncio.CancelledError):  # pragma: no cover
                        raise
        finally:
            self._tasks = []
            await self.stop()
        if failure is not None:
            raise ServiceFailed(self.name, failure) from failure


class Supervisor:
    """Enters services in order, leaves them in reverse, and turns any failure into one error.

    ``async with Supervisor() as sup:`` then ``await sup.enter(service)`` for each service in
    start order (an async context manager, a sync one such as the store, or a
    :class:`Service`). Leaving (normally, by cancellation, or because a service failed) leaves
    every entered service. A failure comes out as one :class:`~gateway.errors.ServiceFailed`:
    raised by a service's loop, or made here from whatever a start raised.
    """

    def __init__(self) -> None:
        """Nothing is entered yet."""
        self._stack = AsyncExitStack()
        self.names: list[str] = []

    async def __aenter__(self) -> Self:
        """Ready to enter services."""
        await self._stack.__aenter__()
        return self

    async def enter(
        self,
        service: AbstractAsyncContextManager[T] | AbstractContextManager[T],
        name: str | None = None,
    ) -> T:
        """Enter ``service`` (ready when this returns), to be left in reverse order.

        Args:
            service: the service.
            name: its name in errors and logs (default: its ``name`` attribute, else its class).

        Raises:
            ServiceFailed: it could not start (carries the service's name and the cause).
        """
        label = name or getattr(service, "name", None) or type(service).__name__
        try:
            if isinstance(service, AbstractContextManager):
                entered: T = self._stack.enter_context(service)
            else:
                entered = await self._stack.enter_async_context(service)
        except ServiceFailed:
            raise
        except Exception as exc:  # the supervisor is where every failure is made one kind
            raise ServiceFailed(label, exc) from exc
        self.names.append(label)
        log.debug("%s ready", label)
        return entered

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Leave every service in reverse order; raise one ``ServiceFailed`` if anything failed.

        A cancellation that came from a failing loop (its TaskGroup cancels the task that
        entered it) is replaced by that loop's ``ServiceFailed``; a cancellation from outside
        (Ctrl-C, a test's timeout) is passed on.
        """
        try:
            await self._stack.__aexit__(et, e, tb)
        except ServiceFailed:
            self._uncancel()
            raise
        except BaseExceptionGroup as group:
            cause = first_error(group)
            if isinstance(cause, ServiceFailed):
                self._uncancel()
                raise cause from None
            raise
        except Exception as exc:
            if e is exc:
                raise  # the body's own error, left as it is
            raise ServiceFailed("gateway", exc) from exc

    @staticmethod
    def _uncancel() -> None:
        # A failed loop's TaskGroup asked for our task to be cancelled; that request is spent
        # (the failure it announced is being raised), so it must not cancel our caller's next
        # await as well.
        task = asyncio.current_task()
        if task is not None:
            while task.cancelling():
                task.uncancel()
