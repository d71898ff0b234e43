"""A connection kept up by its adapter: connect on entry, reconnect on loss (STYLE.md 1, 2, 6, 7).

``Link`` is a :class:`~gateway.lifecycle.Service` holding the lifecycle that does not depend on
the protocol library: the first connect with retries and a deadline (``start``), two named loops
(``reconnect`` waits for a loss and reconnects with capped, jittered backoff; ``keepalive`` ticks
housekeeping), the log line once when the connection is lost and once when it is back, and the
connection-change callbacks. ``MqttClient`` fills in the protocol.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from gateway.errors import BrokerUnavailable
from gateway.lifecycle import Service
from gateway.transport.backoff import Backoff
from gateway.transport.connect import ConnectRefused, retry_connect

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["Link"]

log = logging.getLogger(__name__)


class Link(Service, ABC):
    """Base of adapters that keep one connection up for as long as they are entered.

    Subclasses implement ``_connect_once``, ``_close_connection``, ``_tick`` and ``_on_up``, set
    ``_connected`` when the peer accepted them, and call ``_link_lost`` when the connection
    drops by itself.
    """

    def __init__(
        self,
        *,
        url: str,
        name: str,
        connect_timeout_s: float,
        backoff: tuple[float, float],
        tick_s: float,
    ) -> None:
        """Keep the settings; ``backoff`` is (initial, max) seconds, validated here."""
        Backoff(*backoff)
        self._url = url
        self.name = name
        self._connect_timeout_s = connect_timeout_s
        self._backoff_s = backoff
        self._tick_s = tick_s
        self._connected = False
        self._closing = False
        self._stage = "not started"  # where the current attempt is, for the timeout message
        self._reconnects = 0
        self._lost = asyncio.Event()
        self._conn_callbacks: list[Callable[[bool], None]] = []

    @property
    def connected(self) -> bool:
        """Whether the connection is up and accepted by the peer."""
        return self._connected

    def on_connection_change(self, cb: Callable[[bool], None]) -> None:
        """Call ``cb(True)`` after every connect and ``cb(False)`` after every disconnect."""
        self._conn_callbacks.append(cb)

    @abstractmethod
    async def _connect_once(self) -> None:
        """Make one attempt; raise ``OSError`` or ``ConnectRefused`` if it fails."""

    @abstractmethod
    async def _close_connection(self) -> None:
        """Close politely if possible, and release every resource of the connection."""

    @abstractmethod
    def _tick(self) -> None:
        """Housekeeping every ``tick_s`` while connected (keepalive)."""

    @abstractmethod
    def _on_up(self) -> None:
        """The connection is (again) up: e.g. re-send subscriptions."""

    def _link_lost(self, reason: str) -> None:
        """Record an unexpected loss of the connection (call from the protocol callbacks)."""
        if self._connected and not self._closing:
            log.warning("lost the connection to %s: %s", self._url, reason)
            self._lost.set()
        self._connected = False

    async def start(self) -> None:
        """Connect; failed attempts are retried with backoff for up to ``connect_timeout_s``.

        Raises:
            BrokerUnavailable: not connected within ``connect_timeout_s``, or refused for a
                reason retrying cannot fix (bad credentials, say).
        """
        self._closing = False
        failures: list[str] = []
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._retry_connect(failures, first=True)
        except ConnectRefused as exc:
            raise BrokerUnavailable(self._url, str(exc)) from None
        except TimeoutError:
            last = failures[-1] if failures else f"the only attempt was still {self._stage}"
            why = f"not connected within {self._connect_timeout_s} s ({last})"
            raise BrokerUnavailable(self._url, why) from None
        self.spawn(self._supervise(), "reconnect")
        self.spawn(self._ticker(), "keepalive")
        self._up()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the loops and close; a loss seen meanwhile is ours, not worth a warning."""
        self._closing = True
        await super().__aexit__(et, e, tb)

    async def stop(self) -> None:
        """Close the connection (the loops have been stopped already)."""
        self._closing = True
        was_connected = self._connected
        try:
            await self._close_connection()
        finally:
            self._connected = False
            if was_connected:
                self._notify(up=False)

    async def _supervise(self) -> None:
        while True:
            await self._lost.wait()
            self._lost.clear()
            self._notify(up=False)
            await self._retry_connect([], first=False)
            self._reconnects += 1
            log.info("the connection to %s is back", self._url)
            self._up()

    async def _retry_connect(self, failures: list[str], *, first: bool) -> None:
        backoff = Backoff(*self._backoff_s)
        if not first:
            await asyncio.sleep(backoff.next())  # a peer that just kicked us gets a breather
        await retry_connect(
            self._connect_once, backoff, attempt_timeout_s=self._connect_timeout_s,
            failures=failures, first=first,
        )  # fmt: skip

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            if self._connected:
                self._tick()

    def _up(self) -> None:
        self._on_up()
        self._notify(up=True)

    def _notify(self, *, up: bool) -> None:
        for cb in self._conn_callbacks:
            cb(up)
