"""In-process fan-out of device readings to subscribers, with a bounded buffer each.

Later services (inventory from scales, telemetry to a time-series database) subscribe to
readings; a poller must never wait for them. :meth:`Fanout.publish` only appends to each
subscriber's buffer; one task (:meth:`Fanout.run`) calls the subscribers.

Overflow policy: **drop the oldest**, per subscriber, counted in :attr:`Subscription.dropped`
and logged once per subscription. A reading is a snapshot of a device; when a subscriber cannot
keep up, the newest readings are the ones worth keeping, and one slow subscriber costs the
others nothing.

A *recorder* (:meth:`Fanout.record`) is different: it is called with every reading inside
:meth:`Fanout.publish`, with no buffer in between, because it keeps a durable record that must
not sit behind a queue that drops (the telemetry history queues and counts on its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from gateway.devices.events import DeviceReadings, ReadingsCallback

__all__ = ["Fanout", "Subscription"]

log = logging.getLogger(__name__)

_BATCH = 256  # readings handed to one subscriber before the loop gets a turn


class Subscription:
    """One subscriber's buffer.

    Attributes:
        dropped: readings dropped because the buffer was full (the oldest went first).
        delivered: readings handed to the callback.
        errors: readings whose callback raised (logged once per subscription).
    """

    def __init__(self, fanout: Fanout, callback: ReadingsCallback, size: int) -> None:
        """Made by :meth:`Fanout.subscribe`."""
        self._fanout = fanout
        self.callback = callback
        self.buffer: deque[DeviceReadings] = deque(maxlen=size)
        self.dropped = 0
        self.delivered = 0
        self.errors = 0

    def close(self) -> None:
        """Stop receiving readings; what is buffered is discarded."""
        self._fanout.unsubscribe(self)
        self.buffer.clear()


class Fanout:
    """Bounded, drop-oldest delivery of readings to every subscriber."""

    def __init__(self, size: int) -> None:
        """``size``: readings buffered per subscriber (>= 1).

        Raises:
            ValueError: ``size`` is below 1.
        """
        if size < 1:
            raise ValueError(f"the subscriber buffer must hold at least 1 reading, got {size}")
        self._size = size
        self._subs: list[Subscription] = []
        self._recorders: list[ReadingsCallback] = []
        self.recorder_errors = 0
        self._wake = asyncio.Event()

    def record(self, callback: ReadingsCallback) -> None:
        """Call ``callback`` with every reading, inside :meth:`publish` (it must not block).

        A recorder that raises is a bug in another service: it must not stop the polling, so
        the error is counted in :attr:`recorder_errors` and logged once.
        """
        self._recorders.append(callback)

    def subscribe(self, callback: ReadingsCallback) -> Subscription:
        """Add a subscriber; it gets the readings published from now on."""
        sub = Subscription(self, callback, self._size)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove a subscriber (no-op if already gone)."""
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, readings: DeviceReadings) -> None:
        """Hand ``readings`` to every recorder, buffer them for every subscriber; never blocks."""
        for recorder in self._recorders:
            try:
                recorder(readings)
            except Exception:
                self.recorder_errors += 1
                if self.recorder_errors == 1:
                    log.exception("a readings recorder failed on %s", readings.device)
        for sub in self._subs:
            if len(sub.buffer) == self._size:
                sub.dropped += 1  # the deque drops the oldest as we append
                if sub.dropped == 1:
                    log.warning(
                        "a readings subscriber (%s) falls behind: its oldest readings are "
                        "dropped (counted in its subscription)",
                        getattr(sub.callback, "__qualname__", sub.callback),
                    )
            sub.buffer.append(readings)
        if self._subs:
            self._wake.set()

    async def run(self) -> NoReturn:
        """Deliver buffered readings until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            more = False
            for sub in list(self._subs):
                more |= self._deliver(sub)
            if more:
                self._wake.set()
                await asyncio.sleep(0)  # let pollers run between batches

    def _deliver(self, sub: Subscription) -> bool:
        """Hand up to one batch to ``sub``; True if more is waiting."""
        for _ in range(min(_BATCH, len(sub.buffer))):
            readings = sub.buffer.popleft()
            try:
                sub.callback(readings)
            except Exception:
                # A subscriber is another service's code: its bug must not stop the readings of
                # every other subscriber (the MQTT client shields its handler the same way).
                sub.errors += 1
                if sub.errors == 1:
                    log.exception("a readings subscriber failed on %s", readings.device)
            else:
                sub.delivered += 1
        return bool(sub.buffer)
